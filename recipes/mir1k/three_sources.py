"""A two-source model on three-source mixtures (Hershey et al.'s generalisation experiment).

    python recipes/mir1k/three_sources.py [--model NAME|PATH] [--data ../shared/data/mir1k]
                                          [--manifest data/mir1k/valid.txt]

Each validation clip's voice and accompaniment get a third source from the next clip of another
song: its voice (``2 voices + accompaniment``) or its accompaniment (``voice + 2 accompaniments``),
every source at the same RMS. The model, trained on voice-against-accompaniment mixtures only,
clusters each mixture into k = 3 (whole clip as one chunk, so cluster labels are consistent) and the
estimates are scored with BSS Eval v3 with the best permutation. Prints the mean SDR improvement
over the mixture per source, next to k = 2 on the clips' own two-source mixtures.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _rms(x):
    return float(np.sqrt(np.mean(x ** 2)) + 1e-9)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/mir1k"))
    ap.add_argument("--manifest", default=str(ROOT / "data/mir1k/valid.txt"))
    args = ap.parse_args(argv)
    import warnings

    from mir_eval.separation import bss_eval_sources

    from vocalsep import Separator
    from vocalsep.data import load_mir1k

    clips = load_mir1k(args.data, args.manifest, 16000)
    seps = {k: Separator.from_pretrained(args.model, sources=k, segment_frames=3000) for k in (2, 3)}
    song = [c.name.rsplit("_", 1)[0] for c in clips]
    rows = {"voice + accompaniment (k=2)": [], "2 voices + accompaniment (k=3)": [],
            "voice + 2 accompaniments (k=3)": []}
    for i, c in enumerate(clips):
        j = next(k % len(clips) for k in range(i + 1, i + len(clips)) if song[k % len(clips)] != song[i])
        other = clips[j]
        n = len(c.voice)
        extra_v = np.resize(other.voice, n)
        extra_a = np.resize(other.accompaniment, n)
        cases = {"voice + accompaniment (k=2)": (2, [c.voice, c.accompaniment]),
                 "2 voices + accompaniment (k=3)": (3, [c.voice, extra_v, c.accompaniment]),
                 "voice + 2 accompaniments (k=3)": (3, [c.voice, c.accompaniment, extra_a])}
        for name, (k, srcs) in cases.items():
            refs = np.stack([s / _rms(s) * 0.1 for s in srcs])
            mix = refs.sum(0)
            out = seps[k].separate(mix, 16000)
            est = np.stack(list(out.values()))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sdr, _, _, _ = bss_eval_sources(refs, est, compute_permutation=True)
                sdr0, _, _, _ = bss_eval_sources(refs, np.stack([mix] * k), compute_permutation=False)
            rows[name].append(sdr - sdr0)
    print(f"{len(clips)} clips ({Path(args.manifest).name}); SDR improvement over the mixture (dB), "
          f"BSS Eval v3, best permutation, mean over clips\n")
    print("| mixture | per source | mean |")
    print("|---|---|---:|")
    for name, vals in rows.items():
        v = np.array(vals)
        print(f"| {name} | {' / '.join(f'{x:.2f}' for x in v.mean(0))} | {v.mean():.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
