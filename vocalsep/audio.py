"""Reading, writing and resampling audio. Arrays are float32 ``(channels, samples)``."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ._atomic import atomic_path

FFMPEG_SUFFIXES = {".m4a", ".mp4", ".aac", ".m4v", ".mov", ".webm", ".opus", ".wma"}
WRITE_FORMATS = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3"}


class AudioError(Exception):
    """An audio file cannot be read or written. The message names the file and what to do."""


def _ffmpeg_missing(path: Path) -> AudioError:
    return AudioError(f"{path}: reading {path.suffix or 'this'} files needs ffmpeg, which is not "
                      "installed (e.g. apt-get install ffmpeg), or convert the file to wav/flac first")


def _load_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise _ffmpeg_missing(path)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=channels,sample_rate", "-of", "json", "--", str(path)],
        capture_output=True, text=True)
    try:
        stream = json.loads(probe.stdout)["streams"][0]
        channels, sr = int(stream["channels"]), int(stream["sample_rate"])
    except (ValueError, KeyError, IndexError):
        raise AudioError(f"{path}: not a readable audio file (ffprobe found no audio stream)") from None
    dec = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "f32le",
         "-acodec", "pcm_f32le", "-"], capture_output=True)
    if dec.returncode != 0:
        msg = dec.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"{path}: ffmpeg could not decode it ({msg[-1] if msg else 'unknown error'})")
    data = np.frombuffer(dec.stdout, np.float32)
    return data[: len(data) // channels * channels].reshape(-1, channels).T.copy(), sr


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any audio file into float32 (channels, samples) and its sample rate.

    wav, flac, ogg and mp3 are read with soundfile; m4a/mp4/aac (and anything soundfile cannot
    read) through ffmpeg. Raises :class:`AudioError` naming the file and the problem.
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty")
    if path.suffix.lower() in FFMPEG_SUFFIXES:
        audio, sr = _load_ffmpeg(path)
    else:
        try:
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)
            audio = data.T.copy()
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            if shutil.which("ffmpeg") is None:
                raise AudioError(f"{path}: not a readable audio file ({exc})") from None
            audio, sr = _load_ffmpeg(path)
    if audio.shape[1] == 0:
        raise AudioError(f"{path}: contains no audio samples")
    return audio, sr


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality); float32 out."""
    if orig_sr == target_sr:
        return np.asarray(audio, np.float32)
    import soxr

    x = np.asarray(audio, np.float32)
    if x.ndim == 1:
        return soxr.resample(x, orig_sr, target_sr, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(soxr.resample(x.T, orig_sr, target_sr, quality="HQ").T, np.float32)


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int, *, overwrite: bool = False,
               subtype: str | None = None) -> Path:
    """Write (channels, samples) audio atomically: a temp file in the same folder, then rename.

    The format follows the suffix (.wav, .flac, .mp3). An existing file is refused unless
    ``overwrite``. On any failure no partial file is left behind.
    """
    import soundfile as sf

    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower().lstrip("."))
    if fmt is None:
        raise AudioError(f"{path}: cannot write {path.suffix!r} files; use one of "
                         f"{', '.join('.' + k for k in WRITE_FORMATS)}")
    if path.exists() and not overwrite:
        raise AudioError(f"{path}: already exists; pass --force (overwrite=True) to replace it")
    if subtype is None:
        subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "MP3": "MPEG_LAYER_III"}[fmt]
    data = np.asarray(audio, np.float32)
    data = data[None] if data.ndim == 1 else data
    try:
        with atomic_path(path) as tmp:
            sf.write(tmp, data.T, sample_rate, format=fmt, subtype=subtype)
    except (OSError, sf.LibsndfileError, RuntimeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AudioError(f"{path}: could not write it ({reason})") from None
    return path

