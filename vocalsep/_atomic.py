"""Atomic file writing shared by audio outputs and model/checkpoint files."""
from __future__ import annotations

import os
import re
import socket
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path

# Every temp file vocalsep makes carries this machine and process in its name, so a later run can
# tell the leftovers of a killed one (same machine, process gone) from a live writer's files.
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"
_TAG = re.compile(r"\.vs([0-9a-f]{8})-(\d+)-")


def temp_prefix(name: str) -> str:
    """The prefix of a temp file for ``name``: ``name.vs<host>-<pid>-``."""
    return f"{name}.vs{_HOST}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def sweep_leftovers(folder: str | Path, name: str) -> list[Path]:
    """Remove the temp files for ``name`` in ``folder`` that a killed vocalsep process of this machine
    left behind (its process is gone); a live writer's files and other machines' are kept. Returns
    what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if not e.name.startswith(name + ".vs") or not e.name.endswith(".part"):
            continue
        m = _TAG.match(e.name, len(name))
        if m and m.group(1) == _HOST and int(m.group(2)) != os.getpid() and not _alive(int(m.group(2))):
            try:
                os.unlink(e.path)
                removed.append(Path(e.path))
            except OSError:
                pass
    return removed


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
    sweep_leftovers(path.parent, f".{path.name}")
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(f".{path.name}"), suffix=".part", dir=path.parent)
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
