"""Average the weights of several model files of one network (e.g. the last epochs of a phase).

    python recipes/mixed/average.py OUT.pt MODEL.pt MODEL.pt [...]
                                    [--recalibrate CONFIG [--set key=value ...] [--batches N]]

Every floating-point tensor (weights, biases, batch-norm running statistics, feature statistics) is
the mean over the files; integer tensors (batch-norm step counters) are taken from the last file, as
are the feature settings, separation defaults and training summary, which records the files averaged.
The files must hold the same architecture with the same arguments, except that a U-Net narrower
than the last file's (fewer channels, the same depth and kernel) is first widened into the last
file's weights: its channels take the place of the last file's first ones and the weights by which
they would read the others are zero (``MaskUNet.load_narrower``), so that averaging a 24-channel
model with a 32-channel run started from it interpolates between the two networks.

``--recalibrate CONFIG``: the averaged weights' batch-norm statistics are then recomputed on N
batches (default 200) of the training mixtures that CONFIG (with its ``--set`` overrides, as given
to ``vocalsep train``) draws, with dropout off (``vocalsep.train.recalibrate_batch_norm``), instead
of being the mean of the files' statistics; the summary records it.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch


def average(paths: list[Path]):
    """The mean of ``paths``' weights, summed one file at a time: memory holds the last file and one
    other, however many are averaged."""
    from vocalsep.checkpoint import ModelFileError, load_model
    from vocalsep.models import narrower_unet

    last = load_model(paths[-1])
    total = {k: v.double() for k, v in last.model.state_dict().items() if v.is_floating_point()}
    widened = []
    for p in paths[:-1]:
        b = load_model(p)
        if b.features != last.features or b.arch != last.arch:
            raise ModelFileError(f"{p}: a different network or features from {paths[-1]}; only one network's weights average")
        if b.model_kwargs != last.model_kwargs:
            channels = narrower_unet(b.model, last.model)
            if not channels:
                raise ModelFileError(f"{p}: its network ({b.model_kwargs}) differs from {paths[-1]}'s "
                                     f"({last.model_kwargs}) other than by being a narrower U-Net; put the widest file last")
            wide = copy.deepcopy(last.model)
            wide.load_narrower(b.model.state_dict(), channels)
            state = wide.state_dict()
            widened.append(str(p))
        else:
            state = b.model.state_dict()
        for k in total:
            total[k] += state[k].double()
        del b, state
    own = last.model.state_dict()
    mean = {k: ((total[k] / len(paths)).to(v.dtype) if k in total else v) for k, v in own.items()}
    last.model.load_state_dict(mean, strict=True)
    last.training = {**last.training, "averaged_from": [str(p) for p in paths]}
    if widened:
        last.training["averaged_widened"] = widened
    return last


def recalibrate(bundle, config: Path, overrides: list[str], batches: int, seed: int = 0):
    """``bundle`` with its batch-norm statistics recomputed on ``batches`` training batches of ``config``."""
    from vocalsep.config import load_config
    from vocalsep.features import FeatureConfig
    from vocalsep.train import FeatureExtractor, recalibrate_batch_norm, training_sampler

    cfg = load_config(config, overrides)
    if FeatureConfig.from_dict(cfg.features) != bundle.features:
        raise SystemExit(f"{config}: its features differ from the model's; recalibrate with the config it was trained with")
    fx = FeatureExtractor(bundle.features, cfg.silence_db, "cpu", cfg.mask_target, cfg.sa_power)
    sampler = training_sampler(cfg, 1, seed, bundle.features)
    batch_size = cfg.phases[0].batch_size
    n = recalibrate_batch_norm(bundle.model, sampler, fx, batches, batch_size)
    if not n:
        raise SystemExit(f"the {bundle.arch} network has no batch-norm layers to recalibrate")
    bundle.training = {**bundle.training, "batch_norm_recalibrated": {
        "config": str(config), "overrides": list(overrides), "batches": batches, "batch_size": batch_size,
        "seed": seed, "layers": n}}
    return bundle


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("models", type=Path, nargs="+")
    ap.add_argument("--recalibrate", type=Path, metavar="CONFIG",
                    help="recompute batch-norm statistics on this training config's mixtures")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override for --recalibrate's config (repeatable)")
    ap.add_argument("--batches", type=int, default=200, help="training batches for --recalibrate")
    ap.add_argument("--seed", type=int, default=0, help="sampler seed for --recalibrate")
    args = ap.parse_args(argv)
    from vocalsep.checkpoint import save_model

    bundle = average(args.models)
    if args.recalibrate:
        bundle = recalibrate(bundle, args.recalibrate, args.overrides, args.batches, args.seed)
    path = save_model(args.out, bundle)
    extra = f", batch norm recalibrated on {args.batches} batches" if args.recalibrate else ""
    print(f"wrote {path}: the mean of {len(args.models)} model files{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
