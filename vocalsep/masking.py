"""Masks: from the model's grid to the input's own STFT, refined, applied; and the ideal masks.

* :func:`apply_band_masks`: (frames, bands) masks on the model's grid -> masked audio at the input's
  own rate and channels (time interpolation, band-to-bin mapping with the high-band rule, optional
  Wiener-style post-filter): the full-band reconstruction.
* :func:`mel_reconstruct`: the MIREX 2016 path (masked mel, inverse filterbank, mixture phase).
* :func:`oracle_estimates`: stems from ideal masks computed with the true sources.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from .audio import resample
from .choices import ACCOMPANIMENT, HIGH_BANDS, ORACLES, VOCALS
from .features import (FeatureConfig, SparseRows, istft, magnitude, mel_filterbank, mel_inverse, mel_magnitude,
                       mel_to_bin_weights, stft)


def output_stft_size(sample_rate: int, cfg: FeatureConfig) -> tuple[int, int]:
    """(n_fft, hop) for masking at ``sample_rate``: the power of two nearest the model's window length."""
    n_fft = 2 ** max(4, round(math.log2(cfg.n_fft * sample_rate / cfg.sample_rate)))
    return n_fft, n_fft // 4


@lru_cache(maxsize=16)
def _bin_weights(cfg: FeatureConfig, sample_rate: int, n_fft: int, high_band: str) -> SparseRows:
    """Band masks (..., bands) -> bin masks (..., bins), in a fixed order."""
    return SparseRows(mel_to_bin_weights(cfg, sample_rate, n_fft, high_band))


