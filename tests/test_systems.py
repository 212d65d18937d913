"""Every system of the seed documents trains for a few steps on generated audio and separates."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from conftest import song, tiny_bundle, write_mir1k_clips
from vocalsep.checkpoint import ModelBundle, load_model, save_model
from vocalsep.cli import main
from vocalsep.features import FeatureConfig
from vocalsep.models import ARCHITECTURES
from vocalsep.separator import SeparationError, Separator
from vocalsep.config import load_config
from vocalsep.train import train_phase

TINY = {
    "mirex2016": "{hidden=8, layers=1, emb_dim=4}",
    "chimera": "{hidden=8, layers=1, emb_dim=4}",
    "mask-ff": "{hidden=8, context=1}",
    "mask-lstm": "{hidden=8, layers=1}",
    "mask-blstm": "{hidden=8, layers=1}",
    "unet": "{channels=2, depth=2}",
    **{name: "{channels=4, emb_dim=4}" for name in ARCHITECTURES if name.startswith("gcdc-")},
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_mir1k_clips(tmp_path_factory.mktemp("mir1k"), 3, 1.5)


def test_every_architecture_has_a_tiny_test_config():
    assert set(TINY) == set(ARCHITECTURES)


@pytest.mark.parametrize("arch", sorted(TINY))
def test_each_system_trains_and_separates(tmp_path, clips, arch):
    cfg = load_config(None, [
        f"data_root={json.dumps(str(clips))}", f"arch={json.dumps(arch)}", f"model={TINY[arch]}",
        "features.n_mels=20", "voice_rule_batches=2",
        "phases=[{chunk_frames=20, batch_size=2, steps_per_epoch=2, max_epochs=1, lr=1e-2}]"])
    bundle = load_model(train_phase(cfg, 1, tmp_path / "exp"))
    assert bundle.arch == arch
    heads = bundle.model.heads
    assert (bundle.voice_rule is not None) == ("embedding" in heads)
    x = song(1.0, 22050, 2)
    for mask_from in [m for m, h in (("clusters", "embedding"), ("head", "mask")) if h in heads]:
        out = Separator(bundle, segment_frames=50, mask_from=mask_from).separate(x, 22050)
        assert out["vocals"].shape == x.shape
        assert np.abs(out["vocals"] + out["accompaniment"] - x).max() < 1e-5
    if "embedding" not in heads:
        with pytest.raises(SeparationError, match="no embeddings to cluster"):
            Separator(bundle, mask_from="clusters")
        with pytest.raises(SeparationError, match="no embeddings to cluster.*2 sources"):
            Separator(bundle, sources=3)
    else:
        out = Separator(bundle, segment_frames=50, sources=3).separate(x, 22050)
        assert sorted(out) == ["source1", "source2", "source3"]


class BandEmbedding(nn.Module):
    """A stand-in network whose embedding depends on the band only: three band groups, three directions."""

    heads = ("embedding",)

    def __init__(self, edges):
        super().__init__()
        self.edges = edges

    def forward(self, logmel, heads=None):
        b, t, f = logmel.shape
        groups = torch.bucketize(torch.arange(f), torch.tensor(self.edges))
        emb = torch.nn.functional.one_hot(groups, 4).float()[None, None].expand(b, t, f, 4)
        return {"embedding": emb}


def three_tones(sr=16000, seconds=2.0):
    t = np.arange(int(sr * seconds)) / sr
    return [0.3 * np.sin(2 * np.pi * f * t).astype(np.float32) for f in (200.0, 1500.0, 5000.0)]


def test_three_sources_are_recovered_by_clustering_into_three():
    cfg = FeatureConfig(n_mels=40)
    from vocalsep.features import mel_filterbank

    fb = mel_filterbank(cfg)  # (bands, bins)
    centres = (fb * np.arange(fb.shape[1])).sum(1) / fb.sum(1)
    hz = centres * cfg.sample_rate / cfg.n_fft
    edges = [int((hz < 700).sum()), int((hz < 3000).sum())]  # band index boundaries between the tones
    rule = {"vocals": [0.0, 1.0, 0.0, 0.0], "accompaniment": [1.0, 0.0, 0.0, 0.0]}  # mid band = most voice-like
    bundle = ModelBundle(model=BandEmbedding(edges), features=cfg, arch="test", model_kwargs={}, voice_rule=rule)
    srcs = three_tones()
    mix = sum(srcs)
    out = Separator(bundle, sources=3).separate(mix, 16000)
    assert np.abs(sum(out.values()) - mix).max() < 1e-5  # the sources add up to the mixture
    # ordered by projection on the voice direction e1 - e0: the mid tone (+1), the high one (0), the low one (-1)
    order = [1, 2, 0]
    for i, k in enumerate(order):
        est, ref = out[f"source{i + 1}"], srcs[k]
        err = est[4000:-4000] - ref[4000:-4000]
        snr = 10 * np.log10((ref[4000:-4000] ** 2).sum() / (err ** 2).sum())
        assert snr > 15, (i, snr)


def test_split_writes_n_sources(tmp_path, model_file, wav_file):
    res = CliRunner().invoke(main, ["split", str(wav_file), "-o", str(tmp_path / "o"), "--model", str(model_file),
                                    "--sources", "3"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    got = sorted(p.name for p in (tmp_path / "o" / "my song").iterdir())
    assert got == ["source1.wav", "source2.wav", "source3.wav"]
    res = CliRunner().invoke(main, ["split", str(wav_file), "--model", str(model_file), "--sources", "1"])
    assert res.exit_code == 2 and "--sources" in res.output


def test_mask_only_model_file_round_trip(tmp_path):
    from vocalsep.models import build_model

    torch.manual_seed(0)
    model = build_model("mask-blstm", 20, hidden=8, layers=1).eval()
    b = ModelBundle(model=model, features=FeatureConfig(n_mels=20), arch="mask-blstm",
                    model_kwargs={**ARCHITECTURES["mask-blstm"][1], "hidden": 8, "layers": 1})
    loaded = load_model(save_model(tmp_path / "m.pt", b))
    x = torch.randn(1, 7, 20)
    assert torch.equal(loaded.model(x)["mask"], model(x)["mask"])
    x = song(1.0, 16000, 1)[0]
    soft = Separator(loaded, mask="soft").separate(x, 16000)
    hard = Separator(loaded, mask="binary").separate(x, 16000)
    assert Separator(loaded).mask == "soft" and Separator(tiny_bundle()).mask == "binary"  # auto
    assert not np.allclose(soft["vocals"], hard["vocals"])


def test_sources_keep_their_numbers_through_a_long_file():
    cfg = FeatureConfig(n_mels=40)
    from vocalsep.features import mel_filterbank

    fb = mel_filterbank(cfg)
    hz = (fb * np.arange(fb.shape[1])).sum(1) / fb.sum(1) * cfg.sample_rate / cfg.n_fft
    edges = [int((hz < 700).sum()), int((hz < 3000).sum())]
    # no voice rule: the first chunk orders its clusters by size, later chunks follow the first
    bundle = ModelBundle(model=BandEmbedding(edges), features=cfg, arch="test", model_kwargs={}, voice_rule=None)
    sr, n = 16000, 16000 * 14
    t = np.arange(n) / sr
    rise = np.clip((t - 5) / 4, 0, 1)  # the low tone fades out and the high one in, half-way through
    srcs = [(0.5 - 0.45 * rise) * np.sin(2 * np.pi * 200 * t), 0.2 * np.sin(2 * np.pi * 1500 * t),
            (0.05 + 0.45 * rise) * np.sin(2 * np.pi * 5000 * t)]
    mix = sum(srcs).astype(np.float32)
    sep = Separator(bundle, sources=3, batch=2)
    out = sep.separate(mix, sr)
    assert sep.segment_length(sr) < n // 3  # several chunks
    for name, est in out.items():
        owner = []
        for half in (slice(sr, n // 2 - sr), slice(n // 2 + 3 * sr, n - sr)):
            owner.append(int(np.argmax([abs(np.dot(est[half], s[half])) for s in srcs])))
        assert owner[0] == owner[1], (name, owner)  # the same tone before and after the levels cross
    assert sorted(int(np.argmax([abs(np.dot(e, s)) for s in srcs])) for e in out.values()) == [0, 1, 2]


def test_best_match_finds_the_permutation():
    from vocalsep.cluster import _best_match

    rng = np.random.default_rng(0)
    for k in (3, 9):  # exhaustive, then greedy
        prev = np.linalg.qr(rng.standard_normal((12, 12)))[0][:k]
        perm = rng.permutation(k)
        cents = prev[perm] + 0.01 * rng.standard_normal((k, 12))
        order = _best_match(prev, cents)
        assert np.array_equal(perm[order], np.arange(k))
