"""Popularity-based negative sampling with a pre-drawn cache and exact resumability.

Item ``i`` is drawn with probability ``p_i = counts[i] ** alpha / sum_k counts[k] ** alpha``
with the convention ``0 ** 0 = 1``: ``alpha = 0`` is uniform over *all* items (zero-count
ones included), and for ``alpha > 0`` items with count 0 have probability 0 and are never
drawn.

Draws come from a cache of ``cache_size`` draws (rounded down to a multiple of
``n_sample``, at least one batch) produced in one call from a seeded ``torch.Generator``;
when it is used up it is re-drawn. The state dict holds only the generator state from
which the *current* cache was drawn, the position in it and the refresh count, so a
restored sampler re-draws the identical cache and continues exactly where it stopped.

With ``background=True`` the next cache is drawn in a background thread as soon as the
current one is in use (drawing 10M negatives takes ~1.2 s of one CPU core, single
threaded; torch releases the GIL meanwhile). It is drawn from the same generator in the
same order, so the draws, the state dict and resuming are exactly those of the
synchronous sampler; it costs the memory of a second cache. Worth it only when a core is
idle (:func:`spare_core`: fewer torch threads than cores).
"""

from __future__ import annotations

import os
import threading

import numpy as np
import torch
from torch import Tensor

from seqrec.errors import ConfigError

__all__ = ["PopularitySampler", "spare_core"]

# Draws: inverse-CDF search (uniform float64 + searchsorted) on CPU. It returns exactly
# torch.multinomial's draws there (same generator, same uniforms, same search; a test
# checks it), but searchsorted runs on all intra-op threads: 0.61 s per 10M draws over
# 60k items with 2 threads against 1.07 s for multinomial's serial loop.
# torch.multinomial on CUDA, up to the 2**24 categories it supports.
_MULTINOMIAL_MAX_CATEGORIES = 2**24
DRAW_CHUNK = 2**20  # uniforms drawn at a time by the inverse-CDF path


