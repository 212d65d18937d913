"""Atomic file writing shared by audio outputs and model/checkpoint files."""
from __future__ import annotations

import os
import re
import socket
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


class UnsafePathError(OSError):
    """An output folder below the root is a link (or not a folder): nothing is written through it."""


def open_folder(folder: str | Path, root: str | Path | None = None) -> int:
    """A file descriptor of ``folder``, created where missing. Below ``root`` (when given) every
    component is opened without following links, so a folder swapped for a link, before or during a
    run, cannot send a write elsewhere; everything is then done relative to this descriptor."""
    folder = Path(folder)
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    if root is None or not hasattr(os, "O_NOFOLLOW"):
        folder.mkdir(parents=True, exist_ok=True)
        return os.open(folder, flags)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        rel = folder.absolute().relative_to(root.absolute())
    except ValueError:
        raise UnsafePathError(f"{folder} is not inside {root}") from None
    fd = os.open(root, flags)
    try:
        for part in rel.parts:
            try:
                os.mkdir(part, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                nxt = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                raise UnsafePathError(exc.errno, f"{folder}: {part} is a link or not a folder; refused to write "
                                      "through it", str(folder)) from None
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


class AtomicFile:
    """A temp file created exclusively beside ``path`` in a folder held open by descriptor, moved to
    ``path`` by :meth:`commit` (relative to that descriptor: a renamed or relinked folder path cannot
    redirect it) or removed by :meth:`discard`.

    ``fd`` is the temp file, open for reading and writing; ``tmp`` its path, for writers that need one
    (valid while the folder stays where it was). With ``replace=False`` an existing ``path`` is never
    replaced, even one that another process created meanwhile (a hard link, which fails when the name
    exists: :class:`FileExistsError`).
    """

    def __init__(self, path: str | Path, replace: bool = True, root: str | Path | None = None):
        self.path, self.replace = Path(path), replace
        self.dir_fd = open_folder(self.path.parent, root)
        self.name = None
        try:
            sweep_leftovers(self.path.parent, f".{self.path.name}")
            for _ in range(100):
                name = f"{temp_prefix('.' + self.path.name)}{os.urandom(4).hex()}.part"
                try:
                    self.fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                                      _default_mode(), dir_fd=self.dir_fd)
                    break
                except FileExistsError:
                    continue
            else:
                raise FileExistsError(f"{self.path.parent}: could not create a temp file")
            self.name = name
        except BaseException:
            os.close(self.dir_fd)
            raise
        self.tmp = str(self.path.parent / self.name)

    def scratch(self) -> int:
        """A descriptor of a new, already unlinked file in the same folder (scratch space that no kill
        can leave behind)."""
        name = f"{temp_prefix('.' + self.path.name)}{os.urandom(4).hex()}.scratch.part"
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600, dir_fd=self.dir_fd)
        os.unlink(name, dir_fd=self.dir_fd)
        return fd

    def commit(self) -> Path:
        try:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
            if self.replace:
                os.replace(self.name, self.path.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            else:
                try:  # atomic: fails with FileExistsError when the name exists (a link there included)
                    os.link(self.name, self.path.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd,
                            follow_symlinks=False)
                except FileExistsError:
                    raise
                except OSError:  # a file system without hard links: exclusive create, then rename
                    os.close(os.open(self.path.name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, dir_fd=self.dir_fd))
                    os.replace(self.name, self.path.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            os.fsync(self.dir_fd)
        finally:
            self.discard()
        return self.path

    def discard(self) -> None:
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None
        if self.name is not None:
            try:
                os.unlink(self.name, dir_fd=self.dir_fd)
            except FileNotFoundError:
                pass
            self.name = None
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None


@contextmanager
def atomic_path(path: str | Path, replace: bool = True):
    """Yield a temp path beside ``path``; on success flush it to disk and move it to ``path``, on
    failure (or Ctrl-C, SIGTERM) delete it (see :class:`AtomicFile`).

    Readers never see a half-written ``path``: it either keeps its old content or gets the new one.
    """
    f = AtomicFile(path, replace)
    try:
        yield f.tmp
        f.commit()
    finally:
        f.discard()
