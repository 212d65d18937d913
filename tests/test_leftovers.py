"""Nothing left behind: temp files carry their machine and process, so a later run removes a killed
run's leftovers and never a live writer's; a decoded m4a is unlinked as soon as it is open; a file
that fails leaves no empty track folder."""
import os
import subprocess
import sys

import numpy as np
import soundfile as sf
from click.testing import CliRunner

from conftest import song
from vocalsep._atomic import _HOST, atomic_path, sweep_leftovers
from vocalsep.cli import main


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_a_dead_process_of_this_machine_loses_its_temp_files(tmp_path):
    dead, live = dead_pid(), os.getppid()
    names = {f".v.wav.vs{_HOST}-{dead}-abc.part": False,  # a killed run: removed
             f".v.wav.vs{_HOST}-{dead}-abc.float.part": False,
             f".v.wav.vs{_HOST}-{live}-abc.part": True,  # a live writer: kept
             f".v.wav.vs00000000-{dead}-abc.part": True,  # another machine's (shared folder): kept
             f".other.wav.vs{_HOST}-{dead}-abc.part": True,  # another output's: not this sweep's business
             "v.wav": True}
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    removed = sweep_leftovers(tmp_path, ".v.wav")
    assert sorted(p.name for p in removed) == sorted(n for n, keep in names.items() if not keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, keep in names.items() if keep)


def test_writing_a_file_sweeps_its_own_leftovers(tmp_path):
    stale = tmp_path / f".x.wav.vs{_HOST}-{dead_pid()}-q.part"
    stale.write_bytes(b"half")
    with atomic_path(tmp_path / "x.wav") as tmp:
        open(tmp, "wb").write(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]


def test_a_failed_file_leaves_no_empty_track_folder(tmp_path):
    good, bad = tmp_path / "good.wav", tmp_path / "high.wav"
    sf.write(good, song(0.5, 16000).T, 16000)
    sf.write(bad, song(0.5, 96000).T, 96000)  # mp3 cannot hold 96 kHz
    res = CliRunner().invoke(main, ["split", str(bad), str(good), "-o", str(tmp_path / "o"), "--format", "mp3",
                                    "--filename", "{track}/deeper/{stem}.{ext}"])
    assert res.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["good"]


def test_a_separation_that_fails_midway_removes_the_folders_it_made(tmp_path, bundle, monkeypatch):
    from vocalsep.separator import Separator, SeparationError

    src = tmp_path / "a.wav"
    sf.write(src, song(1.0, 16000).T, 16000)
    sep = Separator(bundle)

    def boom(*a, **k):
        yield 0, {"vocals": np.zeros((2, 10), np.float32), "accompaniment": np.zeros((2, 10), np.float32)}
        raise SeparationError("stopped")

    monkeypatch.setattr(sep, "separate_stream", boom)
    (tmp_path / "out").mkdir()
    try:
        sep.separate_file(src, out_dir=tmp_path / "out", template="{track}/x/{stem}.wav")
    except Exception:
        pass
    assert list((tmp_path / "out").iterdir()) == []  # the out folder itself was there before: kept
