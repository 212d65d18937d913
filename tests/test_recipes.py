"""The recipes themselves, end to end, on the small shared data (skipped when ../shared is absent)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "musdb18-sample"


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/data/musdb18-sample not present")
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_musdb18_recipe_quick_runs_all_six_stages(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "recipes" / "musdb18" / "run.sh"), "--quick", "--exp-root", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", "PATH": _path()})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for stage in range(6):
        assert f"stage {stage}:" in proc.stdout
    exp = tmp_path / "quick"
    assert json.loads((exp / "config.json").read_text())["dataset"] == "musdb"
    assert (exp / "eval" / "test" / "The Easton Ellises - Falcon 69.json").is_file()
    assert (exp / "submission" / "VSDC" / "description.md").is_file()
    assert (exp / "submission" / "VSDC" / "test" / "The Easton Ellises - Falcon 69.json").is_file()


def _path():
    import sys

    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def test_dsd100_recipe_stages_0_to_4_on_generated_tracks(tmp_path):
    import sys

    import soundfile as sf

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import song

    root = tmp_path / "DSD100"
    for subset, names in (("Dev", ["001 - A", "002 - B"]), ("Test", ["003 - C"])):
        for k, name in enumerate(names):
            (root / "Sources" / subset / name).mkdir(parents=True)
            (root / "Mixtures" / subset / name).mkdir(parents=True)
            parts = {s: song(2.0, 16000, 2, seed=10 * k + i) * 0.4 for i, s in enumerate(("vocals", "bass", "drums", "other"))}
            for s, y in parts.items():
                sf.write(root / "Sources" / subset / name / f"{s}.wav", y.T, 16000, subtype="FLOAT")
            sf.write(root / "Mixtures" / subset / name / "mixture.wav", sum(parts.values()).T, 16000, subtype="FLOAT")
    tiny = ["--set", "model.hidden=8", "--set", "model.layers=1", "--set", "voice_rule_batches=1", "--set",
            "phases=[{chunk_frames=40, batch_size=2, steps_per_epoch=2, max_epochs=1}, "
            "{chunk_frames=60, batch_size=2, steps_per_epoch=1, max_epochs=1}]"]
    proc = subprocess.run(["bash", str(ROOT / "recipes" / "dsd100" / "run.sh"), "--data", str(root), "--exp-root",
                           str(tmp_path / "exp"), *tiny], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PATH": _path()})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "stage 4:" in proc.stdout and "stage 5:" not in proc.stdout
    assert (tmp_path / "exp" / "dsd100" / "eval" / "Test" / "003 - C.json").is_file()
    assert "BSS Eval v3" in proc.stdout


def test_by_singer_split_keeps_the_unseen_singer_and_the_test_songs_out_of_training():
    from vocalsep.data import read_manifest

    d = ROOT / "data" / "mir1k"
    test = set(read_manifest(d / "test.txt"))
    for singer, other in (("amy", "abjones"), ("abjones", "amy")):
        train, valid, unseen = (set(read_manifest(d / "by-singer" / f)) for f in
                                (f"train_{singer}.txt", f"valid_{singer}.txt", f"unseen_{other}.txt"))
        assert train and valid and unseen
        assert all(f"/{singer}_" in c for c in train | valid) and all(f"/{other}_" in c for c in unseen)
        assert not (train | valid | unseen) & test
        assert train <= set(read_manifest(d / "train.txt")) and valid <= set(read_manifest(d / "valid.txt"))
        assert not train & valid


def test_unseen_singer_configs_use_the_singers_split_and_a_step_budget(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes" / "mir1k"))
    import unseen_singer

    cfg = unseen_singer._config("speed6-gain6", 40.0, "../shared/data/mir1k", "abjones", steps=2500)
    assert cfg.train_set.endswith("train_abjones.txt") and cfg.valid_set.endswith("valid_abjones.txt")
    assert cfg.phases[0].max_epochs * cfg.phases[0].steps_per_epoch == 2500
    assert cfg.remix["source_gain_db"] == 6.0 and cfg.remix["speed_semitones"] == 6.0
    assert unseen_singer._config("base", 40.0, "d", "amy").phases[0].max_epochs == 100000
    assert cfg.seed == 0 and unseen_singer._config("base", 40.0, "d", "amy", seed=1).seed == 1
    for name, (remix, _) in unseen_singer.VARIANTS.items():  # every variant's overrides are known remix keys
        got = unseen_singer._config(name, 1.0, "d", "amy").remix
        assert all(got[k] == v for k, v in remix.items()), name
    with pytest.raises(SystemExit):  # not a multiple of 50
        unseen_singer.main(["--steps", "120"])
