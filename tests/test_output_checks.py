"""Options and outputs agree, and every value is checked before the work: what an output format can
hold (rate, channels, sample format, mp3 settings) is declared once and checked up front; --start and
--duration are finite; the API refuses paths that are not paths, two stems on one file, and an output
that is the input itself."""
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import song
from vocalsep.audio import MP3_RATES, AudioError, AudioOutput, check_output
from vocalsep.cli import main
from vocalsep.errors import VocalsepError
from vocalsep.separator import Separator


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name,rate,channels,subtype,bitrate,quality,words", [
    ("x.mp3", 384000, 2, None, 320, 7, "mp3 cannot hold 384000 Hz"),
    ("x.mp3", 4000, 1, None, 320, 7, "mp3 cannot hold 4000 Hz"),
    ("x.mp3", 44100, 3, None, 320, 7, "at most 2 channels"),
    ("x.mp3", 44100, 2, "PCM_24", 320, 7, "applies to wav and flac, not mp3"),
    ("x.mp3", 44100, 2, None, -5, 7, "mp3 bitrate (kbit/s) must be at least 32"),
    ("x.mp3", 44100, 2, None, 320, 99, "mp3 quality must be at most 9"),
    ("x.flac", 44100, 9, None, 320, 7, "flac holds at most 8 channels and this audio has 9"),
    ("x.flac", 44100, 2, "FLOAT", 320, 7, "flac cannot hold 32-bit float"),
    ("x.ogg", 44100, 2, None, 320, 7, "cannot write '.ogg' files"),
])
def test_each_format_limit_is_named(tmp_path, name, rate, channels, subtype, bitrate, quality, words):
    with pytest.raises(AudioError, match="^" + str(tmp_path / name).replace("\\", "\\\\") + ": .*" + words.replace("(", r"\(").replace(")", r"\)")):
        check_output(tmp_path / name, rate, channels, subtype, bitrate, quality)
    assert list(tmp_path.iterdir()) == []  # nothing created


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ext=st.sampled_from(["wav", "flac", "mp3"]),
       rate=st.sampled_from([4000, 8000, 22050, 44100, 48000, 96000, 384000]),
       channels=st.sampled_from([1, 2, 3, 8, 9, 32]),
       subtype=st.sampled_from([None, "PCM_24", "FLOAT"]))
def test_what_the_check_allows_the_writer_writes(tmp_path_factory, ext, rate, channels, subtype):
    """The property: an output the check accepts is written and reads back with its rate and channels;
    one it refuses fails with the check's own message, before any file exists."""
    folder = tmp_path_factory.mktemp("o")
    path = folder / f"o.{ext}"
    try:
        check_output(path, rate, channels, subtype)
    except AudioError:
        with pytest.raises(AudioError):
            AudioOutput(path, rate, channels, subtype=subtype)
        assert list(folder.iterdir()) == []
        return
    out = AudioOutput(path, rate, channels, subtype=subtype)
    out.write(np.zeros((channels, 2048), np.float32))
    out.commit()
    info = sf.info(path)
    assert (info.samplerate, info.channels) == (rate, channels)


def test_mp3_rates_are_the_ones_the_encoder_takes(tmp_path):
    for rate in MP3_RATES:
        out = AudioOutput(tmp_path / f"{rate}.mp3", rate, 2)
        out.write(np.zeros((2, 4096), np.float32))
        assert sf.info(out.commit()).samplerate == rate


def test_cli_refuses_a_format_that_contradicts_the_template_before_loading(tmp_path, wav_file):
    res = run("split", wav_file, "-o", tmp_path / "o", "--format", "mp3", "--filename", "{track}/{stem}.wav",
              "--model", tmp_path / "not-loaded.pt")
    assert res.exit_code == 2 and "--format mp3 but --filename" in res.output
    assert not (tmp_path / "o").exists()
    # the template alone decides when --format is not given
    ok = run("split", wav_file, "-o", tmp_path / "o", "--filename", "{track}/{stem}.flac")
    assert ok.exit_code == 0, ok.output
    assert sf.info(tmp_path / "o" / "my song" / "vocals.flac").format == "FLAC"


