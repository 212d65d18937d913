"""Bad and unusual inputs: each gives a correct result or a one-line error naming the file."""
import errno

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import song, tiny_bundle
from vocalsep.audio import AudioError, load_audio, save_audio
from vocalsep.cli import main
from vocalsep.separator import SeparationError, Separator

SEP = Separator(tiny_bundle(), segment_frames=60)


def split(tmp_path, model_file, *files, extra=()):
    res = CliRunner().invoke(main, ["split", *map(str, files), "-o", str(tmp_path / "out"),
                                    "--model", str(model_file), *extra], catch_exceptions=False)
    assert "Traceback" not in res.output
    return res


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 48000, 96000, 192000])
@pytest.mark.parametrize("channels,subtype", [(1, "PCM_16"), (2, "PCM_24"), (6, "FLOAT"), (2, "DOUBLE")])
def test_rates_channels_and_sample_formats(tmp_path, model_file, sr, channels, subtype):
    src = tmp_path / f"in_{sr}_{channels}.wav"
    x = song(0.7, sr, channels)
    sf.write(src, x.T, sr, subtype=subtype)
    res = split(tmp_path, model_file, src, extra=["--float32"])
    assert res.exit_code == 0, res.output
    voc, vsr = sf.read(tmp_path / "out" / src.stem / "vocals.wav", always_2d=True)
    acc, _ = sf.read(tmp_path / "out" / src.stem / "accompaniment.wav", always_2d=True)
    inp, _ = sf.read(src, always_2d=True)
    assert vsr == sr and voc.shape == inp.shape
    assert np.abs(voc + acc - inp).max() < 1e-5


