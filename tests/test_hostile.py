"""Hostile input, hostile files and concurrent use, one test (or property) per class of failure:
every error is one line; a small file never asks for a large allocation; nothing is written outside
-o; nothing is overwritten without --force, also by a concurrent run; no success for a wrong result;
messages say what to do."""
import copy
import os
import struct
import time
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import song, tiny_bundle
from vocalsep._atomic import atomic_path
from vocalsep.audio import AudioError, open_audio
from vocalsep.checkpoint import ModelFileError, load_model, save_model
from vocalsep.cli import main
from vocalsep.errors import VocalsepError
from vocalsep.config import ConfigError, load_config
from vocalsep.train import TrainingError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res


def one_line_error(res):
    """Exit code 1 and exactly one line on the error stream, no traceback."""
    assert res.exit_code == 1, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [ln for ln in res.output.splitlines() if ln.startswith("vocalsep: ")]
    assert lines and "Traceback" not in res.output
    return lines[0]


# ---- 1. every error is one line --------------------------------------------------------------

def _model_dict(tmp_path):
    path = save_model(tmp_path / "good.pt", tiny_bundle())
    return torch.load(path, weights_only=True)


PLAIN = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                  st.text(max_size=8), st.lists(st.integers(-5, 5), max_size=3),
                  st.dictionaries(st.text(max_size=5), st.integers(-3, 10**7), max_size=3))
FIELDS = ["format_version", "arch", "model_class", "model_kwargs", "features", "stems", "voice_rule", "training",
          "separation", "state_dict"]


@SETTINGS
@given(field=st.sampled_from(FIELDS), value=PLAIN, drop=st.booleans())
def test_property_random_model_metadata_loads_or_is_refused_in_one_line(tmp_path, field, value, drop):
    obj = _model_dict(tmp_path)
    if drop:
        obj.pop(field)
    else:
        obj[field] = value
    bad = tmp_path / "bad.pt"
    torch.save(obj, bad)
    try:
        load_model(bad)
    except ModelFileError as exc:
        assert "\n" not in str(exc)


@SETTINGS
@given(key=st.sampled_from(["features.n_mels", "features.sample_rate", "features.hop_length", "model.hidden",
                            "model.layers", "model.emb_dim"]), value=PLAIN)
def test_property_random_model_sizes_and_features_in_a_model_file(tmp_path, key, value):
    obj = _model_dict(tmp_path)
    part, name = key.split(".")
    obj["features" if part == "features" else "model_kwargs"][name] = value
    bad = tmp_path / "bad.pt"
    torch.save(obj, bad)
    try:
        load_model(bad)
    except ModelFileError:
        pass


@SETTINGS
@given(key=st.sampled_from(["seed", "batch_size", "phases.0.chunk_frames", "phases.0.batch_size", "phases.0.lr",
                            "remix.speed_prob", "remix.level_db", "model.channels", "model.nope", "features.n_fft",
                            "features.other", "threads", "arch", "optimizer", "silence_db"]),
       value=st.sampled_from(["0", "-1", "1e9", "nan", "inf", "'abc'", "true", "[1, 2]", "{a = 1}", "0.5", "3"]))
def test_property_random_config_values_are_accepted_or_refused_as_config_errors(key, value):
    try:
        load_config("recipes/mixed/conf.toml", [f"{key}={value}"])
    except ConfigError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("mutate,match", [
    (lambda o: o.update(format_version="1"), "format_version is str"),
    (lambda o: o.pop("model_class"), "missing field"),
    (lambda o: o.update(features={"n_mels": "many"}), "n_mels must be an integer"),
    (lambda o: o.update(features=[1, 2]), "features is list"),
])
def test_damaged_model_metadata_is_one_line_in_the_cli(tmp_path, wav_file, mutate, match):
    obj = _model_dict(tmp_path)
    mutate(obj)
    torch.save(obj, tmp_path / "bad.pt")
    line = one_line_error(run("split", wav_file, "-o", tmp_path / "out", "--model", tmp_path / "bad.pt"))
    assert match in line


def test_a_path_that_is_not_a_model_is_one_line(tmp_path, wav_file):
    assert "not a model file" in one_line_error(run("split", wav_file, "--model", tmp_path, "-o", tmp_path / "o"))
    assert "not a readable model file" in one_line_error(run("split", wav_file, "--model", wav_file, "-o", tmp_path / "o"))


def test_a_degenerate_voice_rule_is_one_line(tmp_path, wav_file):
    b = tiny_bundle()
    b.voice_rule = {"vocals": [0.0] * 4, "accompaniment": [0.0] * 4}
    save_model(tmp_path / "m.pt", b)
    line = one_line_error(run("split", wav_file, "--model", tmp_path / "m.pt", "--mask-from", "clusters",
                              "-o", tmp_path / "o"))
    assert "voice" in line


