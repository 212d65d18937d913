"""Accelerated paths score within 0.1 dB of their reference paths (GNSDR on generated clips)."""
import pytest

from conftest import write_mir1k_clips
from vocalsep.checkpoint import load_model, save_model
from vocalsep.evaluate import evaluate_mir1k
from vocalsep.separator import Separator
from vocalsep.config import load_config
from vocalsep.train import train_phase


@pytest.fixture(scope="module")
def mir1k_like(tmp_path_factory):
    return write_mir1k_clips(tmp_path_factory.mktemp("mir1k"), 4, 6.0, acc_gain=0.6)


@pytest.fixture(scope="module")
def trained(mir1k_like, tmp_path_factory):
    """A small model trained briefly on the clips, so that its embeddings form real clusters."""
    import json

    cfg = load_config(None, [f"data_root={json.dumps(str(mir1k_like))}", "model.hidden=16", "model.layers=1",
                             "model.emb_dim=6", "model.dropout=0.0", "features.n_mels=40", "voice_rule_batches=4",
                             "phases=[{chunk_frames=50, batch_size=8, steps_per_epoch=80, max_epochs=1, lr=1e-2}]"])
    return load_model(train_phase(cfg, 1, tmp_path_factory.mktemp("exp")))


def gnsdr(sep, root):
    return evaluate_mir1k(sep, root)["summary"]["vocals"]["GNSDR"]


def plain(bundle, **kw):
    """The k-means path with binary masks and no post-filter: what the accelerated paths change."""
    return Separator(bundle, mask="binary", postfilter=False, **kw)


def test_numpy_kmeans_scores_like_scikit_learn(mir1k_like, trained):
    b = trained
    fast, ref = gnsdr(plain(b), mir1k_like), gnsdr(plain(b, cluster="kmeans-sklearn"), mir1k_like)
    assert abs(fast - ref) < 0.1, (fast, ref)
    assert fast > 1.0  # a model that separates (untrained ones score below 0), so the comparison means something


def test_blstm_directions_on_two_threads_score_like_the_fused_kernel(mir1k_like, trained, monkeypatch):
    import vocalsep.models.blstm as mod

    b = trained
    fast = gnsdr(plain(b), mir1k_like)
    monkeypatch.setattr(mod, "PARALLEL_DIRECTIONS", False)
    ref = gnsdr(plain(b), mir1k_like)
    assert abs(fast - ref) < 0.1, (fast, ref)


def test_int8_storage_scores_like_float32(mir1k_like, trained, tmp_path):
    b = trained
    f32 = load_model(save_model(tmp_path / "f.pt", b))
    i8 = load_model(save_model(tmp_path / "i.pt", b, storage="int8"))
    a, c = gnsdr(plain(f32), mir1k_like), gnsdr(plain(i8), mir1k_like)
    assert abs(a - c) < 0.1, (a, c)
