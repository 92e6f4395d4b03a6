"""Mini-batch construction.

Session-parallel mini-batches (GRU4Rec): ``B`` slots run side by side; at every step
each slot feeds the current item of its session and predicts the next one. When a
session runs out of (input, target) pairs its slot takes the next session in order and
that slot's hidden state is reset. When no session is left, slots fall idle one by one
(the batch shrinks at the very end of the epoch), so every (input, target) pair of
every session is trained on exactly once.

The whole epoch is planned up front into ``(n_steps, B)`` arrays with numpy (no
per-event Python objects); the training loop then only slices rows.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from seqrec.data.sessions import SessionLog


@dataclass(frozen=True)
class ParallelPlan:
    inputs: np.ndarray  # (n_steps, B) int64 input item per slot, -1 = idle slot
    targets: np.ndarray  # (n_steps, B) int64 target item per slot, -1 = idle slot
    resets: np.ndarray  # (n_steps, B) bool: slot starts a new session at this step
    n_pairs: int  # number of (input, target) training pairs in the epoch

    @property
    def n_steps(self) -> int:
        return self.inputs.shape[0]

    def steps(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for t in range(self.n_steps):
            yield self.inputs[t], self.targets[t], self.resets[t]


def assign_slots(pairs: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Slot and start step of each session (in the given order), each taking the slot
    that frees first (lowest slot number on ties). ``pairs[s]`` = steps session s
    needs (its length - 1); sessions with 0 pairs must be removed beforehand."""
    n = len(pairs)
    slot = np.empty(n, dtype=np.int64)
    start = np.empty(n, dtype=np.int64)
    heap = [(0, k) for k in range(batch_size)]
    pairs_list = pairs.tolist()
    heappop, heappush = heapq.heappop, heapq.heappush
    for s in range(n):
        t, k = heappop(heap)
        slot[s] = k
        start[s] = t
        heappush(heap, (t + pairs_list[s], k))
    return slot, start


def session_parallel_plan(
    log: SessionLog, batch_size: int, order: np.ndarray | None = None
) -> ParallelPlan:
    """Plan one epoch of session-parallel mini-batches over ``log``.

    ``order``: session processing order (default: the log's order, i.e. by start time).
    Sessions shorter than 2 have no training pair and are skipped.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if order is None:
        order = np.arange(log.n_sessions)
    lengths = log.lengths[order]
    keep = lengths >= 2
    order, lengths = order[keep], lengths[keep]
    pairs = lengths - 1
    n_pairs = int(pairs.sum())
    slot, start = assign_slots(pairs, batch_size)
    n_steps = int((start + pairs).max()) if len(pairs) else 0
    inputs = np.full((n_steps, batch_size), -1, dtype=np.int64)
    targets = np.full((n_steps, batch_size), -1, dtype=np.int64)
    resets = np.zeros((n_steps, batch_size), dtype=bool)
    if n_pairs:
        # flatten all pairs: session k contributes pairs j = 0..pairs[k]-1
        pair_sess = np.repeat(np.arange(len(pairs)), pairs)
        first = np.zeros(len(pairs) + 1, dtype=np.int64)
        np.cumsum(pairs, out=first[1:])
        j = np.arange(n_pairs, dtype=np.int64) - first[pair_sess]
        ev = log.offsets[order][pair_sess] + j  # event index of the input item
        step = start[pair_sess] + j
        col = slot[pair_sess]
        inputs[step, col] = log.items[ev]
        targets[step, col] = log.items[ev + 1]
        resets[start, slot] = True
    return ParallelPlan(inputs=inputs, targets=targets, resets=resets, n_pairs=n_pairs)