def test_int24_with_an_mp3_template_and_a_rate_mp3_cannot_hold_are_refused_per_file(tmp_path, wav_file):
    res = run("split", wav_file, "-o", tmp_path / "o", "--int24", "--filename", "{track}/{stem}.mp3")
    assert res.exit_code == 1 and "applies to wav and flac, not mp3" in res.output
    high = tmp_path / "high.wav"
    sf.write(high, song(0.5, 96000).T, 96000)
    res = run("split", high, wav_file, "-o", tmp_path / "o2", "--format", "mp3")
    assert res.exit_code == 1 and "mp3 cannot hold 96000 Hz" in res.output
    assert (tmp_path / "o2" / "my song" / "vocals.mp3").is_file()  # the other file is still separated
    assert not (tmp_path / "o2" / "high").exists() or not any((tmp_path / "o2" / "high").iterdir())


def test_many_channels_as_flac_fail_before_the_separation(tmp_path, bundle, monkeypatch):
    src = tmp_path / "wide.wav"
    sf.write(src, np.zeros((8000, 12), np.float32), 16000)
    sep = Separator(bundle)
    monkeypatch.setattr(sep, "separate_stream", lambda *a, **k: pytest.fail("separated before the check"))
    with pytest.raises(AudioError, match="flac holds at most 8 channels and this audio has 12"):
        sep.separate_file(src, {"vocals": tmp_path / "v.flac"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.wav"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("option", ["--start", "--duration"])
def test_start_and_duration_must_be_finite_and_say_so_before_loading(tmp_path, wav_file, option, value):
    res = run("split", wav_file, "-o", tmp_path / "o", option, value, "--model", tmp_path / "not-loaded.pt")
    assert res.exit_code == 2 and option in res.output
    assert "not-loaded" not in res.output


def test_huge_start_is_past_the_end_and_huge_duration_is_to_the_end(tmp_path, wav_file):
    other = tmp_path / "other.wav"
    sf.write(other, song(1.0, 16000).T, 16000)
    res = run("split", wav_file, other, "-o", tmp_path / "o", "--start", "1e305")
    assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit)
    assert res.output.count("is past its end") == 2 and "Traceback" not in res.output
    res = run("split", other, "-o", tmp_path / "o2", "--duration", "1e305")
    assert res.exit_code == 0, res.output
    assert sf.info(tmp_path / "o2" / "other" / "vocals.wav").frames == 16000


def test_api_refuses_bad_paths_shared_outputs_and_the_input_as_output(tmp_path, bundle, wav_file):
    sep = Separator(bundle)
    before = wav_file.read_bytes()
    for outputs, words in [({"vocals": None}, "outputs\\['vocals'\\] must be a path"),
                           ({"vocals": b"v.wav"}, "must be a path"),
                           ({"vocals": tmp_path / "x.wav", "accompaniment": tmp_path / "." / "x.wav"}, "same output path"),
                           ([("vocals", "v.wav")], "must be a dict")]:
        with pytest.raises(VocalsepError, match=words):
            sep.separate_file(wav_file, outputs)
    with pytest.raises(VocalsepError, match="src must be a path"):
        sep.separate_file(bytes(wav_file), {"vocals": tmp_path / "v.wav"})
    with pytest.raises(VocalsepError, match="is the input file itself"):
        sep.separate_file(wav_file, {"vocals": wav_file}, overwrite=True)
    link = tmp_path / "link.wav"
    link.symlink_to(wav_file)
    with pytest.raises(VocalsepError, match="is the input file itself"):
        sep.separate_file(link, {"vocals": wav_file, "accompaniment": tmp_path / "a.wav"}, overwrite=True)
    for kw, words in [({"bitrate": -5}, "bitrate"), ({"mp3_quality": 99}, "mp3_quality"), ({"clip": "wrap"}, "clip")]:
        with pytest.raises(VocalsepError, match=words):
            sep.separate_file(wav_file, {"vocals": tmp_path / "v.mp3"}, **kw)
    assert wav_file.read_bytes() == before


def test_cli_force_never_replaces_the_input(tmp_path):
    src = tmp_path / "vocals.wav"
    sf.write(src, song(1.0, 16000).T, 16000)
    before = src.read_bytes()
    res = run("split", src, "-o", tmp_path, "--filename", "{stem}.wav", "--force")
    assert res.exit_code == 1 and "is the input file itself" in res.output
    assert src.read_bytes() == before
