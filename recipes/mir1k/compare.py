"""Every system of the seed documents on the same data, code path and training budget.

    python recipes/mir1k/compare.py [--minutes 4] [--jobs 2] [--systems NAME ...] [--exp exp/systems]
                                    [--data ../shared/data/mir1k] [--markdown]

Each system trains from scratch with recipes/mir1k/conf.toml (MIR-1K training split, remixing,
silence weights), its own architecture at the size of its paper, for ``--minutes`` of wall-clock time
on 100-frame chunks (one torch thread each, ``--jobs`` systems at a time), then is scored on the
validation clips (voice GNSDR/GSIR/GSAR) with the separator's defaults: binary masks from
k-means++ for embedding networks, the head's soft mask for networks with a mask head. The separation
real-time factor is measured afterwards, one system at a time with every core, on 60 s of generated
44.1 kHz stereo. Results are kept per system in ``EXP/<system>/result.json``; re-running skips the
systems already done (a training cut short resumes). Prints one table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# name -> (architecture, size overrides, origin)
SYSTEMS = {
    "blstm-4x500": ("mirex2016", {}, "Luo, Chen & Ellis, MIREX 2016 (the paper's size)"),
    "blstm-3x256": ("mirex2016", {"hidden": 256, "layers": 3}, "the same, bundled model's size"),
    "chimera-3x256": ("chimera", {"hidden": 256, "layers": 3}, "Luo et al. 2017 (DC + mask head)"),
    "gcdc-2d-bottleneck": ("gcdc-2d-bottleneck", {}, "Li & Kameoka 2018, #1"),
    "gcdc-2d-bottleneck-skip": ("gcdc-2d-bottleneck-skip", {}, "Li & Kameoka 2018, #2"),
    "gcdc-2d-dilated": ("gcdc-2d-dilated", {}, "Li & Kameoka 2018, #3"),
    "gcdc-1d": ("gcdc-1d", {}, "Li & Kameoka 2018, #4"),
    "gcdc-1d-dilated": ("gcdc-1d-dilated", {}, "Li & Kameoka 2018, #5"),
    "mask-ff": ("mask-ff", {}, "mask regression, FF 2 x 300"),
    "mask-lstm": ("mask-lstm", {}, "mask regression, LSTM 2 x 300"),
    "mask-blstm": ("mask-blstm", {}, "mask regression, BLSTM 2 x 300"),
}
STEPS_PER_EPOCH, BATCH, FRAMES = 20, 8, 100


def _config(name: str, minutes: float, data: str):
    from vocalsep.config import load_config

    arch, size, _ = SYSTEMS[name]
    model = "{" + ", ".join(f"{k} = {v}" for k, v in size.items()) + "}"  # replaces conf.toml's [model] whole
    sets = [f"arch={json.dumps(arch)}", f"model={model}",
            f"data_root={json.dumps(data)}", "threads=1", "checkpoint_every=20",
            f"phases=[{{chunk_frames={FRAMES}, batch_size={BATCH}, steps_per_epoch={STEPS_PER_EPOCH}, "
            f"max_epochs=100000, lr=1e-3, patience=100000, max_minutes={minutes}}}]"]
    return load_config(ROOT / "recipes/mir1k/conf.toml", sets)


def train_one_thread(cfg, out: Path):
    """Train (or resume) phase 1 of ``cfg`` into ``out`` on one torch thread; its best model."""
    import torch

    torch.set_num_threads(1)
    from vocalsep.checkpoint import load_model
    from vocalsep.train import train_phase

    return load_model(train_phase(cfg, 1, out))


def train_and_score(name: str, minutes: float, exp: Path, data: str) -> dict:
    """Train one system (resumable) and score it on the validation clips; one torch thread."""
    out = exp / name
    result_file = out / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    bundle = train_one_thread(_config(name, minutes, data), out)
    from vocalsep.evaluate import evaluate_mir1k
    from vocalsep.separator import Separator

    log = [json.loads(line) for line in (out / "phase1" / "log.jsonl").read_text().splitlines()]
    sep = Separator(bundle)
    scores = evaluate_mir1k(sep, data, ROOT / "data/mir1k/valid.txt")["summary"]
    res = {"system": name, "arch": bundle.arch, "origin": SYSTEMS[name][2],
           "params": sum(p.numel() for p in bundle.model.parameters()),
           "epochs": len(log), "steps": log[-1]["step"], "s_per_epoch": 60 * log[-1]["minutes"] / len(log),
           "best_epoch": bundle.training["best_epoch"], "mask_from": f"{sep.mask_from} ({sep.mask})",
           "gnsdr": scores["vocals"]["GNSDR"], "gsir": scores["vocals"]["GSIR"], "gsar": scores["vocals"]["GSAR"],
           "voice_pick": scores.get("voice_pick_accuracy")}
    result_file.write_text(json.dumps(res, indent=2) + "\n")
    return res


def separation_rtf(name: str, exp: Path, seconds: float = 60.0, repeat: int = 3) -> float:
    """Median real-time factor of Separator.separate on generated 44.1 kHz stereo (all cores)."""
    import numpy as np

    from vocalsep.checkpoint import load_model
    from vocalsep.separator import Separator

    sep = Separator(load_model(exp / name / "phase1" / "best.pt"))
    sr = 44100
    t = np.arange(int(seconds * sr)) / sr
    x = np.stack([0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 3 * 110 * t)] * 2).astype(np.float32)
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sep.separate(x, sr)
        runs.append((time.perf_counter() - t0) / seconds)
    return sorted(runs)[len(runs) // 2]


def train_all(fn, names: list[str], args) -> dict:
    """``fn(name, args.minutes, args.exp, args.data)`` for every name, ``args.jobs`` processes at once."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    args.exp.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {n: pool.submit(fn, n, args.minutes, args.exp, args.data) for n in names}
        return {n: f.result() for n, f in futures.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=4.0, help="training budget per system")
    ap.add_argument("--jobs", type=int, default=2, help="systems trained at once (one thread each)")
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    ap.add_argument("--exp", type=Path, default=ROOT / "exp/systems")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/mir1k"))
    args = ap.parse_args(argv)
    results = train_all(train_and_score, args.systems, args)
    for s, res in results.items():
        if "rtf" not in res:
            res["rtf"] = separation_rtf(s, args.exp)
            (args.exp / s / "result.json").write_text(json.dumps(res, indent=2) + "\n")
    import torch

    print(f"{len(results)} systems, {args.minutes:g} min of training each on 100-frame chunks "
          f"({os.cpu_count()} CPUs, torch {torch.__version__}); validation voice GNSDR/GSIR/GSAR (dB), "
          f"MIR-1K valid split; epoch = {STEPS_PER_EPOCH} steps of {BATCH} examples; RTF on 60 s of 44.1 kHz stereo\n")
    print("| system | origin | params | s/epoch | epochs | masks | GNSDR | GSIR | GSAR | RTF |")
    print("|---|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for s, r in results.items():
        print(f"| {s} | {r['origin']} | {r['params'] / 1e6:.2f} M | {r['s_per_epoch']:.1f} | {r['epochs']} | "
              f"{r['mask_from']} | {r['gnsdr']:.2f} | {r['gsir']:.2f} | {r['gsar']:.2f} | {r['rtf']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
