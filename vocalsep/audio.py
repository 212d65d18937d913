"""Reading, writing and resampling audio. Arrays are float32 ``(channels, samples)``."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ._atomic import atomic_path
from .errors import VocalsepError, check_channels, check_sample_rate

FFMPEG_SUFFIXES = {".m4a", ".mp4", ".aac", ".m4v", ".mov", ".webm", ".opus", ".wma"}
WRITE_FORMATS = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3"}


class AudioError(VocalsepError):
    """An audio file cannot be read or written. The message names the file and what to do."""


def _ffmpeg_missing(path: Path) -> AudioError:
    return AudioError(f"{path}: reading {path.suffix or 'this'} files needs ffmpeg, which is not "
                      "installed (e.g. apt-get install ffmpeg), or convert the file to wav/flac first")


def _ffmpeg_input(path: Path) -> str:
    """The path as ffmpeg must read it: a local file, never a protocol or URL (``http:...``, ``concat:...``)."""
    return "file:" + str(path.absolute())


def _decode_ffmpeg(path: Path) -> "AudioReader":
    """Decode through ffmpeg into a temporary float wav (removed on close) and read it lazily like
    any other file: memory stays at one block whatever the file's length."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise _ffmpeg_missing(path)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=channels,sample_rate", "-of", "json", _ffmpeg_input(path)],
        capture_output=True, text=True)
    try:
        stream = json.loads(probe.stdout)["streams"][0]
        channels, sr = int(stream["channels"]), int(stream["sample_rate"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise AudioError(f"{path}: not a readable audio file (ffprobe found no audio stream)") from None
    check_sample_rate(sr, str(path), AudioError)
    check_channels(channels, str(path), AudioError)
    fd, tmp = tempfile.mkstemp(prefix="vocalsep-", suffix=".wav")
    os.close(fd)
    try:
        dec = subprocess.run(
            ["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", _ffmpeg_input(path), "-map", "0:a:0", "-vn",
             "-acodec", "pcm_f32le", "-rf64", "auto", "-f", "wav", tmp], capture_output=True)
        if dec.returncode != 0:
            msg = dec.stderr.decode(errors="replace").strip().splitlines()
            raise AudioError(f"{path}: ffmpeg could not decode it ({msg[-1] if msg else 'unknown error'})")
        import soundfile as sf

        f = sf.SoundFile(tmp)
        return AudioReader(path, f.samplerate, f.channels, f.frames, sf_file=f, temp=tmp)
    except BaseException:
        os.unlink(tmp)
        raise


class AudioReader:
    """Block access to a file's samples: ``read(start, stop)`` -> (channels, stop - start) float32.

    Files soundfile can open are read lazily (memory stays at one block whatever their length);
    others are decoded through ffmpeg into a temporary file first, read the same way. Reads past
    the end are zero-padded.
    """

    def __init__(self, path: Path, sample_rate: int, channels: int, frames: int, sf_file=None, data=None,
                 temp: str | None = None):
        self.path, self.sample_rate, self.channels, self.frames = path, sample_rate, channels, frames
        self._sf, self._data, self._temp = sf_file, data, temp

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
        if self._temp is not None and os.path.exists(self._temp):
            os.unlink(self._temp)

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

    if str(path) == "-":
        raise AudioError("-: reading audio from standard input is not supported; save it to a file and give its path")
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot be opened ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(f"{path}: is not a regular file (a pipe, socket or device); save the audio to a file first")
    if st.st_size == 0:
        raise AudioError(f"{path}: file is empty")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: cannot be read (permission denied); check its permissions")
    reader = None
    if path.suffix.lower() not in FFMPEG_SUFFIXES:
        try:
            f = sf.SoundFile(str(path))
            reader = AudioReader(path, f.samplerate, f.channels, f.frames, sf_file=f)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            if shutil.which("ffmpeg") is None:
                raise AudioError(f"{path}: not a readable audio file ({exc})") from None
        except OSError as exc:
            raise AudioError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        if reader is None:
            reader = _decode_ffmpeg(path)
        check_sample_rate(reader.sample_rate, str(path), AudioError)
        check_channels(reader.channels, str(path), AudioError)
        if reader.frames <= 0:
            raise AudioError(f"{path}: contains no audio samples")
    except BaseException:
        if reader is not None:
            reader.close()
        raise
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
        raise _exists(path)
    errors = (OSError, sf.LibsndfileError, RuntimeError, ValueError)

    def failed(exc: Exception) -> AudioError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        try:
            free = shutil.disk_usage(path.parent if path.parent.exists() else ".").free
        except OSError:
            free = None
        if getattr(exc, "errno", None) == 28 or (free is not None and free < 1 << 20):
            reason = "no space left on the disk; free some space or write to another folder"
        elif reason.strip() in ("System error.", ""):
            reason = "the system refused the write; check the folder's permissions and free space"
        return AudioError(f"{path}: could not write it ({reason})")

    in_body = False
    try:
        with atomic_path(path, replace=overwrite) as tmp:
            with sf.SoundFile(tmp, "w", sample_rate, channels, subtype, format=fmt) as f:
                def write(block: np.ndarray) -> None:
                    try:
                        f.write(np.asarray(block, np.float32).reshape(channels, -1).T)
                    except errors as exc:
                        raise failed(exc) from None

                in_body = True
                yield write
                in_body = False
    except FileExistsError:
        raise _exists(path) from None
    except errors as exc:
        if in_body:  # the caller's own error (e.g. separation failed): pass it on unchanged
            raise
        raise failed(exc) from None


def _exists(path: Path) -> AudioError:
    return AudioError(f"{path}: already exists; use --force to replace it, or another output folder")


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int, *, overwrite: bool = False,
               subtype: str | None = None) -> Path:
    """Write (channels, samples) or (samples,) audio atomically; see :func:`audio_writer`."""
    data = np.asarray(audio, np.float32)
    data = data[None] if data.ndim == 1 else data
    with audio_writer(path, sample_rate, data.shape[0], overwrite=overwrite, subtype=subtype) as write:
        write(data)
    return Path(path)