def test_config_errors_are_one_line_in_the_cli(tmp_path):
    for override in ("phases.0.batch_size=0", "phases.0.chunk_frames=0", "seed='x'", "model.nope=1", "features.odd=1"):
        line = one_line_error(run("train", "-c", "recipes/mixed/conf.toml", "-o", tmp_path / "run", "--set", override))
        assert override.split("=")[0].split(".")[-1] in line
    assert not (tmp_path / "run").exists()


# ---- 2. no resource blow-up from a small file -------------------------------------------------

def _wav_with_rate(path, rate, channels=1):
    x = (np.zeros(1000, np.int16)).tobytes()
    hdr = b"RIFF" + struct.pack("<I", 36 + len(x)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, channels, rate, rate * 2 * channels, 2 * channels, 16) + b"data" + struct.pack("<I", len(x))
    path.write_bytes(hdr + x)
    return path


@pytest.mark.parametrize("rate", [100_000_000, 1, 100])
def test_absurd_sample_rates_are_refused_before_allocating(tmp_path, rate):
    t = time.perf_counter()
    with pytest.raises(AudioError, match="sample rate"):
        open_audio(_wav_with_rate(tmp_path / "x.wav", rate))
    assert time.perf_counter() - t < 5


@SETTINGS
@given(rate=st.integers(0, 2**32 - 1), channels=st.integers(0, 2**16 - 1), bits=st.sampled_from([0, 8, 16, 24, 32, 7, 64]),
       fmt=st.sampled_from([1, 3, 0, 0xFFFE]), claimed=st.integers(0, 2**32 - 1))
def test_property_random_wav_headers_separate_or_fail_in_one_line_quickly(tmp_path, rate, channels, bits, fmt, claimed):
    from vocalsep.separator import Separator

    body = np.random.default_rng(rate % 1000).integers(-2000, 2000, 2000, dtype=np.int16).tobytes()
    align = max(1, channels * bits // 8) % 2**16
    hdr = b"RIFF" + struct.pack("<I", (36 + len(body)) % 2**32) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, fmt, channels, rate, (rate * align) % 2**32, align, bits) + b"data" + struct.pack("<I", claimed)
    path = tmp_path / "h.wav"
    path.write_bytes(hdr + body)
    t = time.perf_counter()
    sep = Separator(tiny_bundle(), segment_frames=60)
    try:
        sep.separate_file(path, {s: tmp_path / f"{s}.wav" for s in sep.stems}, overwrite=True)
    except AudioError as exc:
        assert "\n" not in str(exc)
    assert time.perf_counter() - t < 20


def test_absurd_channel_counts_are_refused(tmp_path):
    with pytest.raises(AudioError, match="channels"):
        open_audio(_wav_with_rate(tmp_path / "x.wav", 16000, channels=1000))


def test_a_model_file_claiming_a_huge_network_is_refused_quickly(tmp_path):
    obj = _model_dict(tmp_path)
    obj["model_kwargs"]["layers"] = 10**6
    torch.save(obj, tmp_path / "huge.pt")
    t = time.perf_counter()
    with pytest.raises(ModelFileError, match="limit"):
        load_model(tmp_path / "huge.pt")
    obj["model_kwargs"].update(layers=64, hidden=4096)  # within each argument's bound, too many parameters
    torch.save(obj, tmp_path / "huge.pt")
    with pytest.raises(ModelFileError, match="parameters"):
        load_model(tmp_path / "huge.pt")
    assert time.perf_counter() - t < 20


def test_a_deflated_model_file_is_measured_before_it_is_unpacked(tmp_path, monkeypatch):
    import vocalsep.checkpoint as ck

    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data/0", b"\0" * (4 << 20))  # 4 MiB of zeros, a few KB on disk
    monkeypatch.setattr(ck, "MAX_MODEL_FILE_BYTES", 1 << 20)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ModelFileError, match="unpacks to"):
        load_model(bomb)


def test_sources_are_bounded(tmp_path, wav_file, model_file):
    res = run("split", wav_file, "--model", model_file, "--sources", "1000", "-o", tmp_path / "o")
    assert res.exit_code == 2 and "1000" in res.output


