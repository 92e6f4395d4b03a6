"""SessionLog: the one structure every model and protocol consumes.

A CSR layout over sessions: session ``s`` holds the events
``items[offsets[s]:offsets[s+1]]`` in time order. Sessions themselves are ordered by
start time when times are known (file order otherwise). Optional per-event arrays
(``times``, ``event_types``) share the layout of ``items``; optional per-session
arrays (``users``, ``session_ids``) have one entry per session.

Items are dense ids from an :class:`~seqrec.data.idmap.ItemIndex`. A log encoded with
a frozen index (a test set) may contain ``-1`` for items the index does not know;
:meth:`SessionLog.drop_unknown` removes them and says how many.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True, eq=False)
class SessionLog:
    offsets: np.ndarray  # (n_sessions + 1,) int64, offsets[0] == 0
    items: np.ndarray  # (n_events,) int32 dense item ids
    times: np.ndarray | None = None  # (n_events,) float64 unix seconds
    event_types: np.ndarray | None = None  # (n_events,) int8 codes into event_type_names
    users: np.ndarray | None = None  # (n_sessions,) int64 dense user codes
    session_ids: np.ndarray | None = None  # (n_sessions,) external session keys (str)
    event_type_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "offsets", np.ascontiguousarray(self.offsets, dtype=np.int64))
        object.__setattr__(self, "items", np.ascontiguousarray(self.items, dtype=np.int32))
        if self.offsets.ndim != 1 or len(self.offsets) == 0 or self.offsets[0] != 0:
            raise ValueError("offsets must be 1-D and start with 0")
        if self.offsets[-1] != len(self.items):
            raise ValueError("offsets[-1] must equal the number of events")
        if np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must be non-decreasing")
        for name in ("times", "event_types"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != len(self.items):
                raise ValueError(f"{name} must have one entry per event")
        for name in ("users", "session_ids"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != self.n_sessions:
                raise ValueError(f"{name} must have one entry per session")

    # ------------------------------------------------------------------ basics
    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return self.n_sessions

    def session(self, s: int) -> np.ndarray:
        return self.items[self.offsets[s] : self.offsets[s + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for s in range(self.n_sessions):
            yield self.session(s)

    def __repr__(self) -> str:
        return f"SessionLog(n_sessions={self.n_sessions}, n_events={self.n_events})"

    def n_items_seen(self) -> int:
        known = self.items[self.items >= 0]
        return int(np.unique(known).size)

    def item_counts(self, n_items: int) -> np.ndarray:
        """Number of events of each dense item id (unknown ids ignored)."""
        known = self.items[self.items >= 0]
        return np.bincount(known, minlength=n_items).astype(np.int64)

    def session_index(self) -> np.ndarray:
        """(n_events,) the session number of every event."""
        return np.repeat(np.arange(self.n_sessions, dtype=np.int64), self.lengths)

    # ------------------------------------------------------------ construction
    @classmethod
    def from_sequences(
        cls, sequences: Sequence[Sequence[int]], times: Sequence[Sequence[float]] | None = None
    ) -> SessionLog:
        """Build from a list of dense-id sequences (one per session, in order)."""
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = (
            np.concatenate([np.asarray(s, dtype=np.int32) for s in sequences])
            if len(sequences)
            else np.zeros(0, dtype=np.int32)
        )
        t = None
        if times is not None:
            t = (
                np.concatenate([np.asarray(x, dtype=np.float64) for x in times])
                if len(times)
                else np.zeros(0)
            )
        return cls(offsets=offsets, items=items, times=t)

    def to_sequences(self) -> list[np.ndarray]:
        return [self.session(s) for s in range(self.n_sessions)]

    # --------------------------------------------------------------- selection
    def select_sessions(self, index: np.ndarray) -> SessionLog:
        """Sessions ``index`` (int indices or a boolean mask), in the given order."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        lengths = self.lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # event positions of the selected sessions, in order, without a Python loop
        starts = self.offsets[:-1][index]
        ev = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        return SessionLog(
            offsets=offsets,
            items=self.items[ev],
            times=None if self.times is None else self.times[ev],
            event_types=None if self.event_types is None else self.event_types[ev],
            users=None if self.users is None else self.users[index],
            session_ids=None if self.session_ids is None else self.session_ids[index],
            event_type_names=self.event_type_names,
        )

    def select_events(self, keep: np.ndarray) -> SessionLog:
        """Keep the events where boolean ``keep`` is true; sessions may become shorter
        (even empty: follow with :meth:`drop_short` to remove them)."""
        keep = np.asarray(keep, dtype=bool)
        sess = self.session_index()[keep]
        counts = np.bincount(sess, minlength=self.n_sessions)
        offsets = np.zeros(self.n_sessions + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return replace(
            self,
            offsets=offsets,
            items=self.items[keep],
            times=None if self.times is None else self.times[keep],
            event_types=None if self.event_types is None else self.event_types[keep],
        )

    def drop_short(self, min_length: int) -> SessionLog:
        """Remove sessions with fewer than ``min_length`` events."""
        return self.select_sessions(self.lengths >= min_length)

    def drop_unknown(self) -> tuple[SessionLog, int]:
        """Remove events whose item is unknown (-1); returns (log, number removed)."""
        keep = self.items >= 0
        n = int((~keep).sum())
        return (self if n == 0 else self.select_events(keep)), n
