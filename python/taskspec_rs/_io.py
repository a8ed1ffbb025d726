"""Atomic file writes shared by every module that saves files.

A file is written to a temporary file in the same folder, flushed and
fsynced, then renamed over the target, so readers see the old file or the
new one, never a partial one; on any error the temporary file is removed and
the old file is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO, Any, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["atomic_write", "atomic_write_text", "occupied"]


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` atomically through ``write(binary_file)``; parent folders are created."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory", path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def occupied(path: PathLike) -> bool:
    """Whether ``path`` exists as a file or as a non-empty folder (writing there would replace something)."""
    p = os.fspath(path)
    if not os.path.exists(p):
        return False
    if not os.path.isdir(p):
        return True
    with os.scandir(p) as entries:
        return any(True for _ in entries)


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, racing other threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
