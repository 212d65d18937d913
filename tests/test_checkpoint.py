import pickle

import numpy as np
import pytest
import torch

from conftest import song
from vocalsep.checkpoint import ModelFileError, load_model, registry, resolve_model, save_model
from vocalsep.separator import Separator


def test_save_load_round_trip_is_exact(tmp_path, bundle):
    path = save_model(tmp_path / "m.pt", bundle)
    loaded = load_model(path)
    for (k, a), (k2, b) in zip(bundle.model.state_dict().items(), loaded.model.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    assert loaded.features == bundle.features and loaded.voice_rule == bundle.voice_rule
    x = song(1.0, 16000, 1)
    a = Separator(bundle, segment_frames=100).separate(x, 16000)
    b = Separator(loaded, segment_frames=100).separate(x, 16000)
    assert np.array_equal(a["vocals"], b["vocals"])


@pytest.mark.parametrize("storage,tol", [("float16", 1e-3), ("int8", 1e-2)])
def test_compact_storage_is_close_and_smaller(tmp_path, storage, tol):
    from conftest import tiny_bundle

    b = tiny_bundle()
    b.model_kwargs = dict(hidden=32, layers=1, emb_dim=4, dropout=0.0)  # large enough for sizes to tell
    b.model = type(b.model)(n_bands=20, **b.model_kwargs)
    full = save_model(tmp_path / "f.pt", b)
    path = save_model(tmp_path / f"{storage}.pt", b, storage=storage)
    loaded = load_model(path)
    assert loaded.meta["storage_dtype"] == storage
    assert path.stat().st_size < 0.7 * full.stat().st_size
    for a, c in zip(b.model.state_dict().values(), loaded.model.state_dict().values(), strict=True):
        assert c.dtype == a.dtype and torch.allclose(a, c, atol=tol * max(1.0, a.abs().max().item()), rtol=0)
    with pytest.raises(ValueError, match="unknown storage"):
        save_model(tmp_path / "x.pt", b, storage="int4")


def test_separation_defaults_travel_with_the_model_file(tmp_path):
    from conftest import tiny_bundle

    b = tiny_bundle()
    assert Separator(b).postfilter  # a file that says nothing: the post-filter is on
    b.separation = {"postfilter": False}
    loaded = load_model(save_model(tmp_path / "m.pt", b))
    assert loaded.separation["postfilter"] is False
    assert not Separator(loaded).postfilter  # the model's choice is the default ...
    assert Separator(loaded, postfilter=True).postfilter  # ... and an explicit choice still wins
    from vocalsep.models import build_model

    b.model_kwargs = dict(b.model_kwargs, mask_head=True)
    b.model, b.arch = build_model("chimera", 20, **b.model_kwargs).eval(), "chimera"
    b.separation = {"postfilter": {"head": False}}  # per mask source; the others keep theirs
    loaded = load_model(save_model(tmp_path / "m2.pt", b))
    assert not Separator(loaded, mask_from="head").postfilter and Separator(loaded, mask_from="clusters").postfilter
    b.separation = {"postfilter": "no"}
    with pytest.raises(ModelFileError, match="malformed separation defaults"):
        load_model(save_model(tmp_path / "bad.pt", b))


def test_a_registry_name_that_contradicts_the_model_class_is_refused(tmp_path):
    from conftest import tiny_bundle

    b = tiny_bundle()
    b.arch = "unet"  # the weights are a DeepClusteringBLSTM
    with pytest.raises(ModelFileError, match="arch 'unet' is a MaskUNet, not a DeepClusteringBLSTM"):
        load_model(save_model(tmp_path / "m.pt", b))
    b.arch = "my-experiment"  # a name the registry does not know is only a label
    assert load_model(save_model(tmp_path / "ok.pt", b)).arch == "my-experiment"


def test_the_silence_threshold_is_a_separation_setting_of_the_file(tmp_path):
    from conftest import tiny_bundle

    b = tiny_bundle()
    b.training, b.separation = {}, {"silence_db": 25.0}
    loaded = load_model(save_model(tmp_path / "m.pt", b))
    assert loaded.silence_db == 25.0 and Separator(loaded).silence_db == 25.0
    b.training, b.separation = {"silence_db": 30.0}, {}  # a file from before it moved: its training summary
    assert load_model(save_model(tmp_path / "old.pt", b)).silence_db == 30.0
    b.training = {}
    assert load_model(save_model(tmp_path / "none.pt", b)).silence_db == 40.0  # neither: the documented default
    for bad in (-3.0, 0, 1e9, "40", True):
        b.separation = {"silence_db": bad}
        with pytest.raises(ModelFileError, match="malformed separation defaults"):
            load_model(save_model(tmp_path / "bad.pt", b))


def test_file_is_self_describing(tmp_path, bundle):
    obj = torch.load(save_model(tmp_path / "m.pt", bundle), weights_only=True)
    for key in ("arch", "model_class", "model_kwargs", "features", "voice_rule", "training", "separation",
                "vocalsep_version", "stems"):
        assert key in obj


def test_truncated_and_foreign_files_are_refused(tmp_path, bundle):
    path = save_model(tmp_path / "m.pt", bundle)
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        load_model(tmp_path / "cut.pt")
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ModelFileError, match="not a vocalsep model"):
        load_model(tmp_path / "foreign.pt")
    (tmp_path / "text.pt").write_text("not a model")
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "text.pt")
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.pt")