def bin_to_bin_weights(cfg: FeatureConfig, sample_rate: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """The bins of an STFT at ``sample_rate`` with ``n_fft`` points that a mask on the model's own bins
    covers (those up to ``cfg.fmax`` and the model's Nyquist frequency), and their weights on the
    model's bins, (covered bins, model bins): linear interpolation in frequency, rows summing to one."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    low = np.flatnonzero(freqs <= min(cfg.fmax, cfg.sample_rate / 2) + 1e-6)
    pos = freqs[low] / (cfg.sample_rate / cfg.n_fft)
    lo = np.minimum(np.floor(pos).astype(np.int64), cfg.n_bins - 1)
    hi = np.minimum(lo + 1, cfg.n_bins - 1)
    frac = (pos - lo).astype(np.float32)
    w = np.zeros((len(low), cfg.n_bins), np.float32)
    w[np.arange(len(low)), lo] += 1 - frac
    w[np.arange(len(low)), hi] += frac
    return low, w


@lru_cache(maxsize=16)
def _refined_bins(cfg: FeatureConfig, sample_rate: int, n_fft: int) -> tuple[np.ndarray, SparseRows]:
    low, w = bin_to_bin_weights(cfg, sample_rate, n_fft)
    return low, SparseRows(w)


@lru_cache(maxsize=16)
def _mel_inverse(cfg: FeatureConfig) -> SparseRows:
    return SparseRows(mel_inverse(cfg).T)


def interpolate_frames(mask: np.ndarray, n_frames: int, hop_seconds: float, model_hop_seconds: float) -> np.ndarray:
    """Resample ``(..., frames, bands)`` masks in time onto ``n_frames`` frames ``hop_seconds`` apart (linear)."""
    mask = np.asarray(mask, np.float32)
    t = mask.shape[-2]
    pos = np.clip(np.arange(n_frames, dtype=np.float64) * (hop_seconds / model_hop_seconds), 0, t - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, t - 1)
    frac = (pos - lo).astype(np.float32)[:, None]
    return mask[..., lo, :] * (1 - frac) + mask[..., hi, :] * frac


def wiener_postfilter(spec: np.ndarray, mask: np.ndarray, frames: int = 5, power: float = 2.0) -> np.ndarray:
    """Refine a voice mask Wiener-style: ``P_v / (P_v + P_a)`` from the powers of the two masked
    estimates, summed over channels and smoothed over ``frames`` STFT frames.

    spec: (batch, channels, frames, bins) complex mixture; mask: (batch, frames, bins) in [0, 1].
    Where the first mask is confident and the energy is steady the result keeps it; isolated bins
    and flickering decisions are softened towards their neighbours in time.
    """
    mag = np.square(spec.real) + np.square(spec.imag)  # |X|^2, cheaper than abs() of complex
    mag = (mag if power == 2.0 else mag ** (power / 2)).sum(1)  # (batch, frames, bins)
    mask = np.asarray(mask, np.float32)
    pv, pa = mag * mask ** power, mag * (1 - mask) ** power
    if frames > 1:  # moving average over time (edges repeated), by cumulative sums
        def smooth(p):
            left, right = frames // 2, (frames - 1) // 2
            q = np.concatenate([np.repeat(p[:, :1], left, 1), p, np.repeat(p[:, -1:], right, 1)], 1)
            c = np.pad(q.astype(np.float64).cumsum(1), ((0, 0), (1, 0), (0, 0)))
            return ((c[:, frames:] - c[:, :-frames]) / frames).astype(p.dtype)

        pv, pa = smooth(pv), smooth(pa)
    return (pv / np.maximum(pv + pa, 1e-12)).astype(np.float32, copy=False)


def apply_band_masks(audio: np.ndarray, masks: np.ndarray, sample_rate: int, cfg: FeatureConfig,
                     postfilter: bool = False, high_band: str = HIGH_BANDS[0], threads: int = 1,
                     bin_masks: np.ndarray | None = None) -> np.ndarray:
    """Apply model-grid masks to audio at its own rate: the full-band reconstruction.

    ``audio``: (batch, channels, samples) float32 at ``sample_rate``; ``masks``: (batch, frames, bands)
    on the model's grid (its hop at its rate, its mel bands). Each mask is interpolated in time onto
    the audio's own STFT frames, mapped onto its bins (:func:`mel_to_bin_weights` with the ``high_band``
    rule above the model's band), optionally refined
    by :func:`wiener_postfilter`, and applied to every channel. ``bin_masks`` (batch, frames, model
    bins), a refined mask on the bins of the model's own STFT, takes the place of the band masks up
    to ``cfg.fmax`` (interpolated linearly in frequency, :func:`bin_to_bin_weights`); above it the
    band masks' ``high_band`` rule still holds. Returns the masked signal, (batch,
    channels, samples). ``threads`` > 1 shares the batch out between that many threads (numpy's FFTs
    release the GIL); every chunk is computed alone either way, so the result is the same to the bit.
    """
    k = audio.shape[0]
    if threads > 1 and k > 1:
        bounds = np.linspace(0, k, min(threads, k) + 1).astype(int)
        parts = _pool(min(threads, k)).map(
            lambda ab: _apply_band_masks(audio[ab[0]:ab[1]], masks[ab[0]:ab[1]], sample_rate, cfg, postfilter, high_band,
                                         None if bin_masks is None else bin_masks[ab[0]:ab[1]]),
            zip(bounds[:-1], bounds[1:]))
        return np.concatenate(list(parts))
    return _apply_band_masks(audio, masks, sample_rate, cfg, postfilter, high_band, bin_masks)


@lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="vocalsep-masks")


def _apply_band_masks(audio: np.ndarray, masks: np.ndarray, sample_rate: int, cfg: FeatureConfig,
                      postfilter: bool, high_band: str, bin_masks: np.ndarray | None = None) -> np.ndarray:
    k, channels, n = audio.shape
    n_fft, hop = output_stft_size(sample_rate, cfg)
    spec = stft(audio.reshape(k * channels, n), n_fft, hop)  # (batch*channels, frames, bins)
    to_bins = _bin_weights(cfg, sample_rate, n_fft, high_band)
    ratio = hop / sample_rate, cfg.hop_length / cfg.sample_rate
    m = to_bins(interpolate_frames(masks, spec.shape[1], *ratio))
    if bin_masks is not None:
        low, rows = _refined_bins(cfg, sample_rate, n_fft)
        m[..., low] = rows(interpolate_frames(bin_masks, spec.shape[1], *ratio))
    spec = spec.reshape(k, channels, *spec.shape[1:])
    if postfilter:
        m = wiener_postfilter(spec, m)
    spec = spec * m[:, None]
    return istft(spec.reshape(k * channels, *spec.shape[2:]), n_fft, hop, length=n).reshape(k, channels, n)


def mel_reconstruct(mel: np.ndarray, spec16: np.ndarray, mask: np.ndarray, n16: int, sample_rate: int, n: int,
                    cfg: FeatureConfig) -> np.ndarray:
    """The MIREX 2016 reconstruction of one chunk: the masked mel spectrogram through the inverse
    filterbank, the mixture's phase, inverse STFT at the model's rate, resampled to ``sample_rate``
    and fitted to ``n`` samples."""
    mag = _mel_inverse(cfg)(mel * mask)
    phase = spec16 / np.maximum(magnitude(spec16), 1e-12)
    y16 = istft((mag * phase)[None], cfg.n_fft, cfg.hop_length, length=n16)[0]
    y = resample(y16, cfg.sample_rate, sample_rate)
    return np.pad(y, (0, max(0, n - len(y))))[:n]




def oracle_estimates(kind: str, voice: np.ndarray, acc: np.ndarray, sample_rate: int, cfg) -> dict:
    """Stems from an ideal mask computed with the true sources; ``voice``/``acc`` are (channels, samples).

    ``ibm-mel``/``irm-mel``: binary / ratio mask on the model's own features (mono downmix at its
    rate, its mel bands), applied at the input's rate exactly as the model's masks are
    (:func:`apply_band_masks`). ``ibm``/``irm``: the same masks on the input's own
    full-band STFT, per channel. Each is the ceiling of its representation.
    """
    if kind not in ORACLES:
        raise ValueError(f"unknown oracle {kind!r}; choose one of {', '.join(ORACLES)}")
    voice, acc = np.asarray(voice, np.float32), np.asarray(acc, np.float32)
    mix = voice + acc

    def ideal(v, a):
        return (v > a).astype(np.float32) if kind.startswith("ibm") else v / np.maximum(v + a, 1e-12)

    if kind.endswith("-mel"):
        refs = np.stack([resample(r.mean(0), sample_rate, cfg.sample_rate) for r in (voice, acc)])
        mel = mel_magnitude(stft(refs, cfg.n_fft, cfg.hop_length), mel_filterbank(cfg))
        vocals = apply_band_masks(mix[None], ideal(mel[0], mel[1])[None], sample_rate, cfg)[0]
    else:
        n_fft, hop = output_stft_size(sample_rate, cfg)
        spec = stft(np.concatenate([voice, acc, mix]), n_fft, hop).reshape(3, len(voice), -1, n_fft // 2 + 1)
        mask = ideal(magnitude(spec[0]), magnitude(spec[1]))
        vocals = istft(spec[2] * mask, n_fft, hop, length=mix.shape[1])
    return {VOCALS: vocals, ACCOMPANIMENT: mix - vocals}
