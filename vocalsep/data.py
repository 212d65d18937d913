"""Datasets and on-the-fly remixing for training.

MIR-1K clips are stereo wav files with the accompaniment on the left channel and the singing voice
on the right. Training mixtures are made on the fly: a voice and an accompaniment (usually from
different clips), random offsets and gains, summed at about 0 dB. Everything here is waveforms at
the model's sample rate; features are computed from the batch in :mod:`vocalsep.train`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import AudioError, load_audio, resample
from .choices import ACCOMPANIMENT, VOCALS
from .errors import VocalsepError

log = logging.getLogger(__name__)


class DatasetError(VocalsepError, ValueError):
    """A dataset root, manifest or clip is missing or malformed."""


@dataclass
class Clip:
    name: str
    voice: np.ndarray  # (samples,)
    accompaniment: np.ndarray  # (samples,)


def read_manifest(path: str | Path) -> list[str]:
    """Relative clip paths, one per line; blank lines and ``#`` comments are ignored."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"manifest {p} not found")
    lines = [ln.split("#", 1)[0].strip() for ln in p.read_text().splitlines()]
    return [ln for ln in lines if ln]


def load_mir1k(root: str | Path, manifest: str | Path | None = None, sample_rate: int = 16000,
               skip_bad: bool = True) -> list[Clip]:
    """Load MIR-1K style clips (LEFT = accompaniment, RIGHT = voice) resampled to ``sample_rate``.

    ``manifest`` lists paths relative to ``root``; without one every ``*.wav`` under ``root`` is used.
    A clip that cannot be read, is not stereo or is silent is reported and skipped (or raises with
    ``skip_bad=False``), so one bad file never ends a long run.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"MIR-1K root {root} is not a directory; expected <root>/train/*.wav "
                           "(stereo, left = accompaniment, right = voice)")
    names = read_manifest(manifest) if manifest else sorted(
        str(p.relative_to(root)) for p in root.rglob("*.wav"))
    if not names:
        raise DatasetError(f"no clips found under {root}")
    clips, bad = [], []
    for name in names:
        try:
            audio, sr = load_audio(root / name)
            if audio.shape[0] != 2:
                raise DatasetError(f"expected 2 channels (accompaniment, voice), got {audio.shape[0]}")
            audio = resample(audio, sr, sample_rate)
            if not np.any(audio[1]) or not np.any(audio[0]):
                raise DatasetError("a channel is digital silence")
            clips.append(Clip(Path(name).stem, audio[1].copy(), audio[0].copy()))
        except (AudioError, DatasetError) as exc:
            if not skip_bad:
                raise DatasetError(f"{root / name}: {exc}") from exc
            bad.append(f"{name}: {exc}")
    for b in bad:
        log.warning("skipping clip %s", b)
    if not clips:
        raise DatasetError(f"none of the {len(names)} clips under {root} could be used")
    return clips


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-8


def _crop(x: np.ndarray, length: int, rng: np.random.Generator, start: int | None = None) -> np.ndarray:
    if len(x) >= length:
        s = rng.integers(0, len(x) - length + 1) if start is None else min(start, len(x) - length)
        return x[s:s + length]
    out = np.zeros(length, np.float32)
    s = rng.integers(0, length - len(x) + 1) if start is None else 0
    out[s:s + len(x)] = x
    return out


@dataclass
class RemixConfig:
    """How training mixtures are drawn."""

    original_pair_prob: float = 0.25  # keep a clip's own voice/accompaniment pairing and alignment
    source_gain_db: float = 3.0  # each source's gain drawn from +-this around 0 dB (per-clip RMS)
    level_db: tuple[float, float] = (-25.0, 0.0)  # mixture peak level range, dBFS
    silent_voice_prob: float = 0.05  # voice-free examples
    eq_prob: float = 0.0  # chance that each source gets a random EQ (tilt and one peak, +-eq_db)
    eq_db: float = 6.0
    lowpass_prob: float = 0.0  # chance that an example is band-limited (both sources, cutoff 25-90% of Nyquist)
    speed_prob: float = 0.0  # chance that each remixed source is resampled (pitch, formants and tempo together)
    speed_semitones: float = 3.0  # its pitch change drawn from +-this many semitones
    layer_prob: float = 0.0  # chance that another clip's accompaniment is added to an example's (denser music)
    reverb_prob: float = 0.0  # chance that the voice gets a synthetic reverb, kept in the voice target (as in produced stems)
    reverb_seconds: tuple[float, float] = (0.3, 2.0)  # its decay time (RT60) range
    pitch_prob: float = 0.0  # chance that a remixed voice is pitch-shifted with its tempo kept (phase vocoder + resampling)
    pitch_semitones: float = 3.0  # its shift drawn from +-this many semitones
    formant_prob: float = 0.0  # chance that a remixed voice's spectral envelope is moved with its pitch kept (another vocal tract)
    formant_ratio: float = 1.2  # its frequency factor drawn log-uniformly from [1/this, this]
    pool_prob: float = 0.0  # chance that an example's accompaniment comes from the instrumental pool (if given)
    # with a voice manifest (``voices``): how often each source gives a remixed example's voice, relative
    # to the others; ``mir1k`` is the training clips' own voices. Unlisted sources weigh 1, speech 0.
    voice_weights: dict = field(default_factory=dict)


class RemixSampler:
    """Draws batches of (voice, accompaniment) waveform pairs from clips, reproducibly.

    ``state()``/``set_state()`` capture the random stream so a resumed run draws the same batches.
    ``sample_rate`` is the clips' (and pool's) rate; the augmentations that work in seconds (reverb
    decay and pre-delay, the phase vocoder's window) follow it.
    """

    def __init__(self, clips: list[Clip], length: int, cfg: RemixConfig | None = None, seed: int = 0,
                 pool: list[np.ndarray] | None = None, sample_rate: int = 16000,
                 voices: dict[str, list[np.ndarray]] | None = None):
        if not clips:
            raise DatasetError("no clips to sample from")
        self.clips, self.length, self.cfg, self.sample_rate = clips, length, cfg or RemixConfig(), sample_rate
        self.pool = pool or []
        self.pool_p = _by_duration(self.pool)  # tracks drawn by duration
        self.voices = {k: v for k, v in (voices or {}).items() if v}
        self.voice_p = {k: _by_duration(v) for k, v in self.voices.items()}
        self.voice_sources, self.source_p = voice_source_weights(self.cfg.voice_weights, self.voices)
        self.rng = np.random.default_rng(seed)
        self.voice_rms = [_rms(c.voice) for c in clips]
        self.acc_rms = [_rms(c.accompaniment) for c in clips]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (voice, accompaniment), each (batch, length) float32."""
        rng, cfg, n = self.rng, self.cfg, len(self.clips)
        voices = np.empty((batch_size, self.length), np.float32)
        accs = np.empty_like(voices)
        for b in range(batch_size):
            i = int(rng.integers(n))
            v_rms = self.voice_rms[i]
            if rng.random() < cfg.original_pair_prob:
                j = i
                clip_len = len(self.clips[i].voice)
                start = int(rng.integers(0, max(clip_len - self.length, 0) + 1))
                v = _crop(self.clips[i].voice, self.length, rng, start)
                a = _crop(self.clips[j].accompaniment, self.length, rng, start)
            else:
                j = int(rng.integers(n))
                source = MIR1K_SOURCE if not self.voices else self.voice_sources[
                    int(rng.choice(len(self.voice_sources), p=self.source_p))]  # no draws without voices
                if source == MIR1K_SOURCE:
                    v = self._crop_speed(self.clips[i].voice, rng)
                else:
                    v = self._track_crop(self.voices[source], self.voice_p[source], rng)
                    v_rms = _rms(v)  # a long track's level varies: the crop's own level
                a = self._crop_speed(self.clips[j].accompaniment, rng)
                if cfg.pitch_prob and rng.random() < cfg.pitch_prob:  # no draws when off
                    v = pitch_shift(v, rng.uniform(-cfg.pitch_semitones, cfg.pitch_semitones), self.sample_rate)
                if cfg.formant_prob and rng.random() < cfg.formant_prob:
                    r = np.log(cfg.formant_ratio)
                    v = formant_shift(v, float(np.exp(rng.uniform(-r, r))), self.sample_rate)
            gv, ga = 10 ** (rng.uniform(-cfg.source_gain_db, cfg.source_gain_db, 2) / 20)
            v = v * (gv / v_rms)
            if self.pool and cfg.pool_prob and rng.random() < cfg.pool_prob:
                a = self._pool_crop(rng)
                a = a * (ga / _rms(a))  # a long track's level varies: the crop's own level, not the track's
            else:
                a = a * (ga / self.acc_rms[j])
            if cfg.layer_prob and n > 1 and rng.random() < cfg.layer_prob:
                k = (j + 1 + int(rng.integers(n - 1))) % n  # any clip but j
                gk = 10 ** (rng.uniform(-cfg.source_gain_db, cfg.source_gain_db) / 20)
                a = a + self._crop_speed(self.clips[k].accompaniment, rng) * (gk / self.acc_rms[k])
            if cfg.eq_prob:  # no draws at all when off, so earlier configs keep their random streams
                v = _random_eq(v, rng, cfg.eq_db) if rng.random() < cfg.eq_prob else v
                a = _random_eq(a, rng, cfg.eq_db) if rng.random() < cfg.eq_prob else a
            if cfg.reverb_prob and rng.random() < cfg.reverb_prob:
                v = _reverb(v, rng, cfg.reverb_seconds, self.sample_rate)
            if cfg.lowpass_prob and rng.random() < cfg.lowpass_prob:
                cutoff = rng.uniform(0.25, 0.9)
                v, a = _lowpass(v, cutoff), _lowpass(a, cutoff)
            if rng.random() < cfg.silent_voice_prob:
                v = np.zeros_like(v)
            peak = max(float(np.abs(v + a).max()), 1e-8)
            level = 10 ** (rng.uniform(*cfg.level_db) / 20) / peak
            voices[b], accs[b] = v * level, a * level
        return voices, accs

    def _pool_crop(self, rng: np.random.Generator) -> np.ndarray:
        return self._track_crop(self.pool, self.pool_p, rng)

    def _track_crop(self, tracks: list[np.ndarray], p: np.ndarray, rng: np.random.Generator,
                    tries: int = 8) -> np.ndarray:
        """A crop of one of ``tracks`` (drawn with probabilities ``p``) that is not near-silent (a
        track's quiet intro or ending, a singer's pause); after ``tries`` silent crops the last one is used."""
        for _ in range(tries):
            x = self._crop_speed(tracks[int(rng.choice(len(tracks), p=p))], rng)
            if _rms(x) > 1e-3:
                break
        return x

    def _crop_speed(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random crop, resampled with probability ``speed_prob`` to sound up to ``speed_semitones``
        higher or lower (and as much faster or slower); no draws for it when ``speed_prob`` is 0."""
        cfg = self.cfg
        if not cfg.speed_prob or rng.random() >= cfg.speed_prob:
            return _crop(x, self.length, rng)
        ratio = 2.0 ** (rng.uniform(-cfg.speed_semitones, cfg.speed_semitones) / 12)
        return speed_change(_crop(x, int(round(self.length * ratio)), rng), self.length)


MIR1K_SOURCE = "mir1k"  # in voice_weights: the training clips' own voices
SPEECH_SOURCE = "speech"  # the voice manifest's spoken clips, whatever their source (weight 0 unless set)


def _by_duration(tracks: list[np.ndarray]) -> np.ndarray | None:
    lengths = np.array([len(t) for t in tracks], np.float64)
    return lengths / lengths.sum() if tracks else None


def voice_source_weights(weights: dict, voices: dict) -> tuple[list[str], np.ndarray]:
    """The voice sources (the training clips first) and the chance that each gives a remixed voice."""
    sources = [MIR1K_SOURCE] + sorted(voices)
    unknown = set(weights) - set(sources) - {SPEECH_SOURCE}
    if unknown and voices:  # a source not prepared (its repository not cloned) is left out, and said so
        log.warning("remix.voice_weights names %s, which the voice manifest does not have (not prepared?); "
                    "left out. Its sources: %s", sorted(unknown), ", ".join(sources))
    for k, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
            raise DatasetError(f"remix.voice_weights.{k} must be a number >= 0, got {w!r}")
    w = np.array([float(weights.get(s, 0.0 if s == SPEECH_SOURCE else 1.0)) for s in sources])
    if w.sum() <= 0:
        raise DatasetError("remix.voice_weights gives every voice source weight 0")
    return sources, w / w.sum()


def speed_change(x: np.ndarray, length: int) -> np.ndarray:
    """Resample ``x`` to exactly ``length`` samples: played at the original rate it is ``len(x) /
    length`` times faster and higher (band-limited with soxr, so a raised pitch does not alias)."""
    import soxr

    if len(x) == length:
        return np.asarray(x, np.float32)
    y = soxr.resample(np.asarray(x, np.float32), len(x), length, quality="MQ")
    out = np.zeros(length, np.float32)
    out[:min(length, len(y))] = y[:length]
    return out


def _short_time(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int, int]:
    """The STFT the waveform augmentations work on: a window of about 32 ms at ``sample_rate`` (512
    points at 16 kHz), a quarter-window hop. Returns (spec (frames, bins) complex, n_fft, hop)."""
    from .features import stft

    n_fft = 2 ** int(round(np.log2(0.032 * sample_rate)))
    hop = n_fft // 4
    return stft(np.asarray(x, np.float32)[None], n_fft, hop)[0], n_fft, hop


def _inverse_short_time(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """Inverse of :func:`_short_time`, ``length`` samples."""
    from .features import istft

    return istft(spec.astype(np.complex64)[None], n_fft, hop, length)[0]


def time_stretch(x: np.ndarray, length: int, sample_rate: int = 16000) -> np.ndarray:
    """``x`` played faster or slower to last ``length`` samples, pitch unchanged: a phase vocoder
    (magnitudes interpolated between analysis frames, phases advanced by each bin's measured frequency)
    with a window of about 32 ms at ``sample_rate`` (512 points at 16 kHz) and a quarter-window hop."""
    spec, n_fft, hop = _short_time(x, sample_rate)
    n_out = max(int(np.ceil(length / hop)) + 1, 2)
    steps = np.linspace(0, spec.shape[0] - 1, n_out)
    lo = np.minimum(steps.astype(int), spec.shape[0] - 2) if spec.shape[0] > 1 else np.zeros(n_out, int)
    hi = np.minimum(lo + 1, spec.shape[0] - 1)
    frac = (steps - lo)[:, None]
    mag = (1 - frac) * np.abs(spec[lo]) + frac * np.abs(spec[hi])
    expected = 2 * np.pi * hop * np.arange(spec.shape[1]) / n_fft  # phase advance of each bin's centre per hop
    dphi = np.angle(spec[hi]) - np.angle(spec[lo]) - expected
    dphi -= 2 * np.pi * np.round(dphi / (2 * np.pi))
    phase = np.angle(spec[0]) + np.concatenate([np.zeros((1, spec.shape[1])), np.cumsum(expected + dphi, 0)[:-1]])
    return _inverse_short_time(mag * np.exp(1j * phase), n_fft, hop, length)


def pitch_shift(x: np.ndarray, semitones: float, sample_rate: int = 16000) -> np.ndarray:
    """``x`` (at ``sample_rate``) moved by ``semitones`` with its duration kept: stretched in time by the
    pitch ratio, then resampled back to its own length (formants move with the pitch, as in
    :func:`speed_change`)."""
    ratio = 2.0 ** (semitones / 12)
    return speed_change(time_stretch(x, int(round(len(x) * ratio)), sample_rate), len(x))


def formant_shift(x: np.ndarray, factor: float, sample_rate: int = 16000) -> np.ndarray:
    """``x`` with its spectral envelope (formants) moved ``factor`` times up in frequency and its pitch
    kept, as from a shorter (``factor`` > 1) or longer vocal tract. Per STFT frame (about 32 ms window,
    quarter hop) the log magnitude is split into a smooth envelope (cepstrum liftered below 1.5 ms, so
    below the period of any sung pitch under 660 Hz) and the harmonic fine structure; the envelope is
    resampled on the frequency axis and the frame rebuilt with its own phase. The RMS level is kept."""
    spec, n_fft, hop = _short_time(x, sample_rate)
    log_mag = np.log(np.abs(spec) + 1e-7)
    cep = np.fft.irfft(log_mag, n_fft, axis=1)
    cut = max(int(0.0015 * sample_rate), 2)
    cep[:, cut:n_fft - cut + 1] = 0.0
    env = np.fft.rfft(cep, n_fft, axis=1).real
    pos = np.minimum(np.arange(spec.shape[1]) / factor, spec.shape[1] - 1)  # what was at f is now at f*factor
    lo = np.minimum(pos.astype(int), spec.shape[1] - 2)
    frac = pos - lo
    moved = env[:, lo] * (1 - frac) + env[:, lo + 1] * frac  # linear interpolation, all frames at once
    y = _inverse_short_time(np.exp(log_mag - env + moved) * np.exp(1j * np.angle(spec)), n_fft, hop, len(x))
    return (y * (_rms(x) / _rms(y))).astype(np.float32)


def _random_eq(x: np.ndarray, rng: np.random.Generator, max_db: float) -> np.ndarray:
    """A random spectral tilt plus one random peak/notch (each within +-max_db), applied by FFT."""
    spec = np.fft.rfft(x)
    f = np.linspace(0.0, 1.0, len(spec))  # fraction of Nyquist
    logf = np.log2(np.maximum(f, 1e-3))
    tilt = rng.uniform(-max_db, max_db) * (logf - logf.mean()) / max(np.ptp(logf), 1e-9)
    centre, width = rng.uniform(np.log2(0.01), 0.0), rng.uniform(0.3, 2.0)  # octaves
    peak = rng.uniform(-max_db, max_db) * np.exp(-0.5 * ((logf - centre) / width) ** 2)
    return np.fft.irfft(spec * 10 ** ((tilt + peak) / 20), len(x)).astype(np.float32)


def _reverb(x: np.ndarray, rng: np.random.Generator, seconds: tuple[float, float],
            sample_rate: int = 16000) -> np.ndarray:
    """``x`` plus a random reverb: exponentially decaying noise (RT60 drawn from ``seconds``) darkened
    by a random low-pass, 0-40 ms pre-delay, wet level -15 to -3 dB against the dry signal by energy."""
    rt60 = rng.uniform(*seconds)
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    ir = rng.standard_normal(n) * 10 ** (-3 * t / rt60)  # -60 dB at rt60
    ir = _lowpass(ir.astype(np.float32), rng.uniform(0.3, 1.0))
    ir = np.concatenate([np.zeros(int(rng.uniform(0.0, 0.04) * sample_rate)), ir])
    size = len(x) + len(ir)  # linear (not circular) convolution by FFT
    wet = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]
    gain = 10 ** (rng.uniform(-15.0, -3.0) / 20) * _rms(x) / _rms(wet)  # _rms is never 0
    return (x + gain * wet).astype(np.float32)


def _lowpass(x: np.ndarray, cutoff: float) -> np.ndarray:
    """Band-limit to ``cutoff`` (fraction of Nyquist) with a half-octave raised-cosine roll-off."""
    spec = np.fft.rfft(x)
    logf = np.log2(np.maximum(np.linspace(0.0, 1.0, len(spec)), 1e-6) / cutoff)
    gain = np.where(logf <= 0, 1.0, np.where(logf >= 0.5, 0.0, 0.5 * (1 + np.cos(2 * np.pi * logf))))
    return np.fft.irfft(spec * gain, len(x)).astype(np.float32)


def load_pool(manifest: str | Path, root: str | Path, sample_rate: int = 16000) -> list[np.ndarray]:
    """Accompaniment-only tracks (an instrumental pool) listed in a tab-separated manifest whose
    ``path`` column is relative to ``root`` (as ``recipes/mixed/prepare_pool.py`` writes them), mono
    at ``sample_rate``. A missing or unreadable track is an error: the manifest says what to run."""
    import csv

    manifest, root = Path(manifest), Path(root)
    if not manifest.is_file():
        raise DatasetError(f"pool manifest {manifest} not found")
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or "path" not in rows[0]:
        raise DatasetError(f"pool manifest {manifest} has no rows with a 'path' column")
    tracks = []
    for r in rows:
        try:
            audio, sr = load_audio(root / r["path"])
        except AudioError as exc:
            raise DatasetError(f"pool track {root / r['path']}: {exc}; run recipes/mixed/prepare_pool.py "
                               "to fetch and convert the pool") from None
        tracks.append(_mono_at(audio, sr, sample_rate))
    return tracks


def load_voices(manifest: str | Path, root: str | Path, sample_rate: int = 16000,
                split: str = "train") -> dict[str, list[np.ndarray]]:
    """Voice-only tracks listed in a tab-separated manifest (as ``recipes/mixed/prepare_voices.py``
    writes it: ``path`` relative to ``root``, ``source``, ``kind``, ``split``), mono at ``sample_rate``,
    grouped by source; only the rows of ``split`` (held-out singers are never loaded for training).
    Spoken clips (``kind`` speech) form one source, ``speech``."""
    import csv

    manifest, root = Path(manifest), Path(root)
    if not manifest.is_file():
        raise DatasetError(f"voice manifest {manifest} not found")
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    need = {"path", "source", "kind", "split"}
    if not rows or not need <= set(rows[0]):
        raise DatasetError(f"voice manifest {manifest} has no rows with columns {', '.join(sorted(need))}")
    out: dict[str, list[np.ndarray]] = {}
    for r in rows:
        if r["split"] != split:
            continue
        try:
            audio, sr = load_audio(root / r["path"])
        except AudioError as exc:
            raise DatasetError(f"voice track {root / r['path']}: {exc}; run recipes/mixed/prepare_voices.py "
                               "to select and convert the voices") from None
        key = SPEECH_SOURCE if r["kind"] == "speech" else r["source"]
        if key == MIR1K_SOURCE:
            raise DatasetError(f"voice manifest {manifest}: source name {MIR1K_SOURCE!r} is reserved for the training clips")
        out.setdefault(key, []).append(_mono_at(audio, sr, sample_rate))
    if not out:
        raise DatasetError(f"voice manifest {manifest} has no {split!r} rows")
    return out


def fixed_chunks(clips: list[Clip], length: int) -> tuple[np.ndarray, np.ndarray]:
    """The clips' own mixtures cut into consecutive chunks (last one zero-padded), for validation."""
    vs, accs = [], []
    for c in clips:
        for s in range(0, len(c.voice), length):
            v = np.zeros(length, np.float32)
            a = np.zeros(length, np.float32)
            seg = slice(s, min(s + length, len(c.voice)))
            v[:seg.stop - s], a[:seg.stop - s] = c.voice[seg], c.accompaniment[seg]
            vs.append(v)
            accs.append(a)
    return np.stack(vs), np.stack(accs)


def _mono_at(audio: np.ndarray, sr: int, sample_rate: int) -> np.ndarray:
    """(samples, channels) or (channels, samples) -> mono float32 at ``sample_rate``."""
    x = np.asarray(audio, np.float32)
    if x.ndim == 2:
        x = x.mean(1) if x.shape[0] > x.shape[1] else x.mean(0)
    return resample(x, sr, sample_rate)


def load_musdb(root: str | Path, split: str, sample_rate: int = 16000, is_wav: bool = False) -> list[Clip]:
    """MUSDB18 tracks as (vocals, accompaniment = drums + bass + other) clips, mono at ``sample_rate``.

    ``split``: ``"train"`` or ``"valid"`` (the official split of the train subset), ``"test"``, or
    ``"train-all"`` (the whole train subset).
    """
    try:
        import musdb
    except Exception as exc:  # stempeg refuses to import without ffmpeg
        raise DatasetError(f"reading MUSDB18 needs musdb and ffmpeg ({exc}); `pip install -e .[eval]`") from None
    subset = "test" if split == "test" else "train"
    if split not in ("train", "valid", "test", "train-all"):
        raise DatasetError(f"unknown MUSDB18 split {split!r}; use train, valid, test or train-all")
    root = Path(root)
    if not (root / subset).is_dir():
        raise DatasetError(f"MUSDB18 root {root} has no {subset}/ folder; expected {root}/{subset}/<track>.stem.mp4 "
                           f"or, in the wav layout, {root}/{subset}/<track>/{{vocals,drums,bass,other}}.wav")
    mus = musdb.DB(root=str(root), subsets=subset, split=split if split in ("train", "valid") else None, is_wav=is_wav)
    clips = [Clip(t.name, _mono_at(t.targets[VOCALS].audio, t.rate, sample_rate),
                  _mono_at(t.targets[ACCOMPANIMENT].audio, t.rate, sample_rate)) for t in mus.tracks]
    if not clips:
        raise DatasetError(f"no MUSDB18 tracks in {root}/{subset} for split {split!r}")
    return clips


DSD100_SETS = ("Dev", "Test", "Dev-train", "Dev-valid")
DSD100_SOURCES = ("vocals", "bass", "drums", "other")  # the source files of each track folder; all but vocals accompany


def dsd100_tracks(root: str | Path, which: str) -> list[Path]:
    """Track folders of a DSD100 set: ``Dev``, ``Test``, or ``Dev-train``/``Dev-valid`` (every tenth
    Dev track, in name order, held out for validation -- DSD100 has no official validation split)."""
    subset = which.split("-")[0]
    folder = Path(root) / "Sources" / subset
    if which not in DSD100_SETS or not folder.is_dir():
        raise DatasetError(f"expected DSD100 sources in {Path(root)}/Sources/{{Dev,Test}}/<track>/"
                           f"{{vocals,bass,drums,other}}.wav and a set among {', '.join(DSD100_SETS)}; got {which!r}")
    tracks = sorted(p for p in folder.iterdir() if p.is_dir())
    if which == "Dev-valid":
        return tracks[::10]
    if which == "Dev-train":
        return [t for i, t in enumerate(tracks) if i % 10]
    return tracks


def load_dsd100(root: str | Path, subset: str, sample_rate: int = 16000) -> list[Clip]:
    """DSD100 tracks (``Sources/{Dev,Test}/<track>/{vocals,bass,drums,other}.wav``) as mono clips."""
    clips = []
    for track in dsd100_tracks(root, subset):
        parts = {}
        for stem in DSD100_SOURCES:
            try:
                audio, sr = load_audio(track / f"{stem}.wav")
            except AudioError as exc:
                raise DatasetError(f"DSD100 track {track.name}: {exc}") from None
            parts[stem] = _mono_at(audio, sr, sample_rate)
        n = min(len(v) for v in parts.values())
        clips.append(Clip(track.name, parts["vocals"][:n], sum(parts[s][:n] for s in DSD100_SOURCES[1:])))
    if not clips:
        raise DatasetError(f"no DSD100 tracks in {root} for {subset!r}")
    return clips


def load_clips(dataset: str, root: str | Path, which: str, sample_rate: int = 16000) -> list[Clip]:
    """Clips of ``dataset`` (``mir1k``: ``which`` is a manifest file, empty for all clips; ``musdb``
    and ``musdb-wav``: a split; ``dsd100``: ``Dev`` or ``Test``)."""
    if dataset == "mir1k":
        return load_mir1k(root, which or None, sample_rate)
    if dataset in ("musdb", "musdb-wav"):
        return load_musdb(root, which, sample_rate, is_wav=dataset == "musdb-wav")
    if dataset == "dsd100":
        return load_dsd100(root, which, sample_rate)
    raise DatasetError(f"unknown dataset {dataset!r}; choose mir1k, musdb, musdb-wav or dsd100")
