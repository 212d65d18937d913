"""Evaluation refuses what it cannot score honestly: every reference and estimate is checked against
its track's mixture (presence, rate, channels, length, finite samples) before scoring, the file and
the problem are named, and a corpus without tracks is an error -- never a NaN table with exit code 0."""
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import song
from vocalsep.cli import main
from vocalsep.data import DatasetError
from vocalsep.evaluate import evaluate_dsd100, evaluate_mir1k

NAME = "001 - A - B"
SOURCES = ("vocals", "bass", "drums", "other")


def dsd100(root, sr=8000, seconds=2.0, change=None):
    """A one-track DSD100 folder; ``change(source, audio, rate) -> (audio, rate) | None`` damages a source
    (None: the file is left out)."""
    (root / "Mixtures" / "Test" / NAME).mkdir(parents=True)
    (root / "Sources" / "Test" / NAME).mkdir(parents=True)
    parts = {s: song(seconds, sr, 2, seed=i) * 0.4 for i, s in enumerate(SOURCES)}
    sf.write(root / "Mixtures" / "Test" / NAME / "mixture.wav", sum(parts.values()).T, sr, subtype="FLOAT")
    for s, y in parts.items():
        got = change(s, y, sr) if change else (y, sr)
        if got is not None:
            sf.write(root / "Sources" / "Test" / NAME / f"{s}.wav", got[0].T, got[1], subtype="FLOAT")
    return root


def _nan(y):
    y = y.copy()
    y[0, 100] = np.nan
    return y


@pytest.mark.parametrize("damage,words", [
    (lambda s, y, sr: (y[:1], sr) if s == "bass" else (y, sr), "bass.wav has 1 channel\\(s\\), the mixture 2"),
    (lambda s, y, sr: (y[:, ::2], sr // 2) if s == "drums" else (y, sr), "drums.wav is at 4000 Hz, the mixture at 8000 Hz"),
    (lambda s, y, sr: (_nan(y), sr) if s == "other" else (y, sr), "other.wav has NaN or infinite samples"),
    (lambda s, y, sr: None if s == "drums" else (y, sr), "drums.wav: missing"),
    (lambda s, y, sr: (y[:, : y.shape[1] // 2], sr) if s == "vocals" else (y, sr), "vocals.wav is 1.00 s long, the mixture 2.00 s"),
])
def test_a_damaged_reference_is_named_and_nothing_is_scored(tmp_path, damage, words):
    root = dsd100(tmp_path / "DSD100", change=damage)
    res = CliRunner().invoke(main, ["evaluate", "--dsd100", str(root), "--oracle", "irm", "-o", str(tmp_path / "o")])
    assert res.exit_code == 1, res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("vocalsep: error:")]
    assert len(line) == 1 and pytest.importorskip("re").search(words, line[0]), res.output
    assert not (tmp_path / "o" / "summary.json").exists()


def test_an_empty_corpus_is_an_error(tmp_path):
    (tmp_path / "DSD100" / "Sources" / "Test").mkdir(parents=True)
    (tmp_path / "DSD100" / "Mixtures" / "Test").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no tracks to score"):
        evaluate_dsd100(None, tmp_path / "DSD100", tmp_path / "o", oracle="irm")


def test_an_estimate_with_nan_is_refused(tmp_path):
    root = dsd100(tmp_path / "DSD100")
    est = tmp_path / "est" / "Test" / NAME
    est.mkdir(parents=True)
    mix, sr = sf.read(root / "Mixtures" / "Test" / NAME / "mixture.wav")
    sf.write(est / "vocals.wav", mix * 0.5, sr, subtype="FLOAT")
    bad = mix * 0.5
    bad[10] = np.inf
    sf.write(est / "accompaniment.wav", bad, sr, subtype="FLOAT")
    with pytest.raises(DatasetError, match="estimate accompaniment has NaN or infinite samples"):
        evaluate_dsd100(None, root, tmp_path / "o", estimates_dir=tmp_path / "est")


def test_a_mir1k_clip_with_nan_is_named(tmp_path):
    (tmp_path / "m" / "train").mkdir(parents=True)
    clip = np.stack([song(1.0, 16000, 1, seed=0)[0], song(1.0, 16000, 1, seed=1)[0]], 1)
    clip[50, 1] = np.nan
    sf.write(tmp_path / "m" / "train" / "c_1.wav", clip, 16000, subtype="FLOAT")
    with pytest.raises(DatasetError, match="c_1: the mixture has NaN"):
        evaluate_mir1k(None, tmp_path / "m", oracle="ibm")


def test_a_text_file_as_a_musdb_stem_is_named(tmp_path):
    pytest.importorskip("musdb")
    from vocalsep.evaluate import evaluate_musdb

    (tmp_path / "mus" / "test").mkdir(parents=True)
    (tmp_path / "mus" / "test" / "A - B.stem.mp4").write_text("not audio\n")
    with pytest.raises(DatasetError, match="A - B.stem.mp4: not a readable MUSDB18 track"):
        evaluate_musdb(None, tmp_path / "mus", tmp_path / "o", oracle="irm")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(SOURCES), channels=st.sampled_from([1, 2, 3]), rate=st.sampled_from([4000, 8000, 16000]),
       frac=st.sampled_from([0.5, 0.97, 1.0, 1.2]), nan=st.booleans())
def test_random_corpus_folders_are_scored_only_when_every_source_matches(tmp_path_factory, which, channels, rate, frac, nan):
    """The property: a track is scored exactly when every source matches the mixture (2 channels,
    8 kHz, length within 0.1 s, finite); otherwise a DatasetError, and no scores are written."""
    def change(s, y, sr):
        if s != which:
            return y, sr
        n = int(y.shape[1] * frac * rate / sr)
        z = np.resize(song(n / rate, rate, channels, seed=3), (channels, n)) * 0.4
        return (_nan(z) if nan else z), rate
    root = dsd100(tmp_path_factory.mktemp("d") / "DSD100", change=change)
    fits = channels == 2 and rate == 8000 and frac in (0.97, 1.0) and not nan
    out = tmp_path_factory.mktemp("o")
    if fits:
        res = evaluate_dsd100(None, root, out, oracle="irm", win_s=1.0, hop_s=1.0)
        assert np.isfinite(res["summary"]["median"]["vocals"]["SDR"])
    else:
        with pytest.raises(DatasetError, match=which):
            evaluate_dsd100(None, root, out, oracle="irm", win_s=1.0, hop_s=1.0)
        assert not (out / "summary.json").exists()
