"""Session indexes of the neighbourhood models (SKNN family, STAN): flat CSR numpy arrays.

:func:`build_index` renumbers the non-empty training sessions by recency (their last
timestamp, or their order in the log when it has no times; ties keep log order), so a
larger session id is a more recent session, and builds

* ``sess_offsets``, ``sess_items``: ``session -> items``, the distinct items of every
  session (CSR, items ascending within a session);
* ``item_offsets``, ``item_sessions``: ``item -> sessions``, for every item the ids of
  the most recent sessions containing it, most recent first, at most ``cap`` of them;
* ``idf``: ``log(n_sessions / df(i))``, ``df(i)`` the number of sessions containing
  ``i`` (0 for an item no session contains).

With ``sequences=True`` (STAN) it adds what the order of the events tells:

* ``sess_pos``: parallel to ``sess_items``, the 1-based position of the item's most
  recent occurrence in the session's event sequence;
* ``item_pos``: parallel to ``item_sessions``, the same position for each posting;
* ``sess_events``: the number of events of each session (its length, repeats counted);
* ``sess_time``: the time of each session's last event (float seconds), or, when the
  log has no times, the session's recency rank (0, 1, 2, ...: its id).

:func:`gather` reads many CSR rows at once, without a Python loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqrec.data.sessions import SessionLog


def gather(
    offsets: np.ndarray, values: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The concatenated CSR rows ``rows`` of (offsets, values) and each value's row position."""
    starts = offsets[rows]
    lens = offsets[rows + 1] - starts
    total = int(lens.sum())
    which = np.repeat(np.arange(len(rows)), lens)
    within = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    return values[np.repeat(starts, lens) + within], which


def recency_order(train: SessionLog) -> np.ndarray:
    """Indices of the non-empty sessions of ``train``, least recent first."""
    keep = np.flatnonzero(train.lengths > 0)
    if train.times is None:
        return keep
    last_time = train.times[train.offsets[1:][keep] - 1]
    return keep[np.argsort(last_time, kind="stable")]


def build_index(
    train: SessionLog, n_items: int, cap: int, *, sequences: bool = False
) -> dict[str, np.ndarray]:
    """The index arrays (see the module docstring)."""
    lengths = train.lengths
    order = recency_order(train)
    n_sess = len(order)
    new_id = np.empty(train.n_sessions, dtype=np.int64)
    new_id[order] = np.arange(n_sess)
    event_sess = new_id[np.repeat(np.arange(train.n_sessions), lengths)]
    keys = event_sess * n_items + train.items.astype(np.int64)
    # distinct (session, item) pairs, sorted; a stable sort keeps the events of a pair in
    # time order, so the last of each run is the item's most recent occurrence
    by_key = np.argsort(keys, kind="stable")
    sorted_keys = keys[by_key]
    last = np.ones(len(sorted_keys), dtype=bool)
    last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    pairs = sorted_keys[last]
    sess = pairs // n_items
    items = pairs % n_items
    sess_offsets = np.zeros(n_sess + 1, dtype=np.int64)
    np.cumsum(np.bincount(sess, minlength=n_sess), out=sess_offsets[1:])
    # item -> sessions, most recent (largest id) first, capped
    by_item = np.lexsort((-sess, items))
    it, se = items[by_item], sess[by_item]
    df = np.bincount(it, minlength=n_items)
    starts = np.concatenate(([0], np.cumsum(df)[:-1]))
    rank = np.arange(len(it)) - np.repeat(starts, df)
    kept = rank < cap
    item_offsets = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.minimum(df, cap), out=item_offsets[1:])
    idf = np.zeros(n_items, dtype=np.float64)
    seen = df > 0
    idf[seen] = np.log(n_sess / df[seen])
    index = {
        "sess_offsets": sess_offsets,
        "sess_items": items.astype(np.int64),
        "item_offsets": item_offsets,
        "item_sessions": se[kept].astype(np.int64),
        "idf": idf,
    }
    if sequences:
        pos = np.arange(train.n_events) - np.repeat(train.offsets[:-1], lengths) + 1
        sess_pos = pos[by_key][last].astype(np.int64)
        index["sess_pos"] = sess_pos
        index["item_pos"] = sess_pos[by_item][kept]
        index["sess_events"] = lengths[order].astype(np.int64)
        if train.times is None:
            index["sess_time"] = np.arange(n_sess, dtype=np.float64)
        else:
            index["sess_time"] = train.times[train.offsets[1:][order] - 1].astype(np.float64)
    return index


def index_tensors(index: dict[str, np.ndarray], keys: tuple[str, ...]) -> dict[str, Any]:
    """The arrays ``keys`` of an index as tensors (what a kNN model saves; torch is
    imported here only, the data layer otherwise stays numpy)."""
    import torch

    return {key: torch.from_numpy(np.ascontiguousarray(index[key])) for key in keys}


def index_arrays(weights: dict[str, Any], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` back from saved tensors; ValueError naming any that is missing
    (the model then checks their shapes against each other)."""
    missing = [k for k in keys if k not in weights]
    if missing:
        raise ValueError(f"missing index arrays: {', '.join(missing)}")
    return {k: weights[k].numpy() for k in keys}
