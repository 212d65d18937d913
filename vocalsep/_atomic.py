"""Atomic file writing shared by audio outputs and model/checkpoint files."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _default_mode() -> int:
    """Permissions a plain ``open()`` would give a new file (mkstemp's are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, replace: bool = True):
    """Yield a temp path beside ``path``; on success flush it to disk and move it to ``path``, on
    failure (or Ctrl-C, SIGTERM) delete it.

    Readers never see a half-written ``path``: it either keeps its old content or gets the new one.
    With ``replace=False`` an existing ``path`` is never replaced, even one that another process
    created while this one was writing: the check and the move are one step (a hard link, which
    fails when the name exists), and :class:`FileExistsError` is raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, _default_mode())
        yield tmp
        _fsync(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic: fails with FileExistsError when path exists
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links: exclusive create, then rename
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
