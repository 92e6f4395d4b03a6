"""Offline evaluation: full ranking over the catalogue, explicit protocols and tie policy.

Evaluation sees a model only through the protocols of :mod:`seqrec.models.base`:
``model.score(histories) -> (B, n_items)`` and, for recurrent models,
``model.init_state(B)`` / ``model.step(state, items) -> (state, (B, n_items))``;
``model.n_items_`` is the catalogue size. It never imports a model class. A model that
scores known users (``uses_users = True``, :func:`~seqrec.models.base.takes_users`) is
called as ``score(histories, users=...)`` with the external user id of every query: the
``session_ids`` of the evaluated log (next-item: the query's session; samples and
last-item: the prefix's, which the leave-one-out split of user histories keeps: the
user ids), or ``users=None`` when the data carries no ids. The recurrent ``step`` path
passes no users.

Pieces:

* metrics as pure functions over 1-based ranks (:func:`recall_at_k`, :func:`mrr_at_k`,
  :func:`ndcg_at_k`) and over top-K lists (:func:`coverage_at_k`,
  :func:`popularity_at_k`);
* :func:`target_ranks`: the rank of each target in a (B, n_items) score matrix under a
  tie policy, computed by comparing with the target's score (no sort);
* :func:`evaluate`: one entry point for the ``next-item``, ``samples`` and
  ``last-item`` protocols, streaming queries in batches so that at most
  ``batch_size x n_items`` scores exist at any time.

Tie policies (``ties=``):

* ``optimistic``: rank = 1 + #items scoring strictly higher than the target;
* ``conservative`` (default): rank = #items scoring >= the target, the target included,
  so every tie counts against the model (a constant model ranks every target last);
* ``average``: the mean of the two (ranks may end in .5).

Inside :func:`evaluate` ranks are exact up to the largest K and ``inf`` beyond (no
metric looks further): they are read off the per-batch top-K (needed anyway for
coverage and popularity), and only rows where the K-th score ties the target's score
are counted over the whole catalogue.

Sampled ranking, only when asked (``sampled_negatives=N``): each target is ranked among
itself and N items sampled for its query (:class:`seqrec.data.negatives.QueryNegatives`:
never in the query's history nor the target, uniform or in proportion to training
popularity, seeded per query), under the same tie policy; the result says so in
``ranking``. It is the protocol of papers that report sampled metrics, and it is not
comparable with full ranking: a target ranked 500th in the catalogue is often 1st among
100 candidates, so sampled figures are much higher and can even order models
differently (Krichene & Rendle, KDD 2020).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from seqrec.data.negatives import SAMPLERS, QueryNegatives
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import SeqrecError
from seqrec.models.base import is_recurrent, takes_users

PROTOCOLS = ("next-item", "samples", "last-item")
# what the validation after every training epoch reports (and early stopping can watch)
VALID_METRICS = ("recall@20", "mrr@20", "recall@10", "ndcg@10")
TIE_POLICIES = ("optimistic", "conservative", "average")
UNKNOWN_POLICIES = ("drop", "miss")

# With batch_size=None, a batch holds about this many scores (64 MiB of float32).
SCORE_BUDGET = 1 << 24

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]


# --------------------------------------------------------------------------- metrics
def _ranks(ranks: ArrayLike) -> np.ndarray:
    if isinstance(ranks, torch.Tensor):
        ranks = ranks.detach().cpu().numpy()
    return np.asarray(ranks, dtype=np.float64).reshape(-1)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan


def recall_at_k(ranks: ArrayLike, k: int) -> float:
    """Share of queries whose target ranks within the top ``k`` (= HR@K, one target per
    query). ``ranks`` are 1-based (``inf`` = a miss); NaN when there are no queries."""
    r = _ranks(ranks)
    return _mean((r <= k).astype(np.float64))


def mrr_at_k(ranks: ArrayLike, k: int) -> float:
    """Mean of ``1 / rank`` over queries, counting 0 for ranks beyond ``k``."""
    r = _ranks(ranks)
    hit = r <= k
    return _mean(np.where(hit, 1.0 / np.where(hit, r, 1.0), 0.0))


def ndcg_at_k(ranks: ArrayLike, k: int) -> float:
    """Mean of ``1 / log2(rank + 1)`` over queries, counting 0 for ranks beyond ``k``
    (one relevant item per query, so the ideal DCG is 1)."""
    r = _ranks(ranks)
    hit = r <= k
    return _mean(np.where(hit, 1.0 / np.log2(np.where(hit, r, 1.0) + 1.0), 0.0))


def coverage_at_k(top_items: np.ndarray, k: int, n_items: int) -> float:
    """Distinct items in any of the top-``k`` lists, as a share of the catalogue.

    ``top_items`` is a (n_queries, >=k) array of dense ids, best first; ``-1`` entries
    (no recommendation) are ignored."""
    top = np.asarray(top_items)[:, :k].reshape(-1)
    return float(np.unique(top[top >= 0]).size) / n_items


def popularity_at_k(top_items: np.ndarray, k: int, item_popularity: ArrayLike) -> float:
    """Mean training popularity of the recommended items, over every entry of every
    top-``k`` list (``-1`` entries ignored; NaN if there are none).

    ``item_popularity`` holds training event counts per dense id; the result is
    normalised as a fraction of all training events, i.e. the mean of
    ``count[item] / sum(count)`` (so a model recommending only an item that makes 5% of
    the training clicks scores 0.05)."""
    pop = _ranks(item_popularity)
    frac = pop / pop.sum() if pop.sum() > 0 else pop
    top = np.asarray(top_items)[:, :k].reshape(-1)
    return _mean(frac[top[top >= 0]])


def target_ranks(
    scores: torch.Tensor, targets: torch.Tensor, ties: str = "conservative"
) -> torch.Tensor:
    """(B,) float64 1-based rank of ``targets[b]`` among ``scores[b]`` under ``ties``.

    Computed by counting items that score higher than (or as high as) the target, with
    no sort. Items at ``-inf`` (excluded) still count when the target is ``-inf`` too:
    an excluded target ranks below every finite item. NaN scores raise SeqrecError."""
    _check_choice("ties", ties, TIE_POLICIES)
    if torch.isnan(scores).any():
        raise SeqrecError("model returned NaN scores")
    t = scores.gather(1, targets.view(-1, 1).to(scores.device))  # (B, 1)
    return _count_rank(scores, t, ties, torch.float64)


def sampled_ranks(
    scores: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, ties: str
) -> torch.Tensor:
    """(B,) float64 1-based rank of ``targets[b]`` among itself and the items
    ``negatives[b]`` (B, N) of ``scores[b]``, under ``ties`` (1 .. 1 + N): sampled
    ranking. The negatives must not contain the target."""
    _check_choice("ties", ties, TIE_POLICIES)
    t = scores.gather(1, targets.view(-1, 1).to(scores.device))  # (B, 1)
    cand = torch.cat([t, scores.gather(1, negatives)], dim=1)  # (B, 1 + N), target first
    if torch.isnan(cand).any():
        raise SeqrecError("model returned NaN scores")
    return _count_rank(cand, t, ties, torch.float64)


def _count_rank(values: Any, t: Any, ties: str, f64: Any) -> Any:
    """Rank of the target score ``t`` (B, 1) among ``values`` (B, N): numpy or torch."""
    if ties == "optimistic":
        return (values > t).sum(1, dtype=f64) + 1.0
    geq = (values >= t).sum(1, dtype=f64)  # the target itself included
    if ties == "conservative":
        return geq
    return ((values > t).sum(1, dtype=f64) + 1.0 + geq) / 2.0


def _ranks_from_top(top: np.ndarray, t: np.ndarray, ties: str) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of target scores ``t`` (B,) from the (B, K) descending top scores: exact up
    to K, ``inf`` beyond (no metric @K looks further). Returns (ranks, rows whose rank
    needs a count over the whole catalogue).

    If the K-th best score is below the target's, every item scoring >= the target is
    in the top K, so counting there is exact; if it is above, the rank exceeds K. Only
    rows where the K-th score ties the target's need the full count. This avoids
    comparing and summing B x n_items values per batch."""
    ranks = _count_rank(top, t[:, None], ties, np.float64)
    last = top[:, -1]
    ranks[last > t] = np.inf
    return ranks, np.flatnonzero(last == t)


