"""Padded, left-truncated sequence batches for non-recurrent models (SASRec, FPMC, Caser, ...).

A batch is two int64 arrays, ``T = max_len``:

* ``inputs``: each row is a window of one session's items in time order,
  **right-aligned**: the most recent item is in column ``T - 1`` and shorter windows are
  padded on the left with :data:`PAD` (-1). Sessions longer than the window are
  **left-truncated** (the oldest items are dropped, the most recent ``T`` kept). In the
  masked layout, masked positions hold :data:`MASK` (-2) instead of their item.
* ``targets``: ``(B, T)``, the item to predict at each position, or :data:`PAD` (-1)
  where there is nothing to predict (padding, unmasked positions, ...). Losses ignore
  those positions. The ``window`` layout's targets are ``(B, n_targets)`` instead: the
  next items after the window, all predicted from the window's one state.

When the batcher is given the user code of every session (``users``), a batch has a
third array: ``(B,)`` int64, the user of each sample's session (-1: unknown), for
networks that embed users (Caser); without it batches are the two arrays above.

Negative ids never collide with items (dense ids ``0..n_items-1``). The convention
(PAD, MASK, :func:`pad_histories` for inference, :func:`embedding_ids` mapping them to
embedding rows) lives in :mod:`seqrec.nn.padding`, which model files may import; it is
re-exported here.

Four target layouts (``layout``):

``causal``
    One sample per session (length >= 2): inputs ``x[0..n-2]``, targets ``x[1..n-1]`` -
    the next item at every position (SASRec-style causal models). The window holds the
    last ``T`` (input, target) pairs.
``masked``
    One sample per session (length >= 2): inputs are the last ``T`` items; every item is
    masked with probability ``mask_prob`` (a row without any masked item gets its last
    item masked) and predicted at its position (cloze models, BERT4Rec-style). At
    inference the history is followed by one :data:`MASK` (``pad_histories(...,
    append_mask=True)``), so the last position is always the one to predict.
``last``
    One sample per prefix: for every event ``j`` of a session that has a next event, the
    window ending at ``x[j]`` with the single target ``x[j + 1]`` in the last column
    (the prefix augmentation of session-based models: GRU4Rec's pairs, SR-GNN's samples).
``window``
    One sample per prefix, as ``last``: the window ending at ``x[j]`` (the last ``T``
    items, left-padded with PAD when fewer) and, as targets, the next ``n_targets``
    items ``x[j + 1 .. j + n_targets]`` (PAD past the session's end) - Caser's
    "L items -> the next T items" samples (Tang & Wang, WSDM 2018). The paper slides
    only full windows of ``L + T`` items; here every position of every session gives a
    sample (short windows left-padded, windows near the end with fewer targets), so the
    samples are the ``last`` layout's with more targets. A network trained on this
    layout returns one state per sample, ``(B, 1, d)``, scored against every target.

An epoch's plan (sample order and, for ``masked``, which events are masked) is drawn at
once with a numpy Generator seeded from ``(seed, epoch)``, so epochs are deterministic,
independent of each other and reproducible after a resume without any saved state.
Batches are then cut from the CSR arrays with vectorised index arithmetic (no Python
loop per event).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from seqrec.data.sessions import SessionLog
from seqrec.nn.padding import MASK, PAD, embedding_ids, pad_histories

__all__ = [
    "LAYOUTS",
    "MASK",
    "PAD",
    "EpochPlan",
    "SequenceBatcher",
    "embedding_ids",
    "pad_histories",
    "trim_batch",
]

Layout = Literal["causal", "masked", "last", "window"]
LAYOUTS: tuple[str, ...] = ("causal", "masked", "last", "window")


def trim_batch(
    inputs: np.ndarray, targets: np.ndarray, *rest: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Drop the leading columns that are PAD in every row: ``(B, T)`` -> ``(B, W)``,
    W = the batch's longest window (at least 1). ``targets`` is cut with ``inputs``
    when it has their width (causal, masked, last layouts; a column is kept when either
    array uses it) and left whole otherwise (window layout: ``(B, n_targets)``); further
    per-row arrays (users) pass through. Windows are right-aligned, so real positions
    keep their columns counted from the right; a network whose PAD keys are never
    attended and whose positions are counted from each row's first real item or from
    the last column gives the same states for them."""
    same = targets.shape == inputs.shape
    used = (inputs != PAD) | (targets != PAD) if same else inputs != PAD  # (B, T)
    cols = np.flatnonzero(used.any(0))
    first = int(cols[0]) if len(cols) else inputs.shape[1] - 1
    return (inputs[:, first:], targets[:, first:] if same else targets, *rest)


