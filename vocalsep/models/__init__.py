"""Separation networks: (batch, frames, bands) log-mel in, a dict of *heads* out.

Every network returns ``{"embedding": (batch, frames, bands, emb_dim) unit-norm}`` (deep
clustering), ``{"mask": (batch, frames, bands) in [0, 1]}`` (mask regression: the voice's mask), or
both (Chimera); its ``heads`` attribute says which, and ``forward(logmel, heads=(...))`` computes only
the heads asked for. The registry here, ``ARCHITECTURES``, names the configurations a model
file or a training config may ask for. The default, ``mirex2016``, is the network of Luo, Chen and
Ellis's MIREX 2016 submission.
"""
from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from ..errors import MAX_MODEL_DIMENSION, MAX_MODEL_PARAMETERS, VocalsepError
from .blstm import DeepClusteringBLSTM, MaskRegression, SequenceBNBLSTM
from .gcdc import VARIANTS as _GCDC_VARIANTS, GatedConvDC
from .unet import MaskUNet, narrower_unet

# name -> (class, default constructor arguments)
ARCHITECTURES: dict[str, tuple[type[nn.Module], dict]] = {
    "mirex2016": (DeepClusteringBLSTM, dict(hidden=500, layers=4, emb_dim=20, dropout=0.2)),
    "chimera": (DeepClusteringBLSTM, dict(hidden=500, layers=4, emb_dim=20, dropout=0.2, mask_head=True)),
    "mask-ff": (MaskRegression, dict(kind="ff", hidden=300, layers=2)),
    "mask-lstm": (MaskRegression, dict(kind="lstm", hidden=300, layers=2)),
    "mask-blstm": (MaskRegression, dict(kind="blstm", hidden=300, layers=2)),
}

for _variant in _GCDC_VARIANTS:  # Li & Kameoka's five GCDC variants; 1D convolutions get wider layers
    ARCHITECTURES[f"gcdc-{_variant}"] = (GatedConvDC, dict(variant=_variant, layers=5, emb_dim=20,
                                                          channels=256 if _variant.startswith("1d") else 32))
ARCHITECTURES["unet"] = (MaskUNet, dict(channels=16, depth=5, kernel=5, dropout=0.2))
__all__ = ["ARCHITECTURES", "MODEL_CLASSES", "DeepClusteringBLSTM", "GatedConvDC", "MaskRegression", "MaskUNet",
           "ModelConfigError", "SequenceBNBLSTM", "build_model", "check_model_args", "model_args", "narrower_unet"]
MODEL_CLASSES = {cls.__name__: cls for cls, _ in ARCHITECTURES.values()}


class ModelConfigError(VocalsepError, ValueError):
    """An architecture's name, arguments or size is not acceptable."""


_PLAIN = (int, float, str, bool, type(None))


def check_model_args(cls: type[nn.Module], n_bands: int, kwargs: dict) -> None:
    """Refuse arguments ``cls`` does not take, values that are not plain, and networks above
    :data:`~vocalsep.errors.MAX_MODEL_PARAMETERS` -- counted on the meta device, so nothing is allocated."""
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ModelConfigError(f"model arguments must be a table of name = value, got {kwargs!r}")
    params = inspect.signature(cls.__init__).parameters
    known = sorted(k for k in params if k not in ("self", "n_bands"))
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ModelConfigError(f"{cls.__name__} takes no argument(s) {unknown}; known: {known}")
    for k, v in kwargs.items():
        if not (isinstance(v, _PLAIN) or isinstance(v, (list, tuple)) and all(isinstance(e, _PLAIN) for e in v)):
            raise ModelConfigError(f"model argument {k} must be a plain value, got {type(v).__name__}")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and (not math.isfinite(v) or v < 0):
            raise ModelConfigError(f"model argument {k} must be finite and not negative, got {v!r}")
        if isinstance(v, int) and not isinstance(v, bool) and v > MAX_MODEL_DIMENSION:
            raise ModelConfigError(f"model argument {k} = {v} is above the limit of {MAX_MODEL_DIMENSION}")
    if isinstance(n_bands, bool) or not isinstance(n_bands, int) or not 1 <= n_bands <= 8193:
        raise ModelConfigError(f"the number of bands must be an integer in 1..8193, got {n_bands!r}")
    try:
        with torch.device("meta"):
            n = sum(p.numel() for p in cls(n_bands=n_bands, **kwargs).parameters())
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, IndexError, KeyError, AssertionError) as exc:
        raise ModelConfigError(f"{cls.__name__} cannot be built from {kwargs}: {str(exc).splitlines()[0][:160]}") from None
    if n > MAX_MODEL_PARAMETERS:
        raise ModelConfigError(f"{cls.__name__} with {kwargs} has {n:,} parameters, above the limit of "
                               f"{MAX_MODEL_PARAMETERS:,}; choose smaller sizes")


def model_args(arch: str, overrides: dict | None = None) -> tuple[type[nn.Module], dict]:
    """The class of a named architecture and its constructor arguments: its defaults, then ``overrides``."""
    if arch not in ARCHITECTURES:
        raise ModelConfigError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    cls, defaults = ARCHITECTURES[arch]
    return cls, {**defaults, **(overrides or {})}


def build_model(arch: str, n_bands: int, **overrides) -> nn.Module:
    """Build a named architecture; ``overrides`` change its size (hidden, layers, emb_dim, ...)."""
    cls, kwargs = model_args(arch, overrides)
    check_model_args(cls, n_bands, kwargs)
    return cls(n_bands=n_bands, **kwargs)
