"""Benchmark `vocalsep batch`: files per minute for 1, 2, ... worker processes on this machine.

    python bench/batch.py [--files 200] [--seconds 10] [--jobs 1 2] [--repeat 3] [--sr 44100] [--ray]

Generates ``--files`` stereo 16-bit wavs of ``--seconds`` each (once, in a temp folder), then times a
fresh `python -m vocalsep.cli batch FOLDER -o OUT --jobs N` process per run into an empty output
folder (start-up and model loads included) and prints the median files/min per job count with its
ratio to one job. ``--ray`` adds a run on a local Ray instance with as many workers as the largest
``--jobs``.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_inputs(folder: Path, files: int, seconds: float, sr: int) -> None:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(files):
        rng = np.random.default_rng(i)
        f0 = 180 + 10 * (i % 12)
        voice = 0.2 * np.sin(2 * np.pi * f0 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)))
        music = 0.1 * np.sin(2 * np.pi * 110 * t) + 0.03 * rng.standard_normal(len(t))
        sf.write(folder / f"song{i:04d}.wav", np.stack([voice + music, voice + 0.8 * music], 1), sr, subtype="PCM_16")


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sr", type=int, default=44100)
    ap.add_argument("--ray", action="store_true")
    args = ap.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        make_inputs(src, args.files, args.seconds, args.sr)
        runs = [(f"--jobs {j}", ["--jobs", str(j)]) for j in args.jobs]
        if args.ray:
            runs.append((f"--ray local ({max(args.jobs)} workers)", ["--ray", "local", "--ray-workers", str(max(args.jobs))]))
        rates = {}
        for label, extra in runs:
            times = []
            for _ in range(args.repeat):
                out = Path(tmp) / "out"
                shutil.rmtree(out, ignore_errors=True)
                times.append(timed([sys.executable, "-m", "vocalsep.cli", "batch", str(src), "-o", str(out), "-q", *extra]))
            med = statistics.median(times)
            rates[label] = args.files / med * 60
            first = rates[runs[0][0]]
            print(f"{label:28s} {med:7.2f} s (runs {min(times):.2f}-{max(times):.2f})  {rates[label]:7.1f} files/min  "
                  f"x{rates[label] / first:.2f} of one job", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
