"""ONNX export: every registered architecture (at a tiny size) and the bundled models export, carry
what a separation needs in their metadata, and reproduce the torch network within 1e-4 on inputs of
other batch sizes and lengths than the traced one."""
import tomllib

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from test_systems import TINY  # noqa: E402

from vocalsep.checkpoint import ModelBundle, load_model, resolve_model, save_model  # noqa: E402
from vocalsep.cli import main  # noqa: E402
from vocalsep.export import ExportError, _Heads, export_onnx, parity, read_metadata  # noqa: E402
from vocalsep.features import FeatureConfig  # noqa: E402
from vocalsep.models import ARCHITECTURES, build_model  # noqa: E402


def tiny(arch: str) -> ModelBundle:
    torch.manual_seed(0)
    kwargs = {**ARCHITECTURES[arch][1], **tomllib.loads(f"m = {TINY[arch]}")["m"]}
    cfg = FeatureConfig(n_mels=20)
    model = build_model(arch, cfg.n_mels, **{k: v for k, v in kwargs.items() if k not in ARCHITECTURES[arch][1]
                                            or ARCHITECTURES[arch][1][k] != v})
    with torch.no_grad():  # statistics that are not the identity, so the normalisation is exercised
        model.set_feature_stats(torch.linspace(-6, -2, 20), torch.linspace(0.5, 2, 20))
    return ModelBundle(model=model.eval(), features=cfg, arch=arch, model_kwargs=kwargs,
                       voice_rule={"vocals": [1.0] * 4, "accompaniment": [-1.0] * 4} if "embedding" in model.heads else None,
                       separation={"postfilter": False, "silence_db": 40.0})


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_exports_and_matches(tmp_path, arch):
    bundle = tiny(arch)
    path = export_onnx(bundle, tmp_path / f"{arch}.onnx")
    assert parity(_Heads(bundle.model, tuple(bundle.model.heads)), path, 20, seed=5) < 1e-4
    meta = read_metadata(path)
    assert meta["heads"] == list(bundle.model.heads) and meta["arch"] == arch
    assert meta["features"]["n_mels"] == 20 and meta["stems"] == ["vocals", "accompaniment"]
    assert meta["voice_rule"] == bundle.voice_rule and meta["separation"]["silence_db"] == 40.0


def test_every_registered_architecture_is_covered():
    assert set(TINY) == set(ARCHITECTURES)  # a new architecture gets a tiny size here, and so an export test


def test_an_export_that_does_not_reproduce_the_network_is_not_written(tmp_path, monkeypatch):
    import vocalsep.export as export

    monkeypatch.setattr(export, "parity", lambda *a, **k: 0.5)
    with pytest.raises(ExportError, match="differs from the torch one by 0.5"):
        export_onnx(tiny("unet"), tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_network_the_exporter_cannot_trace_gets_one_line(tmp_path):
    class Odd(torch.nn.Module):
        heads = ("mask",)

        def forward(self, logmel, heads=None):
            return {"mask": torch.from_numpy(np.fft.rfft(logmel.numpy()).real[..., :20].copy()).float()}

    bundle = ModelBundle(model=Odd(), features=FeatureConfig(n_mels=20), arch="odd", model_kwargs={})
    with pytest.raises(ExportError, match="cannot be exported|differs") as exc:
        export_onnx(bundle, tmp_path / "odd.onnx")
    assert "\n" not in str(exc.value)


def test_cli_exports_a_bundled_model_and_a_model_file(tmp_path):
    res = CliRunner().invoke(main, ["export", "mir1k-unet1024", str(tmp_path / "u.onnx")])
    assert res.exit_code == 0, res.output
    meta = read_metadata(tmp_path / "u.onnx")
    assert meta["features"]["n_fft"] == 1024 and "research" in meta["licence"]
    again = CliRunner().invoke(main, ["export", "mir1k-unet1024", str(tmp_path / "u.onnx")])
    assert again.exit_code == 2 and "--force" in again.output
    f = save_model(tmp_path / "t.pt", tiny("mask-ff"))
    res = CliRunner().invoke(main, ["export", str(f), str(tmp_path / "t.onnx")])
    assert res.exit_code == 0, res.output


def test_the_bundled_default_reproduces_on_a_real_input(tmp_path):
    """The default model's export on the log-mel of real audio (not only random input)."""
    import onnxruntime as ort

    from conftest import song
    from vocalsep.separator import Separator

    path, sha = resolve_model(None)
    bundle = load_model(path, sha256=sha)
    out = export_onnx(bundle, tmp_path / "d.onnx")
    sep = Separator(bundle)
    mono = song(3.0, 16000, 1)
    spec, mel = sep.front.analyse(mono)
    logmel = sep.front.log_mel(mel)
    with torch.no_grad():
        ref = bundle.model(torch.from_numpy(logmel), heads=("mask",))["mask"].numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"logmel": logmel})[0]
    assert np.abs(got - ref).max() < 1e-4


def test_the_documented_onnxruntime_example_reproduces_vocalseps_features_and_mask(tmp_path, monkeypatch):
    """docs/usage.md's example, run as written on an exported default model: its log-mel equals the
    front end's and its mask the network's (the interface is documented well enough to reimplement)."""
    import re
    from pathlib import Path

    import soundfile as sf

    from conftest import song
    from vocalsep.separator import Separator

    code = re.search(r"```python\n(import json.*?)```", (Path(__file__).parents[1] / "docs" / "usage.md").read_text(),
                     re.S).group(1)
    path, sha = resolve_model(None)
    bundle = load_model(path, sha256=sha)
    export_onnx(bundle, tmp_path / "vocalsep.onnx")
    sf.write(tmp_path / "song.wav", song(3.0, 44100).T, 44100)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "docs/usage.md", "exec"), scope)
    sep = Separator(bundle)
    audio, rate = sf.read(tmp_path / "song.wav", dtype="float32", always_2d=True)
    mono = sep.front.to_model_rate(audio.T[None], rate)
    _, mel = sep.front.analyse(mono)
    logmel = sep.front.log_mel(mel)[0]
    # the example's float64 numpy against the front end's float32: equal to 1e-2 in the log domain (the
    # quietest bins differ most)
    assert np.abs(scope["logmel"] - logmel).max() < 1e-2
    with torch.no_grad():
        ref = bundle.model(torch.from_numpy(logmel[None]), heads=("mask",))["mask"][0].numpy()
    assert np.abs(scope["mask"] - ref).max() < 1e-3
    vocals, sr = sf.read(tmp_path / "vocals-16k.wav")
    assert sr == 16000 and len(vocals) == len(scope["mono"]) and np.isfinite(vocals).all()
