"""User-facing errors.

Every problem a user can cause (bad file, bad config, unknown item) raises a subclass
of :class:`SeqrecError` whose message is one line naming the file / line / column /
key and the problem. The CLI prints it as ``error: <message>`` and exits with code 2.
"""

from __future__ import annotations

from seqrec.quoting import escape


def one_line(exc: BaseException, limit: int = 240) -> str:
    """``exc``'s message on one line (lines joined by spaces), at most ``limit`` chars."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SeqrecError(Exception):
    """Base class of all errors caused by user input.

    ``str()`` of one is always printable: a control character that reached the message
    (a file name, a value no reader quoted) is shown escaped (``\\n``, ``\\x1b``), so
    the message stays one line and cannot drive the user's terminal."""

    def __str__(self) -> str:
        return escape(super().__str__(), limit=None)


class DataError(SeqrecError):
    """A data file or frame is malformed (names file, line or column and problem)."""


class ConfigError(SeqrecError):
    """A configuration key or value is invalid."""


class ModelFileError(SeqrecError):
    """A model directory is missing, incomplete or corrupt."""


class UnknownItemError(SeqrecError):
    """An item id is not in the model's catalogue."""


class OutputError(SeqrecError):
    """An output location cannot or must not be written (it holds files seqrec did not
    write, is a regular file, or is not writable)."""