@pytest.mark.parametrize("make", ["truncated", "bad_header", "image", "nan", "inf"])
def test_damaged_files(tmp_path, model_file, make):
    src = tmp_path / f"{make}.wav"
    x = song(1.0, 16000, 2)
    if make in ("nan", "inf"):
        x[0, 100] = np.nan if make == "nan" else np.inf
        sf.write(src, x.T, 16000, subtype="FLOAT")
    elif make == "image":
        src.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    else:
        sf.write(src, x.T, 16000)
        data = bytearray(src.read_bytes())
        if make == "truncated":
            data = data[: len(data) // 3]
        else:
            data[40:44] = (10 ** 9).to_bytes(4, "little")  # data chunk claims a gigabyte
        src.write_bytes(bytes(data))
    res = split(tmp_path, model_file, src)
    if res.exit_code == 0:  # a readable prefix was separated: then it must be consistent
        voc, _ = sf.read(tmp_path / "out" / make / "vocals.wav", always_2d=True)
        assert np.all(np.isfinite(voc))
    else:
        errors = [ln for ln in res.output.splitlines() if ln.startswith("vocalsep: error:")]
        assert len(errors) == 1 and str(src) in errors[0]
    if make in ("nan", "inf", "image"):
        assert res.exit_code == 1
    if make in ("nan", "inf"):
        assert "NaN or infinite" in res.output


@pytest.mark.parametrize("n", [1, 10, 511])
def test_very_short_inputs_are_separated(tmp_path, model_file, n):
    src = tmp_path / f"short{n}.wav"
    sf.write(src, np.full(n, 0.1, np.float32), 16000, subtype="FLOAT")
    res = split(tmp_path, model_file, src, extra=["--float32"])
    assert res.exit_code == 0, res.output
    y, _ = sf.read(tmp_path / "out" / src.stem / "vocals.wav")
    assert y.shape == (n,)


@pytest.mark.parametrize("kind", ["silence", "clipping", "dc", "quiet"])
def test_extreme_but_valid_signals(kind):
    x = song(1.0, 16000, 2)
    x = {"silence": np.zeros_like(x), "clipping": np.clip(x * 50, -1, 1), "dc": x + 0.5, "quiet": x * 1e-6}[kind]
    out = SEP.separate(x, 16000)
    assert np.abs(out["vocals"] + out["accompaniment"] - x).max() <= 1e-6 * max(1.0, np.abs(x).max())


@pytest.mark.parametrize("name", ["with space.wav", "ünïcødé 歌.wav", "-leading-dash.wav"])
def test_awkward_file_names(tmp_path, model_file, name):
    src = tmp_path / name
    sf.write(src, song(0.5, 16000, 1)[0], 16000)
    res = CliRunner().invoke(main, ["split", "-o", str(tmp_path / "out"), "--model", str(model_file), "--", str(src)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / src.stem / "vocals.wav").is_file()


def test_output_folder_not_writable(tmp_path, wav_file, model_file):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    res = CliRunner().invoke(main, ["split", str(wav_file), "-o", str(blocker / "sub"), "--model", str(model_file)])
    assert res.exit_code == 1
    assert "could not write" in res.output and "Traceback" not in res.output


def test_disk_full_leaves_no_partial_file(tmp_path, monkeypatch):
    real_write = sf.SoundFile.write

    def full(self, data):
        real_write(self, data[: len(data) // 2])  # half written, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sf.SoundFile, "write", full)
    with pytest.raises(AudioError, match="no space left on the disk"):
        save_audio(tmp_path / "vocals.wav", np.zeros((2, 1000), np.float32), 16000)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_survives_a_failed_overwrite(tmp_path, monkeypatch):
    target = tmp_path / "vocals.wav"
    save_audio(target, np.full((1, 100), 0.5, np.float32), 16000)
    before = target.read_bytes()
    monkeypatch.setattr(sf.SoundFile, "write", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(AudioError):
        save_audio(target, np.zeros((1, 100), np.float32), 16000, overwrite=True)
    assert target.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="cannot write"):
        save_audio(tmp_path / "x.ogg", np.zeros((1, 10), np.float32), 16000)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(length=st.integers(1, 30000), sr=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
       channels=st.integers(1, 3), dtype=st.sampled_from(["float32", "float64", "int16"]), seed=st.integers(0, 2**16))
def test_property_shape_rate_and_sum(length, sr, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 0.5, (channels, length))
    if dtype == "int16":
        x = (x * 32767).astype(np.int16)
        ref = x / 32768.0
    else:
        x = x.astype(dtype)
        ref = x
    arr = x[0] if channels == 1 and seed % 2 else x
    if arr.ndim == 2 and channels > length:  # fewer samples than channels: refused as ambiguous, never guessed
        with pytest.raises(SeparationError, match="ambiguous"):
            SEP.separate(arr, sr)
        return
    out = SEP.separate(arr, sr)
    for y in out.values():
        assert y.shape == arr.shape and y.dtype == arr.dtype
    total = out["vocals"].astype(np.float64) + out["accompaniment"]
    if dtype == "int16":  # the stems come back in the input's integer scale, each rounded once
        assert np.abs(total - arr).max() <= 1
    else:
        assert np.abs(total - (ref[0] if arr.ndim == 1 else ref)).max() < 1e-5


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_truncated_compressed_files(tmp_path, model_file, fmt):
    src = tmp_path / f"cut.{fmt}"
    sf.write(src, song(2.0, 44100, 2).T, 44100, format=fmt.upper())
    src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    res = split(tmp_path, model_file, src)
    if res.exit_code:
        assert res.output.count("vocalsep: error:") == 1 and str(src) in res.output
    else:
        y, _ = sf.read(tmp_path / "out" / "cut" / "vocals.wav")
        assert np.all(np.isfinite(y))


def test_mp3_in_and_out(tmp_path, model_file):
    src = tmp_path / "song.mp3"
    sf.write(src, song(2.0, 44100, 2).T, 44100, format="MP3")
    res = split(tmp_path, model_file, src, extra=["--format", "mp3"])
    assert res.exit_code == 0, res.output
    y, sr = sf.read(tmp_path / "out" / "song" / "vocals.mp3", always_2d=True)
    assert sr == 44100 and y.shape[1] == 2


def test_m4a_through_ffmpeg(tmp_path, model_file):
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    wav = tmp_path / "src.wav"
    sf.write(wav, song(2.0, 44100, 2).T, 44100)
    src = tmp_path / "song.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", "aac", str(src)], check=True)
    res = split(tmp_path, model_file, src)
    assert res.exit_code == 0, res.output
    y, sr = sf.read(tmp_path / "out" / "song" / "vocals.wav", always_2d=True)
    assert sr == 44100 and y.shape[1] == 2 and abs(len(y) - 88200) < 4096


def test_missing_ffmpeg_is_explained(tmp_path, monkeypatch):
    import shutil

    src = tmp_path / "song.m4a"
    src.write_bytes(b"\x00" * 100)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match="needs ffmpeg, which is not installed"):
        load_audio(src)


def test_killed_split_never_leaves_a_truncated_stem(tmp_path, model_file):
    import os
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "long.wav"
    sf.write(src, np.tile(song(2.0, 16000, 2), (1, 30)).T, 16000)  # one minute
    out = tmp_path / "out" / "long"
    proc = subprocess.Popen([sys.executable, "-m", "vocalsep.cli", "split", str(src), "-o", str(tmp_path / "out"),
                             "--model", str(model_file)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not any(out.glob(".*.part")) and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for stem in ("vocals", "accompaniment"):
        path = out / f"{stem}.wav"
        if path.exists():  # only ever complete
            assert sf.info(path).frames == 16000 * 60
    # the rerun removes what the killed run left (its temp and float staging files) and finishes
    res = split(tmp_path, model_file, src, extra=("--force",))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["accompaniment.wav", "vocals.wav"]


def test_zero_sample_file_is_refused(tmp_path, model_file):
    src = tmp_path / "zero.wav"
    sf.write(src, np.zeros((0, 2), np.float32), 16000)
    res = split(tmp_path, model_file, src)
    assert res.exit_code == 1 and "contains no audio samples" in res.output and str(src) in res.output


def test_bundled_model_with_wrong_checksum_is_refused(tmp_path, monkeypatch, bundle):
    import json

    from vocalsep import registry
    from vocalsep.checkpoint import ModelFileError, save_model

    save_model(tmp_path / "m.pt", bundle)
    (tmp_path / "registry.json").write_text(json.dumps(
        {"default": "m", "models": {"m": {"file": "m.pt", "sha256": "f" * 64}}}))
    monkeypatch.setattr(registry.resources, "files", lambda pkg: tmp_path)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        Separator.from_pretrained()
