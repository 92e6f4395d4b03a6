"""Deterministic synthetic session logs for speed benchmarks.

Model of the log (all draws from one ``numpy.random.Generator(PCG64(seed))``, in this
order, so the same arguments always give the same log on every platform):

1. **Session lengths.** ``length = 1 + G`` with ``G ~ Geometric(p)`` on ``{1, 2, ...}``
   (numpy's ``Generator.geometric``), ``p = 1 / (mean_length - 1)``. Hence
   ``E[G] = mean_length - 1``, ``E[length] = mean_length`` and the minimum length is 2.
   The default ``mean_length = 5.5`` is "1 + geometric with mean 4.5".
   Lengths are drawn in one vectorised call (enough sessions to cover ``n_events`` with
   a safety margin) and cut so the log holds exactly ``n_events`` events: the last
   session is truncated to the remaining events; if that would leave it with a single
   event, that event is appended to the previous session instead (so every session
   keeps length >= 2). ``n_sessions`` is therefore about ``n_events / mean_length``.
2. **Items.** Every event independently draws a popularity *rank* ``r`` in
   ``0..n_items-1`` with ``P(r) ∝ 1 / (r + 1) ** zipf`` (inverse-CDF sampling: one
   float64 uniform per event, ``searchsorted`` on the rank CDF). The rank is mapped to
   an item id through a fixed random permutation of ``0..n_items-1`` (drawn after the
   uniforms), so popular items are scattered over the id range. Consecutive repeats
   are allowed. With heavy tails some of the rarest items never occur (for 1M events
   / 60k items / zipf 1.0 a few thousand do not); ``GRU4Rec.fit(..., item_index=None)``
   then uses ``max id + 1`` as the catalogue size.
3. **Times** (float64 unix seconds) are strictly increasing over the whole file:
   ``T0 + 60 * event_index`` with ``T0 = 1_600_000_000``; sessions therefore follow
   each other in time and the log order equals start-time order.

Use it as a library::

    from benchmarks.make_synthetic import make_log   # or sys.path-insert benchmarks/
    log = make_log(1_000_000, 60_000)                  # SessionLog (offsets, items, times)

or from the shell (writes ``SessionId<TAB>ItemId<TAB>Time`` with a header)::

    .venv/bin/python benchmarks/make_synthetic.py --events 1000000 --items 60000 \\
        --out /tmp/synth_1m.tsv

30M events take a few seconds to generate (plus the time to write the TSV).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:  # importable both as benchmarks.make_synthetic and as a script
    from seqrec.data.sessions import SessionLog
except ImportError:  # pragma: no cover - run from outside the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from seqrec.data.sessions import SessionLog

T0 = 1_600_000_000.0
DT = 60.0


def session_lengths(n_events: int, mean_length: float, rng: np.random.Generator) -> np.ndarray:
    """(n_sessions,) int64 lengths (>= 2) summing to exactly ``n_events``."""
    if n_events < 2:
        raise ValueError("n_events must be >= 2")
    if not mean_length > 2.0:
        raise ValueError("mean_length must be > 2 (length = 1 + geometric with mean >= 1)")
    p = 1.0 / (mean_length - 1.0)
    lengths = np.zeros(0, dtype=np.int64)
    total = 0
    # draw in chunks until n_events are covered (one chunk in practice)
    while total < n_events:
        n_more = int((n_events - total) / mean_length * 1.05) + 64
        chunk = 1 + rng.geometric(p, size=n_more).astype(np.int64)
        lengths = np.concatenate([lengths, chunk])
        total = int(lengths.sum())
    ends = np.cumsum(lengths)
    k = int(np.searchsorted(ends, n_events))  # first session reaching n_events
    lengths = lengths[: k + 1].copy()
    before = int(ends[k - 1]) if k > 0 else 0
    lengths[k] = n_events - before
    if lengths[k] == 1:
        if k == 0:
            raise ValueError("n_events too small")
        lengths[k - 1] += 1
        lengths = lengths[:k]
    assert int(lengths.sum()) == n_events and lengths.min() >= 2
    return lengths


def zipf_items(n_events: int, n_items: int, zipf: float, rng: np.random.Generator) -> np.ndarray:
    """(n_events,) int32 item ids: Zipf(``zipf``) ranks mapped by a random permutation."""
    if n_items < 1:
        raise ValueError("n_items must be >= 1")
    w = 1.0 / np.power(np.arange(1, n_items + 1, dtype=np.float64), zipf)  # rank r -> 1/(r+1)^z
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    u = rng.random(n_events)  # float64 in [0, 1)
    ranks = np.searchsorted(cdf, u, side="right")
    np.minimum(ranks, n_items - 1, out=ranks)  # guard against cdf[-1] rounding
    perm = rng.permutation(n_items)  # rank -> item id
    return perm[ranks].astype(np.int32)


def make_log(
    n_events: int,
    n_items: int,
    zipf: float = 1.0,
    mean_length: float = 5.5,
    seed: int = 0,
) -> SessionLog:
    """A synthetic :class:`SessionLog` with exactly ``n_events`` events (see module doc)."""
    rng = np.random.default_rng(seed)
    lengths = session_lengths(int(n_events), float(mean_length), rng)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = zipf_items(int(n_events), int(n_items), float(zipf), rng)
    times = T0 + DT * np.arange(n_events, dtype=np.float64)
    return SessionLog(offsets=offsets, items=items, times=times)


def write_tsv(log: SessionLog, path: str | Path) -> None:
    """``SessionId<TAB>ItemId<TAB>Time`` (header line; session ids 1..n, integer times)."""
    sess = log.session_index() + 1
    assert log.times is not None
    times = log.times.astype(np.int64)
    path = Path(path)
    chunk = 2_000_000
    with path.open("w", encoding="ascii") as f:
        f.write("SessionId\tItemId\tTime\n")
        for a in range(0, log.n_events, chunk):
            b = min(a + chunk, log.n_events)
            block = np.column_stack([sess[a:b], log.items[a:b].astype(np.int64), times[a:b]])
            np.savetxt(f, block, fmt="%d", delimiter="\t")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Lengths: 1 + Geometric(p = 1/(mean_length-1)) on {1,2,...}; items: "
        "P(rank r) ∝ 1/(r+1)^zipf, ranks -> ids by a seeded permutation; "
        "times: 1.6e9 + 60 * event index.",
    )
    ap.add_argument(
        "--events", type=int, default=1_000_000, help="number of events (default 1,000,000)"
    )
    ap.add_argument("--items", type=int, default=60_000, help="number of item ids (default 60,000)")
    ap.add_argument(
        "--zipf", type=float, default=1.0, help="Zipf exponent of item popularity (default 1.0)"
    )
    ap.add_argument(
        "--mean-length",
        type=float,
        default=5.5,
        help="mean session length, > 2 (default 5.5 = 1 + geometric with mean 4.5)",
    )
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument(
        "--out",
        type=str,
        default=None,
        help="write SessionId\\tItemId\\tTime TSV here (default: only print a summary)",
    )
    args = ap.parse_args(argv)
    t = time.perf_counter()
    log = make_log(args.events, args.items, args.zipf, args.mean_length, args.seed)
    gen_s = time.perf_counter() - t
    lengths = log.lengths
    seen = int(np.unique(log.items).size)
    print(
        f"{log.n_events:,} events, {log.n_sessions:,} sessions (mean length "
        f"{lengths.mean():.3f}, min {lengths.min()}, max {lengths.max()}), "
        f"{seen:,}/{args.items:,} items seen, generated in {gen_s:.2f}s",
        file=sys.stderr,
    )
    if args.out:
        t = time.perf_counter()
        write_tsv(log, args.out)
        print(f"wrote {args.out} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
