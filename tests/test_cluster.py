import numpy as np
import pytest

from vocalsep.cluster import ClusterError, pick_voice_cluster, voice_direction, voice_mask


def two_groups(frames=30, bands=10, dim=4, seed=0):
    """Embeddings near e0 (voice) in the left half of the bands, near e1 elsewhere."""
    rng = np.random.default_rng(seed)
    emb = np.zeros((frames, bands, dim))
    emb[:, : bands // 2, 0] = 1
    emb[:, bands // 2:, 1] = 1
    emb += 0.05 * rng.standard_normal(emb.shape)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    truth = np.zeros((frames, bands), np.float32)
    truth[:, : bands // 2] = 1
    return emb.astype(np.float32), truth


RULE = {"vocals": [0.9, 0.1, 0.0, 0.0], "accompaniment": [0.1, 0.9, 0.0, 0.0]}


@pytest.mark.parametrize("method", ["kmeans", "prototype"])
def test_voice_rule_finds_the_voice_cluster(method):
    emb, truth = two_groups()
    mask = voice_mask(emb, np.ones(truth.shape, bool), RULE, method)
    assert np.array_equal(mask, truth)
    swapped = {"vocals": RULE["accompaniment"], "accompaniment": RULE["vocals"]}
    assert np.array_equal(voice_mask(emb, np.ones(truth.shape, bool), swapped, method), 1 - truth)


def test_kmeans_fits_loud_bins_only_and_is_deterministic():
    emb, truth = two_groups()
    loud = np.ones(truth.shape, bool)
    loud[:5] = False
    emb[:5] = emb[:5, ::-1]  # untrained silent bins point elsewhere; they must not steal a cluster
    a = voice_mask(emb, loud, RULE, "kmeans", seed=3)
    b = voice_mask(emb, loud, RULE, "kmeans", seed=3)
    assert np.array_equal(a, b)
    assert np.array_equal(a[5:], truth[5:])


def test_silent_chunk_gives_empty_voice_mask():
    emb, truth = two_groups()
    assert voice_mask(emb, np.zeros(truth.shape, bool), RULE).sum() == 0


def test_pick_voice_cluster_and_rule_errors():
    d = voice_direction(RULE)
    assert pick_voice_cluster(np.array([[0.0, 1.0, 0, 0], [1.0, 0.0, 0, 0]]), d) == 1
    with pytest.raises(ClusterError, match="no voice rule"):
        voice_direction(None)
    with pytest.raises(ClusterError, match="degenerate"):
        voice_direction({"vocals": [1, 0], "accompaniment": [1, 0]})
    with pytest.raises(ClusterError, match="unknown clustering"):
        voice_mask(*two_groups()[:1], np.ones((30, 10), bool), RULE, "spectral")


def test_fitting_on_a_sample_of_bins_gives_the_same_mask():
    emb, truth = two_groups(frames=200)
    loud = np.ones(truth.shape, bool)
    assert np.array_equal(voice_mask(emb, loud, RULE, "kmeans", seed=0, max_fit_points=50), truth)
