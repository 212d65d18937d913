"""Reading, writing and resampling audio. Arrays are float32 ``(channels, samples)``."""
from __future__ import annotations

import json
import shutil
import subprocess
from contextlib import contextmanager
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


class AudioReader:
    """Block access to a file's samples: ``read(start, stop)`` -> (channels, stop - start) float32.

    Files soundfile can open are read lazily (memory stays at one block whatever their length);
    others are decoded through ffmpeg into memory. Reads past the end are zero-padded.
    """

    def __init__(self, path: Path, sample_rate: int, channels: int, frames: int, sf_file=None, data=None):
        self.path, self.sample_rate, self.channels, self.frames = path, sample_rate, channels, frames
        self._sf, self._data = sf_file, data

    def read(self, start: int, stop: int) -> np.ndarray:
        n = stop - start
        if self._data is not None:
            block = self._data[:, start:stop]
        else:
            import soundfile as sf

            try:
                self._sf.seek(min(start, self.frames))
                block = self._sf.read(max(0, min(stop, self.frames) - start), dtype="float32", always_2d=True).T
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioError(f"{self.path}: read failed at sample {start} ({exc}); the file may be damaged") from None
        if block.shape[1] < n:
            block = np.pad(block, ((0, 0), (0, n - block.shape[1])))
        return np.ascontiguousarray(block, np.float32)

    def close(self) -> None:
        if self._sf is not None:
            self._sf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_audio(path: str | Path) -> AudioReader:
    """Open any audio file for block reading; raises :class:`AudioError` naming the file and the problem.

    wav, flac, ogg and mp3 are read with soundfile; m4a/mp4/aac (and anything soundfile cannot
    read) through ffmpeg.
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty")
    reader = None
    if path.suffix.lower() not in FFMPEG_SUFFIXES:
        try:
            f = sf.SoundFile(str(path))
            reader = AudioReader(path, f.samplerate, f.channels, f.frames, sf_file=f)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            if shutil.which("ffmpeg") is None:
                raise AudioError(f"{path}: not a readable audio file ({exc})") from None
    if reader is None:
        data, sr = _load_ffmpeg(path)
        reader = AudioReader(path, sr, data.shape[0], data.shape[1], data=data)
    if reader.frames <= 0:
        reader.close()
        raise AudioError(f"{path}: contains no audio samples")
    return reader


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a whole audio file into float32 (channels, samples) and its sample rate."""
    with open_audio(path) as r:
        return r.read(0, r.frames), r.sample_rate


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality); float32 out."""
    if orig_sr == target_sr:
        return np.asarray(audio, np.float32)
    import soxr

    x = np.asarray(audio, np.float32)
    if x.ndim == 1:
        return soxr.resample(x, orig_sr, target_sr, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(soxr.resample(x.T, orig_sr, target_sr, quality="HQ").T, np.float32)


def _write_format(path: Path, subtype: str | None) -> tuple[str, str]:
    fmt = WRITE_FORMATS.get(path.suffix.lower().lstrip("."))
    if fmt is None:
        raise AudioError(f"{path}: cannot write {path.suffix!r} files; use one of "
                         f"{', '.join('.' + k for k in WRITE_FORMATS)}")
    return fmt, subtype or {"WAV": "PCM_16", "FLAC": "PCM_16", "MP3": "MPEG_LAYER_III"}[fmt]


@contextmanager
def audio_writer(path: str | Path, sample_rate: int, channels: int, *, overwrite: bool = False,
                 subtype: str | None = None):
    """Stream (channels, n) blocks into ``path``, atomically: a temp file renamed on success.

    The format follows the suffix (.wav, .flac, .mp3). An existing file is refused unless
    ``overwrite``. If anything fails, ``path`` is untouched and no partial file is left behind.
    """
    import soundfile as sf

    path = Path(path)
    fmt, subtype = _write_format(path, subtype)
    if path.exists() and not overwrite:
        raise AudioError(f"{path}: already exists; pass --force (overwrite=True) to replace it")
    errors = (OSError, sf.LibsndfileError, RuntimeError, ValueError)

    def failed(exc: Exception) -> AudioError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return AudioError(f"{path}: could not write it ({reason})")

    in_body = False
    try:
        with atomic_path(path) as tmp:
            with sf.SoundFile(tmp, "w", sample_rate, channels, subtype, format=fmt) as f:
                def write(block: np.ndarray) -> None:
                    try:
                        f.write(np.asarray(block, np.float32).reshape(channels, -1).T)
                    except errors as exc:
                        raise failed(exc) from None

                in_body = True
                yield write
                in_body = False
    except errors as exc:
        if in_body:  # the caller's own error (e.g. separation failed): pass it on unchanged
            raise
        raise failed(exc) from None


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int, *, overwrite: bool = False,
               subtype: str | None = None) -> Path:
    """Write (channels, samples) or (samples,) audio atomically; see :func:`audio_writer`."""
    data = np.asarray(audio, np.float32)
    data = data[None] if data.ndim == 1 else data
    with audio_writer(path, sample_rate, data.shape[0], overwrite=overwrite, subtype=subtype) as write:
        write(data)
    return Path(path)