# ------------------------------------------------------------------- accumulation
class _Accumulator:
    """Streams batches of scores into ranks and top-K statistics (kept as small numpy
    arrays: per-query ranks, each item's best top-K position, popularity per position)."""

    def __init__(
        self,
        n_items: int,
        ks: tuple[int, ...],
        ties: str,
        pop: np.ndarray | None,
        negatives: QueryNegatives | None = None,
    ):
        self.n_items, self.ks, self.ties = n_items, ks, ties
        self.negatives = negatives  # None: full ranking
        self.kmax = min(max(ks), n_items)
        self.ranks: list[np.ndarray] = []
        self.best_pos = np.full(n_items, self.kmax, dtype=np.int64)  # best position seen
        self.pop_sum = np.zeros(self.kmax)  # per list position: summed popularity
        self.pop_cnt = np.zeros(self.kmax)  # per list position: number of entries
        self.pop_frac = None if pop is None else pop / pop.sum() if pop.sum() > 0 else pop

    def sample(
        self, qids: np.ndarray, targets: np.ndarray, histories: Sequence[np.ndarray]
    ) -> torch.Tensor | None:
        """Sampled ranking: the (B, N) negatives of the queries; full ranking: None."""
        if self.negatives is None:
            return None
        return torch.from_numpy(self.negatives.sample(qids, targets, histories))

    def add(
        self,
        scores: torch.Tensor,
        targets: torch.Tensor,
        exclude: torch.Tensor | None,
        negatives: torch.Tensor | None = None,
    ) -> None:
        """``scores`` (B, n_items); ``targets`` (B,) long; ``exclude`` (2, N) long
        (row, item) pairs to set to -inf first, or None; ``negatives`` (B, N) long:
        rank each target among itself and its row of negatives instead of the
        catalogue (sampled ranking; coverage and popularity still read the
        full-catalogue top-K)."""
        if scores.dim() != 2 or scores.shape[1] != self.n_items:
            raise SeqrecError(
                f"model returned scores of shape {tuple(scores.shape)}, "
                f"expected (batch, {self.n_items})"
            )
        if not scores.is_floating_point():
            scores = scores.float()
        dev = scores.device
        if exclude is not None and exclude.shape[1]:
            scores = scores.clone()  # never write into the model's tensors
            exclude = exclude.to(dev)
            scores[exclude[0], exclude[1]] = -torch.inf
        targets = targets.to(dev)
        top_s, top_i = torch.topk(scores, self.kmax, dim=1)  # (B, kmax)
        t = scores.gather(1, targets.view(-1, 1)).view(-1)  # (B,)
        # small arrays from here on: plain numpy (no thread pool, no device syncs)
        top = top_s.cpu().numpy().astype(np.float64)
        idx = top_i.cpu().numpy()
        # topk ranks NaN above every number, so a row holding a NaN shows it in top[:, 0]
        if np.isnan(top[:, 0]).any():
            raise SeqrecError("model returned NaN scores")
        if negatives is not None:
            ranks = sampled_ranks(scores, targets, negatives.to(dev), self.ties).cpu().numpy()
        else:
            ranks, rows = _ranks_from_top(top, t.cpu().numpy().astype(np.float64), self.ties)
            if len(rows):
                sel = torch.as_tensor(rows, device=dev)
                ranks[rows] = target_ranks(scores[sel], targets[sel], self.ties).cpu().numpy()
        self.ranks.append(ranks)

        valid = np.isfinite(top)  # -inf entries (excluded items) are no recommendation
        pos = np.where(valid, np.arange(self.kmax), self.kmax)
        np.minimum.at(self.best_pos, idx.reshape(-1), pos.reshape(-1))
        self.pop_cnt += valid.sum(0)
        if self.pop_frac is not None:
            self.pop_sum += np.where(valid, self.pop_frac[idx], 0.0).sum(0)

    def result(self, n_missed: int) -> dict[str, Any]:
        ranks = np.concatenate([*self.ranks, np.full(n_missed, np.inf)])
        out: dict[str, Any] = {}
        for k in self.ks:
            kk = min(k, self.kmax)
            out[f"recall@{k}"] = recall_at_k(ranks, k)
            out[f"mrr@{k}"] = mrr_at_k(ranks, k)
            out[f"ndcg@{k}"] = ndcg_at_k(ranks, k)
            out[f"coverage@{k}"] = float(np.count_nonzero(self.best_pos < kk)) / self.n_items
            if self.pop_frac is None:
                out[f"popularity@{k}"] = None
            else:
                cnt = self.pop_cnt[:kk].sum()
                out[f"popularity@{k}"] = float(self.pop_sum[:kk].sum() / cnt) if cnt else math.nan
        out["n_queries"] = len(ranks)
        return out


