"""Exception types of taskspec-rs: every user mistake derives from :class:`TaskspecError`."""

from __future__ import annotations

__all__ = ["NumericalError", "TaskspecError"]


class TaskspecError(Exception):
    """A user mistake (bad input file, bad configuration, bad option).

    The command-line interface prints the message as one line on stderr and
    exits with status 2 instead of showing a traceback.
    """


from ._core import NumericalError  # noqa: E402  (a RuntimeError subclass raised by the Rust engine)
