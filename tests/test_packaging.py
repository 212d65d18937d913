"""Release hygiene: one version everywhere, and the built wheel and sdist hold the bundled models and
nothing else of ours -- installed into a fresh virtual environment, the wheel separates a file."""
import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_one_version_in_the_package_the_cli_and_the_changelog():
    import vocalsep
    from click.testing import CliRunner
    from vocalsep.cli import main

    assert vocalsep.__version__ == VERSION
    out = CliRunner().invoke(main, ["--version"])
    assert out.exit_code == 0 and VERSION in out.output
    # the released version has its own CHANGELOG section, with a date
    assert re.search(rf"^## \[{re.escape(VERSION)}\] - \d{{4}}-\d\d-\d\d$", (ROOT / "CHANGELOG.md").read_text(), re.M)


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "-o", str(out), str(ROOT)], check=True,
                   capture_output=True)
    wheel, = out.glob("vocalsep-*.whl")
    sdist, = out.glob("vocalsep-*.tar.gz")
    return wheel, sdist


def test_wheel_and_sdist_hold_the_models_and_no_experiment_or_audio(dist):
    wheel, sdist = dist
    registry = json.loads((ROOT / "vocalsep" / "pretrained" / "registry.json").read_text())
    names = zipfile.ZipFile(wheel).namelist()
    for model in registry["models"]:
        assert f"vocalsep/pretrained/{model}.onnx" in names
    assert "vocalsep/pretrained/registry.json" in names
    assert all(n.startswith(("vocalsep/", f"vocalsep-{VERSION}.dist-info/")) for n in names), names
    members = [m.split("/", 1)[1] for m in tarfile.open(sdist).getnames() if "/" in m]
    assert not [m for m in members if m.startswith(("exp/", "data/", "recipes/", ".git"))]
    assert not [m for m in members if m.lower().endswith((".wav", ".flac", ".mp3", ".m4a", ".ogg"))]


@pytest.mark.skipif(os.environ.get("VOCALSEP_SKIP_WHEEL_INSTALL") == "1",
                    reason="VOCALSEP_SKIP_WHEEL_INSTALL=1 (the install needs the package index)")
def test_the_wheel_installs_into_a_fresh_environment_without_torch_and_separates(dist, tmp_path):
    """`pip install vocalsep` is the ONNX runtime only: no torch, and split works. Its size is
    onnxruntime and numpy (about 150 MB of the 180 with onnxruntime 1.32 and numpy 2.4) and vocalsep's
    own 14 MB; the bound leaves room for their growth, far below the 700 MB and more that torch adds."""
    wheel, _ = dist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py, cli = venv / "bin" / "python", venv / "bin" / "vocalsep"

    def size() -> int:
        return sum(p.stat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink())

    empty = size()
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + [str(wheel)], check=True, capture_output=True)
    assert (size() - empty) / 1e6 <= 220  # the installed runtime, pip's own files aside
    missing = subprocess.run([str(py), "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
                             capture_output=True, text=True, check=True).stdout
    assert missing.strip() == "None"  # nothing pulled torch in
    where = subprocess.run([str(py), "-c", "import vocalsep; print(vocalsep.__file__)"], cwd=tmp_path,
                           check=True, capture_output=True, text=True).stdout
    assert str(venv) in where  # the installed copy, not this checkout
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((22050, 2))).astype(np.float32)
    sf.write(tmp_path / "in.wav", audio, 22050, subtype="FLOAT")
    run = subprocess.run([str(cli), "split", "in.wav", "-o", "out"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    v, sr = sf.read(tmp_path / "out" / "in" / "vocals.wav")
    a, _ = sf.read(tmp_path / "out" / "in" / "accompaniment.wav")
    assert sr == 22050 and v.shape == audio.shape
    assert np.abs(v + a - audio).max() < 1e-5
    assert "onnx runtime" in run.stderr
    train = subprocess.run([str(cli), "train", "-o", "exp"], cwd=tmp_path, capture_output=True, text=True)
    assert train.returncode == 1 and "pip install 'vocalsep[train]'" in train.stderr, train.stderr
    torch_rt = subprocess.run([str(cli), "split", "in.wav", "-o", "out2", "--runtime", "torch"], cwd=tmp_path,
                              capture_output=True, text=True)
    assert torch_rt.returncode == 1 and "pip install 'vocalsep[torch]'" in torch_rt.stderr, torch_rt.stderr
