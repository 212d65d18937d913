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


@pytest.mark.parametrize("method", ["kmeans", "kmeans-sklearn", "prototype", "meanshift"])
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


def blobs(n_per, centres, seed=0, spread=0.05):
    rng = np.random.default_rng(seed)
    pts = np.concatenate([np.asarray(c) + spread * rng.standard_normal((n_per, len(c))) for c in centres])
    return pts.astype(np.float32)


def test_batched_kmeans_matches_scikit_learn():
    from vocalsep.cluster import kmeans_batch, kmeans_sklearn

    sets = [blobs(200, [[1, 0, 0], [0, 1, 0]], seed=s) for s in range(3)] + [blobs(150, [[0, 0, 1], [1, 1, 0]], 7, 0.3)]
    ours = kmeans_batch(sets, 2, seed=0)
    for pts, c in zip(sets, ours, strict=True):
        ref = kmeans_sklearn(pts, 2, seed=0)[0]
        # the same partition up to label order -> the same centroids up to order
        order = np.argsort(c[:, 0] - c[:, 1])
        ref_order = np.argsort(ref[:, 0] - ref[:, 1])
        assert np.allclose(c[order], ref[ref_order], atol=1e-4)


def test_batched_kmeans_does_not_depend_on_the_batch():
    from vocalsep.cluster import kmeans_batch

    sets = [blobs(100 + 10 * s, [[1, 0], [0, 1], [0.5, 0.5]], seed=s, spread=0.3) for s in range(5)]
    together = kmeans_batch(sets, 3, seed=4, n_init=2, pad_to=500)
    alone = [kmeans_batch([p], 3, seed=4, n_init=2, pad_to=500)[0] for p in sets]
    for a, b in zip(together, alone, strict=True):
        assert np.array_equal(a, b)
    assert kmeans_batch([np.ones((10, 2), np.float32), np.zeros((1, 2), np.float32)], 2) == [None, None]


def test_more_restarts_never_raise_the_inertia():
    from vocalsep.cluster import kmeans_batch

    pts = blobs(100, [[0, 0], [1, 0], [0, 1], [1, 1]], seed=3, spread=0.35)

    def inertia(c):
        return ((pts[:, None] - c[None]) ** 2).sum(-1).min(1).sum()

    one = [inertia(kmeans_batch([pts], 4, seed=s)[0]) for s in range(6)]
    many = [inertia(kmeans_batch([pts], 4, seed=s, n_init=4)[0]) for s in range(6)]
    # the first restart is the single run's, so keeping the best of four can only help
    assert all(m <= o + 1e-6 for m, o in zip(many, one, strict=True))


def test_soft_masks_are_memberships_that_harden_with_softness():
    emb, truth = two_groups()
    loud = np.ones(truth.shape, bool)
    soft = voice_mask(emb, loud, RULE, "kmeans", softness=5.0)
    assert ((soft > 0) & (soft < 1)).all()
    assert np.array_equal(soft > 0.5, truth.astype(bool))
    hard = voice_mask(emb, loud, RULE, "kmeans", softness=500.0)
    assert np.abs(hard - truth).max() < 1e-3


def test_mean_shift_finds_the_number_of_clusters_and_the_rule_picks_the_voice_ones():
    from vocalsep.cluster import mean_shift

    pts = blobs(300, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], seed=1)
    assert len(mean_shift(pts)) == 3
    # three groups: the voice near e0; two accompaniment groups (e1 and e2) both count as accompaniment
    rng = np.random.default_rng(0)
    emb = np.zeros((30, 12, 4))
    emb[:, :4, 0] = 1
    emb[:, 4:8, 1] = 1
    emb[:, 8:, 2] = 1
    emb += 0.03 * rng.standard_normal(emb.shape)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    rule = {"vocals": [0.9, 0.0, 0.0, 0.1], "accompaniment": [0.0, 0.6, 0.6, 0.1]}
    mask = voice_mask(emb.astype(np.float32), np.ones((30, 12), bool), rule, "meanshift")
    assert mask[:, :4].all() and not mask[:, 4:].any()


def test_source_masks_partition_the_bins_in_voice_order():
    from vocalsep.cluster import source_masks

    rng = np.random.default_rng(0)
    emb = np.zeros((2, 20, 9, 4))
    for j in range(3):
        emb[:, :, 3 * j:3 * j + 3, j] = 1
    emb += 0.03 * rng.standard_normal(emb.shape)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    rule = {"vocals": [0.0, 0.0, 1.0, 0.0], "accompaniment": [1.0, 0.0, 0.0, 0.0]}
    m = source_masks(emb.astype(np.float32), np.ones((2, 20, 9), bool), 3, rule)
    assert m.shape == (2, 3, 20, 9)
    assert np.array_equal(m.sum(1), np.ones((2, 20, 9)))
    assert m[:, 0, :, 6:].all() and m[:, 1, :, 3:6].all() and m[:, 2, :, :3].all()  # e2, then e1, then e0
    with pytest.raises(ClusterError, match="at least 2"):
        source_masks(emb, np.ones((2, 20, 9), bool), 1)
