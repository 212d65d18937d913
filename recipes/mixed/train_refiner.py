"""Train a bin refiner on a frozen U-Net: the band mask sharpened to the bins of the model's STFT.

    python recipes/mixed/train_refiner.py BASE OUT_DIR [--channels 8] [--steps 2000] [--lr 1e-3]
                                          [--batch 8] [--seed 4242] [-c CONFIG] [--set key=value ...]

BASE is a U-Net model file or bundled name (e.g. ``voices-unet1024``); its network is kept as it is
(eval mode, no gradient) and a :class:`vocalsep.models.refiner.BinRefiner` of ``--channels`` channels
is trained on top of it, on the training mixtures that CONFIG draws (default
``recipes/mixed/conf_voices.toml`` with the instrumental pool at 40%, as the default model's last
runs): each bin's target is the voice's ideal binary mask on the model's own STFT (``|V| > |A|``),
the loss the binary cross-entropy over the mixture's loud bins (within ``silence_db`` of each
example's peak), as the band mask's own training.

OUT_DIR receives ``model.pt`` (the base network with its refiner: a complete model file, float32),
``last.pt`` (refiner, optimiser, sampler and generator state, every ``--save-every`` steps) and
``train.log`` (mean loss of the refined and of the plain band mask over each stretch of steps).
Run again with the same arguments to resume from ``last.pt``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def refining_bundle(base, channels: int):
    """``base`` (a U-Net model bundle) with a new bin refiner of ``channels`` channels on its own grid."""
    from vocalsep.checkpoint import ModelFileError
    from vocalsep.models import MaskUNet

    if not isinstance(base.model, MaskUNet):
        raise ModelFileError(f"the bin refiner sits on a U-Net; this model is a {base.arch} network")
    f = base.features
    kwargs = {**base.model_kwargs, "refine": channels, "refine_grid": [f.sample_rate, f.n_fft, f.fmin, f.fmax]}
    model = MaskUNet(n_bands=f.n_mels, **kwargs)
    missing, unexpected = model.load_state_dict(base.model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("refiner.") for k in missing):
        raise ModelFileError(f"the base network's weights do not fit: missing {missing}, unexpected {unexpected}")
    return dataclasses.replace(base, model=model, model_kwargs=kwargs)


def bin_batch(v: np.ndarray, a: np.ndarray, fcfg, silence_db: float):
    """Mixture magnitudes, ideal binary voice mask and loud-bin weights on the model's STFT, (batch, frames, bins)."""
    from vocalsep.features import stft

    V, A = stft(v, fcfg.n_fft, fcfg.hop_length), stft(a, fcfg.n_fft, fcfg.hop_length)
    mag = np.abs(V + A).astype(np.float32)
    target = (np.abs(V) > np.abs(A)).astype(np.float32)
    peak = np.maximum(mag.reshape(len(mag), -1).max(1), 1e-12)[:, None, None]
    weights = (mag >= peak * 10.0 ** (-silence_db / 20.0)).astype(np.float32)
    return torch.from_numpy(mag), torch.from_numpy(target), torch.from_numpy(weights)


def weighted_bce(mask: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy(mask.clamp(1e-6, 1 - 1e-6), target, reduction="none")
    return (bce * weights).sum() / weights.sum().clamp_min(1.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", help="U-Net model file or bundled name")
    ap.add_argument("out", type=Path)
    ap.add_argument("-c", "--config", type=Path, default=Path("recipes/mixed/conf_voices.toml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--save-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    from vocalsep.checkpoint import atomic_torch_save, load_model, save_model
    from vocalsep.config import load_config
    from vocalsep.registry import resolve_model
    from vocalsep.train import FeatureExtractor, training_sampler

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    base = load_model(resolve_model(args.base)[0])
    bundle = refining_bundle(base, args.channels)
    model, fcfg = bundle.model.eval(), bundle.features
    cfg = load_config(args.config, ["remix.pool_prob=0.4", *args.overrides])
    fx = FeatureExtractor(fcfg, cfg.silence_db, "cpu")
    sampler = training_sampler(cfg, 1, args.seed, fcfg)
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.refiner.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, args.lr)
    args.out.mkdir(parents=True, exist_ok=True)
    last, step = args.out / "last.pt", 0
    if last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        model.refiner.load_state_dict(ck["refiner"])
        opt.load_state_dict(ck["optimizer"])
        sampler.set_state(ck["sampler"])
        torch.set_rng_state(ck["torch_rng"])
        step = ck["step"]
    log = open(args.out / "train.log", "a")
    t0, run = time.time(), []
    while step < args.steps:
        v, a = sampler.sample(args.batch)
        logmel = fx(torch.from_numpy(v), torch.from_numpy(a))[0]
        mag, target, weights = bin_batch(v, a, fcfg, cfg.silence_db)
        with torch.no_grad():
            mask = model(logmel, heads=("mask",))["mask"]
            plain = weighted_bce(mask @ model.refiner.to_bins, target, weights)
        loss = weighted_bce(model.refiner(mask, mag), target, weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        run.append((loss.item(), plain.item()))
        if step % args.save_every == 0 or step == args.steps:
            refined, band = np.mean(run, 0)
            print(f"step {step}: loss {refined:.4f} (band mask alone {band:.4f}), "
                  f"{(time.time() - t0) / 60:.1f} min", file=log, flush=True)
            run = []
            bundle.training = {**base.training, "refiner": {
                "base": str(args.base), "channels": args.channels, "steps": step, "lr": args.lr, "batch": args.batch,
                "seed": args.seed, "config": str(args.config), "overrides": ["remix.pool_prob=0.4", *args.overrides]}}
            save_model(args.out / "model.pt", bundle)
            atomic_torch_save({"refiner": model.refiner.state_dict(), "optimizer": opt.state_dict(),
                               "sampler": sampler.state(), "torch_rng": torch.get_rng_state(), "step": step}, last)
    print(f"wrote {args.out / 'model.pt'} after {step} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
