"""User-facing errors.

Every problem a user can cause (bad file, bad config, unknown item) raises a subclass
of :class:`SeqrecError` whose message is one line naming the file / line / column /
key and the problem. The CLI prints it as ``error: <message>`` and exits with code 2.
"""

from __future__ import annotations

from seqrec.quoting import escape


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
