"""What every separation network shares: per-band log-mel statistics stored as buffers."""
from __future__ import annotations

import torch
from torch import nn


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
