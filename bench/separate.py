"""Benchmark `vocalsep split`: wall time, real-time factor and peak memory for several input lengths.

    python bench/separate.py [--minutes 1 3 10 60] [--repeat 3] [--model NAME|PATH] [--sr 44100]
                             [--split-args "--mask-from clusters ..."] [--formats wav mp3 flac]

Each run is a fresh `python -m vocalsep.cli split` process (model load included) on a generated
stereo 16-bit wav; peak RSS is the child's maximum resident set size. Prints the median over
``--repeat`` runs, then a per-stage breakdown of one in-process run of the shortest input. With
``--formats``, every length is separated into each output format and the time is also given as a
ratio to the first format's.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def median_time(fn, repeat: int = 5) -> float:
    """Median seconds of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def machine() -> str:
    """The processor, CPU count and the versions that decide the speed of a run."""
    from importlib import metadata

    versions = []
    for dist in ("vocalsep", "onnxruntime", "torch", "numpy"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python "
            f"{platform.python_version()}, " + ", ".join(versions))


def make_input(path: Path, minutes: float, sr: int) -> None:
    """A long stereo test signal written in blocks (never held whole in memory)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    total, block = int(minutes * 60 * sr), sr * 10
    with sf.SoundFile(path, "w", sr, 2, "PCM_16") as f:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / sr
            f0 = 220 * (1 + 0.03 * np.sin(2 * np.pi * 0.3 * t))
            voice = 0.2 * np.sin(2 * np.pi * np.cumsum(f0) / sr) * (np.sin(2 * np.pi * 0.1 * t) > 0)
            music = 0.1 * np.sin(2 * np.pi * 110 * t) + 0.03 * rng.standard_normal(n)
            f.write(np.stack([voice + music, voice + 0.8 * music], 1))


def run_split(src: Path, out: Path, model: str | None, extra: list[str] = ()) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "vocalsep.cli", "split", str(src), "-o", str(out), "--force", *extra]
    if model:
        cmd += ["--model", model]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"split failed: {proc.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1024  # MiB


STAGES = r'''
import json, sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
from vocalsep.separator import Separator
import vocalsep.separator as S, vocalsep.frontend as F, vocalsep.audio as A
timings = {"import": time.perf_counter() - t0}
def timed(name, owner, attr):
    fn = getattr(owner, attr)
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t
    setattr(owner, attr, wrapper)
t = time.perf_counter()
sep = Separator.from_pretrained(sys.argv[3] or None, sys.argv[2])
timings["model load"] = time.perf_counter() - t
timed("reading", A.AudioReader, "read")
timed("writing", A.AudioOutput, "write")
timed("front end (resample, STFT, mel)", sep.front, "to_model_rate")
timed("front end (resample, STFT, mel)", sep.front, "analyse")
timed("network", sep, "network")
timed("masks", sep, "masks")
timed("mask application + inverse STFT", S, "apply_band_masks")
with tempfile.TemporaryDirectory() as d:
    t = time.perf_counter()
    sep.separate_file(sys.argv[1], {s: Path(d) / f"{s}.wav" for s in sep.stems})
    total = time.perf_counter() - t
    timings["commit and the rest"] = total - sum(v for k, v in timings.items() if k not in ("import", "model load"))
print(json.dumps(timings))
'''


def stages(src: Path, runtime: str = "auto", model: str | None = None) -> dict[str, float]:
    """Seconds per stage of one separation of ``src`` in a fresh process (its imports timed too)."""
    import json

    out = subprocess.run([sys.executable, "-c", STAGES, str(src), runtime, model or ""], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 3, 10, 60])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", default=None)
    ap.add_argument("--sr", type=int, default=44100)
    ap.add_argument("--split-args", default="", help="extra `vocalsep split` options, one string")
    ap.add_argument("--formats", nargs="+", default=["wav"], choices=["wav", "flac", "mp3"],
                    help="output formats to time (ratios are to the first)")
    args = ap.parse_args(argv)
    extra = args.split_args.split()
    print(f"machine: {machine()}")
    if extra:
        print("split options:", " ".join(extra))
    print(f"{'input':>10s} {'format':>6s} {'wall s (median)':>16s} {'ratio':>6s} {'RTF':>8s} {'peak RSS MiB':>13s}  runs")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for minutes in args.minutes:
            src = d / f"bench_{minutes:g}min.wav"
            make_input(src, minutes, args.sr)
            first = None
            for fmt in args.formats:
                runs = [run_split(src, d / "out", args.model, extra + ["--format", fmt]) for _ in range(args.repeat)]
                wall = statistics.median(r[0] for r in runs)
                rss = statistics.median(r[1] for r in runs)
                first = first or wall
                print(f"{minutes:>8g} m {fmt:>6s} {wall:16.2f} {wall / first:6.2f} {wall / (minutes * 60):8.4f} {rss:13.0f}  "
                      + ", ".join(f"{r[0]:.2f}" for r in runs), flush=True)
            src.unlink()
        src = d / "stages.wav"
        make_input(src, min(args.minutes), args.sr)
        print(f"\nper-stage seconds, one in-process run of {min(args.minutes):g} min:")
        for name, sec in stages(src, "auto", args.model).items():
            print(f"  {name:36s} {sec:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