def _windows(items: np.ndarray, ends: np.ndarray, starts: np.ndarray, T: int) -> np.ndarray:
    """(B, T) int64: the events ``max(starts[b], ends[b]-T+1) .. ends[b]`` of ``items``,
    right-aligned, left-padded with PAD. ``ends`` inclusive, ``starts`` the first event
    allowed (the session's first)."""
    pos = ends[:, None] - (T - 1) + np.arange(T, dtype=np.int64)[None, :]  # (B, T)
    valid = pos >= starts[:, None]
    out = items[np.where(valid, pos, 0)].astype(np.int64)  # (B, T)
    out[~valid] = PAD
    return out


@dataclass(frozen=True)
class EpochPlan:
    """One epoch: the sample order and (masked layout) which events are masked."""

    order: np.ndarray  # (n_samples,) int64 permutation of the samples
    masked: np.ndarray | None  # (n_events,) bool, masked layout only
    n_targets: int  # positions with a target in the whole epoch


def _covered(n: int, lo: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(n,) bool: the events inside any of the ranges ``lo[k] .. end[k]`` (inclusive)."""
    edges = np.zeros(n + 1, dtype=np.int64)
    np.add.at(edges, lo, 1)
    np.add.at(edges, end + 1, -1)
    return np.cumsum(edges[:-1]).astype(bool)


class SequenceBatcher:
    """Cuts a :class:`SessionLog` into padded sequence batches (see the module doc).

    Args:
        log: the training sessions (sessions shorter than 2 are skipped).
        max_len: window length ``T`` (most recent items kept).
        layout: ``"causal"``, ``"masked"``, ``"last"`` or ``"window"``.
        mask_prob: masking probability of the masked layout.
        seed: seed of the per-epoch numpy Generators.
        shuffle: shuffle the samples every epoch (else the log's order).
        sort_pool: with ``shuffle``, > 0 groups samples of similar length into the same
            batch: the shuffled samples are cut into pools of ``sort_pool`` batches, each
            pool is sorted by window length and cut into batches, and the order of the
            epoch's full batches is shuffled (the last, partial batch stays last). With
            :func:`trim_batch` a batch then costs its own longest window, not ``T``
            (S3-Rec Beauty: mean window 5.7 of ``T`` = 50). 0 = plain shuffling.
        batch_size: the batch size the sort pools are cut into (needed with ``sort_pool``).
        n_targets: window layout: the next items predicted from each window (others: 1).
        users: ``(n_sessions,)`` int64 user code of every session of ``log`` (-1:
            unknown): batches then carry each sample's user as a third array.
    """

    def __init__(
        self,
        log: SessionLog,
        max_len: int,
        layout: Layout = "causal",
        *,
        mask_prob: float = 0.2,
        mask_last_prob: float = 0.0,
        seed: int = 0,
        shuffle: bool = True,
        sort_pool: int = 0,
        batch_size: int = 0,
        n_targets: int = 1,
        users: np.ndarray | None = None,
    ) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        if layout == "masked" and not 0.0 < mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob}")
        if not 0.0 <= mask_last_prob <= 1.0:
            raise ValueError(f"mask_last_prob must be in [0, 1], got {mask_last_prob}")
        if n_targets < 1 or (n_targets > 1 and layout != "window"):
            raise ValueError(
                f"n_targets must be 1, or >= 1 with the window layout, got {n_targets}"
            )
        if users is not None and len(users) != log.n_sessions:
            raise ValueError(
                f"users must have one code per session ({log.n_sessions}), got {len(users)}"
            )
        self.items = np.asarray(log.items, dtype=np.int64)  # (n_events,)
        if self.items.size and self.items.min() < 0:
            raise ValueError("the log holds unknown items (-1); drop them first")
        self.T, self.layout, self.mask_prob = int(max_len), layout, float(mask_prob)
        self.mask_last_prob = float(mask_last_prob)
        self.seed, self.shuffle, self.n_targets = int(seed), bool(shuffle), int(n_targets)
        if sort_pool < 0 or (sort_pool and batch_size < 1):
            raise ValueError("sort_pool must be >= 0 and needs batch_size >= 1")
        self.sort_pool, self.pool_batch = int(sort_pool), int(batch_size)
        lengths = log.lengths
        sess = np.flatnonzero(lengths >= 2)  # sessions with a training pair
        first = log.offsets[:-1][sess]  # (S,) first event
        last = log.offsets[1:][sess] - 1  # (S,) last event
        if layout in ("last", "window"):  # one sample per event that has a next event
            pairs = lengths[sess] - 1
            starts = np.repeat(first, pairs)
            ends = starts + np.arange(int(pairs.sum())) - np.repeat(np.cumsum(pairs) - pairs, pairs)
            self._starts, self._ends = starts, ends  # window x[start..end], target end + 1
            self._lasts = np.repeat(last, pairs)  # (n_samples,) the session's last event
            sample_sess = np.repeat(sess, pairs)
            self._fixed_targets = int(np.minimum(self._lasts - ends, self.n_targets).sum())
        elif layout == "causal":
            self._starts, self._ends = first, last - 1  # inputs end before the last item
            sample_sess = sess
            self._fixed_targets = int(np.minimum(lengths[sess] - 1, self.T).sum())
        else:
            self._starts, self._ends = first, last
            sample_sess = sess
            self._fixed_targets = -1
        self._users = (
            None if users is None else np.asarray(users, dtype=np.int64)[sample_sess]
        )  # (n_samples,) the user of each sample, or None

    @property
    def n_samples(self) -> int:
        return len(self._ends)

    def plan(self, epoch: int) -> EpochPlan:
        rng = np.random.default_rng([self.seed, epoch])
        n = self.n_samples
        order = rng.permutation(n) if self.shuffle else np.arange(n, dtype=np.int64)
        if self.shuffle and self.sort_pool:
            order = self._pooled(order, rng)
        if self.layout != "masked":
            return EpochPlan(order=order, masked=None, n_targets=self._fixed_targets)
        masked = rng.random(len(self.items)) < self.mask_prob  # (n_events,)
        # events inside each window: the last T of the session
        lo = np.maximum(self._starts, self._ends - self.T + 1)  # (S,)
        masked &= _covered(len(self.items), lo, self._ends)
        if self.mask_last_prob > 0:  # drawn after the masks: plans without it are unchanged
            last_only = rng.random(len(self._ends)) < self.mask_last_prob  # (S,)
            # those windows: no drawn mask, but their last item
            masked &= ~_covered(len(self.items), lo[last_only], self._ends[last_only])
            masked[self._ends[last_only]] = True
        csum = np.concatenate([[0], np.cumsum(masked)])
        none = csum[self._ends + 1] - csum[lo] == 0  # (S,) windows without a masked item
        masked[self._ends[none]] = True
        return EpochPlan(order=order, masked=masked, n_targets=int(masked.sum()))

    def _pooled(self, order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``order`` regrouped so that each batch holds samples of similar window length
        (see ``sort_pool``); a permutation of the same samples."""
        bs = self.pool_batch
        width = np.minimum(self._ends - self._starts + 1, self.T)[order]  # (n,)
        pool = self.sort_pool * bs
        chunks = [
            order[lo : lo + pool][np.argsort(width[lo : lo + pool], kind="stable")]
            for lo in range(0, len(order), pool)
        ]
        regrouped = np.concatenate(chunks) if chunks else order
        n_full = len(regrouped) // bs
        blocks = rng.permutation(n_full)
        head = regrouped[: n_full * bs].reshape(n_full, bs)[blocks].reshape(-1)
        return np.concatenate([head, regrouped[n_full * bs :]])

    def batch(self, samples: np.ndarray, plan: EpochPlan) -> tuple[np.ndarray, ...]:
        """(inputs, targets[, users]) for the given sample ids: inputs ``(B, T)``,
        targets ``(B, T)`` (``(B, n_targets)`` in the window layout), users ``(B,)``
        when the batcher was given users."""
        starts, ends = self._starts[samples], self._ends[samples]
        T = self.T
        if self.layout == "causal":
            inputs = _windows(self.items, ends, starts, T)
            targets = _windows(self.items, ends + 1, starts + 1, T)  # same positions, +1
        elif self.layout == "last":
            inputs = _windows(self.items, ends, starts, T)
            targets = np.full_like(inputs, PAD)
            targets[:, -1] = self.items[ends + 1]
        elif self.layout == "window":
            inputs = _windows(self.items, ends, starts, T)
            pos = ends[:, None] + 1 + np.arange(self.n_targets)[None, :]  # (B, n_targets)
            valid = pos <= self._lasts[samples][:, None]
            targets = np.where(valid, self.items[np.where(valid, pos, 0)], PAD)
        else:
            assert plan.masked is not None
            inputs = _windows(self.items, ends, starts, T)
            pos = ends[:, None] - (T - 1) + np.arange(T)[None, :]  # (B, T) event index
            hit = (inputs >= 0) & plan.masked[np.maximum(pos, 0)]
            targets = np.where(hit, inputs, PAD)
            inputs = np.where(hit, MASK, inputs)
        if self._users is None:
            return inputs, targets
        return inputs, targets, self._users[samples]

    def batches(
        self, epoch: int, batch_size: int, plan: EpochPlan | None = None
    ) -> Iterator[tuple[np.ndarray, ...]]:
        """The epoch's batches in order (the last one may be smaller)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        plan = plan if plan is not None else self.plan(epoch)
        for lo in range(0, self.n_samples, batch_size):
            yield self.batch(plan.order[lo : lo + batch_size], plan)
