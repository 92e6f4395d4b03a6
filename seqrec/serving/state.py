"""Per-session state and its compact byte encoding (what a store keeps per session).

A session's state is the fingerprint of the model and catalogue that produced it, the
number of known clicks so far, the most recent clicks (dense ids, capped) and, for
recurrent models, the flattened hidden state (float32). It is stored as bytes::

    header (28 bytes, little-endian)
      u8  format version (1)
      u8  flags (bit 0: hidden state present)
      8s  model fingerprint      (weights + config of the model that wrote it)
      8s  catalogue fingerprint  (its item index)
      u32 n_events               (known clicks in the session, not capped)
      u16 n_history              (dense ids that follow)
      u32 n_hidden               (float32 values that follow the history)
    int32[n_history]   the last clicks, oldest first
    float32[n_hidden]  the hidden state (the model's per-session slice, flattened)

A GRU4Rec with ``layers = [100]`` and 50 remembered clicks takes 628 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

FORMAT_VERSION = 1
_HEADER = struct.Struct("<BB8s8sIHI")
HEADER_SIZE = _HEADER.size  # 28
_FLAG_HIDDEN = 1


class StateFormatError(ValueError):
    """Stored bytes are not a valid session state (corrupt or from another format)."""


@dataclass
class SessionState:
    """One session: which model wrote it, its recent clicks and its hidden state."""

    model_fp: bytes = b"\0" * 8
    catalog_fp: bytes = b"\0" * 8
    n_events: int = 0
    history: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # (T,) int32
    hidden: np.ndarray | None = None  # flattened float32 hidden state, or None

    def to_bytes(self) -> bytes:
        """Encode as compact bytes (see the module docstring for the layout)."""
        hist = np.ascontiguousarray(self.history, dtype="<i4")
        if len(hist) > 0xFFFF:
            hist = hist[-0xFFFF:]
        hidden = (
            np.ascontiguousarray(self.hidden, dtype="<f4").ravel()
            if self.hidden is not None
            else None
        )
        header = _HEADER.pack(
            FORMAT_VERSION,
            _FLAG_HIDDEN if hidden is not None else 0,
            self.model_fp,
            self.catalog_fp,
            min(int(self.n_events), 0xFFFFFFFF),
            len(hist),
            0 if hidden is None else len(hidden),
        )
        parts = [header, hist.tobytes()]
        if hidden is not None:
            parts.append(hidden.tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionState:
        """Decode bytes written by :meth:`to_bytes`; raises StateFormatError if invalid."""
        if len(data) < HEADER_SIZE:
            raise StateFormatError(f"session state too short ({len(data)} bytes)")
        version, flags, model_fp, catalog_fp, n_events, n_hist, n_hidden = _HEADER.unpack_from(data)
        if version != FORMAT_VERSION:
            raise StateFormatError(f"unknown session state format version {version}")
        expected = HEADER_SIZE + 4 * n_hist + 4 * n_hidden
        if len(data) != expected:
            raise StateFormatError(
                f"session state has {len(data)} bytes, its header says {expected}"
            )
        history = np.frombuffer(data, dtype="<i4", count=n_hist, offset=HEADER_SIZE)
        hidden = None
        if flags & _FLAG_HIDDEN:
            hidden = np.frombuffer(
                data, dtype="<f4", count=n_hidden, offset=HEADER_SIZE + 4 * n_hist
            )
        return cls(
            model_fp=model_fp,
            catalog_fp=catalog_fp,
            n_events=n_events,
            history=history.astype(np.int32),
            hidden=None if hidden is None else hidden.astype(np.float32),
        )
