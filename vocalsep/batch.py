"""Catalogue runs: many files, a ledger of what was done, a resumable run on every core or on Ray.

* :func:`catalogue` lists the inputs: files, folder trees (every audio file below, in name order) and
  list files (``.txt``/``.lst``: one path per line, relative to the list's folder; blank lines and
  ``#`` comments skipped). Each input keeps its place in the output: a file found ``a/b/x.wav`` below a
  folder goes to ``OUT/a/b/x/<stem>.<ext>``, so same-named files in different folders never meet; a
  file given directly or listed goes to ``OUT/x/...`` as ``vocalsep split`` writes it.
* :class:`Ledger` is the run's single record: one JSON line per finished input (path, size,
  modification time, outputs, audio duration, seconds taken, error or null), appended and flushed as
  each input finishes, by the coordinating process only. A rerun skips every input whose last record
  succeeded for the same size and modification time with all its outputs present, and retries the rest.
* :func:`run_local` separates with ``jobs`` worker processes, each with its model loaded once and its
  share of the threads; :func:`run_ray` does the same on a Ray cluster (Ray Data ``map_batches`` with
  a callable class: one loaded model per actor; failed tasks are retried, so a killed worker's file is
  redone). Outputs are written atomically as ``split`` writes them: a file is either complete or absent.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .errors import VocalsepError
from .outputs import AUDIO_SUFFIXES, DEFAULT_TEMPLATE, output_paths

LIST_SUFFIXES = (".txt", ".lst")


class BatchError(VocalsepError, ValueError):
    """A catalogue, ledger or batch setting is unusable."""


@dataclass(frozen=True)
class Item:
    src: Path  # the input file
    out_dir: Path  # where its track folder goes (OUT, or OUT/<its folder below the tree given>)


def catalogue(inputs: Iterable[str | Path], out: str | Path) -> list[Item]:
    """The inputs as items, in order, each file once (see the module's docstring)."""
    out, items, seen = Path(out), [], set()

    def add(src: Path, rel_parent: Path) -> None:
        key = os.path.abspath(src)
        if key not in seen:
            seen.add(key)
            items.append(Item(src, out / rel_parent))

    for given in map(Path, inputs):
        if given.is_dir():
            found = sorted(p for p in given.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(given).parts))
            if not found:
                raise BatchError(f"{given}: no audio files below it ({' '.join(AUDIO_SUFFIXES)})")
            for p in found:
                add(p, p.parent.relative_to(given))
        elif given.suffix.lower() in LIST_SUFFIXES and given.is_file():
            try:
                lines = given.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise BatchError(f"{given}: not a readable list of paths ({exc})") from None
            for line in lines:
                line = line.split("#", 1)[0].strip()
                if line:
                    p = Path(line)
                    add(p if p.is_absolute() else given.parent / p, Path())
        else:
            add(given, Path())  # a missing or bad file is reported when it is separated
    return items


def _stat(path: Path) -> tuple[int, float] | tuple[None, None]:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime
    except OSError:
        return None, None


class Ledger:
    """The run's record, ``path`` (JSON lines). :meth:`done` tells whether an item needs no work."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.last: dict[str, dict] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                        self.last[rec["path"]] = rec
                    except (ValueError, KeyError, TypeError):
                        if line.endswith("\n"):  # a whole line that is not a record: not ours to overwrite
                            raise BatchError(f"{self.path}: line {n} is not a ledger record; use another "
                                             "--ledger or repair the file") from None
                        # the last line of a run killed mid-write: ignored, that input is redone
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_half_line()
        self._f = open(self.path, "a", encoding="utf-8")

    def _drop_half_line(self) -> None:
        """A run killed while appending leaves a last line without its newline: cut it off (that input
        has no record, so it is redone)."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def done(self, item: Item) -> bool:
        rec = self.last.get(str(item.src))
        if not rec or rec.get("error"):
            return False
        size, mtime = _stat(item.src)
        return (rec.get("size"), rec.get("mtime")) == (size, mtime) and all(
            Path(p).is_file() for p in rec.get("outputs", {}).values())

    def record(self, rec: dict) -> None:
        """Append one record as one line, flushed to disk before returning."""
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.last[rec["path"]] = rec

    def close(self) -> None:
        self._f.close()


@dataclass
class Settings:
    """How every item is separated (the Separator's and ``separate_file``'s options)."""

    model: str | None = None
    device: str = "cpu"
    runtime: str = "auto"
    separator: dict = field(default_factory=dict)  # Separator keyword arguments
    fmt: str = "wav"
    template: str = DEFAULT_TEMPLATE
    stems: tuple[str, ...] | None = None  # None: every stem of the model
    write: dict = field(default_factory=dict)  # separate_file keyword arguments (subtype, clip, bitrate, ...)
    overwrite: bool = False


class Worker:
    """One loaded model; ``__call__(item) -> record``. Used in worker processes and as a Ray actor."""

    def __init__(self, settings: Settings, threads: int | None = None):
        import sys

        from .separator import Separator

        self.settings = settings
        self.sep = Separator.from_pretrained(settings.model, settings.runtime, device=settings.device, threads=threads,
                                             **settings.separator)
        if threads and "torch" in sys.modules:  # the torch runtime's own thread pool
            sys.modules["torch"].set_num_threads(threads)

    def __call__(self, item: Item) -> dict:
        s, t0 = self.settings, time.time()
        size, mtime = _stat(item.src)
        rec = {"path": str(item.src), "size": size, "mtime": mtime, "outputs": {}, "duration": None,
               "seconds": None, "error": None, "worker": f"{os.uname().nodename}:{os.getpid()}"}
        try:
            stems = s.stems or self.sep.stems
            outputs = output_paths(item.src, item.out_dir, stems, template=s.template, ext=s.fmt,
                                   model=s.model or "")
            done = self.sep.separate_file(item.src, outputs, overwrite=s.overwrite, root=item.out_dir, **s.write)
            import soundfile as sf

            rec["outputs"] = {k: str(v) for k, v in done.items()}
            rec["duration"] = round(sf.info(str(next(iter(done.values())))).duration, 3)
        except (VocalsepError, OSError) as exc:
            rec["error"] = " ".join(str(exc).split()) or type(exc).__name__
        rec["seconds"] = round(time.time() - t0, 3)
        return rec


