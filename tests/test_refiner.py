"""The bin refiner: a U-Net's band mask sharpened to the bins of its STFT (model, export, separation, recipe)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import song, write_mir1k_clips
from vocalsep import Separator
from vocalsep.checkpoint import ModelBundle, load_model, save_model
from vocalsep.features import FeatureConfig
from vocalsep.masking import bin_to_bin_weights
from vocalsep.models import build_model
from vocalsep.separator import SeparationError

ROOT = Path(__file__).resolve().parents[1]
CFG = FeatureConfig(n_mels=20)
GRID = [CFG.sample_rate, CFG.n_fft, CFG.fmin, CFG.fmax]
KW = dict(channels=2, depth=2, dropout=0.0)


def _recipe():
    spec = importlib.util.spec_from_file_location("train_refiner", ROOT / "recipes" / "mixed" / "train_refiner.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bundle(refine: int = 0, seed: int = 0, moved: bool = True) -> ModelBundle:
    torch.manual_seed(seed)
    kwargs = {**KW, **({"refine": refine, "refine_grid": GRID} if refine else {})}
    model = build_model("unet", CFG.n_mels, **kwargs).eval()
    if refine and moved:  # a refiner that training has moved: its output layer no longer zero
        with torch.no_grad():
            model.refiner.out.weight.normal_(0, 0.5)
            model.refiner.out.bias.fill_(0.1)
    return ModelBundle(model=model, features=CFG, arch="unet", model_kwargs=kwargs, voice_rule=None,
                       separation={"postfilter": False, "silence_db": 40.0})


def test_a_new_refiner_returns_the_band_mask_interpolated_onto_the_bins():
    model = bundle(refine=4, moved=False).model
    x, mag = torch.randn(2, 30, 20), torch.rand(2, 30, CFG.n_bins)
    with torch.no_grad():
        out = model(x, magnitude=mag)
    assert out["bin_mask"].shape == (2, 30, CFG.n_bins)
    torch.testing.assert_close(out["bin_mask"], (out["mask"] @ model.refiner.to_bins).clamp(1e-4, 1 - 1e-4))
    torch.testing.assert_close(model.refiner.to_bins.sum(0), torch.ones(CFG.n_bins))


def test_the_refiner_reads_the_magnitude_once_trained():
    model = bundle(refine=4).model
    x, mag = torch.randn(1, 30, 20), torch.rand(1, 30, CFG.n_bins)
    with torch.no_grad():
        a, b = model(x, magnitude=mag)["bin_mask"], model(x, magnitude=mag.flip(-1))["bin_mask"]
        band = model(x, heads=("mask",))
    assert set(band) == {"mask"}  # the band mask alone needs no magnitude
    assert (a - b).abs().max() > 1e-3


def test_a_refining_unet_needs_the_magnitude_on_its_own_bins():
    model = bundle(refine=4).model
    with pytest.raises(ValueError, match="magnitude"):
        model(torch.randn(1, 10, 20))
    with pytest.raises(ValueError, match=f"{CFG.n_bins} bins"):
        model(torch.randn(1, 10, 20), magnitude=torch.rand(1, 10, 100))
    with pytest.raises(ValueError, match="refine_grid"):
        build_model("unet", 20, refine=4)


def test_bin_to_bin_weights_interpolate_linearly_and_stop_at_the_model_band():
    cfg = FeatureConfig(n_fft=1024)
    low, w = bin_to_bin_weights(cfg, 44100, 2048)
    freqs = np.fft.rfftfreq(2048, 1 / 44100)
    assert freqs[low].max() <= 8000 and freqs[low[-1] + 1] > 8000
    np.testing.assert_allclose(w.sum(1), 1, atol=1e-6)
    model_freqs = np.fft.rfftfreq(1024, 1 / 16000)
    np.testing.assert_allclose(w @ model_freqs, freqs[low], atol=1e-2)  # a ramp in frequency maps onto itself
    same_low, same = bin_to_bin_weights(cfg, 16000, 1024)
    np.testing.assert_array_equal(same, np.eye(cfg.n_bins, dtype=np.float32))


def test_save_load_keeps_the_refiner_and_its_grid(tmp_path):
    b = bundle(refine=4)
    path = save_model(tmp_path / "m.pt", b)
    again = load_model(path)
    assert again.heads == ("mask", "bin_mask") and again.model_kwargs["refine_grid"] == GRID
    x, mag = torch.randn(1, 25, 20), torch.rand(1, 25, CFG.n_bins)
    with torch.no_grad():
        torch.testing.assert_close(again.model(x, magnitude=mag)["bin_mask"], b.model(x, magnitude=mag)["bin_mask"])


@pytest.mark.parametrize("rate", [16000, 44100])
def test_separation_with_the_refiner_sums_to_the_input_and_differs_from_the_band_mask(rate):
    x = song(2.0, rate, 2)
    sep = Separator(bundle(refine=4), segment_frames=60)
    assert sep.refine
    out = sep.separate(x, rate)
    np.testing.assert_allclose(out["vocals"] + out["accompaniment"], x, atol=1e-5)
    band = Separator(bundle(refine=4), segment_frames=60, refine=False).separate(x, rate)
    plain = Separator(bundle(refine=0), segment_frames=60).separate(x, rate)
    np.testing.assert_allclose(band["vocals"], plain["vocals"], atol=1e-6)  # --no-refine: the U-Net's own mask
    assert np.abs(out["vocals"] - band["vocals"]).max() > 1e-3


def test_refine_is_refused_where_it_cannot_apply():
    with pytest.raises(SeparationError, match="no bin refiner"):
        Separator(bundle(refine=0), refine=True)
    with pytest.raises(SeparationError, match="--no-refine"):
        Separator(bundle(refine=4), reconstruct="mel", refine=True)
    assert not Separator(bundle(refine=4), reconstruct="mel").refine  # the default follows the path


def test_onnx_export_of_a_refining_unet_separates_as_torch_does(tmp_path):
    pytest.importorskip("onnxruntime")
    from vocalsep.export import export_onnx

    b = bundle(refine=4)
    path = export_onnx(b, tmp_path / "r.onnx")  # checks every head within 1e-4 on random inputs
    x = song(2.0, 44100, 2)
    ref = Separator(b, segment_frames=60).separate(x, 44100)
    onnx = Separator.from_file(path, segment_frames=60)
    assert onnx.runtime == "onnx" and onnx.refine
    np.testing.assert_allclose(onnx.separate(x, 44100)["vocals"], ref["vocals"], atol=1e-4)
    torch_again = Separator.from_file(path, "torch", segment_frames=60)
    np.testing.assert_allclose(torch_again.separate(x, 44100)["vocals"], ref["vocals"], atol=1e-5)
    band = Separator.from_file(path, segment_frames=60, refine=False).separate(x, 44100)
    plain = Separator(b, segment_frames=60, refine=False).separate(x, 44100)
    np.testing.assert_allclose(band["vocals"], plain["vocals"], atol=1e-4)


def test_recipe_trains_the_refiner_alone_and_resumes(tmp_path):
    rec = _recipe()
    clips = write_mir1k_clips(tmp_path / "mir1k", 2, 1.5)
    conf = tmp_path / "c.toml"
    conf.write_text(f'data_root = "{clips}"\n'
                    "[[phases]]\nchunk_frames = 40\nbatch_size = 2\nsteps_per_epoch = 2\nmax_epochs = 1\nlr = 1e-3\n")
    base = save_model(tmp_path / "base.pt", bundle(refine=0))
    out = tmp_path / "r"
    args = [str(base), str(out), "-c", str(conf), "--set", "remix.pool_prob=0.0", "--channels", "3",
            "--batch", "2", "--save-every", "2", "--lr", "1e-2"]
    assert rec.main(args + ["--steps", "2"]) == 0
    first = load_model(out / "model.pt")
    assert first.heads == ("mask", "bin_mask") and first.training["refiner"]["steps"] == 2
    assert first.model.refiner.out.weight.abs().max() > 0  # the zero output layer moved
    b0 = load_model(base).model.state_dict()
    assert all(torch.equal(v, first.model.state_dict()[k]) for k, v in b0.items())  # the U-Net is frozen
    assert rec.main(args + ["--steps", "4"]) == 0
    lines = (out / "train.log").read_text().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["step 2", "step 4"]  # resumed, not restarted
    assert load_model(out / "model.pt").training["refiner"]["steps"] == 4


def test_recipe_refuses_a_base_that_is_not_a_unet(tmp_path):
    from conftest import tiny_bundle
    from vocalsep.checkpoint import ModelFileError

    with pytest.raises(ModelFileError, match="U-Net"):
        _recipe().refining_bundle(tiny_bundle(), 4)
