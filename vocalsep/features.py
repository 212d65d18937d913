"""Time-frequency features: STFT/ISTFT pair, mel filterbank, log-mel, mask mapping.

Shape vocabulary used throughout vocalsep:

* waveforms: ``(batch, samples)`` or ``(channels, samples)``
* spectrograms: ``(batch, frames, bins)`` (complex STFT or magnitudes)
* mel spectrograms and masks: ``(batch, frames, bands)``
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np
import torch

from .choices import HIGH_BANDS
from .errors import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, VocalsepError, check_number


class FeatureConfigError(VocalsepError, ValueError):
    """Feature settings of unknown names, wrong types or out of range."""


@dataclass(frozen=True)
class FeatureConfig:
    """Analysis settings of a model. Stored in every model file."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 128
    n_mels: int = 150
    fmin: float = 0.0
    fmax: float = 8000.0
    log_floor: float = 1e-5

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        if not isinstance(d, dict):
            raise FeatureConfigError(f"feature settings must be a table of name = value, got {d!r}")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise FeatureConfigError(f"unknown feature settings {sorted(unknown)}; known: {sorted(names)}")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Types and ranges; raises :class:`FeatureConfigError` naming the setting."""
        def num(name, **kw):
            check_number(getattr(self, name), f"features.{name}", error=FeatureConfigError, **kw)

        num("sample_rate", lo=MIN_SAMPLE_RATE, hi=MAX_SAMPLE_RATE, integer=True)
        num("n_fft", lo=16, hi=16384, integer=True)
        num("hop_length", lo=1, hi=self.n_fft, integer=True)
        num("n_mels", lo=1, hi=self.n_fft // 2 + 1, integer=True)
        num("fmax", lo=0, lo_open=True, hi=self.sample_rate / 2)
        num("fmin", lo=0)
        if self.fmin >= self.fmax:
            raise FeatureConfigError(f"features.fmin ({self.fmin}) must be below features.fmax ({self.fmax})")
        num("log_floor", lo=0, lo_open=True, hi=1)

    def samples_for_frames(self, frames: int) -> int:
        """Number of samples whose centred STFT has exactly ``frames`` frames."""
        return (frames - 1) * self.hop_length


def _window(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    dtype = like.real.dtype if like.is_complex() else like.dtype
    return torch.hann_window(n_fft, periodic=True, dtype=dtype, device=like.device)


def stft(x: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex STFT. ``x``: (batch, samples) -> (batch, frames, bins)."""
    spec = torch.stft(x, n_fft, hop_length, window=_window(n_fft, x), center=True,
                      pad_mode="constant", return_complex=True)
    return spec.transpose(-1, -2)


def istft(spec: torch.Tensor, n_fft: int, hop_length: int, length: int) -> torch.Tensor:
    """Inverse of :func:`stft`. ``spec``: (batch, frames, bins) -> (batch, length)."""
    return torch.istft(spec.transpose(-1, -2), n_fft, hop_length, window=_window(n_fft, spec),
                       center=True, length=length)


_F_SP = 200.0 / 3  # Slaney mel scale: linear below 1 kHz, logarithmic above
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(f):
    """Slaney mel scale (as librosa's default, ``htk=False``)."""
    f = np.asarray(f, np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, f / _F_SP)


def mel_to_hz(m):
    m = np.asarray(m, np.float64)
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


