"""MUSDB18 scoring on the preview track that ships with stempeg (needs ffmpeg, musdb, museval)."""
import json
import shutil

import pytest
from click.testing import CliRunner

from vocalsep.cli import main

if shutil.which("ffmpeg") is None:
    pytest.skip("ffmpeg not installed", allow_module_level=True)
stempeg = pytest.importorskip("stempeg")
museval = pytest.importorskip("museval")


@pytest.fixture
def musdb_root(tmp_path):
    root = tmp_path / "musdb"
    (root / "test").mkdir(parents=True)
    src = stempeg.example_stem_path()
    (root / "test" / "The Easton Ellises - Falcon 69.stem.mp4").symlink_to(src)
    return root


def test_evaluate_musdb_writes_schema_valid_json_and_both_aggregates(tmp_path, musdb_root, model_file):
    out = tmp_path / "eval"
    res = CliRunner().invoke(main, ["evaluate", "--musdb", str(musdb_root), "--model", str(model_file), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "vocals (median)" in res.output and "accompaniment (mean)" in res.output
    track_json = out / "test" / "The Easton Ellises - Falcon 69.json"
    data = json.loads(track_json.read_text())
    assert {t["name"] for t in data["targets"]} == {"vocals", "accompaniment"}
    import jsonschema
    from pathlib import Path

    schema = json.loads((Path(museval.__path__[0]) / "musdb.schema.json").read_text())
    jsonschema.validate(data, schema)
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert set(summary) >= {"median", "mean"}

    # scoring the written estimates again gives the same numbers
    again = CliRunner().invoke(main, ["evaluate", "--musdb", str(musdb_root), "--estimates", str(out / "estimates"),
                                      "-o", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    summary2 = json.loads((tmp_path / "again" / "summary.json").read_text())["summary"]
    assert summary2["median"]["vocals"]["SDR"] == pytest.approx(summary["median"]["vocals"]["SDR"], abs=0.05)


def test_evaluate_musdb_explains_a_bad_root(tmp_path, model_file):
    res = CliRunner().invoke(main, ["evaluate", "--musdb", str(tmp_path), "--model", str(model_file), "-o", str(tmp_path / "o")])
    assert res.exit_code == 1 and "has no test/ folder" in res.output


def test_submission_layout_name_rule_and_missing_tracks(tmp_path, musdb_root, model_file):
    scores = tmp_path / "eval"
    assert CliRunner().invoke(main, ["evaluate", "--musdb", str(musdb_root), "--model", str(model_file),
                                     "-o", str(scores)]).exit_code == 0
    (musdb_root / "test" / "Another Track").mkdir()  # wav-layout track with no scores
    sub = tmp_path / "sub"
    res = CliRunner().invoke(main, ["submission", "--name", "VSDC", "--scores", str(scores), "--musdb", str(musdb_root),
                                    "--model", str(model_file), str(sub)])
    assert res.exit_code == 1 and "1 test tracks have no scores: Another Track" in res.output
    assert (sub / "VSDC" / "description.md").read_text().count("Extra data") == 1
    assert (sub / "VSDC" / "test" / "The Easton Ellises - Falcon 69.json").is_file()
    again = CliRunner().invoke(main, ["submission", "--name", "VSDC", "--scores", str(scores), "--model", str(model_file), str(sub)])
    assert again.exit_code == 1 and "already exists" in again.output
    long = CliRunner().invoke(main, ["submission", "--name", "TOOLONG", "--scores", str(scores), "--model", str(model_file), str(sub)])
    assert long.exit_code == 1 and "must be 1-4 ASCII letters or digits" in long.output


def test_submission_refuses_invalid_score_files(tmp_path, model_file):
    (tmp_path / "eval" / "test").mkdir(parents=True)
    (tmp_path / "eval" / "test" / "x.json").write_text('{"targets": [{"name": "vocals", "frames": []}]}')
    res = CliRunner().invoke(main, ["submission", "--name", "AB", "--scores", str(tmp_path / "eval"),
                                    "--model", str(model_file), str(tmp_path / "sub")])
    assert res.exit_code == 1 and "needs both" in res.output
    assert not (tmp_path / "sub" / "AB").exists()


def _dsd100(root, seconds=3.0, sr=8000):
    from conftest import song
    import soundfile as sf

    name = "001 - Someone - Something"
    (root / "Mixtures" / "Test" / name).mkdir(parents=True)
    (root / "Sources" / "Test" / name).mkdir(parents=True)
    parts = {s: song(seconds, sr, 2, seed=i) * 0.5 for i, s in enumerate(("vocals", "bass", "drums", "other"))}
    for s, y in parts.items():
        sf.write(root / "Sources" / "Test" / name / f"{s}.wav", y.T, sr, subtype="FLOAT")
    sf.write(root / "Mixtures" / "Test" / name / "mixture.wav", sum(parts.values()).T, sr, subtype="FLOAT")
    return name


def test_dsd100_bss_eval_v3_framewise(tmp_path, bundle):
    from vocalsep.evaluate import evaluate_dsd100
    from vocalsep.separator import Separator

    name = _dsd100(tmp_path / "DSD100")
    res = evaluate_dsd100(Separator(bundle, segment_frames=60), tmp_path / "DSD100", tmp_path / "ev", "Test",
                          win_s=1.0, hop_s=1.0)
    data = json.loads((tmp_path / "ev" / "Test" / f"{name}.json").read_text())
    assert {t["name"] for t in data["targets"]} == {"vocals", "accompaniment"}
    assert len(data["targets"][0]["frames"]) == 3
    assert res["summary"]["tracks"] == 1 and set(res["summary"]) >= {"median", "mean"}


def test_dsd100_missing_layout_is_explained(tmp_path, model_file):
    res = CliRunner().invoke(main, ["evaluate", "--dsd100", str(tmp_path), "--model", str(model_file), "-o", str(tmp_path / "o")])
    assert res.exit_code == 1 and "Sources/{Dev,Test}" in res.output


def test_musdb_oracle_is_a_ceiling_for_the_model(tmp_path, musdb_root, model_file):
    sdr = {}
    for label, extra in [("model", []), ("ibm", ["--oracle", "ibm"]), ("irm-mel", ["--oracle", "irm-mel"])]:
        res = CliRunner().invoke(main, ["evaluate", "--musdb", str(musdb_root), "--model", str(model_file),
                                        "-o", str(tmp_path / label), *extra])
        assert res.exit_code == 0, res.output
        sdr[label] = json.loads((tmp_path / label / "summary.json").read_text())["summary"]["median"]["vocals"]["SDR"]
    assert sdr["ibm"] > sdr["model"] + 3 and sdr["irm-mel"] > sdr["model"] + 3