# ---------------------------------------------------------------------- protocols
def _score_path(
    model: Any,
    items: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    targets: np.ndarray,
    acc: _Accumulator,
    batch_size: int,
    exclude_history: bool,
    bar: Any,
    qids: np.ndarray,
    users: np.ndarray | None = None,
) -> None:
    """Queries whose history is ``items[starts[q]:ends[q]]`` and target ``targets[q]``,
    scored with ``model.score`` ``batch_size`` at a time (``qids``: the queries' ids,
    which seed their sampled negatives). ``users``: (n_queries,) the external user id of
    every query, for a model that ``uses_users`` (None: the data has none); any other
    model is called without them."""
    with_users = takes_users(model)
    for lo in range(0, len(targets), batch_size):
        hi = min(lo + batch_size, len(targets))
        histories = [items[s:e] for s, e in zip(starts[lo:hi], ends[lo:hi])]
        negatives = acc.sample(qids[lo:hi], targets[lo:hi], histories)  # None: full
        if with_users:
            ids = None if users is None else [str(u) for u in users[lo:hi]]
            scores = model.score(histories, users=ids)
        else:
            scores = model.score(histories)
        exclude = None
        if exclude_history:
            lens = ends[lo:hi] - starts[lo:hi]
            rows = np.repeat(np.arange(hi - lo), lens)
            cols = items[_ranges(starts[lo:hi], lens)]
            exclude = torch.as_tensor(np.stack([rows, cols.astype(np.int64)]))
        acc.add(scores, torch.as_tensor(targets[lo:hi], dtype=torch.long), exclude, negatives)
        bar.update(hi - lo)


