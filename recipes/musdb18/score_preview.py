"""Separate the MUSDB18 preview that ships with stempeg (Falcon 69) and score it with museval.

    python recipes/musdb18/score_preview.py [--model NAME|PATH] [--reconstruct full|mel] [--out DIR]

Prints museval (BSS Eval v4, 1 s windows, median over frames) SDR/SIR/SAR/ISR for vocals and
accompaniment, beside the scores of the mixture itself used as the estimate. The reference mixture is
the sum of the stems (the preview's own mixture stream is limited/clipped). Needs ffmpeg, stempeg and
museval (`pip install -e .[eval]`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--reconstruct", default="full", choices=["full", "mel"])
    ap.add_argument("--cluster", default="kmeans", choices=["kmeans", "kmeans-sklearn", "meanshift", "prototype"])
    ap.add_argument("--mask-from", default="auto", choices=["auto", "clusters", "head"])
    ap.add_argument("--mask", default="auto", choices=["auto", "binary", "soft"])
    ap.add_argument("--out", default=None, help="also write the estimates as wav files here")
    args = ap.parse_args(argv)

    import museval
    import stempeg

    from vocalsep import Separator
    from vocalsep.audio import save_audio

    stems, sr = stempeg.read_stems(stempeg.example_stem_path(), dtype=np.float32)  # (5, samples, 2)
    vocals = stems[4]
    accompaniment = stems[1] + stems[2] + stems[3]
    mixture = vocals + accompaniment
    sep = Separator.from_pretrained(args.model, reconstruct=args.reconstruct, cluster=args.cluster,
                                    mask_from=args.mask_from, mask=args.mask)
    est = sep.separate(mixture.T, int(sr))
    if args.out:
        for name, y in est.items():
            save_audio(Path(args.out) / f"{name}.wav", y, int(sr), overwrite=True)
    refs = np.stack([vocals, accompaniment])
    rows = {"vocalsep": np.stack([est["vocals"].T, est["accompaniment"].T]),
            "mixture as estimate": np.stack([mixture, mixture])}
    print(f"Falcon 69 preview ({mixture.shape[0] / sr:.1f} s, {int(sr)} Hz stereo); museval v4, "
          "median over 1 s frames (dB)")
    print(f"{'':22s}{'stem':15s}{'SDR':>7s}{'SIR':>7s}{'SAR':>7s}{'ISR':>7s}")
    for label, estimates in rows.items():
        sdr, isr, sir, sar = museval.evaluate(refs, estimates, win=int(sr), hop=int(sr))
        for i, stem in enumerate(("vocals", "accompaniment")):
            med = [np.nanmedian(m[i]) for m in (sdr, sir, sar, isr)]
            print(f"{label:22s}{stem:15s}" + "".join(f"{v:7.2f}" for v in med))
    return 0


if __name__ == "__main__":
    sys.exit(main())
