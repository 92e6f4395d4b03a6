"""Filters and splits over a SessionLog; every function reports what it dropped.

* :func:`sessionize` - split each user's events into sessions at inactivity gaps.
* :func:`drop_short_sessions`, :func:`min_item_support` (iterative), :func:`sort_by_time`.
* :func:`time_split` / :func:`valid_split` - the GRU4Rec split: test = sessions that
  START in the last D days; test events with items unseen in train are removed; test
  sessions then shorter than 2 are dropped.
* :func:`leave_one_out` - SASRec convention for user histories: train = history[:-2],
  valid = history[:-2] -> history[-2], test = history[:-1] -> history[-1].
* :func:`compact_items` - drop items without events from an ItemIndex (re-numbering).
"""

from __future__ import annotations

import numpy as np

from seqrec.data.idmap import ItemIndex
from seqrec.data.report import DataReport
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, DataError

DAY = 86400.0


def sessionize(users: np.ndarray, times: np.ndarray, gap_seconds: float) -> np.ndarray:
    """Session number of every event: a user's events (sorted by time, stable) start a new
    session after a gap of more than ``gap_seconds``. Numbers are dense, in (user, time)
    order; the result is aligned with the input (any order).

    >>> sessionize(np.array([0, 0, 0, 1]), np.array([0.0, 60.0, 4000.0, 10.0]), 1800)
    array([0, 0, 1, 2])
    """
    users = np.asarray(users)
    times = np.asarray(times, dtype=np.float64)
    if len(users) == 0:
        return np.zeros(0, dtype=np.int64)
    o = np.argsort(times, kind="stable")
    o = o[np.argsort(users[o], kind="stable")]
    u, t = users[o], times[o]
    new = np.empty(len(o), dtype=bool)
    new[0] = True
    new[1:] = (u[1:] != u[:-1]) | (np.diff(t) > gap_seconds)
    out = np.empty(len(o), dtype=np.int64)
    out[o] = np.cumsum(new) - 1
    return out


def drop_short_sessions(log: SessionLog, min_length: int = 2) -> tuple[SessionLog, DataReport]:
    """Remove sessions with fewer than ``min_length`` events."""
    report = DataReport()
    keep = log.lengths >= min_length
    n_drop = int((~keep).sum())
    report.add("filter", f"sessions shorter than {min_length} dropped", n_drop)
    report.add(
        "filter",
        f"events in sessions shorter than {min_length} dropped",
        int(log.lengths[~keep].sum()),
    )
    return (log if n_drop == 0 else log.select_sessions(keep)), report


def min_item_support(
    log: SessionLog, min_support: int = 5, min_length: int = 2, max_rounds: int = 100
) -> tuple[SessionLog, DataReport]:
    """Repeat until stable: drop events of items with fewer than ``min_support`` events,
    then sessions shorter than ``min_length``. Unknown (-1) items are left alone."""
    report = DataReport()
    n_events, n_sessions = log.n_events, log.n_sessions
    rounds = 0
    while rounds < max_rounds:
        n_items = int(log.items.max()) + 1 if log.n_events else 0
        counts = log.item_counts(n_items)
        rare = (log.items >= 0) & (counts[np.maximum(log.items, 0)] < min_support)
        short = log.lengths < min_length
        if not rare.any() and not short.any():
            break
        rounds += 1
        log = log.select_events(~rare).drop_short(min_length)
    report.add(
        "filter",
        f"events dropped (items with support < {min_support}, or in sessions "
        f"shorter than {min_length}; {rounds} round(s))",
        n_events - log.n_events,
    )
    report.add("filter", "sessions dropped by the item-support filter", n_sessions - log.n_sessions)
    return log, report


def sort_by_time(log: SessionLog) -> tuple[SessionLog, DataReport]:
    """Events inside sessions by time (stable), sessions by start time (stable)."""
    report = DataReport()
    if log.times is None:
        raise DataError("sort_by_time needs timestamps; this log has none")
    sess = log.session_index()
    o = np.argsort(log.times, kind="stable")
    o = o[np.argsort(sess[o], kind="stable")]
    moved_ev = int((o != np.arange(log.n_events)).sum())
    log = _take_events(log, o)
    nonempty = log.lengths > 0
    start = np.full(log.n_sessions, -np.inf)
    start[nonempty] = log.times[log.offsets[:-1][nonempty]]
    order = np.argsort(start, kind="stable")
    moved_s = int((order != np.arange(log.n_sessions)).sum())
    report.add("sort", "events moved by the in-session time sort", moved_ev)
    report.add("sort", "sessions moved by the start-time sort", moved_s)
    return log.select_sessions(order), report


def _take_events(log: SessionLog, order: np.ndarray) -> SessionLog:
    """Reorder events (``order`` must keep every event inside its own session)."""
    from dataclasses import replace

    return replace(
        log,
        items=log.items[order],
        times=None if log.times is None else log.times[order],
        event_types=None if log.event_types is None else log.event_types[order],
    )


