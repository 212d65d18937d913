"""Every value and every file the library reads is validated before use: config trees (also as random
override keys), non-TOML config files, a last.pt that is not a training checkpoint, a config.json that
is not an object, API arrays without samples or data; and the messages say what to do, whole."""
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import tiny_bundle, write_mir1k_clips
from vocalsep.checkpoint import ModelFileError, read_checkpoint, save_model
from vocalsep.config import ConfigError, load_config
from vocalsep.separator import Separator, SeparationError

BASE = ['arch="unet"', "model={channels=2, depth=2}", "features.n_mels=20"]


@pytest.mark.parametrize("override,words", [
    ("phases=5", "phases must be a list of tables"),
    ("phases=[1, 2]", "phases must be a list of tables"),
    ("phases.x.lr=1e-3", "no \\[\\[phases\\]\\] to index"),
    ("phases.0..lr=1", "empty part"),
    ("seed.x=1", "seed is a value"),
])
def test_malformed_config_trees_are_named(override, words, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("seed = 3\n[[phases]]\nlr = 1e-3\n")
    with pytest.raises(ConfigError, match=words):
        load_config(cfg if override.startswith("seed") else None, [override])


def test_phase_index_out_of_range_says_which_indices_exist(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[[phases]]\nlr = 1e-3\n[[phases]]\nlr = 1e-4\n")
    for key in ("phases.x.lr=1", "phases.5.lr=1"):
        with pytest.raises(ConfigError, match="phases is a list of 2; index it with 0 to 1"):
            load_config(cfg, [key])
    assert load_config(cfg, ["phases.1.lr=5e-5"]).phases[1].lr == 5e-5


_KEY = st.lists(st.sampled_from(["phases", "0", "1", "x", "lr", "seed", "model", "channels", "remix",
                                 "pool_prob", "features", "n_mels", ""]), min_size=1, max_size=4).map(".".join)
_VALUE = st.sampled_from(["1", "0.5", "-3", '"s"', "[1, 2]", "{a = 1}", "true", "[{lr = 1e-3}]", "nan"])


@settings(max_examples=80, deadline=None)
@given(key=_KEY, value=_VALUE)
def test_random_overrides_load_or_fail_with_a_config_error(key, value):
    """The property: any override of any shape either gives a valid config or a ConfigError -- never
    another exception (a TypeError or ValueError from deep inside)."""
    try:
        load_config(None, BASE + [f"{key}={value}"])
    except ConfigError as exc:
        assert "\n" not in str(exc)


def test_a_binary_or_audio_file_as_config_is_named(tmp_path):
    p = tmp_path / "song.toml"
    p.write_bytes(b"RIFF\xff\xfe\x00\x01WAVE" + bytes(range(256)))
    with pytest.raises(ConfigError, match="not a TOML text file"):
        load_config(p)


def _run_folder(tmp_path):
    clips = write_mir1k_clips(tmp_path / "mir1k", 2, 1.0)
    return load_config(None, BASE + [f"data_root={json.dumps(str(clips))}",
                                     "phases=[{chunk_frames=20, batch_size=2, steps_per_epoch=2, max_epochs=1}]"])


@pytest.mark.parametrize("content,words", [
    ("model", "a model file, not a training checkpoint"),
    ("list", "not a training checkpoint \\(it holds a list\\)"),
    ("no-state", "missing state"),
    ("state-keys", "state: missing best, best_epoch"),
])
def test_resuming_from_something_that_is_not_a_checkpoint_is_named(tmp_path, content, words):
    from vocalsep.train import train_phase

    cfg = _run_folder(tmp_path)
    last = tmp_path / "exp" / "phase1" / "last.pt"
    last.parent.mkdir(parents=True)
    if content == "model":
        save_model(last, tiny_bundle())
    else:
        good = {"model": {}, "optimizer": {}, "samplers": [{}], "torch_rngs": [torch.get_rng_state()],
                "state": {"epoch": 1, "step": 2, "elapsed": 0.0, "history": []}}
        obj = [1, 2] if content == "list" else {k: v for k, v in good.items() if k != "state"} if content == "no-state" else good
        torch.save(obj, last)
    with pytest.raises(ConfigError, match=words):
        train_phase(cfg, 1, tmp_path / "exp")


def test_a_config_json_that_is_not_an_object_is_named(tmp_path):
    from vocalsep.train import train_phase

    cfg = _run_folder(tmp_path)
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "config.json").write_text("[1, 2, 3]\n")
    with pytest.raises(ConfigError, match="not a run's configuration \\(a JSON list"):
        train_phase(cfg, 1, tmp_path / "exp")


def test_damaged_and_refused_model_files_get_whole_messages_that_say_what_to_do(tmp_path):
    good = save_model(tmp_path / "m.pt", tiny_bundle())
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelFileError) as exc:
        read_checkpoint(cut)
    assert str(exc.value).endswith("copy or download it again, or retrain it")

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ModelFileError) as exc:
        read_checkpoint(tmp_path / "evil.pt")
    msg = str(exc.value)
    assert "could run code" in msg and msg.endswith("vocalsep models)") and "WeightsUnpickler" not in msg


@pytest.mark.parametrize("audio,words", [
    (np.zeros((1, 0), np.float32), "has no samples"),
    (np.zeros((0, 5), np.float32), "has no channels"),
    (torch.zeros(2, 100, device="meta"), "meta tensor"),
    (torch.zeros(2, 100).to_sparse(), "to_dense"),
    (np.full(1000, 1e30, np.float32), "far beyond full scale"),
])
def test_api_arrays_without_usable_samples_are_named(audio, words):
    with pytest.raises(SeparationError, match=words):
        Separator(tiny_bundle()).separate(audio, 16000)
