"""The two runtimes: ONNX Runtime (the default install) and torch give the same masks and stems, for
every bundled model and mask path and every registered architecture; the runtime is chosen as
documented; separation never imports torch when it runs on ONNX Runtime."""
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
import torch  # noqa: E402

from conftest import song  # noqa: E402
from vocalsep.checkpoint import load_model, read_checkpoint, save_model  # noqa: E402
from vocalsep.errors import MissingExtraError, VocalsepError  # noqa: E402
from vocalsep.export import export_onnx  # noqa: E402
from vocalsep.models import ARCHITECTURES  # noqa: E402
from vocalsep.onnx_model import load_onnx  # noqa: E402
from vocalsep.registry import choose_runtime, registry, resolve_model  # noqa: E402
from vocalsep.separator import Separator  # noqa: E402

TOL = 1e-4


def both(name, **kwargs):
    return (Separator.from_pretrained(name, "onnx", **kwargs), Separator.from_pretrained(name, "torch", **kwargs))


def masks_of(sep, x, sr):
    """The separator's masks on the model grid for the first chunks of ``x``."""
    mono = sep.front.to_model_rate(x[None], sr)
    heads, mel, _ = sep.infer(mono)
    return sep.masks(heads, mel, {})


# every bundled model, every mask path it has: (model, Separator options)
PATHS = [(name, {}) for name in ("voices-unet1024", "mir1k-unet1024", "mir1k-unet")] + [
    ("mir1k-chimera", {}),                                       # its mask head
    ("mir1k-chimera", {"mask_from": "clusters"}),                # k-means++ on the embeddings
    ("mir1k-chimera", {"mask_from": "clusters", "mask": "soft"}),
    ("mir1k-chimera", {"mask_from": "clusters", "cluster": "prototype"}),
    ("mir1k-chimera", {"sources": 3}),                           # N sources
    ("voices-unet1024", {"reconstruct": "mel"}),                 # the MIREX 2016 reconstruction
    ("voices-unet1024", {"postfilter": True}),
]


@pytest.mark.parametrize("name,options", PATHS, ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}"
                                                     for n, o in PATHS])
def test_bundled_models_give_the_same_masks_and_stems_on_both_runtimes(name, options):
    x = song(4.0, 44100, 2)
    onnx_sep, torch_sep = both(name, **options)
    assert (onnx_sep.runtime, torch_sep.runtime) == ("onnx", "torch")
    m1, m2 = masks_of(onnx_sep, x, 44100), masks_of(torch_sep, x, 44100)
    assert m1.shape == m2.shape and np.abs(m1 - m2).max() <= TOL
    a, b = onnx_sep.separate(x, 44100), torch_sep.separate(x, 44100)
    assert a.keys() == b.keys()
    for stem in a:
        assert np.abs(a[stem] - b[stem]).max() <= TOL, stem


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_exports_and_separates_the_same_on_onnx_runtime(arch, tmp_path):
    """A new architecture cannot slip past: at a tiny size (test_export's), stored in int8 as the
    bundled models are, exported and run by ONNX Runtime through the Separator, it gives the torch
    path's stems on every mask path it has."""
    from test_export import tiny

    save_model(tmp_path / "m.pt", tiny(arch), storage="int8")
    stored = load_model(tmp_path / "m.pt")
    export_onnx(stored, tmp_path / "m.onnx", stored=read_checkpoint(tmp_path / "m.pt")["state_dict"])
    x = song(2.0, 22050, 2)
    paths = ([{"mask_from": "head"}] if "mask" in stored.heads else []) + \
        ([{"mask_from": "clusters"}, {"mask_from": "clusters", "sources": 3}] if "embedding" in stored.heads else [])
    for opts in paths:
        a = Separator.from_file(tmp_path / "m.onnx", segment_frames=120, **opts).separate(x, 22050)
        b = Separator(stored, segment_frames=120, **opts).separate(x, 22050)
        for stem in a:
            assert np.abs(a[stem] - b[stem]).max() <= TOL, (arch, opts, stem)


def test_bundled_models_ship_once_as_int8_onnx_that_both_runtimes_read(tmp_path):
    """One file per bundled model: its weights int8 (a quarter of float32); torch rebuilds the network
    from exactly those weights, and re-exporting that network gives the file back byte for byte,
    so the two runtimes cannot drift apart."""
    import onnx
    from onnx import numpy_helper

    from vocalsep.export import stored_weights
    from vocalsep.registry import file_sha256

    for name, entry in registry()["models"].items():
        path, sha = resolve_model(name)
        assert path.suffix == ".onnx" and file_sha256(path) == sha == entry["sha256"]
        proto = onnx.load(str(path))
        ints = [numpy_helper.to_array(i) for i in proto.graph.initializer if i.name.endswith("/int8")]
        n_params = sum(p.numel() for p in load_model(path).model.parameters())
        assert ints and all(a.dtype == np.int8 for a in ints)
        assert path.stat().st_size < 1.5 * n_params  # bytes: int8 and a little, not float32's 4 per weight
    name = registry()["default"]
    path, _ = resolve_model(name)
    bundle = load_model(path)
    export_onnx(bundle, tmp_path / "again.onnx", licence=registry()["models"][name]["license"],
                stored=stored_weights(path))
    assert (tmp_path / "again.onnx").read_bytes() == path.read_bytes()


