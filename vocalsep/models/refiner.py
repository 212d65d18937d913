"""The bin refiner: a mel-band voice mask sharpened to the bins of the model's own STFT.

A mask on 150 mel bands gives every bin of a band (at 4 kHz about six bins of a 1024-point STFT at
16 kHz) a smooth interpolation of the band masks around it, so the harmonics of a voice and the
accompaniment between them share one value; the ideal ratio mask on the mel bands scores about
0.8 dB below the same mask on the bins (docs/models/voices-unet1024.md). The refiner sees, per bin,
the interpolated band mask (as a logit), the mixture's log magnitude and that magnitude against its
band's mean (the fine structure the bands average away), and adds a correction to the mask's logit
with three small 2-D convolutions over (frames, bins) -- dilated along frequency so that a bin sees
its neighbours a harmonic apart -- and a 1x1 output convolution that starts at zero: a new refiner
returns the interpolated band mask until training moves it.

The grid (sample rate, FFT size, mel range) is a constructor argument, so a model file describes its
own refiner; the band-to-bin weights and the band means are rebuilt from it, never stored.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class BinRefiner(nn.Module):
    """(mask (batch, frames, bands), magnitude (batch, frames, bins)) -> voice mask (batch, frames, bins)."""

    def __init__(self, n_bands: int, grid: tuple | list, channels: int = 8):
        from ..features import FeatureConfig, mel_filterbank, mel_to_bin_weights

        super().__init__()
        if channels < 1:
            raise ValueError(f"refiner channels must be positive, got {channels}")
        if not isinstance(grid, (list, tuple)) or len(grid) != 4:
            raise ValueError(f"refine_grid must be [sample_rate, n_fft, fmin, fmax], got {grid!r}")
        sample_rate, n_fft, fmin, fmax = grid
        cfg = FeatureConfig(sample_rate=int(sample_rate), n_fft=int(n_fft), n_mels=n_bands,
                            fmin=float(fmin), fmax=float(fmax))
        cfg.validate()
        to_bins = mel_to_bin_weights(cfg, cfg.sample_rate, cfg.n_fft)  # (bins, bands), rows sum to 1
        fb = np.asarray(mel_filterbank(cfg), np.float32)  # (bands, bins)
        band_mean = fb / np.maximum(fb.sum(1, keepdims=True), 1e-8)
        # (bands, bins) -> a bin's band-mean magnitude: magnitude @ band_mean.T @ to_bins.T
        self.register_buffer("to_bins", torch.from_numpy(np.ascontiguousarray(to_bins.T)), persistent=False)
        self.register_buffer("band_mean", torch.from_numpy(np.ascontiguousarray(band_mean.T)), persistent=False)
        self.bins, self.channels = cfg.n_bins, channels
        self.c1 = nn.Conv2d(3, channels, (3, 5), padding=(1, 2))
        self.c2 = nn.Conv2d(channels, channels, (3, 5), padding=(1, 4), dilation=(1, 2))
        self.c3 = nn.Conv2d(channels, channels, (3, 5), padding=(2, 8), dilation=(2, 4))
        self.out = nn.Conv2d(channels, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def inputs(self, mask: torch.Tensor, magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The interpolated band mask on the bins and the refiner's three input planes (batch, 3, frames, bins)."""
        if magnitude.shape[-1] != self.bins:
            raise ValueError(f"the refiner works on {self.bins} bins, got a magnitude of {magnitude.shape[-1]}")
        on_bins = mask @ self.to_bins
        logit = torch.logit(on_bins.clamp(1e-4, 1 - 1e-4))
        logx = torch.log(magnitude + 1e-5)
        logband = torch.log((magnitude @ self.band_mean) @ self.to_bins + 1e-5)
        mu = logx.mean((1, 2), keepdim=True)
        sd = (logx - mu).square().mean((1, 2), keepdim=True).sqrt() + 1e-5
        return logit, torch.stack([logit / 4, (logx - mu) / sd, (logband - mu) / sd], 1)

    def forward(self, mask: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
        logit, x = self.inputs(mask, magnitude)
        h = F.relu(self.c1(x))
        h = F.relu(self.c2(h))
        h = F.relu(self.c3(h))
        return torch.sigmoid(logit + self.out(h)[:, 0])
