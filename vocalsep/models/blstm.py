"""Recurrent networks: the MIREX 2016 BLSTM with sequence-wise batch norm (deep clustering, with an
optional Chimera mask head) and the mask-regression baselines (feed-forward, LSTM, BLSTM)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from .base import _Normalised


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
        """Effective (weight, bias) of ``BN(W_ih x)``; batch statistics of ``x`` when training, in
        float32 also under a lower-precision autocast."""
        if self.training and x is not None and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self.normalized_input_weights(x.float())
        w = self.weight_ih
        if self.training:
            if x is None:
                raise ValueError("training mode needs the batch to compute statistics")
            flat = x.reshape(-1, self.input_size)
            n = flat.shape[0]
            if distributed.active():
                # statistics over the batches of all ranks (sums reduced with autograd support)
                import warnings

                from torch.distributed.nn.functional import all_reduce

                with warnings.catch_warnings():  # deprecated in favour of a private API; still autograd-aware
                    warnings.simplefilter("ignore", FutureWarning)
                    total = all_reduce(torch.cat([flat.sum(0), (flat.T @ flat).flatten(),
                                                  flat.new_tensor([float(n)])]), group=distributed.stats_group())
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
                frames = h.shape[1]  # stacked shifts, as unfold(1, 2c + 1, 1) lays them out (and ONNX exports)
                h = torch.stack([padded[:, i:i + frames] for i in range(2 * c + 1)], -1).flatten(2)
            h = self.body(h)
        else:
            h = self.body(h)[0]
        return {"mask": torch.sigmoid(self.out(h))}