class PopularitySampler:
    """Draws ``n_sample`` shared negatives per call with probability ∝ ``counts ** alpha``.

    Args:
        counts: (n_items,) non-negative item frequencies (e.g. training-set counts).
        alpha: popularity exponent, >= 0 (0 = uniform over all items, 1 = popularity).
        n_sample: draws returned by each :meth:`sample` call; 0 disables sampling.
        cache_size: draws pre-computed at once (rounded down to a multiple of n_sample,
            at least n_sample).
        seed: seed of the sampler's own ``torch.Generator``.
        device: device of the generator, the cache and the returned tensors.
        background: draw the next cache in a background thread (same draws).
    """

    def __init__(
        self,
        counts: np.ndarray,
        alpha: float,
        n_sample: int,
        cache_size: int = 10_000_000,
        seed: int = 0,
        device: str | torch.device = "cpu",
        background: bool = False,
    ) -> None:
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 1 or counts.size == 0:
            raise ValueError(f"counts must be a non-empty 1-D array, got shape {counts.shape}")
        if not np.all(np.isfinite(counts)) or np.any(counts < 0):
            raise ValueError("counts must be finite and non-negative")
        if not np.isfinite(alpha) or alpha < 0:
            raise ConfigError(f"sample_alpha must be >= 0, got {alpha}")
        if n_sample < 0:
            raise ConfigError(f"n_sample must be >= 0, got {n_sample}")
        if cache_size < 0:
            raise ConfigError(f"sample_cache_size must be >= 0, got {cache_size}")
        weights = np.power(counts, float(alpha))  # (n_items,); 0 ** 0 == 1
        total = weights.sum()
        if total <= 0 or not np.isfinite(total):
            raise ValueError("counts ** alpha must have a positive finite sum (all counts are 0?)")

        self.device = torch.device(device)
        self.alpha = float(alpha)
        self.n_sample = int(n_sample)
        self.n_items = int(counts.size)
        self.seed = int(seed)
        self.cache_len = max(cache_size // n_sample, 1) * n_sample if n_sample > 0 else 0

        p = weights / total  # (n_items,) float64
        with np.errstate(divide="ignore"):
            log_p = np.log(p)  # -inf where p == 0
        self.prob: Tensor = torch.from_numpy(p).to(self.device, torch.float32)  # (n_items,)
        self.log_prob: Tensor = torch.from_numpy(log_p).to(self.device, torch.float32)
        self._weights = torch.from_numpy(weights).to(self.device)  # (n_items,) float64
        self._cdf: Tensor | None = None
        self._last_nonzero = int(np.flatnonzero(weights)[-1])
        if self.device.type == "cpu" or self.n_items > _MULTINOMIAL_MAX_CATEGORIES:
            self._cdf = torch.cumsum(self._weights, dim=0)  # (n_items,) float64

        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(self.seed)
        self._cache: Tensor | None = None  # (cache_len,) int64
        self._cache_gen_state: Tensor = self._gen.get_state()  # state the cache is drawn from
        self._pos = 0
        self._refreshes = 0
        self.background = bool(background)
        self._next: _Prefetch | None = None  # the next cache, being drawn in the background

    def _draw(self) -> Tensor:
        """Draws ``cache_len`` item indices, advancing the generator."""
        if self._cdf is None:
            return torch.multinomial(
                self._weights, self.cache_len, replacement=True, generator=self._gen
            )  # (cache_len,)
        # in chunks: the float64 uniforms of one chunk at a time (8 MB), not of the cache
        idx = torch.empty(self.cache_len, dtype=torch.long, device=self.device)  # (cache_len,)
        u = torch.empty(min(DRAW_CHUNK, self.cache_len), dtype=torch.float64, device=self.device)
        total = self._cdf[-1]
        for start in range(0, self.cache_len, DRAW_CHUNK):
            stop = min(start + DRAW_CHUNK, self.cache_len)
            uc = u[: stop - start].uniform_(generator=self._gen).mul_(total)
            torch.searchsorted(self._cdf, uc, right=True, out=idx[start:stop])
        return idx.clamp_(max=self._last_nonzero)

    def _refresh(self) -> None:
        if self._next is not None:  # drawn in the background from where the cache ended
            self._cache_gen_state, self._cache = self._next.result()
            self._next = None
        else:
            self._cache_gen_state = self._gen.get_state()
            self._cache = self._draw()
        self._pos = 0
        self._refreshes += 1
        if self.background:
            self._next = _Prefetch(self)

    def _cancel_prefetch(self) -> None:
        """Waits for a background draw and drops it (the generator is then free to reset)."""
        if self._next is not None:
            self._next.wait()
            self._next = None

    @property
    def refreshes(self) -> int:
        """How many caches have been drawn so far (the first draw counts as one)."""
        return self._refreshes

    def sample(self) -> Tensor:
        """The next ``n_sample`` draws, (n_sample,) int64 on ``device``.

        The result is a view into the cache: do not modify it in place.
        """
        if self.n_sample == 0:
            return torch.empty(0, dtype=torch.long, device=self.device)
        if self._cache is None or self._pos + self.n_sample > self.cache_len:
            self._refresh()
        assert self._cache is not None
        out = self._cache[self._pos : self._pos + self.n_sample]  # (n_sample,)
        self._pos += self.n_sample
        return out

    def state_dict(self) -> dict[str, Tensor | int]:
        """Small resumable state: generator state of the current cache, position, refreshes."""
        state = self._cache_gen_state if self._cache is not None else self._gen.get_state()
        return {
            "generator_state": state.clone(),
            "position": self._pos,
            "refreshes": self._refreshes,
            "n_items": self.n_items,
            "cache_len": self.cache_len,
        }

    def load_state_dict(self, state: dict[str, Tensor | int]) -> None:
        """Restores :meth:`state_dict` output; the next draws equal the original's next draws.

        The sampler must have been built with the same counts, alpha, n_sample and
        cache_size; the cache is re-drawn from the saved generator state.
        """
        for key in ("n_items", "cache_len"):
            saved = int(state[key])
            if saved != getattr(self, key):
                raise ConfigError(
                    f"sampler state does not match the sampler: {key} {saved} != "
                    f"{getattr(self, key)}"
                )
        gen_state = state["generator_state"]
        if not isinstance(gen_state, Tensor):
            raise ValueError("sampler state: generator_state must be a tensor")
        self._cancel_prefetch()
        self._gen.set_state(gen_state.detach().to("cpu", torch.uint8).contiguous())
        self._refreshes = int(state["refreshes"])
        position = int(state["position"])
        if self._refreshes > 0 and self.n_sample > 0:
            self._refresh()  # re-draws the identical cache and advances the generator
            self._refreshes -= 1  # restoring is not a new refresh
            self._pos = position
        else:
            self._cache = None
            self._cache_gen_state = self._gen.get_state()
            self._pos = 0


def spare_core(threads: int | None = None) -> bool:
    """True if this process may use more CPU cores than ``threads`` intra-op threads.

    ``threads`` defaults to torch's current setting (``torch.get_num_threads()``).

    A background cache draw then runs on a core of its own. Without one it would compete
    with torch's OpenMP threads, which wait for each other at every parallel region: on
    2 cores with 2 torch threads that made a GRU4Rec epoch ~30% slower, not faster.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return cores > (threads if threads is not None else torch.get_num_threads())


class _Prefetch:
    """One cache drawn in a thread: the generator state it starts from, then the draws.

    The owner must not touch its generator until :meth:`result` / :meth:`wait` returned.
    """

    def __init__(self, sampler: PopularitySampler) -> None:
        self.state = sampler._gen.get_state()
        self._cache: Tensor | None = None
        self._error: BaseException | None = None
        # not a daemon: interpreter shutdown waits for the draw instead of tearing torch
        # down under it
        self._thread = threading.Thread(
            target=self._run, args=(sampler,), name="seqrec-sampler-prefetch"
        )
        self._thread.start()

    def _run(self, sampler: PopularitySampler) -> None:
        try:
            self._cache = sampler._draw()
        except BaseException as exc:  # re-raised in the consumer's thread
            self._error = exc

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> tuple[Tensor, Tensor]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._cache is not None
        return self.state, self._cache


# ======================================================= negatives for padded sequences
# Per-position and in-batch negatives of the padded-sequence task
# (seqrec.training.sequence_task). Shared popularity^alpha negatives come from
# PopularitySampler above. Every draw uses the caller's torch.Generator.

MAX_REJECTION_ROUNDS = 64  # re-draws of negatives that hit the row's history


def _in_rows(values: Tensor, sorted_rows: Tensor) -> Tensor:
    """(N, K) bool: ``values[n, k]`` is one of ``sorted_rows[n]`` ((N, L) ascending)."""
    if sorted_rows.shape[1] == 0:
        return torch.zeros_like(values, dtype=torch.bool)
    pos = torch.searchsorted(sorted_rows, values).clamp(max=sorted_rows.shape[1] - 1)
    return sorted_rows.gather(1, pos) == values  # (N, K)


def uniform_negatives(
    positives: Tensor,
    n_items: int,
    k: int,
    generator: torch.Generator,
    history: Tensor | None = None,
) -> Tensor:
    """(N, k) int64 negatives per position, uniform over the items other than the
    row's positive (drawn exactly: ``r ~ U{0..n_items-2}``, ``r + (r >= positive)``).

    ``positives`` (N,) int64 item ids. ``history`` (N, L) int64, optional: items to
    exclude as well (e.g. the row's session), negative entries ignored; negatives that
    hit it are re-drawn (up to :data:`MAX_REJECTION_ROUNDS` rounds; a row whose history
    covers almost the whole catalogue may keep a few hits). Deterministic given the
    generator's state.
    """
    if n_items < 2:
        raise ValueError(f"uniform negatives need n_items >= 2, got {n_items}")
    if positives.dim() != 1:
        raise ValueError(f"positives must be (N,), got {tuple(positives.shape)}")
    n = positives.shape[0]
    pos = positives.long()  # (N,)
    rows = torch.arange(n, device=pos.device).repeat_interleave(k)  # (N * k,)
    neg = _redraw(rows, pos, n_items, generator).view(n, k)  # (N, k)
    if history is None or history.numel() == 0:
        return neg
    if history.shape[0] != n:
        raise ValueError(f"history must have {n} rows, got {tuple(history.shape)}")
    hist = torch.sort(history.long(), dim=1).values  # (N, L); negative ids never match
    for _ in range(MAX_REJECTION_ROUNDS):
        bad = _in_rows(neg, hist)  # (N, k)
        if not bool(bad.any()):
            break
        r, c = bad.nonzero(as_tuple=True)
        neg[r, c] = _redraw(r, pos, n_items, generator)
    return neg


def _redraw(rows: Tensor, pos: Tensor, n_items: int, generator: torch.Generator) -> Tensor:
    """One uniform draw per entry of ``rows``, never equal to ``pos[rows]``."""
    r = torch.randint(0, n_items - 1, (rows.shape[0],), generator=generator, device=rows.device)
    return r + (r >= pos[rows]).long()


def in_batch_candidates(targets: Tensor, extra: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """In-batch negatives: the batch's distinct targets (plus ``extra`` shared
    negatives, e.g. from :class:`PopularitySampler`) as one candidate set.

    Returns ``candidates`` (C,) sorted distinct item ids and ``column`` (N,): the column
    of each row's own target. Every other candidate is a negative of the row; since
    each item appears once, no candidate equals the row's positive.
    """
    if targets.dim() != 1:
        raise ValueError(f"targets must be (N,), got {tuple(targets.shape)}")
    items = targets.long() if extra is None else torch.cat([targets.long(), extra.long()])
    candidates = torch.unique(items)  # (C,) sorted
    column = torch.searchsorted(candidates, targets.long())  # (N,)
    return candidates, column


__all__ += ["MAX_REJECTION_ROUNDS", "in_batch_candidates", "uniform_negatives"]
