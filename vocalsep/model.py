"""Separation networks: (batch, frames, bands) log-mel in, a dict of *heads* out.

Every network returns ``{"embedding": (batch, frames, bands, emb_dim) unit-norm}`` (deep
clustering), ``{"mask": (batch, frames, bands) in [0, 1]}`` (mask regression: the voice's mask), or
both (Chimera); its ``heads`` attribute says which, and ``forward(logmel, heads=(...))`` computes only
the heads asked for. ``ARCHITECTURES`` names the configurations a model
file or a training config may ask for. The default, ``mirex2016``, is the network of Luo, Chen and
Ellis's MIREX 2016 submission.
"""
from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import MAX_MODEL_DIMENSION, MAX_MODEL_PARAMETERS, VocalsepError


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


_STATS_GROUP = {}


def _stats_group():
    """A process group of its own for batch-norm statistics, so that their all-reduces (forward
    and backward) never interleave with DistributedDataParallel's gradient all-reduces."""
    key = id(torch.distributed.distributed_c10d._get_default_group())
    if key not in _STATS_GROUP:
        if not _STATS_GROUP:
            import atexit

            atexit.register(_release_stats_groups)
        _STATS_GROUP[key] = torch.distributed.new_group()
    return _STATS_GROUP[key]


def _release_stats_groups() -> None:
    """Destroy the statistics groups while the interpreter is still whole (a gloo group left to the
    interpreter's own teardown can abort the process as it exits)."""
    groups = list(_STATS_GROUP.values())
    _STATS_GROUP.clear()
    for group in groups:
        try:
            if torch.distributed.is_initialized():
                torch.distributed.destroy_process_group(group)
        except (RuntimeError, ValueError):
            pass  # already gone with the default group


