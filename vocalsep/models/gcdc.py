"""Gated convolutional deep clustering (GCDC; Li & Kameoka, "Deep clustering with gated convolutional networks",
Interspeech 2018).

Every hidden layer is a gated linear unit, ``H_l = (H_{l-1} * W_f + b_f) x sigmoid(H_{l-1} * W_g + b_g)``, computed
as one convolution with ``2 * channels`` outputs followed by :func:`torch.nn.functional.glu` over the channel axis.
``variant`` picks the layout of the ``layers`` gated layers:

* ``"2d-bottleneck"``: 2D convolutions over (frequency, time) on a 1-channel input. The first ``(layers - 1) // 2``
  layers (encoder) stride 2 along frequency (150 -> 75 -> 38 -> 19 ...), the middle one or two keep the
  resolution, and as many gated transposed convolutions (decoder) bring the bands back, cropped to the size the
  matching encoder layer saw, so odd sizes come back exactly.
* ``"2d-bottleneck-skip"``: the same with U-Net skips: each encoder layer's output is *concatenated* on the
  channel axis to the input of the decoder layer that starts from the same resolution (those layers therefore take
  ``2 * channels`` inputs).
* ``"2d-dilated"``: 2D gated convolutions, no striding, dilation ``1, 2, 4, ..., 2 ** (DILATION_CYCLE - 1)`` in
  both axes, repeated from 1 in deeper networks.
* ``"1d"``: 1D gated convolutions along time with the bands as input channels, no dilation.
* ``"1d-dilated"``: the same with dilation ``1, 2, 4, ...`` along time, cycled like ``"2d-dilated"``.

Padding is 'same' and non-causal, and time is never strided, so any number of frames T >= 1 gives T output frames.
The last layer is a 1x1 convolution to ``emb_dim`` values per time-frequency bin (2D: ``channels -> emb_dim``
channels; 1D: ``channels -> n_bands * emb_dim``), L2-normalised over the embedding axis. ``channels`` is used as
given by every variant; the 1D variants usually want it much larger (e.g. 256) than the 2D default of 32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import _Normalised

VARIANTS = ("2d-bottleneck", "2d-bottleneck-skip", "2d-dilated", "1d", "1d-dilated")
DILATION_CYCLE = 5  # dilations 1, 2, 4, 8, 16, 1, 2, ...: receptive field of 63 after five 3-wide layers


def _same(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """(left, right) zero padding that keeps the length of a stride-1 convolution (left = total // 2, as torch)."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


class _GatedConv(nn.Module):
    """Zero-pad, convolve to 2C channels, GLU over channels, dropout. Input (B, C_in, [F,] T)."""

    def __init__(self, conv: nn.Module, pad: tuple[int, ...], dropout: float):
        super().__init__()
        self.conv, self.pad = conv, pad  # pad in F.pad order: (t_left, t_right[, f_left, f_right])
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(F.glu(self.conv(F.pad(x, self.pad)), dim=1))


class _GatedUp(nn.Module):
    """Gated transposed convolution doubling the band axis of (B, C_in, F, T), cropped to ``bands`` x T so that
    output band 2i is centred on input band i (the inverse of the encoder's stride-2 layer)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dropout: float):
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, 2 * c_out, kernel, stride=(2, 1))
        self.start = (kernel - 1) // 2  # = left padding of the matching encoder layer, in both axes
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, bands: int) -> torch.Tensor:
        frames, s = x.shape[-1], self.start
        y = self.conv(x)[..., s:s + bands, s:s + frames]  # (F - 1) * 2 + k bands, T + k - 1 frames
        y = F.pad(y, (0, 0, 0, bands - y.shape[-2]))  # only kernel 1 comes up one band short
        return self.drop(F.glu(y, dim=1))


class GatedConvDC(_Normalised):
    """Gated convolutional deep clustering network (see the module docstring for the variants).

    (batch, frames, n_bands) log-mel in, ``{"embedding": (batch, frames, n_bands, emb_dim)}`` unit-norm out.
    """

    def __init__(self, n_bands: int = 150, variant: str = "2d-dilated", layers: int = 5, channels: int = 32,
                 emb_dim: int = 20, kernel: int = 3, dropout: float = 0.0):
        if variant not in VARIANTS:
            raise ValueError(f"unknown GCDC variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if min(layers, channels, emb_dim, kernel, n_bands) < 1:
            raise ValueError("n_bands, layers, channels, emb_dim and kernel must be positive")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(n_bands)
        self.emb_dim = emb_dim
        self.heads = ("embedding",)
        self.variant, self.layers, self.channels, self.kernel = variant, layers, channels, kernel
        C, k = channels, kernel
        dilations = [2 ** (i % DILATION_CYCLE) if variant.endswith("dilated") else 1 for i in range(layers)]
        self.dilations = tuple(dilations)

        if variant.startswith("1d"):
            self.body = nn.ModuleList(
                _GatedConv(nn.Conv1d(n_bands if i == 0 else C, 2 * C, k, dilation=d), _same(k, d), dropout)
                for i, d in enumerate(dilations))
            self.embed = nn.Conv1d(C, n_bands * emb_dim, 1)
        elif variant == "2d-dilated":
            self.body = nn.ModuleList(
                _GatedConv(nn.Conv2d(1 if i == 0 else C, 2 * C, k, dilation=d), _same(k, d) * 2, dropout)
                for i, d in enumerate(dilations))
            self.embed = nn.Conv2d(C, emb_dim, 1)
        else:  # bottleneck: n_down strided layers, 1 or 2 at the lowest resolution, n_down transposed layers
            n_down = (layers - 1) // 2
            self.skip = variant.endswith("skip")
            self.encoder = nn.ModuleList(  # k - 1 bands of padding: ceil(F / 2) bands out
                _GatedConv(nn.Conv2d(1 if i == 0 else C, 2 * C, k, stride=(2, 1)), _same(k) * 2, dropout)
                for i in range(n_down))
            self.middle = nn.ModuleList(
                _GatedConv(nn.Conv2d(1 if i == 0 and n_down == 0 else C, 2 * C, k), _same(k) * 2, dropout)
                for i in range(layers - 2 * n_down))
            self.decoder = nn.ModuleList(_GatedUp(2 * C if self.skip else C, C, k, dropout) for _ in range(n_down))
            self.embed = nn.Conv2d(C, emb_dim, 1)

    def forward(self, logmel: torch.Tensor, heads: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        # one head only: ``heads`` is accepted for the common interface
        h = self.normalise(logmel).transpose(1, 2)  # (B, F, T)
        B, n_f, T = h.shape
        if self.variant.startswith("1d"):
            for layer in self.body:
                h = layer(h)
            v = self.embed(h).view(B, n_f, self.emb_dim, T).permute(0, 3, 1, 2)
        else:
            h = h.unsqueeze(1)  # (B, 1, F, T)
            if self.variant == "2d-dilated":
                for layer in self.body:
                    h = layer(h)
            else:
                sizes, skips = [], []
                for layer in self.encoder:
                    sizes.append(h.shape[2])
                    h = layer(h)
                    skips.append(h)
                for layer in self.middle:
                    h = layer(h)
                for layer in self.decoder:
                    if self.skip:
                        h = torch.cat([h, skips.pop()], dim=1)
                    h = layer(h, sizes.pop())
            v = self.embed(h).permute(0, 3, 2, 1)  # (B, D, F, T) -> (B, T, F, D)
        return {"embedding": F.normalize(v, dim=-1)}