def test_ffmpeg_input_is_decoded_to_disk_not_memory(tmp_path):
    import shutil

    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    import subprocess

    src = tmp_path / "a.m4a"
    sf.write(tmp_path / "a.wav", song(1.0, 44100, 2).T, 44100)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "a.wav"), str(src)], check=True)
    import tempfile

    def decodes():
        return [p for p in os.listdir(tempfile.gettempdir()) if p.startswith("vocalsep-decode")]

    before = decodes()
    with open_audio(src) as r:
        # read block by block from a decoded file on disk, already unlinked: a kill leaves nothing behind
        assert os.path.exists(r._sf.name) is False and r._sf.frames >= 44100  # AAC adds priming
        assert r.read(0, 100).shape == (2, 100)
        assert decodes() == before
    assert decodes() == before


# ---- 3. nothing is written outside the output folder ----------------------------------------

@pytest.mark.parametrize("name", ["...wav", "..wav", ".hidden.wav", "..stem.wav"])
def test_file_names_that_are_path_components_stay_inside_out(tmp_path, model_file, name):
    src = tmp_path / "in" / name
    src.parent.mkdir()
    sf.write(src, song(0.5, 16000, 1).T, 16000, format="WAV")
    out = tmp_path / "box" / "out"
    res = run("split", src, "-o", out, "--model", model_file)
    assert res.exit_code == 0, res.output
    written = [p for p in tmp_path.rglob("*.wav") if p != src]
    assert written and all(out in p.parents and p.parent != out for p in written)


def test_stem_names_in_a_model_file_cannot_be_paths(tmp_path):
    obj = _model_dict(tmp_path)
    obj["stems"] = ["../../evil", "accompaniment"]
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="stems"):
        load_model(tmp_path / "bad.pt")


def test_a_link_planted_in_the_output_folder_is_not_followed(tmp_path, wav_file, model_file):
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, out / wav_file.stem)
    line = one_line_error(run("split", wav_file, "-o", out, "--model", model_file))
    assert "outside" in line and not list(elsewhere.iterdir())


def test_ffmpeg_never_reads_a_file_name_as_a_protocol():
    from vocalsep.audio import _ffmpeg_input

    from pathlib import Path
    for name in ("http://example.com/a.m4a", "concat:a.m4a|b.m4a", "pipe:0"):
        arg = _ffmpeg_input(Path(name))
        assert arg.startswith("file:/")


# ---- 4. never overwrite without --force, also under concurrency -------------------------------

def test_a_file_created_while_writing_is_never_replaced(tmp_path):
    target = tmp_path / "vocals.wav"
    with pytest.raises(FileExistsError):
        with atomic_path(target, replace=False) as tmp:
            open(tmp, "wb").write(b"mine")
            target.write_bytes(b"the other run's")  # a concurrent run finished first
    assert target.read_bytes() == b"the other run's"
    assert [p.name for p in tmp_path.iterdir()] == ["vocals.wav"]


def test_two_runs_into_one_folder_the_second_fails_and_keeps_the_first(tmp_path, wav_file, model_file, monkeypatch):
    from vocalsep._atomic import AtomicFile

    out = tmp_path / "out"
    real = AtomicFile.commit

    def racing(self):  # the other run writes its stem while this one separates
        self.path.write_bytes(b"other run")
        return real(self)

    monkeypatch.setattr(AtomicFile, "commit", racing)
    line = one_line_error(run("split", wav_file, "-o", out, "--model", model_file))
    assert "already exists" in line
    assert all(p.read_bytes() == b"other run" for p in (out / wav_file.stem).iterdir())


def test_sigterm_unwinds_like_ctrl_c_and_removes_temp_files(tmp_path):
    import signal

    from vocalsep.cli import _on_signal, _Terminated

    with pytest.raises(_Terminated):
        with atomic_path(tmp_path / "x.wav") as tmp:
            open(tmp, "wb").write(b"partial")
            _on_signal(signal.SIGTERM, None)
    assert list(tmp_path.iterdir()) == []


# ---- 5. never report success for a wrong result ---------------------------------------------

@pytest.mark.parametrize("softness", ["inf", "nan"])
def test_non_finite_softness_is_refused(tmp_path, wav_file, model_file, softness):
    res = run("split", wav_file, "-o", tmp_path / "o", "--model", model_file, "--mask", "soft", "--softness", softness)
    assert res.exit_code != 0 and not (tmp_path / "o" / wav_file.stem / "vocals.wav").exists()


def test_non_finite_output_is_never_renamed_into_place(tmp_path, wav_file, model_file, monkeypatch):
    from vocalsep.separator import Separator

    real = Separator.separate_chunks

    def broken(self, chunks, *a, **k):  # e.g. a damaged model whose network overflows
        return {k: v * np.float32("nan") for k, v in real(self, chunks, *a, **k).items()}

    monkeypatch.setattr(Separator, "separate_chunks", broken)
    line = one_line_error(run("split", wav_file, "-o", tmp_path / "o", "--model", model_file))
    assert "NaN" in line and not list((tmp_path / "o").rglob("*.wav"))


