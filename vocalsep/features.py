"""Time-frequency features: STFT/ISTFT pair, mel filterbank, log-mel, mask mapping -- in numpy.

This is the one implementation of these steps: separation with either runtime (ONNX Runtime or
torch) and training's feature extraction all call it, so nothing here imports torch.

Shape vocabulary used throughout vocalsep:

* waveforms: ``(batch, samples)`` or ``(channels, samples)``
* spectrograms: ``(batch, frames, bins)`` (complex STFT or magnitudes)
* mel spectrograms and masks: ``(batch, frames, bands)``
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np

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


@lru_cache(maxsize=16)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window (as ``torch.hann_window(periodic=True)``)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


@lru_cache(maxsize=16)
def _envelope(n_fft: int, hop: int, frames: int) -> np.ndarray:
    """The summed squared windows of ``frames`` overlapped frames (what :func:`istft` divides by)."""
    w2 = _hann(n_fft).astype(np.float64) ** 2
    return _overlap_add(np.broadcast_to(w2, (1, frames, n_fft)), hop)[0]


def _overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """(batch, frames, n) -> (batch, (frames - 1) * hop + n): frame ``i`` added at ``i * hop``, in
    ``ceil(n / hop)`` strided additions rather than one per frame."""
    b, f, n = frames.shape
    parts = -(-n // hop)
    if parts * hop != n:
        frames = np.pad(frames, ((0, 0), (0, 0), (0, parts * hop - n)))
    out = np.zeros((b, (f - 1 + parts) * hop), frames.dtype)
    for r in range(parts):
        out[:, r * hop:(r + f) * hop] += frames[:, :, r * hop:(r + 1) * hop].reshape(b, f * hop)
    return out[:, :(f - 1) * hop + n]


def stft(x: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Complex STFT, (batch, samples) float -> (batch, frames, bins) complex64.

    Periodic Hann window of ``n_fft`` samples, hop ``hop_length``, centred: the signal is padded with
    ``n_fft // 2`` zeros on both sides, so frame ``t`` is centred on sample ``t * hop_length`` and a
    signal of ``n`` samples has ``1 + n // hop_length`` frames. No normalisation. The same transform as
    ``torch.stft(x, n_fft, hop_length, window=hann_window(n_fft), center=True, pad_mode="constant")``.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"stft takes (batch, samples), got shape {x.shape}")
    pad = n_fft // 2
    padded = np.pad(x, ((0, 0), (pad, n_fft - pad)))[:, :x.shape[1] + 2 * pad]  # at least one window
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop_length]
    return np.fft.rfft(frames * _hann(n_fft), axis=-1).astype(np.complex64, copy=False)


def istft(spec: np.ndarray, n_fft: int, hop_length: int, length: int) -> np.ndarray:
    """Inverse of :func:`stft` (windowed overlap-add divided by the summed squared windows), trimmed or
    zero-padded to ``length`` samples. ``spec``: (batch, frames, bins) -> (batch, length) float32."""
    spec = np.asarray(spec)
    if spec.ndim != 3 or spec.shape[-1] != n_fft // 2 + 1:
        raise ValueError(f"istft takes (batch, frames, {n_fft // 2 + 1}), got shape {spec.shape}")
    frames = np.fft.irfft(spec, n=n_fft, axis=-1).astype(np.float32, copy=False) * _hann(n_fft)
    y = _overlap_add(frames, hop_length)
    env = _envelope(n_fft, hop_length, spec.shape[1])
    pad = n_fft // 2
    y, env = y[:, pad:pad + length], env[pad:pad + length]
    y = np.where(env > 1e-11, y / np.maximum(env, 1e-11), 0.0).astype(np.float32)
    if y.shape[1] < length:
        y = np.pad(y, ((0, 0), (0, length - y.shape[1])))
    return y


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


def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """Slaney-normalised mel filterbank, (bands, bins) float32."""
    return _mel_np(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)


class BandedMatrix:
    """``x @ W.T`` for a matrix ``W`` (out, in) whose rows are each nonzero on one contiguous run of
    columns -- a mel filterbank -- computed in a fixed order, so the result does not depend on how
    many threads the BLAS library happens to use (a matrix product's rounding does), and in a few
    passes over ``x`` rather than ``out`` dot products per row.

    The rows are dealt into layers of runs that do not overlap (two for a filterbank of triangles:
    even and odd bands); each layer is one weighted ``np.add.reduceat`` over the columns.
    """

    def __init__(self, w: np.ndarray):
        w = np.asarray(w, np.float32)
        self.shape = w.shape
        self.layers = []  # (per-column weights (in,), segment starts, which segment each row takes, rows)
        ends: list[int] = []
        members: list[list[tuple[int, int, int]]] = []
        for r, row in enumerate(w):
            nz = np.flatnonzero(row)
            if len(nz) == 0:
                continue
            lo, hi = int(nz[0]), int(nz[-1]) + 1
            for i, end in enumerate(ends):
                if end <= lo:
                    ends[i] = hi
                    members[i].append((r, lo, hi))
                    break
            else:
                ends.append(hi)
                members.append([(r, lo, hi)])
        for runs in members:
            weights = np.zeros(w.shape[1], np.float32)
            cuts = sorted({0, *(c for _, lo, hi in runs for c in (lo, hi) if c < w.shape[1])})
            for r, lo, hi in runs:
                weights[lo:hi] = w[r, lo:hi]
            rows = np.array([r for r, _, _ in runs])
            take = np.array([cuts.index(lo) for _, lo, _ in runs])
            self.layers.append((weights, np.array(cuts), take, rows))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(..., in) -> (..., out) float32."""
        x = np.asarray(x, np.float32)
        out = np.zeros((*x.shape[:-1], self.shape[0]), np.float32)
        for weights, cuts, take, rows in self.layers:
            out[..., rows] = np.add.reduceat(x * weights, cuts, axis=-1)[..., take]
        return out


class SparseRows:
    """``x @ W.T`` for a matrix ``W`` (out, in) with few nonzeros in most rows -- the band-to-bin map,
    where each bin averages the two triangles over it -- in a fixed order (no BLAS, so no
    dependence on its thread count). Rows of up to ``short`` nonzeros are gathered column by column;
    the longer ones (bins above the model's band, which all take the same mean of its top octave) are
    computed once per distinct row and copied."""

    def __init__(self, w: np.ndarray, short: int = 4):
        w = np.asarray(w, np.float32)
        self.shape = w.shape
        nnz = (w != 0).sum(1)
        self.short_rows = np.flatnonzero(nnz <= short)
        j = max(1, int(nnz[self.short_rows].max(initial=0)))
        self.idx = np.zeros((len(self.short_rows), j), np.int64)
        self.w = np.zeros((len(self.short_rows), j), np.float32)
        for n, r in enumerate(self.short_rows):
            cols = np.flatnonzero(w[r])
            self.idx[n, :len(cols)], self.w[n, :len(cols)] = cols, w[r, cols]
        self.long: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (columns, weights, rows having them)
        long_rows = np.flatnonzero(nnz > short)
        if len(long_rows):
            uniq, inverse = np.unique(w[long_rows], axis=0, return_inverse=True)
            for u, row in enumerate(uniq):
                cols = np.flatnonzero(row)
                self.long.append((cols, row[cols], long_rows[inverse.reshape(-1) == u]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(..., in) -> (..., out) float32."""
        x = np.asarray(x, np.float32)
        out = np.empty((*x.shape[:-1], self.shape[0]), np.float32)
        acc = x[..., self.idx[:, 0]] * self.w[:, 0]
        for j in range(1, self.idx.shape[1]):
            acc += x[..., self.idx[:, j]] * self.w[:, j]
        out[..., self.short_rows] = acc
        for cols, weights, rows in self.long:
            v = x[..., cols[0]] * weights[0]
            for c, wt in zip(cols[1:], weights[1:]):
                v += x[..., c] * wt
            out[..., rows] = v[..., None]
        return out


def magnitude(spec: np.ndarray) -> np.ndarray:
    """``|spec|`` of a complex64 spectrogram as float32 (``hypot`` of the parts: no complex temporaries)."""
    return np.hypot(spec.real, spec.imag) if np.iscomplexobj(spec) else np.asarray(spec, np.float32)


def mel_magnitude(spec: np.ndarray, fb: "np.ndarray | BandedMatrix") -> np.ndarray:
    """Mel magnitude spectrogram. (batch, frames, bins) complex or real -> (batch, frames, bands) float32.
    ``fb``: the filterbank (bands, bins), or the same as a :class:`BandedMatrix` (the front end's:
    the same sums in a fixed order)."""
    if isinstance(fb, BandedMatrix):
        return fb(magnitude(spec))
    return (magnitude(spec) @ fb.T).astype(np.float32, copy=False)


def log_mel(mel_mag: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Log compression of a mel magnitude spectrogram (natural log, floored)."""
    return np.log(np.maximum(mel_mag, np.float32(cfg.log_floor))).astype(np.float32, copy=False)




def mel_to_bin_weights(cfg: FeatureConfig, sample_rate: int, n_fft: int, high_band: str = "top") -> np.ndarray:
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
    return w.astype(np.float32)


def mel_inverse(cfg: FeatureConfig) -> np.ndarray:
    """Linear map from a mel magnitude spectrogram back to STFT magnitudes, (bands, bins).

    The normalised filterbank transpose: each band is turned into its mean magnitude (divide by
    the filter's area) and spread back over the bins it covers with :func:`mel_to_bin_weights`.
    A flat spectrum maps back to itself.
    """
    fb = mel_filterbank(cfg)
    area = np.maximum(fb.sum(1, keepdims=True), 1e-12)
    to_bins = mel_to_bin_weights(cfg, cfg.sample_rate, cfg.n_fft, "top")  # (bins, bands)
    return np.ascontiguousarray((to_bins / area.T).T, np.float32)


SILENCE_DB = 40.0  # default: bins more than this below an example's loudest are "silent" (loss and clustering)


def loud_bins(mix_mel: np.ndarray, threshold_db: float = SILENCE_DB) -> np.ndarray:
    """True for bins within ``threshold_db`` of each example's loudest bin. (batch, frames, bands) -> bool."""
    mix_mel = np.asarray(mix_mel)
    peak = np.maximum(mix_mel.reshape(len(mix_mel), -1).max(1), 1e-12)
    floor = (peak * 10.0 ** (-threshold_db / 20.0)).astype(mix_mel.dtype)
    return mix_mel >= floor.reshape(-1, *([1] * (mix_mel.ndim - 1)))
