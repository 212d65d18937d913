"""Messages that are whole and true: file names cannot forge or hide lines, special files are not
called empty, submission names are SiSEC's ASCII, report players find files with any name."""
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from conftest import song
from vocalsep.cli import _shown, main


@pytest.mark.parametrize("name", ["a\nvocalsep: error: forged.wav", "b\rhidden.wav", "c\x1b[2Jclear.wav"])
def test_control_characters_in_file_names_are_escaped_in_every_line(tmp_path, name):
    src = tmp_path / name
    sf.write(src, song(0.3, 16000).T, 16000, format="WAV")
    missing = tmp_path / (name + ".missing.wav")
    res = CliRunner().invoke(main, ["split", str(src), str(missing), "-o", str(tmp_path / "o")])
    assert res.exit_code == 1
    lines = res.output.splitlines()
    assert not any(ln.startswith("vocalsep: error: forged") for ln in lines)
    assert "\r" not in res.output and "\x1b" not in res.output
    assert sum("->" in ln for ln in lines) == 1  # the good file's line, whole
    assert sum(ln.startswith("vocalsep: error:") for ln in lines) == 1


def test_shown_keeps_unicode_and_escapes_controls():
    assert _shown("Björk – Jóga.wav") == "Björk – Jóga.wav"
    assert _shown("a\nb\tc\x00") == "a\\nb\\tc\\x00"


def test_a_special_file_that_reports_no_size_is_not_called_empty(tmp_path):
    from pathlib import Path

    from vocalsep.audio import AudioError, open_audio

    environ = Path("/proc/self/environ")
    if not environ.exists():
        pytest.skip("needs /proc")
    with pytest.raises(AudioError, match="not an audio file \\(a special file"):
        open_audio(environ)
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="file is empty"):
        open_audio(tmp_path / "e.wav")


@pytest.mark.parametrize("name", ["ÄB", "ab1é", "x y", "a-b"])
def test_submission_names_are_ascii_letters_and_digits(tmp_path, name):
    from vocalsep.submission import SubmissionError, check_name

    with pytest.raises(SubmissionError, match="ASCII letters or digits"):
        check_name(name)
    check_name("AB12")


def test_report_players_percent_encode_their_files(tmp_path):
    pytest.importorskip("matplotlib")
    src = tmp_path / "a#b?c.wav"
    sf.write(src, song(0.5, 16000).T, 16000)
    res = CliRunner().invoke(main, ["split", str(src), "-o", str(tmp_path / "o"), "--report"])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "o" / "report.html").read_text()
    assert 'src="a%23b%3Fc/vocals.wav"' in page and 'src="a#b?c/' not in page


def test_decoder_chatter_is_hidden_under_quiet_and_warnings_are_not(tmp_path):
    import subprocess
    import sys

    mp3 = tmp_path / "c.mp3"
    sf.write(mp3, (0.1 * np.random.default_rng(0).standard_normal((44100, 2))).astype(np.float32), 44100)
    data = mp3.read_bytes()
    mp3.write_bytes(data[:20000] + b"JUNKJUNK" * 200 + data[20000:])  # the mp3 decoder warns about this
    loud = tmp_path / "loud.wav"
    sf.write(loud, song(0.5, 16000).T * 8, 16000, subtype="FLOAT")
    cmd = [sys.executable, "-m", "vocalsep.cli", "split", str(mp3), str(loud), "-o", str(tmp_path / "o"), "--int24"]
    noisy = subprocess.run(cmd, capture_output=True, text=True)
    quiet = subprocess.run(cmd + ["-q", "--force"], capture_output=True, text=True)
    assert noisy.returncode == 0 and quiet.returncode == 0, quiet.stderr
    chatter = [ln for ln in noisy.stderr.splitlines() if "Xing" in ln or "MPEG" in ln or "Illegal" in ln]
    if not chatter:
        pytest.skip("this libsndfile's mp3 decoder says nothing about the damage")
    assert not any(ln in quiet.stderr for ln in chatter)
    assert "scaled down" in quiet.stderr  # vocalsep's own warning still shows