def test_a_short_or_mono_estimate_is_not_scored():
    from vocalsep.data import DatasetError
    from vocalsep.evaluate import check_estimate

    y = np.zeros((2, 44100 * 6), np.float32)
    assert check_estimate("t", y, 2, 44100 * 6, 44100) is y
    with pytest.raises(DatasetError, match="1.00 s long, the track 6.00 s"):
        check_estimate("t", y[:, :44100], 2, 44100 * 6, 44100)
    with pytest.raises(DatasetError, match="1 channel"):
        check_estimate("t", y[:1], 2, 44100 * 6, 44100)


def _tiny_train_config(tmp_path, **extra):
    from conftest import write_mir1k_clips

    write_mir1k_clips(tmp_path / "mir", 4, 1.0)
    sets = [f"data_root='{tmp_path / 'mir'}'", "arch='mask-ff'", "model.hidden=8", "model.layers=1",
            "phases=[{chunk_frames=20, batch_size=2, steps_per_epoch=2, max_epochs=2}]", "voice_rule_batches=1"]
    return load_config(None, sets + [f"{k}={v}" for k, v in extra.items()])


def test_a_non_finite_loss_stops_training_with_a_message(tmp_path, monkeypatch):
    import vocalsep.train as tr

    cfg = _tiny_train_config(tmp_path)
    monkeypatch.setattr(tr, "objective", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(TrainingError, match="loss is nan"):
        tr.train_phase(cfg, 1, tmp_path / "run")


def test_a_resume_with_another_network_changes_nothing(tmp_path):
    import vocalsep.train as tr

    cfg = _tiny_train_config(tmp_path)
    tr.train_phase(cfg, 1, tmp_path / "run")
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    other = copy.deepcopy(cfg)
    other.model = {"hidden": 16, "layers": 1}
    with pytest.raises(ConfigError, match="different model"):
        tr.train_phase(other, 1, tmp_path / "run")
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == before


# ---- 6. errors that say what to do ----------------------------------------------------------

def test_a_fifo_and_stdin_are_named_for_what_they_are(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioError, match="not a regular file"):
        open_audio(fifo)
    with pytest.raises(AudioError, match="standard input"):
        open_audio("-")


def test_an_unreadable_file_is_skipped_and_the_batch_goes_on(tmp_path, wav_file, model_file, monkeypatch):
    locked = tmp_path / "locked.wav"
    sf.write(locked, song(0.5, 16000, 1).T, 16000)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode))
    res = run("split", locked, wav_file, "-o", tmp_path / "o", "--model", model_file)
    assert res.exit_code == 1 and "permission denied" in res.output
    assert (tmp_path / "o" / wav_file.stem / "vocals.wav").is_file()


def test_messages_show_values_not_templates_or_api_arguments(tmp_path, wav_file, model_file):
    from vocalsep.data import DatasetError, load_musdb

    with pytest.raises(DatasetError) as info:
        load_musdb(tmp_path, "train", 16000)
    assert "{root}" not in str(info.value) and str(tmp_path) in str(info.value)
    run("split", wav_file, "-o", tmp_path / "o", "--model", model_file)
    line = one_line_error(run("split", wav_file, "-o", tmp_path / "o", "--model", model_file))
    assert "--force" in line and "overwrite=" not in line


def test_every_library_error_derives_from_one_base():
    from vocalsep.checkpoint import ModelFileError
    from vocalsep.cluster import ClusterError
    from vocalsep.data import DatasetError
    from vocalsep.features import FeatureConfigError
    from vocalsep.models import ModelConfigError
    from vocalsep.separator import SeparationError
    from vocalsep.submission import SubmissionError

    for cls in (AudioError, ModelFileError, ClusterError, DatasetError, FeatureConfigError, ModelConfigError,
                SeparationError, SubmissionError, ConfigError, TrainingError):
        assert issubclass(cls, VocalsepError)


def test_submission_force_never_deletes_a_file(tmp_path):
    from vocalsep.submission import SubmissionError, write_submission

    scores = tmp_path / "scores" / "test"
    scores.mkdir(parents=True)
    (tmp_path / "sub").mkdir()
    victim = tmp_path / "sub" / "VS"
    victim.write_text("precious")
    with pytest.raises(SubmissionError, match="not a folder"):
        write_submission("VS", tmp_path / "scores", tmp_path / "sub", {}, "m", overwrite=True)
    assert victim.read_text() == "precious"
