"""Where the stems of an input file go: the file-name template shared by the CLI and the API."""
from __future__ import annotations

import os
import string
from pathlib import Path

from .errors import VocalsepError

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
FIELDS = ("track", "stem", "ext", "model", "input_ext")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".mp4", ".aac", ".opus", ".aif", ".aiff", ".wma", ".webm")


class OutputNameError(VocalsepError, ValueError):
    """A file-name template is malformed or would place a file outside the output folder."""


def track_name(path: Path) -> str:
    """The input's name without its extension (and without NI's ``.stem``), made a plain name: never
    empty, ``.``, ``..``, hidden, or holding a path separator."""
    name = Path(path).stem
    name = name[: -len(".stem")] if name.lower().endswith(".stem") and len(name) > 5 else name
    for sep in {os.sep, os.altsep or os.sep, "\0"}:
        name = name.replace(sep, "_")
    name = name.strip()
    return "_" + name if not name or name.startswith(".") else name


def check_template(template: str) -> str:
    """Refuse fields other than :data:`FIELDS` and templates that do not name each stem apart."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise OutputNameError(f"file-name template {template!r}: {exc}") from None
    unknown = sorted(names - set(FIELDS))
    if unknown:
        raise OutputNameError(f"file-name template {template!r} uses unknown field(s) {', '.join(unknown)}; "
                              f"available: {', '.join('{' + f + '}' for f in FIELDS)}")
    if "stem" not in names:
        raise OutputNameError(f"file-name template {template!r} must contain {{stem}}, or every stem gets the same name")
    return template


def _inside(folder: Path, target: Path) -> bool:
    base = os.path.realpath(folder)
    real = os.path.realpath(target)
    return real != base and os.path.commonpath([base, real]) == base


def output_paths(src: str | Path, out_dir: str | Path, stems, *, template: str = DEFAULT_TEMPLATE, ext: str = "wav",
                 model: str = "") -> dict[str, Path]:
    """stem -> output path for ``src``, from ``template`` under ``out_dir``. Every path must resolve
    inside ``out_dir`` (names from the file or a planted link cannot move it elsewhere)."""
    check_template(template)
    src = Path(src)
    values = {"track": track_name(src), "ext": ext, "model": track_name(Path(model or "model") .with_suffix(".x")),
              "input_ext": src.suffix.lstrip(".").lower() or "none"}
    out = {}
    for stem in stems:
        rel = template.format(**values, stem=stem)
        parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise OutputNameError(f"file-name template {template!r} gives {rel!r} for {src}: not a path inside the output folder")
        path = Path(out_dir, *parts)
        if not _inside(Path(out_dir), path):
            raise OutputNameError(f"{src}: output {path} would land outside {out_dir}; refused")
        out[stem] = path
    if len(set(out.values())) != len(out):
        raise OutputNameError(f"file-name template {template!r} gives two stems the same path")
    return out


def expand_inputs(paths) -> list[Path]:
    """Files as given; a folder stands for the audio files directly inside it (sorted by name), or for
    itself when it holds none (so that it is reported)."""
    files = []
    for p in map(Path, paths):
        inside = sorted(q for q in p.iterdir() if q.suffix.lower() in AUDIO_SUFFIXES and q.is_file()) if p.is_dir() else []
        files.extend(inside or [p])
    return files
