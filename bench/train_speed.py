"""Training speed: frames per second of a network's training step, and the deep clustering loss cost
as the number of time-frequency bins grows.

    python bench/train_speed.py [--arch mirex2016] [--model-arg channels=24 ...] [--batch 16]
                                [--frames 100] [--steps 5] [--precision fp32 bf16]
                                [--bins 1e3 3e3 1e4 1e5 1e6] [--threads N]

Part 1 times full training steps (features are random log-mel frames; forward, the network's loss,
backward, RMSprop update) and prints the median over ``--steps`` steps after one warm-up step, for
each ``--precision`` (bf16: the forward pass under bfloat16 autocast, as ``precision = "bf16"`` in a
training config) with its speed as a ratio to the first.
Part 2 times the low-rank loss (forward and backward) for growing N with D = 20 and two sources, and
the naive N x N form where it fits in memory; the low-rank form must grow linearly in N.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from separate import median_time  # noqa: E402


def training_fps(arch: str, batch: int, frames: int, steps: int, overrides: dict,
                 precision: str = "fp32") -> tuple[float, float]:
    from vocalsep.losses import objective
    from vocalsep.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, 150, **overrides).train()
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    x = torch.randn(batch, frames, 150)
    labels = torch.randint(0, 2, (batch, frames, 150))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        loss = objective({k: o.float() for k, o in out.items()}, labels, 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sec = median_time(step, steps)
    return batch * frames / sec, sec


def naive_loss(v, y):
    return ((v @ v.T) - (y @ y.T)).square().sum()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="mirex2016")
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--model-arg", action="append", default=[], metavar="NAME=INT",
                    help="another integer model argument (channels=24 for a U-Net)")
    ap.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--bins", type=float, nargs="+", default=[1e3, 3e3, 1e4, 1e5, 1e6])
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from vocalsep.losses import deep_clustering_loss

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")
    over = {k: v for k, v in (("hidden", args.hidden), ("layers", args.layers)) if v is not None}
    for item in args.model_arg:
        name, _, value = item.partition("=")
        if not value.lstrip("-").isdigit():
            ap.error(f"--model-arg {item!r}: write NAME=INTEGER (channels=24)")
        over[name] = int(value)
    first = None
    for precision in args.precision:
        fps, sec = training_fps(args.arch, args.batch, args.frames, args.steps, over, precision)
        first = first or fps
        print(f"\n{args.arch} {over or '(paper size)'}, {precision}: training step on {args.batch} x {args.frames} "
              f"frames: {sec:.3f} s (median of {args.steps}) = {fps:.0f} frames/s = {fps * 128 / 16000:.1f} s "
              f"of 16 kHz audio per s ({fps / first:.2f}x the first)")

    print("\ndeep clustering loss, forward + backward, D = 20, 2 sources (median of 5):")
    print(f"{'bins N':>10s} {'low-rank ms':>12s} {'ms per 1k bins':>15s} {'naive N x N ms':>15s}")
    for n in (int(b) for b in args.bins):
        v = torch.nn.functional.normalize(torch.randn(1, n, 20), dim=-1).requires_grad_()
        lab = torch.randint(0, 2, (1, n))

        def low_rank():
            deep_clustering_loss(v, lab, 2).backward()

        t = median_time(low_rank, 5)
        naive = "-"
        if n <= 5000:
            y = torch.nn.functional.one_hot(lab[0], 2).float()

            def full():
                naive_loss(v[0], y).backward()

            naive = f"{1000 * median_time(full, 5):15.1f}"
        print(f"{n:>10d} {1000 * t:12.2f} {1e6 * t / n:15.4f} {naive:>15s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
