"""Catalogue runs: inputs from trees and list files, the ledger (one record per finished input, a
rerun skips what is done and retries what failed), worker processes, a run killed halfway and resumed
with nothing lost, duplicated or half-written, and the same run on a local Ray instance."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from conftest import song
from vocalsep.batch import BatchError, Item, Ledger, Settings, catalogue, plan
from vocalsep.cli import main


def tree(root: Path, n: int = 6, seconds: float = 0.5) -> Path:
    for i in range(n):
        folder = root / ("x" if i % 2 else "y") / ("deep" if i % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"s{i // 2}.wav", song(seconds, 16000, 2, seed=i).T, 16000)
    (root / ".hidden").mkdir()
    sf.write(root / ".hidden" / "no.wav", song(0.2, 16000).T, 16000)
    (root / "notes.md").write_text("not audio, not listed\n")
    return root


def records(ledger: Path) -> list[dict]:
    return [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]


def test_catalogue_keeps_each_files_place_and_reads_list_files(tmp_path):
    root = tree(tmp_path / "in")
    items = catalogue([root], tmp_path / "out")
    rel = sorted(str(it.src.relative_to(root)) for it in items)
    assert rel == ["x/deep/s1.wav", "x/s0.wav", "x/s2.wav", "y/deep/s0.wav", "y/s1.wav", "y/s2.wav"]
    it = next(i for i in items if i.src == root / "x" / "deep" / "s1.wav")
    assert it.out_dir == tmp_path / "out" / "x" / "deep"  # same-named files in other folders never meet
    listing = tmp_path / "list.txt"
    listing.write_text(f"# a catalogue\nin/x/s0.wav\n\n{root / 'y' / 's1.wav'}  # absolute\nin/x/s0.wav\n")
    listed = catalogue([listing], tmp_path / "out")
    assert [i.src for i in listed] == [tmp_path / "in" / "x" / "s0.wav", root / "y" / "s1.wav"]
    assert all(i.out_dir == tmp_path / "out" for i in listed)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchError, match="no audio files below it"):
        catalogue([tmp_path / "empty"], tmp_path / "out")


def test_two_inputs_with_one_output_are_refused_up_front(tmp_path):
    a, b = tmp_path / "a" / "s.wav", tmp_path / "b" / "s.wav"
    for p in (a, b):
        p.parent.mkdir()
        sf.write(p, song(0.2, 16000).T, 16000)
    book = Ledger(tmp_path / "l.jsonl")
    with pytest.raises(BatchError, match="would both write"):
        plan(catalogue([a, b], tmp_path / "o"), book, Settings())


def test_the_ledger_says_what_is_done(tmp_path):
    src = tmp_path / "s.wav"
    sf.write(src, song(0.2, 16000).T, 16000)
    out = tmp_path / "o" / "v.wav"
    out.parent.mkdir()
    out.write_bytes(b"x")
    st = src.stat()
    book = Ledger(tmp_path / "l.jsonl")
    item = Item(src, tmp_path / "o")
    assert not book.done(item)
    book.record({"path": str(src), "size": st.st_size, "mtime": st.st_mtime, "outputs": {"vocals": str(out)}, "error": None})
    assert book.done(item)
    book.record({"path": str(src), "size": st.st_size, "mtime": st.st_mtime, "outputs": {}, "error": "bad"})
    assert not book.done(item)  # the last record decides: failed, so retried
    book.record({"path": str(src), "size": st.st_size, "mtime": st.st_mtime, "outputs": {"vocals": str(out)}, "error": None})
    book.close()
    again = Ledger(tmp_path / "l.jsonl")
    assert again.done(item)
    out.unlink()
    assert not again.done(item)  # an output gone: redone
    out.write_bytes(b"x")
    os.utime(src, (st.st_atime, st.st_mtime + 10))
    assert not again.done(item)  # the input changed: redone
    again.close()


def test_a_half_written_last_line_is_ignored_and_a_foreign_line_refused(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_text(json.dumps({"path": "a", "error": None}) + "\n" + '{"path": "b", "err')
    book = Ledger(path)
    assert set(book.last) == {"a"}
    book.record({"path": "c", "error": None})
    book.close()
    assert [r["path"] for r in records(path)] == ["a", "c"]  # the half line is cut off, the file stays readable
    Ledger(path).close()
    path.write_text("hello\n")
    with pytest.raises(BatchError, match="line 1 is not a ledger record"):
        Ledger(path)


def wait_for_records(proc, ledger: Path, n: int, seconds: float = 120) -> None:
    """Until the running batch ``proc`` has recorded ``n`` inputs (or ends, or time runs out)."""
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None and (not ledger.exists() or len(records(ledger)) < n):
        time.sleep(0.05)


def _outputs(out: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(out)): sf.read(p)[0] for p in sorted(out.rglob("*.wav"))}


def test_one_and_two_workers_give_the_same_outputs_and_a_rerun_does_nothing(tmp_path):
    root = tree(tmp_path / "in")
    (root / "y" / "bad.wav").write_text("not audio")
    one = CliRunner().invoke(main, ["batch", str(root), "-o", str(tmp_path / "one")])
    two = CliRunner().invoke(main, ["batch", str(root), "-o", str(tmp_path / "two"), "--jobs", "2"])
    assert one.exit_code == 1 and two.exit_code == 1  # the bad file, and only it, failed
    a, b = _outputs(tmp_path / "one"), _outputs(tmp_path / "two")
    assert sorted(a) == sorted(b) and len(a) == 12
    assert all(np.allclose(a[k], b[k], atol=2 / 32768) for k in a)
    for run in ("one", "two"):
        recs = records(tmp_path / run / "ledger.jsonl")
        assert len(recs) == 7 and sum(bool(r["error"]) for r in recs) == 1
        assert all(r["duration"] == 0.5 and r["seconds"] > 0 for r in recs if not r["error"])
    (root / "y" / "bad.wav").unlink()
    rerun = CliRunner().invoke(main, ["batch", str(root), "-o", str(tmp_path / "one")])
    assert rerun.exit_code == 0 and "6 done before, 0 to separate" in rerun.output
    assert len(records(tmp_path / "one" / "ledger.jsonl")) == 7  # nothing redone


def test_a_batch_killed_halfway_resumes_with_nothing_lost_duplicated_or_half_written(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(12):
        sf.write(root / f"t{i:02d}.wav", song(1.0, 16000, 2, seed=i).T, 16000)
    out, ledger = tmp_path / "out", tmp_path / "out" / "ledger.jsonl"
    cmd = [sys.executable, "-m", "vocalsep.cli", "batch", str(root), "-o", str(out), "-q"]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wait_for_records(proc, ledger, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(records(ledger))
    assert 0 < before < 12
    assert subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode == 0
    recs = records(ledger)
    assert sorted(r["path"] for r in recs) == sorted(str(p) for p in root.glob("*.wav"))  # each once
    assert all(not r["error"] for r in recs)
    for p in root.glob("*.wav"):
        for stem in ("vocals", "accompaniment"):
            assert sf.info(out / p.stem / f"{stem}.wav").frames == 16000  # complete, never half-written
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def _children(pid: int) -> list[int]:
    out = []
    for task in Path("/proc").glob("[0-9]*"):
        try:
            if int((task / "stat").read_text().split(") ", 1)[1].split()[1]) == pid:
                out.append(int(task.name))
        except (OSError, ValueError, IndexError):
            pass
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes in /proc")
def test_a_killed_worker_process_is_replaced_and_its_file_redone(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(8):
        sf.write(root / f"t{i}.wav", song(2.0, 16000, 2, seed=i).T, 16000)
    out, ledger = tmp_path / "out", tmp_path / "out" / "ledger.jsonl"
    cmd = [sys.executable, "-m", "vocalsep.cli", "batch", str(root), "-o", str(out), "--jobs", "2", "-q"]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wait_for_records(proc, ledger, 1)
    workers = [c for c in _children(proc.pid) if b"spawn" in Path(f"/proc/{c}/cmdline").read_bytes()
               or b"multiprocessing" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)
    assert proc.wait(timeout=300) == 0
    recs = records(ledger)
    assert sorted(r["path"] for r in recs) == sorted(str(p) for p in root.glob("*.wav")) and not any(r["error"] for r in recs)


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_local_runs_outputs_and_ledger_and_survives_a_killed_worker(tmp_path, ray_local):
    from vocalsep.batch import run_local, run_ray

    root = tree(tmp_path / "in")
    settings = Settings()
    local = Ledger(tmp_path / "local.jsonl")
    list(run_local(catalogue([root], tmp_path / "local"), local, settings))
    local.close()
    book = Ledger(tmp_path / "ray.jsonl")
    todo, _ = plan(catalogue([root], tmp_path / "ray"), book, settings)
    killed = False
    for rec in run_ray(todo, book, settings, workers=2, cpus_per_worker=1):
        if not killed:  # after the first file, kill one worker: its next file is redone by a restarted one
            pids = []
            for task in Path("/proc").glob("[0-9]*"):  # Ray titles its actor processes ray::MapWorker(...)
                try:
                    if b"MapWorker" in (task / "cmdline").read_bytes():
                        pids.append(int(task.name))
                except OSError:
                    pass
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed = True
    book.close()
    assert killed
    a, b = _outputs(tmp_path / "local"), _outputs(tmp_path / "ray")
    assert sorted(a) == sorted(b) and all(np.allclose(a[k], b[k], atol=2 / 32768) for k in a)
    recs = records(tmp_path / "ray.jsonl")
    assert sorted(r["path"] for r in recs) == sorted(r["path"] for r in records(tmp_path / "local.jsonl"))
    assert not any(r["error"] for r in recs)
    again = Ledger(tmp_path / "ray.jsonl")
    assert plan(catalogue([root], tmp_path / "ray"), again, settings)[0] == []  # a rerun does nothing
    again.close()