def test_onnx_runtime_folds_the_int8_weights_into_float32_at_load(tmp_path):
    """The graph ONNX Runtime runs under vocalsep's session settings has no DequantizeLinear left (the
    int8-stored weights became float32 constants once, at load), where its defaults keep them as
    quantised-graph nodes that dequantise on every call."""
    import onnx
    import onnxruntime as ort

    from vocalsep.onnx_model import session_options

    path, _ = resolve_model(None)

    def ops_after_load(opts, out):
        opts.optimized_model_filepath = str(out)
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return {n.op_type for n in onnx.load(str(out)).graph.node}

    plain = ort.SessionOptions()
    plain.log_severity_level = 3
    assert "DequantizeLinear" in ops_after_load(plain, tmp_path / "plain.onnx")
    ours = ops_after_load(session_options(), tmp_path / "ours.onnx")
    assert "DequantizeLinear" not in ours and "Conv" in ours


def test_the_torch_network_from_an_export_is_the_model_file_it_was_exported_from(tmp_path):
    from test_export import tiny

    for arch in ("unet", "chimera"):
        save_model(tmp_path / "m.pt", tiny(arch), storage="int8")
        export_onnx(load_model(tmp_path / "m.pt"), tmp_path / "m.onnx",
                    stored=read_checkpoint(tmp_path / "m.pt")["state_dict"])
        a, b = load_model(tmp_path / "m.pt"), load_model(tmp_path / "m.onnx")
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa if not k.endswith("num_batches_tracked"))
        assert (a.features, a.voice_rule, a.separation, a.training, a.heads) == \
            (b.features, b.voice_rule, b.separation, b.training, b.heads)


def test_the_onnx_file_describes_itself():
    path, _ = resolve_model("mir1k-chimera")
    m, b = load_onnx(path), load_model(path)
    assert m.heads == b.heads == ("embedding", "mask") and (m.runtime, b.runtime) == ("onnx", "torch")
    assert (m.features, m.stems, m.voice_rule, m.separation) == (b.features, b.stems, b.voice_rule, b.separation)
    assert m.silence_db == b.silence_db and m.postfilter_default("head") == b.postfilter_default("head")


def test_auto_runtime_is_onnx_for_bundled_models_and_follows_the_file_kind(tmp_path, bundle):
    assert choose_runtime(None) == "onnx" and choose_runtime("mir1k-chimera") == "onnx"
    assert choose_runtime(None, device="cuda") == "torch"
    save_model(tmp_path / "m.pt", bundle)
    assert choose_runtime(tmp_path / "m.pt") == "torch"
    with pytest.raises(VocalsepError, match="export it first"):
        choose_runtime(tmp_path / "m.pt", "onnx")
    assert choose_runtime(tmp_path / "m.onnx") == "onnx" and choose_runtime(tmp_path / "m.onnx", "torch") == "torch"
    with pytest.raises(VocalsepError, match="runs on torch"):
        choose_runtime(None, "onnx", device="cuda")


def test_a_missing_runtime_names_the_extra_to_install(monkeypatch):
    from vocalsep import registry as reg

    monkeypatch.setattr(reg, "installed_runtimes", lambda: ("onnx",))
    with pytest.raises(MissingExtraError, match=r"pip install 'vocalsep\[torch\]'"):
        Separator.from_pretrained(None, "torch")
    monkeypatch.setattr(reg, "installed_runtimes", lambda: ())
    with pytest.raises(MissingExtraError, match="onnxruntime"):
        Separator.from_pretrained()
    monkeypatch.setattr(reg, "installed_runtimes", lambda: ("torch",))
    monkeypatch.setattr(reg, "_importable", lambda module: module != "onnx")
    with pytest.raises(MissingExtraError, match=r"the onnx package: pip install 'vocalsep\[torch\]'"):
        Separator.from_pretrained()


@pytest.mark.parametrize("content,match", [(b"not onnx", "not a readable ONNX model"), (None, "without vocalsep's metadata")])
def test_foreign_or_damaged_onnx_files_are_refused_in_one_line(tmp_path, content, match):
    path = tmp_path / "x.onnx"
    if content is None:  # a valid ONNX graph that vocalsep did not write
        import onnx
        from onnx import TensorProto, helper

        g = helper.make_graph([helper.make_node("Identity", ["logmel"], ["mask"])], "g",
                              [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, [1, 2, 3])],
                              [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 2, 3])])
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    else:
        path.write_bytes(content)
    with pytest.raises(VocalsepError, match=match):
        Separator.from_file(path)


def test_split_on_onnx_runtime_never_imports_torch(tmp_path):
    """The CLI with torch made unimportable: the default model separates, and a command that needs
    torch says which extra to install."""
    import soundfile as sf

    sf.write(tmp_path / "in.wav", song(1.0, 22050, 2).T, 22050)
    code = ("import sys; sys.modules['torch'] = None\n"
            "from vocalsep.cli import main\n"
            "try:\n    main(sys.argv[1:])\n"
            "except SystemExit as e:\n    code = e.code\n"
            "import json; print(json.dumps({'code': code, 'torch': sys.modules.get('torch') is not None,"
            " 'sklearn': 'sklearn' in sys.modules, 'scipy': 'scipy' in sys.modules}))")
    run = subprocess.run([sys.executable, "-c", code, "split", "in.wav", "-o", "out"], cwd=tmp_path,
                         capture_output=True, text=True)
    res = json.loads(run.stdout.strip().splitlines()[-1])
    assert res == {"code": 0, "torch": False, "sklearn": False, "scipy": False}, run.stderr
    assert (tmp_path / "out" / "in" / "vocals.wav").is_file()
    run = subprocess.run([sys.executable, "-c", code, "split", "in.wav", "-o", "out2", "--runtime", "torch"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert json.loads(run.stdout.strip().splitlines()[-1])["code"] == 1
    assert "pip install 'vocalsep[torch]'" in run.stderr and run.stderr.count("\n") == 1
