"""The front end: audio at any rate and channel count -> what a network reads.

One object owns the chain that training, separation and evaluation share: mono downmix,
resampling to the model's rate, STFT, mel magnitudes, log and per-band normalisation (the last
inside the network, whose statistics travel with the model file). It is numpy only: both runtimes
and the trainer call this same code.
"""
from __future__ import annotations

import numpy as np

from .audio import resample
from .features import BandedMatrix, FeatureConfig, log_mel, mel_filterbank, mel_magnitude, stft


class FrontEnd:
    """The model's analysis for one :class:`~vocalsep.features.FeatureConfig`."""

    def __init__(self, cfg: FeatureConfig):
        self.cfg = cfg
        self.fb = BandedMatrix(mel_filterbank(cfg))  # its sums in a fixed order, whatever the threads

    def to_model_rate(self, chunks: np.ndarray, sample_rate: int) -> np.ndarray:
        """(batch, channels, samples) at ``sample_rate`` -> (batch, samples') mono at the model's rate."""
        return np.stack([resample(ch.mean(0), sample_rate, self.cfg.sample_rate) for ch in chunks])

    def analyse(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(batch, samples) at the model's rate -> (complex STFT (batch, frames, bins), mel magnitudes
        (batch, frames, bands))."""
        spec = stft(np.atleast_2d(wave), self.cfg.n_fft, self.cfg.hop_length)
        return spec, mel_magnitude(spec, self.fb)

    def log_mel(self, mel: np.ndarray) -> np.ndarray:
        """Mel magnitudes -> the network's input (log-mel; the network normalises per band)."""
        return log_mel(mel, self.cfg)
