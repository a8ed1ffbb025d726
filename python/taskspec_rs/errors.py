"""Exception types of taskspec-rs: every user mistake derives from :class:`TaskspecError`."""

from __future__ import annotations

__all__ = ["MissingExtraError", "NumericalError", "TaskspecError", "WriteError"]


class TaskspecError(Exception):
    """A user mistake (bad input file, bad configuration, bad option).

    The command-line interface prints the message as one line on stderr and
    exits with status 2 instead of showing a traceback.
    """


class WriteError(TaskspecError, OSError):
    """An output cannot be written: full disk, file-size limit, read-only or missing folder …

    Both a :class:`TaskspecError` (the command line prints it as one line and
    exits 2) and an :class:`OSError` (``errno``, ``strerror`` and ``filename``,
    the target, are set).  Nothing partial is left behind.
    """

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


class MissingExtraError(TaskspecError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` to run."""


from ._core import NumericalError  # noqa: E402  (a RuntimeError subclass raised by the Rust engine)
