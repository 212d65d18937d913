"""vocalsep's error classes and the bounds every input is checked against.

Every error the library raises on purpose derives from :class:`VocalsepError`; the command line turns
any of them into one line (``vocalsep: error: ...``) and exit code 1. The bounds keep a small file
from asking for a large allocation: they are checked before anything is built or allocated.
"""
from __future__ import annotations

import math


class VocalsepError(Exception):
    """Base of every error vocalsep raises on purpose. The message names what is wrong and what to do."""


# ---- bounds ---------------------------------------------------------------------------------
MIN_SAMPLE_RATE = 4_000  # Hz; below this no singing voice is left to separate
MAX_SAMPLE_RATE = 384_000  # Hz; the highest rate of studio converters
MAX_CHANNELS = 32
MAX_INPUT_PEAK = 1e6  # float samples beyond this (120 dB over full scale) are not audio at a sane scale
MAX_SOURCES = 16  # --sources N
MAX_MODEL_PARAMETERS = 100_000_000  # the bundled models have 2.5-7 M
MAX_MODEL_DIMENSION = 4096  # any integer model argument: layers, units, channels, depth
MAX_MODEL_FILE_BYTES = 1 << 30  # uncompressed content of a model file
STEM_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"  # stems become file names: no separators, no dots


def check_sample_rate(sr, what: str, error=VocalsepError) -> int:
    """``sr`` as an int within [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]; ``error(message)`` otherwise."""
    if isinstance(sr, bool) or not isinstance(sr, int) and not (hasattr(sr, "__index__")):
        raise error(f"{what}: sample rate must be an integer, got {sr!r}")
    sr = int(sr)
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise error(f"{what}: sample rate {sr} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz; "
                    "the header is damaged or the file needs resampling first")
    return sr


def check_channels(n: int, what: str, error=VocalsepError) -> int:
    if not 1 <= n <= MAX_CHANNELS:
        raise error(f"{what}: {n} channels; vocalsep separates 1 to {MAX_CHANNELS} (the header may be damaged)")
    return n


def check_number(value, name: str, *, lo=None, hi=None, lo_open=False, integer=False, error=VocalsepError):
    """A finite number (an int when ``integer``) within the bounds, else ``error`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise error(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise error(f"{name} must be finite, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise error(f"{name} must be {'above' if lo_open else 'at least'} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise error(f"{name} must be at most {hi}, got {value!r}")
    return value


class MissingExtraError(VocalsepError, ImportError):
    """A command or option needs a package that is not installed; the message names the extra."""


def require(module: str, what: str, extra: str) -> None:
    """Raise :class:`MissingExtraError` unless ``module`` can be imported (checked without importing it)."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # blocked in sys.modules, or a broken installation
        found = False
    if not found:
        raise MissingExtraError(f"{what} needs {module}, which is not installed: pip install 'vocalsep[{extra}]'")