def mel_frequencies(n: int, fmin: float, fmax: float) -> np.ndarray:
    """``n`` frequencies (Hz) equally spaced on the mel scale from ``fmin`` to ``fmax``."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n))


@lru_cache(maxsize=32)
def _mel_np(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-normalised triangular mel filterbank, (bands, bins); equal to ``librosa.filters.mel``
    (a test checks it) without importing librosa and scipy.signal, which cost seconds at start-up."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = mel_frequencies(n_mels + 2, fmin, fmax)
    width = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per band
    return weights.astype(np.float32)


def mel_filterbank(cfg: FeatureConfig) -> torch.Tensor:
    """Slaney-normalised mel filterbank, (bands, bins)."""
    return torch.from_numpy(_mel_np(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax))


def mel_magnitude(spec: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """Mel magnitude spectrogram. (batch, frames, bins) complex or real -> (batch, frames, bands)."""
    mag = spec.abs() if spec.is_complex() else spec
    return mag @ fb.to(mag).T


def log_mel(mel_mag: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """Log compression of a mel magnitude spectrogram (natural log, floored)."""
    return torch.log(mel_mag.clamp_min(cfg.log_floor))




def mel_to_bin_weights(cfg: FeatureConfig, sample_rate: int, n_fft: int, high_band: str = "top") -> torch.Tensor:
    """Map a per-band mask onto the bins of an STFT of any rate and size, (bins, bands).

    Each bin takes the filterbank-weighted average of the band masks (the mel triangles are
    evaluated at the bin's own frequency). Bins that no triangle covers take the nearest band (DC),
    except those above ``cfg.fmax`` -- the full-band part a 16 kHz model never sees -- with
    ``high_band="octave"``: they take the mean of the bands of the model's top octave (centres from
    ``fmax / 2`` up), so a voice's sibilants and breaths above 8 kHz go where its 4-8 kHz content
    went, rather than following the top band alone, which the voice rarely dominates.
    Rows sum to one, so a mask in [0, 1] stays in [0, 1].
    """
    if high_band not in HIGH_BANDS:
        raise ValueError(f"unknown high-band rule {high_band!r}; choose one of {', '.join(HIGH_BANDS)}")
    # Triangles are evaluated with the model's own fmax, so band indices stay aligned even when
    # this grid stops below it (low sample rates).
    w = _mel_np(sample_rate, n_fft, cfg.n_mels, cfg.fmin, cfg.fmax).T.copy()  # (bins, bands)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    centres = mel_frequencies(cfg.n_mels + 2, cfg.fmin, cfg.fmax)[1:-1]
    total = w.sum(1, keepdims=True)
    empty = total[:, 0] <= 1e-8 * max(float(total.max()), 1e-30)
    w[empty] = 0.0
    nearest = np.abs(freqs[empty, None] - centres[None, :]).argmin(1)
    w[np.flatnonzero(empty), nearest] = 1.0
    if high_band == "octave":
        top = centres >= cfg.fmax / 2
        w[freqs > cfg.fmax] = top / top.sum()
    w /= w.sum(1, keepdims=True)
    return torch.from_numpy(w.astype(np.float32))


def mel_inverse(cfg: FeatureConfig) -> torch.Tensor:
    """Linear map from a mel magnitude spectrogram back to STFT magnitudes, (bands, bins).

    The normalised filterbank transpose: each band is turned into its mean magnitude (divide by
    the filter's area) and spread back over the bins it covers with :func:`mel_to_bin_weights`.
    A flat spectrum maps back to itself.
    """
    fb = mel_filterbank(cfg)
    area = fb.sum(1, keepdim=True).clamp_min(1e-12)
    to_bins = mel_to_bin_weights(cfg, cfg.sample_rate, cfg.n_fft, "top")  # (bins, bands)
    return (to_bins / area.T).T.contiguous()


def ideal_binary_labels(mel_sources: torch.Tensor) -> torch.Tensor:
    """Index of the dominant source for every bin. (sources, batch, frames, bands) -> (batch, frames, bands)."""
    return mel_sources.argmax(0)


SILENCE_DB = 40.0  # default: bins more than this below an example's loudest are "silent" (loss and clustering)


def silence_weights(mix_mel: torch.Tensor, threshold_db: float = SILENCE_DB) -> torch.Tensor:
    """1 for bins within ``threshold_db`` of each example's loudest bin, else 0. (batch, frames, bands)."""
    peak = mix_mel.flatten(1).amax(1).clamp_min(1e-12)
    floor = peak * 10.0 ** (-threshold_db / 20.0)
    return (mix_mel >= floor.view(-1, *([1] * (mix_mel.dim() - 1)))).to(mix_mel.dtype)