def time_split(log: SessionLog, days: float) -> tuple[SessionLog, SessionLog, DataReport]:
    """(train, test, report): test = sessions whose start time is in the last ``days`` days
    (start >= last event time - days * 86400); test events with items not in train
    removed, then test sessions shorter than 2 dropped. Train is kept as is."""
    if log.times is None:
        raise DataError("a time split needs timestamps; this data has none")
    if days <= 0:
        raise DataError(f"split days must be positive, got {days}")
    report = DataReport()
    if log.n_events == 0:
        raise DataError("cannot split an empty log")
    cutoff = float(log.times.max()) - days * DAY
    nonempty = log.lengths > 0
    start = np.full(log.n_sessions, -np.inf)  # empty sessions count as train
    start[nonempty] = np.minimum.reduceat(log.times, log.offsets[:-1][nonempty])
    is_test = start >= cutoff
    train = log.select_sessions(~is_test)
    test = log.select_sessions(is_test)
    report.add("split", f"train sessions (start < last time - {days:g} days)", train.n_sessions)
    report.add("split", "test sessions", test.n_sessions)
    seen = np.zeros(max(int(log.items.max()) + 1, 1), dtype=bool)
    seen[train.items[train.items >= 0]] = True
    keep = (test.items >= 0) & seen[np.maximum(test.items, 0)]
    report.add("split", "test events with items not in train removed", int((~keep).sum()))
    test = test.select_events(keep)
    test, rep = drop_short_sessions(test, 2)
    report.add(
        "split",
        "test sessions shorter than 2 dropped",
        rep.get("filter", "sessions shorter than 2 dropped", 0) or 0,
    )
    report.add(
        "split",
        "test events in sessions shorter than 2 dropped",
        rep.get("filter", "events in sessions shorter than 2 dropped", 0) or 0,
    )
    return train, test, report


def valid_split(train: SessionLog, days: float) -> tuple[SessionLog, SessionLog, DataReport]:
    """The time split applied to a training log: (train_tr, valid, report)."""
    tr, va, report = time_split(train, days)
    report.entries = [e._replace(stage="valid-split") for e in report.entries]
    return tr, va, report


def carve_validation(
    train: SessionLog, valid_days: float | None, valid_fraction: float
) -> tuple[SessionLog, SessionLog]:
    """Split a training log into (train, valid) without looking at any test data: the
    sessions starting in the last ``valid_days`` days (needs times), else the last
    ``valid_fraction`` of sessions; validation events with items not in the new train
    part are dropped, then validation sessions shorter than 2. Used by ``seqrec tune``
    and by hybrids tuning their weights."""
    if valid_days is not None:
        if train.times is None:
            raise ConfigError(
                "--valid-days (valid_days) needs timestamps; this data has none "
                "(use --valid-fraction / valid_fraction)"
            )
        tr, va, _ = time_split(train, valid_days)
        return tr, va
    if not 0 < valid_fraction < 1:
        raise ConfigError("--valid-fraction (valid_fraction) must be in (0, 1)")
    n_valid = max(1, round(train.n_sessions * valid_fraction))
    tr = train.select_sessions(np.arange(train.n_sessions - n_valid))
    va = train.select_sessions(np.arange(train.n_sessions - n_valid, train.n_sessions))
    seen = np.zeros(int(train.items.max()) + 1, dtype=bool)
    seen[tr.items] = True
    va = va.select_events(seen[va.items]).drop_short(2)
    return tr, va


def leave_one_out(log: SessionLog) -> tuple[SessionLog, Samples, Samples, DataReport]:
    """SASRec split of user histories: (train, valid, test, report).

    train = history[:-2]; valid sample = history[:-2] -> history[-2]; test sample =
    history[:-1] -> history[-1]. Histories with fewer than 3 items stay whole in train
    and give no valid / test sample (as in SASRec; counted in the report).
    """
    report = DataReport()
    lengths = log.lengths
    full = lengths >= 3
    report.add("split", "histories", log.n_sessions)
    report.add(
        "split", "histories shorter than 3 (all in train, no valid/test sample)", int((~full).sum())
    )
    ends = log.offsets[1:]
    keep = np.ones(log.n_events, dtype=bool)
    keep[ends[full] - 1] = False
    keep[ends[full] - 2] = False
    train = log.select_events(keep)
    report.add("split", "events held out of train (valid + test labels)", int((~keep).sum()))
    sub = log.select_sessions(full)
    last = sub.offsets[1:] - 1
    drop_last = np.ones(sub.n_events, dtype=bool)
    drop_last[last] = False
    test_prefix = sub.select_events(drop_last)  # history[:-1]
    test = Samples(test_prefix, sub.items[last], exclude_history=True)
    last2 = test_prefix.offsets[1:] - 1
    drop_last2 = np.ones(test_prefix.n_events, dtype=bool)
    drop_last2[last2] = False
    valid = Samples(
        test_prefix.select_events(drop_last2), test_prefix.items[last2], exclude_history=True
    )
    report.add("split", "valid samples", len(valid))
    report.add("split", "test samples", len(test))
    return train, valid, test, report


def compact_items(log: SessionLog, index: ItemIndex) -> tuple[SessionLog, ItemIndex, DataReport]:
    """Remove items without events from ``index`` (dense ids renumbered in old order)."""
    report = DataReport()
    present = np.zeros(len(index), dtype=bool)
    present[log.items[log.items >= 0]] = True
    report.add("filter", "items without events removed from the index", int((~present).sum()))
    if present.all():
        return log, index, report
    remap = np.full(len(index), -1, dtype=np.int32)
    remap[present] = np.arange(int(present.sum()), dtype=np.int32)
    new_index = ItemIndex(index.decode(np.flatnonzero(present)))
    items = np.where(log.items >= 0, remap[np.maximum(log.items, 0)], -1)
    from dataclasses import replace

    return replace(log, items=items), new_index, report