class SequenceBNBLSTM(nn.Module):
    """One bidirectional LSTM layer with sequence-wise batch norm on the input-to-hidden product.

    The pre-activation of every gate is ``BN(W_ih x_t) + W_hh h_{t-1} + b`` where the BN statistics
    are taken over the batch and all time steps jointly (Laurent et al. 2015); the recurrent path is
    not normalised. Under torch.distributed the statistics are those of all ranks' batches together.
    Because BN of a linear map is itself affine, the layer folds the statistics into
    an effective input weight and bias and runs PyTorch's fused LSTM kernel, so training costs little
    more than a plain LSTM and inference is exactly a plain LSTM. Input (batch, frames, input_size),
    output (batch, frames, 2 * hidden_size).
    """

    def __init__(self, input_size: int, hidden_size: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.eps, self.momentum = eps, momentum
        g = 4 * hidden_size
        k = 1.0 / math.sqrt(hidden_size)
        # Rows [0, 4H) are the forward direction, [4H, 8H) the backward one; gate order i, f, g, o.
        self.weight_ih = nn.Parameter(torch.empty(2 * g, input_size).uniform_(-k, k))
        self.weight_hh = nn.Parameter(torch.empty(2, g, hidden_size).uniform_(-k, k))
        bias = torch.zeros(2 * g)
        bias[hidden_size:2 * hidden_size] = 1.0  # forget gates start open
        bias[g + hidden_size:g + 2 * hidden_size] = 1.0
        self.bias = nn.Parameter(bias)  # BN shift, shared with the LSTM bias
        self.bn_weight = nn.Parameter(torch.ones(2 * g))
        self.register_buffer("running_mean", torch.zeros(2 * g))
        self.register_buffer("running_var", torch.ones(2 * g))

    def normalized_input_weights(self, x: torch.Tensor | None = None):
        """Effective (weight, bias) of ``BN(W_ih x)``; batch statistics of ``x`` when training."""
        w = self.weight_ih
        if self.training:
            if x is None:
                raise ValueError("training mode needs the batch to compute statistics")
            flat = x.reshape(-1, self.input_size)
            n = flat.shape[0]
            if _distributed():
                # statistics over the batches of all ranks (sums reduced with autograd support)
                import warnings

                from torch.distributed.nn.functional import all_reduce

                with warnings.catch_warnings():  # deprecated in favour of a private API; still autograd-aware
                    warnings.simplefilter("ignore", FutureWarning)
                    total = all_reduce(torch.cat([flat.sum(0), (flat.T @ flat).flatten(),
                                                  flat.new_tensor([float(n)])]), group=_stats_group())
                n = int(total[-1].item())
                mu_x = total[: self.input_size] / n
                cov = total[self.input_size:-1].view(self.input_size, self.input_size) / n - torch.outer(mu_x, mu_x)
            else:
                mu_x = flat.mean(0)
                xc = flat - mu_x
                cov = xc.T @ xc / n
            mean = w @ mu_x
            var = ((w @ cov) * w).sum(1)  # diag(W C W^T): the variance of each output of W x
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * n / max(n - 1, 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.bn_weight * torch.rsqrt(var + self.eps)
        return w * scale[:, None], self.bias - mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_ih, b = self.normalized_input_weights(x)
        g = 4 * self.hidden_size
        zeros = torch.zeros(g, dtype=x.dtype, device=x.device)
        if PARALLEL_DIRECTIONS and x.device.type == "cpu" and not torch.is_grad_enabled():
            # Inference on the CPU: the recurrence is a chain of small matrix products that keeps one
            # core busy, so the two directions run at the same time on two threads (the kernel
            # releases the GIL); the backward one is the forward recurrence on the time-reversed input.
            def direction(d: int, inp: torch.Tensor, inference: bool) -> torch.Tensor:
                with torch.inference_mode(inference):
                    h0 = torch.zeros(1, inp.shape[0], self.hidden_size, dtype=inp.dtype, device=inp.device)
                    flat = [w_ih[d * g:(d + 1) * g], self.weight_hh[d], b[d * g:(d + 1) * g], zeros]
                    return torch._VF.lstm(inp, (h0, h0), flat, True, 1, 0.0, False, False, True)[0]

            inference = torch.is_inference_mode_enabled()
            backward = _direction_pool().submit(direction, 1, x.flip(1), inference)
            forward = direction(0, x, inference)
            return torch.cat([forward, backward.result().flip(1)], -1)
        flat = [w_ih[:g], self.weight_hh[0], b[:g], zeros, w_ih[g:], self.weight_hh[1], b[g:], zeros]
        h0 = torch.zeros(2, x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
        out, _, _ = torch._VF.lstm(x, (h0, h0), flat, True, 1, 0.0, self.training, True, True)
        return out


PARALLEL_DIRECTIONS = True  # see SequenceBNBLSTM.forward; False runs both directions in one fused call
_POOL = []


def _direction_pool():
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        _POOL.append(ThreadPoolExecutor(1, thread_name_prefix="vocalsep-blstm"))
    return _POOL[0]


class _Normalised(nn.Module):
    """Holds per-band log-mel statistics as buffers (they travel with the model file)."""

    def __init__(self, n_bands: int):
        super().__init__()
        self.n_bands = n_bands
        self.register_buffer("feature_mean", torch.zeros(n_bands))
        self.register_buffer("feature_std", torch.ones(n_bands))

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp_min(1e-3))

    def normalise(self, logmel: torch.Tensor) -> torch.Tensor:
        if logmel.dim() != 3 or logmel.shape[-1] != self.n_bands:
            raise ValueError(f"expected (batch, frames, {self.n_bands}) log-mel input, got {tuple(logmel.shape)}")
        return (logmel - self.feature_mean) / self.feature_std


class DeepClusteringBLSTM(_Normalised):
    """BLSTM deep clustering network (Hershey et al. 2016; Luo, Chen & Ellis, MIREX 2016).

    Normalises the log-mel input with per-band statistics held as buffers, runs ``layers``
    sequence-BN BLSTM layers with dropout on the feed-forward connections, and maps every frame to an
    ``emb_dim``-dimensional unit-norm embedding per band. With ``mask_head`` a second linear layer
    on the same BLSTM output predicts the voice mask through a sigmoid (Chimera, Luo et al. 2017).
    """

    def __init__(self, n_bands: int = 150, hidden: int = 500, layers: int = 4, emb_dim: int = 20,
                 dropout: float = 0.2, mask_head: bool = False):
        super().__init__(n_bands)
        self.emb_dim = emb_dim
        self.heads = ("embedding", "mask") if mask_head else ("embedding",)
        sizes = [n_bands] + [2 * hidden] * layers
        self.rnn = nn.ModuleList(SequenceBNBLSTM(i, hidden) for i in sizes[:-1])
        self.dropout = nn.Dropout(dropout)
        self.embed = nn.Linear(2 * hidden, n_bands * emb_dim)
        self.mask = nn.Linear(2 * hidden, n_bands) if mask_head else None

    def forward(self, logmel: torch.Tensor, heads: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        h = self.normalise(logmel)
        for layer in self.rnn:
            h = self.dropout(layer(h))
        out = {}
        if heads is None or "embedding" in heads:  # the largest layer: skipped when only the mask is wanted
            v = self.embed(h).unflatten(-1, (self.n_bands, self.emb_dim))
            out["embedding"] = F.normalize(v, dim=-1)
        if self.mask is not None and (heads is None or "mask" in heads):
            out["mask"] = torch.sigmoid(self.mask(h))
        return out


class MaskRegression(_Normalised):
    """Mask-regression baselines: predict the voice's ideal binary mask, no clustering.

    ``kind="ff"``: a feed-forward network on each frame (with ``context`` neighbouring frames each
    side) with ``layers`` ReLU layers of ``hidden`` units; ``kind="lstm"`` / ``"blstm"``: a
    (bi)directional LSTM of ``layers`` x ``hidden``. A sigmoid output per band, trained with MSE.
    """

    def __init__(self, n_bands: int = 150, kind: str = "ff", hidden: int = 300, layers: int = 2,
                 context: int = 0, dropout: float = 0.0):
        super().__init__(n_bands)
        if kind not in ("ff", "lstm", "blstm"):
            raise ValueError(f"unknown mask-regression kind {kind!r}; choose ff, lstm or blstm")
        self.kind, self.context, self.heads, self.emb_dim = kind, context, ("mask",), None
        if kind == "ff":
            sizes = [n_bands * (2 * context + 1)] + [hidden] * layers
            self.body = nn.Sequential(*[m for i, o in zip(sizes[:-1], sizes[1:], strict=True)
                                        for m in (nn.Linear(i, o), nn.ReLU(), nn.Dropout(dropout))])
            out = hidden
        else:
            self.body = nn.LSTM(n_bands, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0,
                                bidirectional=kind == "blstm")
            out = hidden * (2 if kind == "blstm" else 1)
        self.out = nn.Linear(out, n_bands)

    def forward(self, logmel: torch.Tensor, heads: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        h = self.normalise(logmel)
        if self.kind == "ff":
            if self.context:
                c = self.context
                padded = F.pad(h.transpose(1, 2), (c, c), mode="replicate").transpose(1, 2)
                h = padded.unfold(1, 2 * c + 1, 1).flatten(2)  # (batch, frames, bands * (2c + 1))
            h = self.body(h)
        else:
            h = self.body(h)[0]
        return {"mask": torch.sigmoid(self.out(h))}


# name -> (class, default constructor arguments)
ARCHITECTURES: dict[str, tuple[type[nn.Module], dict]] = {
    "mirex2016": (DeepClusteringBLSTM, dict(hidden=500, layers=4, emb_dim=20, dropout=0.2)),
    "chimera": (DeepClusteringBLSTM, dict(hidden=500, layers=4, emb_dim=20, dropout=0.2, mask_head=True)),
    "mask-ff": (MaskRegression, dict(kind="ff", hidden=300, layers=2)),
    "mask-lstm": (MaskRegression, dict(kind="lstm", hidden=300, layers=2)),
    "mask-blstm": (MaskRegression, dict(kind="blstm", hidden=300, layers=2)),
}

from .gcdc import VARIANTS as _GCDC_VARIANTS, GatedConvDC  # noqa: E402  (gcdc builds on _Normalised above)

for _variant in _GCDC_VARIANTS:  # Li & Kameoka's five GCDC variants; 1D convolutions get wider layers
    ARCHITECTURES[f"gcdc-{_variant}"] = (GatedConvDC, dict(variant=_variant, layers=5, emb_dim=20,
                                                          channels=256 if _variant.startswith("1d") else 32))
from .unet import MaskUNet  # noqa: E402  (builds on _Normalised above)

ARCHITECTURES["unet"] = (MaskUNet, dict(channels=16, depth=5, kernel=5, dropout=0.2))
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


def build_model(arch: str, n_bands: int, **overrides) -> nn.Module:
    """Build a named architecture; ``overrides`` change its size (hidden, layers, emb_dim, ...)."""
    if arch not in ARCHITECTURES:
        raise ModelConfigError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    cls, defaults = ARCHITECTURES[arch]
    kwargs = {**defaults, **overrides}
    check_model_args(cls, n_bands, kwargs)
    return cls(n_bands=n_bands, **kwargs)
