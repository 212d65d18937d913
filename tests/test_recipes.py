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