def _step_path(
    model: Any,
    log: SessionLog,
    acc: _Accumulator,
    batch_size: int,
    exclude_history: bool,
    bar: Any,
) -> None:
    """next-item with a recurrent model: sessions sorted by length (longest first) in
    batches; one ``step`` per event, the state carried along each session. At step j the
    sessions still running are a prefix of the batch, so the state is simply cut. A
    query's id is the position of its target in ``log.items``."""
    lengths = log.lengths
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] >= 2]
    for lo in range(0, len(order), batch_size):
        sess = order[lo : lo + batch_size]
        lens = lengths[sess]  # descending
        width = int(lens[0])
        cols = np.arange(width)
        pos = log.offsets[sess][:, None] + np.minimum(cols[None, :], lens[:, None] - 1)
        state = model.init_state(len(sess))
        seq_np = log.items[pos].astype(np.int64)  # (B, L)
        seq = torch.as_tensor(seq_np, device=state.device)  # (B, L)
        for j in range(width - 1):
            n_act = int(np.count_nonzero(lens >= j + 2))
            if n_act < state.shape[1]:
                state = state[:, :n_act].contiguous()
            negatives = acc.sample(
                log.offsets[sess[:n_act]] + j + 1, seq_np[:n_act, j + 1], seq_np[:n_act, : j + 1]
            )  # None: full ranking
            state, scores = model.step(state, seq[:n_act, j])
            exclude = None
            if exclude_history:
                rows = torch.arange(n_act, device=seq.device).repeat_interleave(j + 1)
                exclude = torch.stack([rows, seq[:n_act, : j + 1].reshape(-1)])
            acc.add(scores, seq[:n_act, j + 1], exclude, negatives)
            bar.update(n_act)


