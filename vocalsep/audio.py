"""Reading, writing and resampling audio. Arrays are float32 ``(channels, samples)``."""
from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ._atomic import AtomicFile, UnsafePathError, sweep_leftovers, temp_prefix
from .choices import CLIP_MODES
from .errors import MAX_CHANNELS, VocalsepError, check_channels, check_number, check_sample_rate

FFMPEG_SUFFIXES = {".m4a", ".mp4", ".aac", ".m4v", ".mov", ".webm", ".opus", ".wma"}
WRITE_FORMATS = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3"}
log = logging.getLogger(__name__)


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
    sweep_leftovers(tempfile.gettempdir(), "vocalsep-decode")
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix("vocalsep-decode"), suffix=".wav.part")
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
        try:  # the open file stays readable; nothing is left for a kill to strand
            os.unlink(tmp)
            tmp = None
        except OSError:  # a system that cannot remove an open file: removed on close instead
            pass
        return AudioReader(path, f.samplerate, f.channels, f.frames, sf_file=f, temp=tmp)
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise


class AudioReader:
    """Block access to a file's samples: ``read(start, stop)`` -> (channels, stop - start) float32.

    Files soundfile can open are read lazily (memory stays at one block whatever their length);
    others are decoded through ffmpeg into a temporary file first, read the same way. Reads past
    the end are zero-padded.
    """

    def __init__(self, path: Path, sample_rate: int, channels: int, frames: int, sf_file, temp: str | None = None):
        self.path, self.sample_rate, self.channels, self.frames = path, sample_rate, channels, frames
        self._sf, self._temp = sf_file, temp
        # the file's own sample format (soundfile's name: PCM_16, FLOAT, ...); None when decoded by ffmpeg
        self.subtype = sf_file.subtype if temp is None else None

    def read(self, start: int, stop: int) -> np.ndarray:
        import soundfile as sf

        n = stop - start
        try:
            self._sf.seek(min(start, self.frames))
            block = self._sf.read(max(0, min(stop, self.frames) - start), dtype="float32", always_2d=True).T
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{self.path}: read failed at sample {start} ({exc}); the file may be damaged") from None
        if block.shape[1] < n:
            block = np.pad(block, ((0, 0), (0, n - block.shape[1])))
        return np.ascontiguousarray(block, np.float32)

    def close(self) -> None:
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
        try:  # a kernel file (/proc, /sys) reports size 0 and still has content
            with open(path, "rb") as f:
                has_content = bool(f.read(1))
        except OSError:
            has_content = False
        if has_content:
            raise AudioError(f"{path}: not an audio file (a special file that reports no size); save the audio "
                             "to a regular file first")
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


_INTEGER = ("PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32")


MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # MPEG-1/2/2.5 layer III
# format -> (most channels, sample formats it can hold); the one place output limits are declared
OUTPUT_LIMITS = {"WAV": (MAX_CHANNELS, ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")),
                 "FLAC": (8, ("PCM_16", "PCM_24")),
                 "MP3": (2, ("MPEG_LAYER_III",))}
_SUBTYPE_NAMES = {"PCM_16": "16-bit PCM", "PCM_24": "24-bit PCM (--int24)", "PCM_32": "32-bit PCM",
                  "FLOAT": "32-bit float (--float32)", "DOUBLE": "64-bit float"}


def check_output(path: str | Path, sample_rate: int, channels: int, subtype: str | None = None,
                 bitrate: int = 320, mp3_quality: int = 7) -> tuple[str, str]:
    """The (format, sample format) an output file will be written in, after checking that its format
    can hold this rate, channel count and sample format, and the mp3 settings; a one-line
    :class:`AudioError` naming the limit otherwise. Called before any work is done for the file."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower().lstrip("."))
    if fmt is None:
        raise AudioError(f"{path}: cannot write {path.suffix!r} files; use one of "
                         f"{', '.join('.' + k for k in WRITE_FORMATS)}")
    most, subtypes = OUTPUT_LIMITS[fmt]
    if fmt == "MP3":
        if subtype is not None:
            raise AudioError(f"{path}: {_SUBTYPE_NAMES.get(subtype, subtype)} applies to wav and flac, not mp3; "
                             "drop it or write wav/flac")
        subtype = "MPEG_LAYER_III"
        check_number(bitrate, f"{path}: mp3 bitrate (kbit/s)", lo=32, hi=320, integer=True, error=AudioError)
        check_number(mp3_quality, f"{path}: mp3 quality", lo=0, hi=9, integer=True, error=AudioError)
        if sample_rate not in MP3_RATES:
            raise AudioError(f"{path}: mp3 cannot hold {sample_rate} Hz audio (it takes "
                             f"{', '.join(f'{r / 1000:g}' for r in MP3_RATES)} kHz); write wav or flac, which keep "
                             "the rate, or resample the input first")
    subtype = subtype or "PCM_16"
    if subtype not in subtypes:
        raise AudioError(f"{path}: {fmt.lower()} cannot hold {_SUBTYPE_NAMES.get(subtype, subtype)}; "
                         f"use {' or '.join(_SUBTYPE_NAMES.get(t, t) for t in subtypes)}, or write wav")
    if channels > most:
        raise AudioError(f"{path}: {fmt.lower()} holds at most {most} channels and this audio has {channels}; "
                         "write wav (up to 32 channels)")
    return fmt, subtype


def _exists(path: Path) -> AudioError:
    return AudioError(f"{path}: already exists; use --force to replace it, or another output folder")


class AudioOutput:
    """One output file written block by block, committed atomically at the end.

    * wav/flac in float: written straight into a temp file beside ``path``.
    * wav/flac in integer PCM: blocks go to a float temp file first and the peak is tracked, so that
      :meth:`commit` can scale (``gain``) or clamp before converting: nothing is clipped silently.
    * mp3: encoded by ffmpeg as the blocks arrive (a second process, ``bitrate`` kbit/s, LAME's
      algorithm quality ``mp3_quality``: 0 best and slowest, 7 about twice as fast as LAME's default 3); mp3
      carries values above full scale, so it is never clipped. Without ffmpeg, soundfile's encoder.

    Memory stays at one block whatever the length. ``commit`` never replaces an existing ``path``
    unless ``overwrite`` (a hard-link commit, see :func:`~vocalsep._atomic.atomic_path`); ``discard``
    (or an error) leaves nothing behind.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int, *, overwrite: bool = False,
                 subtype: str | None = None, bitrate: int = 320, mp3_quality: int = 7, root: str | Path | None = None):
        import soundfile as sf

        self.path = Path(path)
        self.fmt, self.subtype = check_output(self.path, sample_rate, channels, subtype, bitrate, mp3_quality)
        if self.path.exists() and not overwrite:
            raise _exists(self.path)
        self.sample_rate, self.channels, self.overwrite, self.bitrate = sample_rate, channels, overwrite, bitrate
        self.peak = 0.0
        self._stage = self._proc = self._sf = None
        try:
            self._file = AtomicFile(self.path, replace=overwrite, root=root)
        except UnsafePathError as exc:
            raise AudioError(f"{exc.strerror}") from None
        except OSError as exc:
            raise self._failed(exc) from None
        try:
            if self.fmt == "MP3" and shutil.which("ffmpeg"):
                # ffmpeg writes into the temp file vocalsep holds open, never to a path it could be redirected from
                fd = self._file.fd
                target = f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else self._file.tmp
                self._proc = subprocess.Popen(
                    ["ffmpeg", "-nostdin", "-y", "-v", "error", "-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels),
                     "-i", "pipe:0", "-c:a", "libmp3lame", "-b:a", f"{bitrate}k", "-compression_level", str(mp3_quality),
                     "-f", "mp3", target],
                    stdin=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(fd,))
            elif self.subtype in _INTEGER:
                # float staging in an unnamed file (created and unlinked at once): nothing for a kill to strand
                self._stage = self._file.scratch()
                self._sf = sf.SoundFile(os.fdopen(os.dup(self._stage), "w+b"), "w", sample_rate, channels, "FLOAT",
                                        format="WAV", closefd=True)
            else:
                self._sf = sf.SoundFile(os.fdopen(os.dup(self._file.fd), "w+b"), "w", sample_rate, channels,
                                        self.subtype, format=self.fmt, closefd=True)
        except (OSError, sf.LibsndfileError, RuntimeError, ValueError) as exc:
            self.discard()
            raise self._failed(exc) from None

    def _failed(self, exc: Exception) -> AudioError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        try:
            free = shutil.disk_usage(self.path.parent if self.path.parent.exists() else ".").free
        except OSError:
            free = None
        if getattr(exc, "errno", None) == 28 or (free is not None and free < 1 << 20):
            reason = "no space left on the disk; free some space or write to another folder"
        elif reason.strip() in ("System error.", ""):
            reason = "the system refused the write; check the folder's permissions and free space"
        return AudioError(f"{self.path}: could not write it ({reason})")

    def write(self, block: np.ndarray) -> None:
        """Append (channels, n) samples."""
        import soundfile as sf

        data = np.asarray(block, np.float32).reshape(self.channels, -1)
        if data.size and self.subtype in _INTEGER:  # only integer PCM can clip; nothing to track otherwise
            self.peak = max(self.peak, float(np.abs(data).max()))
        try:
            if self._proc is not None:
                self._proc.stdin.write(np.ascontiguousarray(data.T).tobytes())
            else:
                self._sf.write(data.T)
        except (OSError, sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise self._failed(exc) from None

    @property
    def clips(self) -> bool:
        """Whether the samples so far exceed what the output format can hold (integer PCM only)."""
        return self.subtype in _INTEGER and self.peak > 1.0

    def commit(self, gain: float = 1.0) -> Path:
        """Finish the file (integer PCM: samples times ``gain``, then clamped to full scale) and move it
        into place."""
        import soundfile as sf

        try:
            if self._proc is not None:
                self._proc.stdin.close()
                err = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
                if self._proc.wait() != 0:
                    raise AudioError(f"{self.path}: ffmpeg could not encode it ({err[-1] if err else 'unknown error'})")
                self._proc = None
            else:
                self._sf.close()
                if self._stage is not None:
                    os.lseek(self._stage, 0, os.SEEK_SET)
                    src_f = os.fdopen(os.dup(self._stage), "rb")
                    dst_f = os.fdopen(os.dup(self._file.fd), "w+b")
                    with sf.SoundFile(src_f, closefd=True) as src, sf.SoundFile(
                            dst_f, "w", self.sample_rate, self.channels, self.subtype, format=self.fmt, closefd=True) as dst:
                        for block in src.blocks(1 << 16, dtype="float32", always_2d=True):
                            dst.write(np.clip(block * np.float32(gain), -1.0, 1.0))
            self._file.commit()
        except FileExistsError:
            self.discard()
            raise _exists(self.path) from None
        except AudioError:
            self.discard()
            raise
        except (OSError, sf.LibsndfileError, RuntimeError, ValueError) as exc:
            self.discard()
            raise self._failed(exc) from None
        finally:
            self._drop_stage()
        return self.path

    def discard(self) -> None:
        """Stop and remove everything written; ``path`` is untouched."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        if self._sf is not None and not self._sf.closed:
            self._sf.close()
        self._drop_stage()
        if getattr(self, "_file", None) is not None:
            self._file.discard()

    def _drop_stage(self) -> None:
        if self._stage is not None:
            os.close(self._stage)
            self._stage = None


def fit_gain(outputs, mode: str = "rescale") -> tuple[float, str | None]:
    """One gain for a set of outputs that must keep summing to their input: if any would clip,
    ``rescale`` scales them all by the same factor, ``clamp`` leaves the gain at 1 (samples are
    clamped). Returns (gain, a one-line description of what was done, or None)."""
    if mode not in CLIP_MODES:
        raise AudioError(f"unknown clip mode {mode!r}; choose one of {', '.join(CLIP_MODES)}")
    peak = max((o.peak for o in outputs if o.clips), default=0.0)
    if peak <= 1.0:
        return 1.0, None
    over = 20 * np.log10(peak)
    if mode == "clamp":
        return 1.0, f"the stems peak {over:.1f} dB above full scale and were clamped"
    return 0.999 / peak, f"the stems peak {over:.1f} dB above full scale and were scaled down by {over:.1f} dB to fit"


@contextmanager
def audio_writer(path: str | Path, sample_rate: int, channels: int, *, overwrite: bool = False,
                 subtype: str | None = None, clip: str = "rescale", bitrate: int = 320):
    """Stream (channels, n) blocks into ``path``, atomically (see :class:`AudioOutput`).

    The format follows the suffix (.wav, .flac, .mp3). An existing file is refused unless
    ``overwrite``. Integer PCM that would clip is rescaled or clamped (``clip``). If anything fails,
    ``path`` is untouched and no partial file is left behind.
    """
    out = AudioOutput(path, sample_rate, channels, overwrite=overwrite, subtype=subtype, bitrate=bitrate)
    try:
        yield out.write
    except BaseException:
        out.discard()
        raise
    gain, note = fit_gain([out], clip)
    if note:
        log.warning("%s: %s", path, note)
    out.commit(gain)


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int, *, overwrite: bool = False,
               subtype: str | None = None, clip: str = "rescale") -> Path:
    """Write (channels, samples) or (samples,) audio atomically; see :func:`audio_writer`."""
    data = np.asarray(audio, np.float32)
    data = data[None] if data.ndim == 1 else data
    with audio_writer(path, sample_rate, data.shape[0], overwrite=overwrite, subtype=subtype, clip=clip) as write:
        write(data)
    return Path(path)
