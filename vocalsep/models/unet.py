"""A convolutional U-Net mask network over (bands, frames), in the manner of Jansson et al. (ISMIR 2017)
and Spleeter (Hennequin et al. 2020), on vocalsep's log-mel input.

Its inductive bias suits voices it never heard: every layer is a small 2-D convolution, so a pattern
learnt at one place on the (mel-spaced, roughly log-frequency) band axis -- a harmonic stack, a vibrato,
a formant -- is recognised at another, and a new singer's higher or lower voice is a translation of a
known one rather than a new input for a recurrent layer's full-band weights.

Layout: ``depth`` encoder layers, each a 5x5 convolution with stride 2 along both bands and frames,
batch norm and leaky ReLU (``channels``, ``2 * channels``, ... output channels); as many decoder layers,
each a 5x5 transposed convolution with stride 2, batch norm, ReLU and dropout on the deepest ones, fed
with the matching encoder layer's output concatenated on the channel axis (the U-Net skips); a 1x1
convolution and a sigmoid give the voice mask per (frame, band). Input bands and frames are padded to
a multiple of ``2 ** depth`` and the output is cropped back, so any T >= 1 frames give T mask frames.

``blocks`` > 0 adds that many residual blocks on the bottleneck (3x3 convolution, batch norm, ReLU,
3x3 convolution, batch norm, added to the block's input): depth where the grid is smallest, so that
each block costs about as much as one encoder layer. The last batch norm of each block starts at zero
gain, so a network with new blocks computes what it did without them until training moves them.

``refine`` > 0 adds a :class:`~vocalsep.models.refiner.BinRefiner` with that many channels on the
bins of the STFT that ``refine_grid`` describes (``[sample_rate, n_fft, fmin, fmax]``, the model's
own features): a second head, ``bin_mask`` (batch, frames, bins), computed from the band mask and
the mixture's magnitude, which ``forward`` then takes as ``magnitude``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import _Normalised
from .refiner import BinRefiner


class MaskUNet(_Normalised):
    """(batch, frames, n_bands) log-mel in, ``{"mask": (batch, frames, n_bands) in [0, 1]}`` out
    (and ``"bin_mask"`` (batch, frames, bins) where the network refines, given ``magnitude``)."""

    def __init__(self, n_bands: int = 150, channels: int = 16, depth: int = 5, kernel: int = 5,
                 dropout: float = 0.2, dropout_layers: int = 2, blocks: int = 0, refine: int = 0,
                 refine_grid: list | None = None):
        if min(n_bands, channels, depth, kernel) < 1 or kernel % 2 == 0:
            raise ValueError("n_bands, channels and depth must be positive and kernel a positive odd number")
        if blocks < 0:
            raise ValueError(f"blocks must be 0 or more, got {blocks}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if refine < 0 or refine and refine_grid is None:
            raise ValueError("refine must be 0, or a channel count with refine_grid = [sample_rate, n_fft, fmin, fmax]")
        super().__init__(n_bands)
        self.heads, self.emb_dim = ("mask", "bin_mask") if refine else ("mask",), None
        self.depth, self.channels, self.kernel = depth, channels, kernel
        pad = kernel // 2
        widths = [channels * 2 ** i for i in range(depth)]
        self.encoder = nn.ModuleList(
            nn.Sequential(nn.Conv2d(1 if i == 0 else widths[i - 1], w, kernel, stride=2, padding=pad),
                          nn.BatchNorm2d(w), nn.LeakyReLU(0.2))
            for i, w in enumerate(widths))
        self.bottleneck = nn.ModuleList(_ResidualBlock(widths[-1]) for _ in range(blocks))
        self.decoder = nn.ModuleList()
        for i in reversed(range(depth)):  # decoder layer i brings level i + 1 back to level i's input size
            c_in = widths[i] * (1 if i == depth - 1 else 2)  # the deepest takes the bottleneck alone
            c_out = widths[i - 1] if i > 0 else channels
            drop = nn.Dropout2d(dropout) if depth - 1 - i < dropout_layers and dropout > 0 else nn.Identity()
            self.decoder.append(nn.Sequential(
                nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=pad, output_padding=1),
                nn.BatchNorm2d(c_out), nn.ReLU(), drop))
        self.out = nn.Conv2d(channels + 1, 1, 1)  # sees the last decoder layer and the input itself
        if refine:
            self.refiner = BinRefiner(n_bands, refine_grid, refine)

    def forward(self, logmel: torch.Tensor, heads: tuple[str, ...] | None = None,
                magnitude: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``heads``: those wanted (default: all); ``bin_mask`` needs ``magnitude``, the mixture's STFT
        magnitude on the refiner's bins (batch, frames, bins), frame for frame with ``logmel``."""
        x = self.normalise(logmel).transpose(1, 2).unsqueeze(1)  # (B, 1, F, T)
        n_f, n_t = x.shape[-2:]
        m = 2 ** self.depth
        x = F.pad(x, (0, -n_t % m, 0, -n_f % m))
        skips, h = [], x
        for layer in self.encoder:
            h = layer(h)
            skips.append(h)
        skips.pop()  # the bottleneck is the deepest decoder layer's only input
        for block in self.bottleneck:
            h = block(h)
        for layer in self.decoder:
            h = layer(h)
            if skips:
                h = torch.cat([h, skips.pop()], dim=1)
        mask = torch.sigmoid(self.out(torch.cat([h, x], dim=1)))[:, 0, :n_f, :n_t].transpose(1, 2)
        out = {"mask": mask}
        if len(self.heads) > 1 and (heads is None or "bin_mask" in heads):
            if magnitude is None:
                raise ValueError("this U-Net refines its mask on the bins: pass the mixture's magnitude")
            out["bin_mask"] = self.refiner(mask, magnitude)
        return out

    def load_narrower(self, state: dict[str, torch.Tensor], channels: int) -> None:
        """Start from a narrower U-Net's weights (``channels`` first-layer channels, at most this
        network's; the same depth, kernel and bands) so that this network computes what that one did.

        Each layer's first channels take the narrower layer's weights; the new channels keep their
        fresh initialisation, and the weights by which an inherited channel would read a new one start
        at zero, so the mask is unchanged (to float rounding, in eval mode) until training moves them.
        """
        if not 1 <= channels <= self.channels:
            raise ValueError(f"can only widen from 1 to {self.channels} channels, got {channels}")
        wide, narrow = self._channel_maps(self.channels), self._channel_maps(channels)
        new = self.state_dict()
        for key, dst in new.items():
            if key not in state:
                raise ValueError(f"the narrower network has no {key}")
            src = state[key]
            if dst.dim() == 0 or key in ("feature_mean", "feature_std"):
                if src.shape != dst.shape:
                    raise ValueError(f"{key}: {tuple(src.shape)} does not fit {tuple(dst.shape)}")
                dst.copy_(src)
                continue
            parts = key.split(".")
            layer = ".".join(parts[:2]) if parts[0] in ("encoder", "decoder") else parts[0]
            (out_w, in_w), (out_n, in_n) = wide[layer], narrow[layer]
            old_out = _placed(out_n, out_w)
            if dst.dim() == 1:  # biases and batch-norm statistics: per output channel
                if src.shape != (len(old_out),):
                    raise ValueError(f"{key}: {tuple(src.shape)} is not from a {channels}-channel U-Net of this depth")
                dst[old_out] = src
                continue
            old_in = _placed(in_n, in_w)
            fresh_in = sorted(set(range(sum(in_w))) - set(old_in))
            # as (out, in, kh, kw): a transposed convolution stores (in, out, kh, kw); views, written in place
            w, s = (dst.transpose(0, 1), src.transpose(0, 1)) if parts[0] == "decoder" else (dst, src)
            if s.shape != (len(old_out), len(old_in)) + w.shape[2:]:
                raise ValueError(f"{key}: {tuple(src.shape)} is not from a {channels}-channel U-Net of this depth")
            rows = torch.tensor(old_out)[:, None]
            w[rows, torch.tensor(fresh_in, dtype=torch.long)[None, :]] = 0.0
            w[rows, torch.tensor(old_in)[None, :]] = s
        self.load_state_dict(new, strict=True)

    def _channel_maps(self, channels: int) -> dict[str, tuple[list[int], list[int]]]:
        """Per layer name, its (output, input) channels as a list of concatenated parts' widths."""
        widths = [channels * 2 ** i for i in range(self.depth)]
        maps = {}
        for i, w in enumerate(widths):
            maps[f"encoder.{i}"] = ([w], [1 if i == 0 else widths[i - 1]])
        for j, i in enumerate(reversed(range(self.depth))):
            c_in = [widths[i]] if i == self.depth - 1 else [widths[i], widths[i]]  # decoder output, skip
            maps[f"decoder.{j}"] = ([widths[i - 1] if i > 0 else channels], c_in)
        maps["out"] = ([1], [channels, 1])  # last decoder layer, input
        return maps


class _ResidualBlock(nn.Module):
    """``x + BN(conv(ReLU(BN(conv(x)))))`` with 3x3 convolutions; the last gain starts at zero (identity)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def narrower_unet(src: nn.Module, dst: nn.Module) -> int:
    """The first-layer channels of ``src`` where it is a narrower U-Net of ``dst``'s shape (which
    ``dst.load_narrower`` can start from), else 0."""
    if not (isinstance(src, MaskUNet) and isinstance(dst, MaskUNet)):
        return 0
    same = (src.depth, src.n_bands, src.kernel) == (dst.depth, dst.n_bands, dst.kernel)
    return src.channels if same and src.channels < dst.channels else 0


def _placed(narrow_parts: list[int], wide_parts: list[int]) -> list[int]:
    """Where the channels of a narrow concatenation go in the wide one: each part's first channels."""
    placed, offset = [], 0
    for n, w in zip(narrow_parts, wide_parts):
        placed.extend(range(offset, offset + n))
        offset += w
    return placed