class _Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned",))


def test_pickle_payload_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "vocalsep.model", "payload": _Exploit()}, path)
    with pytest.raises(ModelFileError, match="refused"):
        load_model(path)
    assert not (tmp_path / "pwned").exists()
    with open(tmp_path / "raw.pt", "wb") as f:
        pickle.dump(_Exploit(), f)
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "raw.pt")
    assert not (tmp_path / "pwned").exists()


def test_checksum_mismatch_is_refused(tmp_path, bundle):
    path = save_model(tmp_path / "m.pt", bundle)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_model(path, sha256="0" * 64)


def test_weights_must_match_architecture(tmp_path, bundle):
    path = save_model(tmp_path / "m.pt", bundle)
    obj = torch.load(path, weights_only=True)
    obj["model_kwargs"]["hidden"] = 9
    torch.save(obj, path)
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(path)


def test_registry_names_resolve():
    reg = registry()
    assert reg["default"]
    with pytest.raises(ModelFileError, match="neither a bundled model"):
        resolve_model("no-such-model")


def test_bundled_default_model_loads_and_separates():
    import numpy as np

    from conftest import song
    from vocalsep.separator import Separator

    reg = registry()
    path, sha = resolve_model(None)
    assert sha == reg["models"][reg["default"]]["sha256"]
    sep = Separator.from_pretrained()  # checksum verified
    assert reg["default"] == "voices-unet1024" and sep.bundle.arch == "unet"
    assert (sep.bundle.features.n_fft, sep.bundle.features.n_mels) == (1024, 150)  # as its card says
    assert sep.mask_from == "head" and sep.mask == "soft" and not sep.postfilter  # the defaults its card reports
    assert sep.bundle.heads == ("mask",) and sep.high_band == "octave" and sep.runtime == "onnx"  # auto: ONNX Runtime
    x = song(2.0, 44100, 2)
    out = sep.separate(x, 44100)
    assert np.abs(out["vocals"] + out["accompaniment"] - x).max() < 1e-5


def test_previous_default_stays_selectable_by_name():
    import numpy as np

    from conftest import song
    from vocalsep.separator import Separator

    unet = Separator.from_pretrained("mir1k-unet")  # an earlier default
    assert Separator.from_pretrained("mir1k-unet1024").bundle.features.n_fft == 1024  # the MIR-1K-protocol model
    assert unet.bundle.arch == "unet" and unet.bundle.features.n_fft == 512 and not unet.postfilter
    sep = Separator.from_pretrained("mir1k-chimera")
    assert sep.mask_from == "head" and sep.mask == "soft" and not sep.postfilter
    assert Separator.from_pretrained("mir1k-chimera", mask_from="clusters").postfilter
    assert sep.bundle.heads == ("embedding", "mask") and sep.bundle.voice_rule is not None
    x = song(1.0, 16000, 1)[0]
    out = sep.separate(x, 16000)
    assert np.abs(out["vocals"] + out["accompaniment"] - x).max() < 1e-5
