"""Data layer: reading and validating event logs, id maps, SessionLog, preprocessing."""

from seqrec.data.idmap import UNKNOWN, ItemIndex
from seqrec.data.sessions import SessionLog

__all__ = ["UNKNOWN", "ItemIndex", "SessionLog"]