def _ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each (s, n), without a Python loop."""
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(lens) - lens
    return np.repeat(starts - first, lens) + np.arange(total, dtype=np.int64)


def _clean_sessions(log: SessionLog) -> tuple[SessionLog, int, int]:
    """Remove unknown (-1) events from the sessions. Returns (log, unknown targets,
    unknown history items): an unknown event is an unknown target when a known event
    precedes it in its session (it would have been a query) and an unknown history item
    when a known event follows it (it would have been fed to the model)."""
    known = log.items >= 0
    if known.all():
        return log, 0, 0
    sess = log.session_index()
    cum = np.cumsum(known)  # inclusive running count of known events
    before_session = np.concatenate([[0], cum])[log.offsets[:-1]][sess]
    known_before = cum - known - before_session
    known_after = cum[log.offsets[1:] - 1][sess] - cum
    unknown = ~known
    n_targets = int(np.count_nonzero(unknown & (known_before > 0)))
    n_history = int(np.count_nonzero(unknown & (known_after > 0)))
    return log.select_events(known), n_targets, n_history


# --------------------------------------------------------------------- entry point
def _check_choice(what: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise SeqrecError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def evaluate(
    model: Any,
    data: SessionLog | Samples,
    protocol: str = "next-item",
    ks: Sequence[int] = (5, 10, 20),
    ties: str = "conservative",
    exclude_history: bool | None = None,
    batch_size: int | None = None,
    item_popularity: ArrayLike | None = None,
    unknown: str = "drop",
    progress: bool = False,
    use_step: bool | None = None,
    sampled_negatives: int | None = None,
    sampler: str = "uniform",
    seed: int = 42,
) -> dict[str, Any]:
    """Evaluate ``model`` by full ranking over its ``n_items_`` items (by default), or by
    sampled ranking when ``sampled_negatives`` is given.

    Protocols:

    * ``next-item`` (``data``: SessionLog): every position t >= 1 of every session is a
      query with history ``items[:t]`` and target ``items[t]`` (GRU4Rec). Recurrent
      models (``init_state``/``step``) are run one step per event with their state
      carried along each session; other models get ``score`` on the prefixes.
    * ``samples`` (``data``: Samples): each (prefix, label) pair is a query, scored with
      ``score`` (also for recurrent models: a step path would compute full-catalogue
      scores at every prefix position, not just the last).
    * ``last-item`` (``data``: Samples, or a SessionLog turned into leave-one-out
      samples): like ``samples`` but history items are excluded by default.

    ``exclude_history`` (None = protocol default: off for next-item/samples, on for
    last-item) sets history items' scores to -inf before ranking; a target that is in
    its own history then ranks below every finite-scored item (rank ``n_items`` under
    conservative ties).

    Unknown items are -1. Unknown history items are removed before scoring (for
    next-item, the unknown event is removed from its session) and counted in
    ``n_unknown_history_items``. Unknown targets are counted in ``n_unknown_targets``
    and never become another item: ``unknown="drop"`` leaves them out;
    ``unknown="miss"`` counts each as a miss (rank = inf) in the ranking metrics and in
    ``n_queries`` (they are not scored, so coverage/popularity ignore them).

    ``batch_size``: queries (next-item with a recurrent model: sessions) per batch;
    None picks ~16M scores per batch. ``item_popularity``: training event counts per
    dense id, for ``popularity@K`` (None -> that key is None). ``use_step``: next-item
    only; None = use ``step`` when the model has it, False = always ``score``.

    ``sampled_negatives`` (None = full ranking): rank each target among itself and N
    items sampled for its query, never in the query's history nor the target, by
    ``sampler`` (``"uniform"``, or ``"popularity"``: in proportion to
    ``item_popularity``, which it then requires), with ``seed``: the negatives of a query
    depend only on the seed, the query (its position in ``data``: the target's event
    for next-item, the sample for samples / last-item), its history and target, so two
    runs agree whatever the batch size or path. Ties as ``ties``, over the 1 + N
    candidates; recall/MRR/NDCG are computed from these ranks, coverage and popularity
    still from the full-catalogue top-K lists (what the model would recommend). A query
    with fewer than N eligible items, or N >= the items that can be drawn, is an error
    (:class:`SeqrecError`): every rank is among exactly 1 + N candidates. The result
    then carries ``sampled_negatives``, ``sampler`` and ``seed``.

    Returns a flat dict: ``recall@K``, ``mrr@K``, ``ndcg@K``, ``coverage@K`` (share of
    the catalogue appearing in any top-K list), ``popularity@K`` (mean training
    popularity of the top-K items, as a fraction of training events) for each K, and
    ``n_queries``, ``n_unknown_targets``, ``n_unknown_history_items``, ``protocol``,
    ``ties``, ``exclude_history``, ``eval_seconds`` and ``ranking``: ``"full"``, or
    ``"sampled: N uniform negatives, seed S"`` (with ``popularity`` for that sampler).
    """
    t0 = time.perf_counter()
    _check_choice("protocol", protocol, PROTOCOLS)
    _check_choice("ties", ties, TIE_POLICIES)
    _check_choice("unknown-item policy", unknown, UNKNOWN_POLICIES)
    _check_choice("sampler", sampler, SAMPLERS)
    ks = tuple(ks)
    if not ks or any(
        isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0 for k in ks
    ):
        raise SeqrecError(f"ks must be positive integers, got {ks!r}")
    ks = tuple(int(k) for k in ks)
    n_items = int(getattr(model, "n_items_", 0) or 0)
    if n_items <= 0:
        raise SeqrecError("model has no items (n_items_ <= 0): is it fitted?")
    if batch_size is None:
        batch_size = max(1, min(2048, SCORE_BUDGET // n_items))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise SeqrecError(f"batch_size must be a positive integer, got {batch_size!r}")
    if exclude_history is None:  # leave-one-out samples carry the last-item default
        exclude_history = protocol == "last-item" or bool(getattr(data, "exclude_history", False))
    pop = None
    if item_popularity is not None:
        pop = _ranks(item_popularity)
        if len(pop) != n_items:
            raise SeqrecError(f"item_popularity has {len(pop)} entries, the model {n_items} items")

    if protocol == "last-item" and isinstance(data, SessionLog):
        data = Samples.last_item(data)
    if protocol == "next-item" and not isinstance(data, SessionLog):
        raise SeqrecError("protocol 'next-item' needs a SessionLog (test sessions)")
    if protocol != "next-item" and not isinstance(data, Samples):
        raise SeqrecError(f"protocol {protocol!r} needs a Samples object (prefix -> label)")
    if use_step and not is_recurrent(model):
        raise SeqrecError("use_step=True but the model has no init_state/step")
    negatives = None
    if sampled_negatives is not None:
        negatives = QueryNegatives(n_items, sampled_negatives, sampler, seed, counts=pop)

    acc = _Accumulator(n_items, ks, ties, pop, negatives)
    if isinstance(data, SessionLog):
        log, n_unk_targets, n_unk_hist = _clean_sessions(data)
        _check_range(log.items, n_items)
        n_q = int(np.maximum(log.lengths - 1, 0).sum())
        bar = _bar(progress, n_q, protocol)
        if (use_step is None and is_recurrent(model)) or use_step:
            with torch.no_grad():
                _step_path(model, log, acc, batch_size, exclude_history, bar)
        else:
            lens = log.lengths
            per = np.maximum(lens - 1, 0)
            sess = np.repeat(np.arange(len(lens)), per)
            t = _ranges(np.ones(len(lens), dtype=np.int64), per)  # 1..L-1 per session
            starts = log.offsets[:-1][sess]
            ends = starts + t
            users = None if log.session_ids is None else log.session_ids[sess]
            with torch.no_grad():
                _score_path(
                    model,
                    log.items,
                    starts,
                    ends,
                    log.items[ends],
                    acc,
                    batch_size,
                    exclude_history,
                    bar,
                    ends,  # query id: the position of the target
                    users,
                )
    else:
        labels = data.labels
        keep = labels >= 0
        qids = np.flatnonzero(keep)  # query id: the sample's index
        n_unk_targets = int(np.count_nonzero(~keep))
        prefixes = data.prefixes.select_sessions(keep)
        labels = labels[keep]
        _check_range(labels, n_items)
        n_unk_hist = int(np.count_nonzero(prefixes.items < 0))
        if n_unk_hist:
            prefixes = prefixes.select_events(prefixes.items >= 0)
        _check_range(prefixes.items, n_items)
        bar = _bar(progress, len(labels), protocol)
        with torch.no_grad():
            _score_path(
                model,
                prefixes.items,
                prefixes.offsets[:-1],
                prefixes.offsets[1:],
                labels,
                acc,
                batch_size,
                exclude_history,
                bar,
                qids,
                prefixes.session_ids,  # select_sessions / select_events keep them
            )
    bar.close()

    out = acc.result(n_unk_targets if unknown == "miss" else 0)
    out.update(
        n_unknown_targets=n_unk_targets,
        n_unknown_history_items=n_unk_hist,
        protocol=protocol,
        ties=ties,
        exclude_history=bool(exclude_history),
        eval_seconds=time.perf_counter() - t0,
        ranking="full" if negatives is None else negatives.label(),
    )
    if negatives is not None:
        out.update(sampled_negatives=negatives.n, sampler=negatives.sampler, seed=negatives.seed)
    return out


def _check_range(items: np.ndarray, n_items: int) -> None:
    if len(items) and int(items.max()) >= n_items:
        raise SeqrecError(
            f"item id {int(items.max())} is outside the model's catalogue of {n_items} items"
        )


def _bar(progress: bool, total: int, protocol: str) -> Any:
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"evaluate {protocol}", unit="q")


def validator(
    model: Any, valid: SessionLog | Samples, *, batch_size: int = 512
) -> Callable[[], dict[str, float]]:
    """The validation callable of a training run: the :data:`VALID_METRICS` of ``model``
    on ``valid`` (next-item over every position of sessions; the labels of leave-one-out
    samples, their histories excluded), evaluated whenever it is called."""
    protocol = "samples" if isinstance(valid, Samples) else "next-item"

    def validate() -> dict[str, float]:
        res = evaluate(model, valid, protocol=protocol, ks=(10, 20), batch_size=batch_size)
        return {m: float(res[m]) for m in VALID_METRICS}

    return validate
