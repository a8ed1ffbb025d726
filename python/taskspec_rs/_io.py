"""Atomic file and folder writes shared by every module that saves files.

A file is written to a temporary file in the same folder, flushed and
fsynced, then renamed over the target, so readers see the old file or the
new one, never a partial one; on any error (a full disk, a file-size limit, a
read-only folder, Ctrl-C) the temporary file is removed, the old file is left
as it was, and the error is a :class:`WriteError` naming the target.

A process killed with SIGKILL cannot clean up: its temporary file
(``.NAME.tmp-PID-…``, hidden, never read) stays until the next write of
``NAME`` in that folder removes the ones whose process is gone.  Folders
(:func:`atomic_write_dir`, a saved model) follow the same rules: written in a
temporary sibling, then swapped in as a whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from typing import IO, Any, Callable, Union

from .errors import WriteError

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "WriteError",
    "atomic_write",
    "atomic_write_dir",
    "atomic_write_text",
    "check_writable",
    "deferred_interrupt",
    "occupied",
    "write_synced",
]


class _WritePermissionError(WriteError, PermissionError):
    pass


class _WriteFileNotFoundError(WriteError, FileNotFoundError):
    pass


class _WriteIsADirectoryError(WriteError, IsADirectoryError):
    pass


class _WriteNotADirectoryError(WriteError, NotADirectoryError):
    pass


class _WriteFileExistsError(WriteError, FileExistsError):
    pass


# a WriteError is also the OSError subclass its errno stands for (``except PermissionError`` still works)
_KINDS = {
    errno.EACCES: _WritePermissionError,
    errno.EPERM: _WritePermissionError,
    errno.ENOENT: _WriteFileNotFoundError,
    errno.EISDIR: _WriteIsADirectoryError,
    errno.ENOTDIR: _WriteNotADirectoryError,
    errno.EEXIST: _WriteFileExistsError,
}


def _write_error(exc: OSError, path: PathLike) -> WriteError:
    if isinstance(exc, WriteError):
        return exc
    reason = exc.strerror or str(exc)
    return _KINDS.get(exc.errno, WriteError)(exc.errno, reason, os.fspath(path))


def _temp_prefix(name: str) -> str:
    """Prefix of this process's temporary files for ``name`` (the Rust writer uses the same shape)."""
    return f".{name}.tmp-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's live process
        return True
    return True


def _sweep_stale(directory: str, name: str) -> None:
    """Remove ``.NAME.tmp-PID-*`` left by killed processes (best effort, never raises)."""
    stem = f".{name}.tmp-"
    try:
        entries = [e for e in os.scandir(directory) if e.name.startswith(stem)]
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(stem) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


def _fsync_dir(directory: str) -> None:
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


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` atomically through ``write(binary_file)``; parent folders are created.

    Raises
    ------
    WriteError
        The folder or the file cannot be written (the previous file, if any, is intact).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise _write_error(IsADirectoryError(errno.EISDIR, "is a directory"), path)
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(name), dir=directory)
    except OSError as exc:
        raise _write_error(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        failure = _explain(exc, tmp)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(failure, OSError):
            raise _write_error(failure, path) from None
        raise
    _fsync_dir(directory)
    _sweep_stale(directory, name)


def _explain(exc: BaseException, written: str) -> BaseException:
    """An OSError with the errno behind a failed write that reports none, else ``exc``.

    numpy's ``tofile`` says "N requested and M written", torch's writer raises a
    RuntimeError: past a file-size limit or on a full disk, say so.
    """
    if not isinstance(exc, (OSError, RuntimeError)) or getattr(exc, "errno", None) is not None:
        return exc
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY and os.path.getsize(written) >= soft:
            return OSError(errno.EFBIG, os.strerror(errno.EFBIG))
        st = os.statvfs(os.path.dirname(os.path.abspath(written)))
        if st.f_bavail * st.f_frsize < 1 << 20:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except (ImportError, OSError, ValueError):
        pass
    return exc


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def write_synced(path: PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Create ``path`` (inside a temporary folder) through ``write(binary_file)`` and fsync it."""
    with open(path, "xb") as f:
        try:
            write(f)
            f.flush()
        except (OSError, RuntimeError) as exc:
            failure = _explain(exc, os.fspath(path))
            if failure is exc:
                raise
            raise failure from None
        os.fsync(f.fileno())


def atomic_write_dir(path: PathLike, fill: Callable[[str], Any], *, replace: bool = False) -> None:
    """Create the folder ``path`` atomically: ``fill(tmp)`` writes its files into a temporary sibling.

    The finished folder is renamed into place; an existing ``path`` (only with
    ``replace``) is swapped out in one step (``renameat2(RENAME_EXCHANGE)`` on
    Linux) and then removed, so ``path`` is always the old folder or the new one.

    Raises
    ------
    WriteError
        The parent folder or a file cannot be written; nothing is left behind.
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.dirname(path), os.path.basename(path)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=_temp_prefix(name), dir=parent)
    except OSError as exc:
        raise _write_error(exc, path) from None
    try:
        fill(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        _fsync_dir(tmp)
        _swap_in(tmp, path, replace=replace)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _write_error(exc, path) from None
        raise
    _fsync_dir(parent)
    _sweep_stale(parent, name)


def _swap_in(tmp: str, path: str, *, replace: bool) -> None:
    """Rename ``tmp`` to ``path``; an existing ``path`` ends up in ``tmp`` (then removed)."""
    if not os.path.lexists(path) or (os.path.isdir(path) and not os.listdir(path) and not os.path.islink(path)):
        os.replace(tmp, path)  # a rename onto an empty folder replaces it
        return
    if not replace:
        raise FileExistsError(errno.EEXIST, "exists and is not empty", path)
    if not _rename_exchange(tmp, path):  # no atomic exchange: a short window without ``path``
        old = tempfile.mkdtemp(prefix=_temp_prefix(os.path.basename(path)), dir=os.path.dirname(path))
        os.replace(path, os.path.join(old, "old"))
        os.replace(tmp, path)
        os.replace(old, tmp)
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.unlink(tmp)


def _rename_exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # not supported here
        return False
    raise OSError(err, os.strerror(err), b)


def check_writable(directory: PathLike) -> None:
    """Create ``directory`` if needed and check that a file can be written there (before a long run).

    Raises
    ------
    WriteError
        The folder cannot be created or written.
    """
    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix("probe"), dir=directory)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise _write_error(exc, directory) from None


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) until the block is done, so that files written together stay together.

    Only in the main thread (elsewhere a no-op); the interrupt is raised as
    :class:`KeyboardInterrupt` when the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda _signum, frame: pending.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if not pending or previous == signal.SIG_IGN:
        return
    if previous == signal.SIG_DFL:
        signal.raise_signal(signal.SIGINT)
    elif callable(previous):
        previous(signal.SIGINT, pending[0])
    else:  # installed outside Python: the usual KeyboardInterrupt
        raise KeyboardInterrupt


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