def plan(items: list[Item], ledger: Ledger, settings: Settings) -> tuple[list[Item], int]:
    """The items that need work, and how many the ledger says are done. Two items whose outputs
    would be the same file are refused up front, naming both."""
    from .choices import STEMS

    owner: dict[Path, Path] = {}
    for it in items:
        for p in output_paths(it.src, it.out_dir, settings.stems or STEMS, template=settings.template,
                              ext=settings.fmt, model=settings.model or "").values():
            if p in owner:
                raise BatchError(f"{it.src} and {owner[p]} would both write {p}; rename one, or use --filename "
                                 "with {input_ext}")
            owner[p] = it.src
    todo = [it for it in items if not ledger.done(it)]
    return todo, len(items) - len(todo)


# ---- one machine ------------------------------------------------------------------------------
_WORKER: Worker | None = None


def _init(settings: Settings, threads: int) -> None:
    global _WORKER
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C and stops the pool
    _WORKER = Worker(settings, threads)


def _work(item: Item) -> dict:
    return _WORKER(item)


def run_local(items: list[Item], ledger: Ledger, settings: Settings, jobs: int = 1,
              restarts: int = 3) -> Iterator[dict]:
    """Separate ``items`` with ``jobs`` worker processes (1: in this process), recording each result in
    ``ledger`` as it arrives; yields the records. Each worker gets ``cpu_count // jobs`` threads. A
    worker that dies (killed, or crashed in a decoder) breaks the pool: a new one redoes every item
    without a record, up to ``restarts`` times; what is left then is recorded as failed."""
    if jobs < 1:
        raise BatchError(f"--jobs must be at least 1, got {jobs}")
    if jobs == 1:
        worker = Worker(settings)
        for item in items:
            rec = worker(item)
            ledger.record(rec)
            yield rec
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending, broken = list(items), 0
    while pending:
        finished = set()
        # spawn: no fork of a process that holds torch's threads
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init,
                                 initargs=(settings, threads)) as pool:
            futures = {pool.submit(_work, it): it for it in pending}
            try:
                for fut in as_completed(futures):
                    rec = fut.result()
                    ledger.record(rec)
                    finished.add(futures[fut])
                    yield rec
            except BrokenProcessPool:
                broken += 1
        pending = [it for it in pending if it not in finished]
        if pending and broken > restarts:
            for it in pending:
                size, mtime = _stat(it.src)
                rec = {"path": str(it.src), "size": size, "mtime": mtime, "outputs": {}, "duration": None,
                       "seconds": None, "error": f"{it.src}: a worker process died {broken} times while this "
                                                 "batch ran (killed, or crashed); rerun to retry", "worker": None}
                ledger.record(rec)
                yield rec
            return


# ---- a cluster ----------------------------------------------------------------------------------
class _RayWorker:
    """Ray Data's callable class: a batch of items (a dict of columns) -> their records."""

    def __init__(self, settings: Settings, threads: int):
        self.worker = Worker(settings, threads)

    def __call__(self, batch: dict) -> dict:
        recs = [self.worker(Item(Path(s), Path(o))) for s, o in zip(batch["src"], batch["out_dir"], strict=True)]
        return {"record": [json.dumps(r) for r in recs]}


def run_ray(items: list[Item], ledger: Ledger, settings: Settings, address: str = "auto", workers: int = 2,
            cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, retries: int = 3) -> Iterator[dict]:
    """Separate ``items`` on a Ray cluster (``address``: ``auto`` joins a running one or starts a local
    one; ``local`` always starts a local one): ``workers`` actors, each with one loaded model and
    ``cpus_per_worker`` CPUs (and ``gpus_per_worker`` GPUs for the network). Workers write the outputs
    to the shared output location; only this process writes the ledger. A task whose worker dies is
    retried ``retries`` times."""
    try:
        import ray
    except ImportError:
        raise BatchError("--ray needs Ray: pip install 'vocalsep[ray]'") from None
    if not items:
        return
    started = False
    if not ray.is_initialized():
        kwargs = {"address": None if address == "local" else address, "include_dashboard": False,
                  "log_to_driver": False, "configure_logging": False}
        if address in ("local",):
            kwargs["num_cpus"] = max(1, int(workers * cpus_per_worker))
        try:
            ray.init(**kwargs)
        except ConnectionError:
            if address != "auto":
                raise BatchError(f"--ray {address}: no Ray cluster there") from None
            ray.init(address=None, num_cpus=max(1, int(workers * cpus_per_worker)), include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.max_errored_blocks = 0
        ds = ray.data.from_items([{"src": str(it.src), "out_dir": str(it.out_dir)} for it in items],
                                 override_num_blocks=len(items))
        out = ds.map_batches(_RayWorker, fn_constructor_args=(settings, max(1, int(cpus_per_worker))),
                             batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
                             num_gpus=gpus_per_worker or None,
                             ray_remote_args_fn=lambda: {"max_restarts": retries, "max_task_retries": retries})
        for row in out.iter_rows():
            rec = json.loads(row["record"])
            ledger.record(rec)
            yield rec
    finally:
        if started:
            ray.shutdown()
