"""Average the weights of several model files of one network (e.g. the last epochs of a phase).

    python recipes/mixed/average.py OUT.pt MODEL.pt MODEL.pt [...]

Every floating-point tensor (weights, biases, batch-norm running statistics, feature statistics) is
the mean over the files; integer tensors (batch-norm step counters) are taken from the last file, as
are the feature settings, separation defaults and training summary, which records the files averaged.
The files must hold the same architecture with the same arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def average(paths: list[Path]):
    from vocalsep.checkpoint import ModelFileError, load_model

    bundles = [load_model(p) for p in paths]
    last = bundles[-1]
    for p, b in zip(paths, bundles):
        if (b.arch, b.model_kwargs, b.features) != (last.arch, last.model_kwargs, last.features):
            raise ModelFileError(f"{p}: a different network or features from {paths[-1]}; only one network's weights average")
    states = [b.model.state_dict() for b in bundles]
    mean = {k: (torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v)
            for k, v in states[-1].items()}
    last.model.load_state_dict(mean, strict=True)
    last.training = {**last.training, "averaged_from": [str(p) for p in paths]}
    return last


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("models", type=Path, nargs="+")
    args = ap.parse_args(argv)
    from vocalsep.checkpoint import save_model

    path = save_model(args.out, average(args.models))
    print(f"wrote {path}: the mean of {len(args.models)} model files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
