"""Samples: explicit (prefix -> label) evaluation queries.

Used by the ``samples`` protocol (e.g. the SR-GNN ``test_samples.tsv``) and the
``last-item`` / leave-one-out protocol (prefix = the history before the last item).
Prefixes are stored as a :class:`SessionLog` (one "session" per query, CSR), labels as
dense ids. Both may contain ``-1`` (unknown to the model's ItemIndex): evaluation
drops unknown labels (counting them) and unknown prefix items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqrec.data.sessions import SessionLog


@dataclass(frozen=True, eq=False)
class Samples:
    prefixes: SessionLog  # one prefix per query, oldest item first
    labels: np.ndarray  # (n_queries,) int32 dense ids, -1 = unknown
    # leave-one-out queries (a user's history -> its next item): the history's items are
    # never recommended, so evaluation excludes them by default (as protocol last-item)
    exclude_history: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", np.ascontiguousarray(self.labels, dtype=np.int32))
        if len(self.labels) != self.prefixes.n_sessions:
            raise ValueError("need exactly one label per prefix")

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_lists(cls, prefixes: list[list[int]], labels: list[int]) -> Samples:
        return cls(SessionLog.from_sequences(prefixes), np.asarray(labels, dtype=np.int32))

    @classmethod
    def from_sessions(cls, log: SessionLog) -> Samples:
        """Every position t >= 1 of every session: prefix items[:t] -> label items[t]
        (each prefix keeps its session's id when the log has ``session_ids``)."""
        lens = np.diff(log.offsets).astype(np.int64)
        n_q = np.maximum(lens - 1, 0)  # queries per session
        starts = np.repeat(log.offsets[:-1].astype(np.int64), n_q)  # per query
        # t = 1..L-1 within each session: position in the run of its session's queries
        first = np.repeat(np.cumsum(n_q) - n_q, n_q)
        t = np.arange(int(n_q.sum()), dtype=np.int64) - first + 1  # prefix lengths
        offsets = np.concatenate([[0], np.cumsum(t)])
        # item positions of every prefix: starts[q] + 0..t[q]-1, without a Python loop
        pos = np.repeat(starts - offsets[:-1], t) + np.arange(int(offsets[-1]), dtype=np.int64)
        sids = None
        if log.session_ids is not None:
            sids = log.session_ids[np.repeat(np.arange(len(lens)), n_q)]
        prefixes = SessionLog(offsets=offsets, items=log.items[pos], session_ids=sids)
        return cls(prefixes, log.items[starts + t])

    @classmethod
    def last_item(cls, log: SessionLog) -> Samples:
        """Leave-one-out: prefix = all but the last item, label = the last item
        (histories shorter than 2 give no query)."""
        log = log.drop_short(2)
        last = log.offsets[1:] - 1
        keep = np.ones(log.n_events, dtype=bool)
        keep[last] = False
        return cls(log.select_events(keep), log.items[last])
