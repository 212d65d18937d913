"""Report pages: structure checked without a browser (bench/render_report.py renders them in Chromium)."""
import base64
import json
import re

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from conftest import song
from vocalsep.cli import main

pytest.importorskip("matplotlib")


def _pngs(text):
    imgs = re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', text)
    for b64 in imgs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    return imgs


def test_split_report_has_players_spectrograms_and_settings(tmp_path, wav_file, model_file):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["split", str(wav_file), str(bad), "-o", str(out), "--model", str(model_file), "--report"])
    assert res.exit_code == 1  # the bad file fails, the page is still written
    page = (out / "report.html").read_text()
    players = re.findall(r'<audio controls [^>]*src="([^"]+)"', page)
    assert len(players) == 3  # input, vocals, accompaniment of the good file
    from urllib.parse import unquote

    for src in players:  # relative URLs from the page that resolve to real files (as a browser decodes them)
        assert not src.startswith("/") and (out / unquote(src)).resolve().is_file()
    assert len(_pngs(page)) == 1
    assert 'class="settings"' in page and "mirex2016" in page
    assert "not a readable audio file" in page  # the failed file is shown as such
    again = CliRunner().invoke(main, ["split", str(wav_file), "-o", str(out), "--model", str(model_file), "--report",
                                      "--filename", "{track}/{stem}-2.{ext}"])
    assert again.exit_code == 0 and (out / "report-2.html").is_file()  # an earlier page is kept


def test_spectrogram_is_pooled_to_a_fixed_width_and_covers_the_full_band(tmp_path):
    from vocalsep.report import spectrogram

    src = tmp_path / "long.wav"
    sf.write(src, song(20.0, 44100, 2).T, 44100)
    power, freqs, seconds = spectrogram(src, columns=100)
    assert power.shape[1] <= 100 and freqs[-1] == 22050 and abs(seconds - 20) < 1e-6
    assert np.isfinite(power).all() and power.max() > 0


def test_evaluation_report_from_museval_files(tmp_path):
    def track(folder, name, offset):
        frames = [{"time": i, "duration": 1.0, "metrics": {"SDR": i + offset, "SIR": 1.0, "SAR": 2.0, "ISR": 3.0}}
                  for i in range(5)]
        data = {"targets": [{"name": t, "frames": frames} for t in ("vocals", "accompaniment")]}
        (folder / "test").mkdir(parents=True, exist_ok=True)
        (folder / "test" / f"{name}.json").write_text(json.dumps(data))

    for name in ("A", "B"):
        track(tmp_path / "model", name, 0.0)
        track(tmp_path / "oracle", name, 5.0)
    from vocalsep.report import evaluation_report

    page = evaluation_report(tmp_path / "model" / "report.html", tmp_path / "model", "m", tmp_path / "oracle", "irm").read_text()
    assert len(_pngs(page)) == 3  # box plots + SDR over time for each of the two tracks
    assert page.count('class="track"') == 2 and "<th>irm</th>" in page and "<th>m</th>" in page
    assert re.search(r"<th>m</th><td>2.00</td>", page)  # vocals SDR median 2.0 over frames 0..4


def test_evaluation_report_without_scores_is_one_line(tmp_path):
    from vocalsep.report import ReportError, evaluation_report

    with pytest.raises(ReportError, match="no museval track files"):
        evaluation_report(tmp_path / "r.html", tmp_path)
