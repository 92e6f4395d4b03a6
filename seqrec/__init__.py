"""seqrec: session-based and sequential recommendation."""

__version__ = "0.1.0"
