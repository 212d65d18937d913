"""Does a training change help on a singer the model never heard?

    python recipes/mir1k/unseen_singer.py [--minutes 30] [--steps N] [--seed 0] [--jobs 2] [--variants NAME ...]
                                          [--singer amy] [--exp exp/unseen] [--data ../shared/data/mir1k]

MIR-1K's 175 training clips come from two singers, so a validation clip of the usual split is sung
by a singer the model trained on. This check trains on amy alone (``data/mir1k/by-singer/``: her
clips of train.txt; her validation song amy_13 picks the checkpoint) and scores the clips of abjones
outside the test split -- a male singer the model never hears -- next to amy_13 (``--singer abjones``
swaps them: his 24 training clips, his song abjones_3 to select, amy's clips to score). Each variant trains
the bundled model's network (Chimera, 3 x 256) from scratch for ``--minutes`` on 100-frame chunks
(or until ``--steps``, a multiple of 50, which makes runs on differently loaded machines comparable)
with recipes/mir1k/conf_chimera.toml's settings plus its own ``remix`` overrides, one torch thread
each, ``--jobs`` at a time, and is scored with the separator's defaults (mask head, soft,
post-filter). Results are kept in ``EXP/<variant>/result.json``; re-running skips finished variants
and resumes cut-short trainings. Prints a table of voice GNSDR/GSIR/GSAR.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from compare import train_all, train_one_thread  # recipes/mir1k/compare.py, beside this script

ROOT = Path(__file__).resolve().parents[2]
SPLIT = ROOT / "data/mir1k/by-singer"

OTHER = {"amy": "abjones", "abjones": "amy"}

# name -> (remix overrides, description)
VARIANTS = {
    "base": ({}, "the bundled model's remixing (random pairs, offsets, +-3 dB)"),
    "speed": ({"speed_prob": 0.5, "speed_semitones": 3.0},
              "+ half the remixed sources resampled by up to +-3 semitones"),
    "speed6": ({"speed_prob": 0.5, "speed_semitones": 6.0},
               "+ half the remixed sources resampled by up to +-6 semitones"),
    "speed9": ({"speed_prob": 0.5, "speed_semitones": 9.0},
               "+ half the remixed sources resampled by up to +-9 semitones"),
    "speed-eq": ({"speed_prob": 0.5, "speed_semitones": 3.0, "eq_prob": 0.5, "eq_db": 6.0},
                 "+ the same, and half the sources with a random EQ (+-6 dB tilt and peak)"),
    "speed6-gain6": ({"speed_prob": 0.5, "speed_semitones": 6.0, "source_gain_db": 6.0},
                     "+ +-6 semitones, and source gains of +-6 dB instead of +-3"),
    "speed6-reverb": ({"speed_prob": 0.5, "speed_semitones": 6.0, "reverb_prob": 0.5},
                      "+ +-6 semitones, and half the voices with a synthetic reverb (0.3-2 s)"),
}


def _config(name: str, minutes: float, data: str, singer: str, steps: int | None = None, seed: int = 0):
    from vocalsep.config import load_config

    remix = VARIANTS[name][0]
    sets = [f"data_root={json.dumps(data)}", "threads=1", f"seed={seed}", "checkpoint_every=25", "init_from=''",
            f"train_set={json.dumps(str(SPLIT / f'train_{singer}.txt'))}",
            f"valid_set={json.dumps(str(SPLIT / f'valid_{singer}.txt'))}",
            *(f"remix.{k}={json.dumps(v)}" for k, v in remix.items()),
            "phases=[{chunk_frames=100, batch_size=16, steps_per_epoch=50, "
            f"max_epochs={steps // 50 if steps else 100000}, lr=1e-3, patience=100000, max_minutes={minutes}}}]"]
    return load_config(ROOT / "recipes/mir1k/conf_chimera.toml", sets)


def train_and_score(name: str, minutes: float, exp: Path, data: str, singer: str = "amy",
                    steps: int | None = None, seed: int = 0) -> dict:
    """Train one variant on ``singer`` (resumable), score it on the other singer and on the
    singer's validation song; one torch thread."""
    out = exp / name
    result_file = out / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    bundle = train_one_thread(_config(name, minutes, data, singer, steps, seed), out)
    from vocalsep.evaluate import evaluate_mir1k
    from vocalsep.separator import Separator

    sep = Separator(bundle)
    res = {"variant": name, "description": VARIANTS[name][1], "remix": VARIANTS[name][0],
           "steps": bundle.training["steps"], "best_epoch": bundle.training["best_epoch"]}
    for key, manifest in (("unseen", f"unseen_{OTHER[singer]}.txt"), ("seen", f"valid_{singer}.txt")):
        s = evaluate_mir1k(sep, data, SPLIT / manifest)["summary"]["vocals"]
        res[key] = {"gnsdr": s["GNSDR"], "gsir": s["GSIR"], "gsar": s["GSAR"]}
    result_file.write_text(json.dumps(res, indent=2) + "\n")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="training budget per variant")
    ap.add_argument("--steps", type=int, default=None, help="also stop after this many steps (a multiple of 50)")
    ap.add_argument("--seed", type=int, default=0, help="training seed (initial weights and remixes); another "
                    "seed repeats a comparison (use another --exp)")
    ap.add_argument("--jobs", type=int, default=2, help="variants trained at once (one thread each)")
    ap.add_argument("--variants", nargs="+", default=["base", "speed"], choices=list(VARIANTS))
    ap.add_argument("--singer", default="amy", choices=list(OTHER), help="the one singer to train on")
    ap.add_argument("--exp", type=Path, default=None, help="default: exp/unseen (amy), exp/unseen-abjones")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/mir1k"))
    args = ap.parse_args(argv)
    args.exp = args.exp or ROOT / ("exp/unseen" if args.singer == "amy" else f"exp/unseen-{args.singer}")
    if args.steps is not None and (args.steps < 50 or args.steps % 50):
        ap.error(f"--steps must be a positive multiple of 50, got {args.steps}")
    results = train_all(functools.partial(train_and_score, singer=args.singer, steps=args.steps, seed=args.seed), args.variants, args)
    print(f"Trained on {args.singer}'s clips only ({args.minutes:g} min each, Chimera 3 x 256, 100-frame chunks); "
          "voice GNSDR / GSIR / GSAR in dB\n")
    print(f"| variant | remixing | steps | {OTHER[args.singer]} (unseen singer) | "
          f"{args.singer}'s validation song (seen singer) |")
    print("|---|---|---:|---|---|")
    for v, r in results.items():
        cell = lambda s: f"{s['gnsdr']:.2f} / {s['gsir']:.2f} / {s['gsar']:.2f}"  # noqa: E731
        print(f"| {v} | {r['description']} | {r['steps']} | {cell(r['unseen'])} | {cell(r['seen'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
