"""Speed of seqrec.evaluation on a synthetic catalogue: queries/s, wall time, peak RSS.

Two fake, random-but-seeded models live here (not in the package):

* ``emb``: a plain scorer, ``score = E[last item] @ E.T`` (d = --dim);
* ``gru``: a recurrent model, a GRUCell of hidden --dim over item embeddings with
  ``scores = h @ O.T``; ``step`` feeds one item, ``score`` runs the cell over a prefix.

and ``gru4rec``: seqrec's real GRU4Rec (layers [--dim], constrained embedding), trained for
one epoch on sessions that cover the whole catalogue so that every item has a row.

Cases: ``samples`` (prefix -> label pairs, scored with ``score``) and ``next-item``
(every position of the test sessions; the gru model steps one event at a time). Each
case runs in a fresh process, so its peak RSS is its own.

    .venv/bin/python benchmarks/eval_speed.py               # 60k queries, 40k items
    .venv/bin/python benchmarks/eval_speed.py --n-items 1000 --queries 5000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import time

import numpy as np
import torch

CASES = (
    "samples-emb",
    "samples-gru",
    "next-item-emb",
    "next-item-gru",
    "samples-gru4rec",
    "next-item-gru4rec",
)


class EmbScorer:
    """score(histories) = E[last item] @ E.T."""

    def __init__(self, n_items: int, dim: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.n_items_ = n_items
        self.E = torch.randn(n_items, dim, generator=g) / dim**0.5

    def score(self, histories) -> torch.Tensor:
        last = torch.as_tensor([int(h[-1]) if len(h) else 0 for h in histories])
        return self.E[last] @ self.E.T  # (B, n_items)


class GRURecurrent:
    """A GRUCell over item embeddings; init_state/step for sessions, score for prefixes."""

    def __init__(self, n_items: int, dim: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.n_items_ = n_items
        self.emb = torch.nn.Embedding(n_items, dim)
        self.cell = torch.nn.GRUCell(dim, dim)
        self.out = torch.randn(n_items, dim) / dim**0.5

    def init_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(1, batch_size, self.cell.hidden_size)  # (1, B, H)

    def step(self, state: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.cell(self.emb(items), state[0])  # (B, H)
        return h.unsqueeze(0), h @ self.out.T  # (1, B, H), (B, n_items)

    def score(self, histories) -> torch.Tensor:
        lens = np.array([len(h) for h in histories])
        order = np.argsort(-lens, kind="stable")
        width = int(lens.max()) if len(lens) else 0
        pad = np.zeros((len(histories), width), dtype=np.int64)
        for row, q in enumerate(order):
            pad[row, : lens[q]] = histories[q]
        seq = torch.as_tensor(pad)
        h = torch.zeros(len(histories), self.cell.hidden_size)
        for j in range(width):  # rows still running are a prefix (sorted by length)
            n = int(np.count_nonzero(lens >= j + 1))
            h = torch.cat([self.cell(self.emb(seq[:n, j]), h[:n]), h[n:]])
        final = torch.empty_like(h)
        final[torch.as_tensor(order)] = h
        return final @ self.out.T  # (B, n_items)


class Timed:
    """Wraps a model and adds up the seconds spent inside score/step (the model's own
    cost), so that wall time minus model time is what evaluation itself costs."""

    def __init__(self, model) -> None:
        self.model, self.n_items_, self.model_s = model, model.n_items_, 0.0
        if hasattr(model, "step"):
            self.init_state, self.step = model.init_state, self._step

    def score(self, histories) -> torch.Tensor:
        t0 = time.perf_counter()
        out = self.model.score(histories)
        self.model_s += time.perf_counter() - t0
        return out

    def _step(self, state, items):
        t0 = time.perf_counter()
        out = self.model.step(state, items)
        self.model_s += time.perf_counter() - t0
        return out


def make_gru4rec(n_items: int, dim: int, seed: int):
    """A real, fitted seqrec GRU4Rec over exactly ``n_items`` items (dense ids = ids)."""
    from seqrec.data.idmap import ItemIndex
    from seqrec.data.sessions import SessionLog
    from seqrec.models.gru4rec import GRU4Rec
    from seqrec.training import fit

    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_items)
    seqs = [perm[i : i + 4] for i in range(0, n_items, 4)]
    seqs = [s for s in seqs if len(s) >= 2]
    log = SessionLog.from_sequences(seqs)
    index = ItemIndex([str(i) for i in range(n_items)])
    cfg = {"layers": [dim], "batch_size": 128, "n_epochs": 1, "seed": seed}
    return fit(GRU4Rec(cfg), log, item_index=index, progress=False)


def make_log(n_items: int, n_queries: int, seed: int):
    """Sessions of length 2 + geometric, Zipf-like item popularity, ~n_queries queries."""
    from seqrec.data.sessions import SessionLog

    rng = np.random.default_rng(seed)
    lengths = 1 + rng.geometric(0.25, size=n_queries)  # >= 2, mean 5
    ends = np.cumsum(lengths - 1)
    lengths = lengths[: int(np.searchsorted(ends, n_queries)) + 1]
    lengths[-1] -= int(lengths.sum() - len(lengths)) - n_queries  # exactly n_queries
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(n_items, size=int(lengths.sum()), p=p / p.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return SessionLog(offsets=offsets, items=items)


def run_case(case: str, args: argparse.Namespace) -> dict:
    from seqrec.data.samples import Samples
    from seqrec.evaluation import evaluate

    torch.set_num_threads(args.threads)
    log = make_log(args.n_items, args.queries, args.seed)
    protocol, kind = case.rsplit("-", 1)
    if kind == "gru4rec":
        model = Timed(make_gru4rec(args.n_items, args.dim, args.seed))
    else:
        cls = EmbScorer if kind == "emb" else GRURecurrent
        model = Timed(cls(args.n_items, args.dim, args.seed))
    data = Samples.from_sessions(log) if protocol == "samples" else log
    pop = log.item_counts(args.n_items)
    t0 = time.perf_counter()
    res = evaluate(
        model,
        data,
        protocol=protocol,
        ks=(5, 10, 20),
        ties=args.ties,
        batch_size=args.batch_size,
        item_popularity=pop,
    )
    wall = time.perf_counter() - t0
    return {
        "case": case,
        "n_queries": res["n_queries"],
        "wall_s": round(wall, 3),
        "queries_per_s": round(res["n_queries"] / wall, 1),
        "model_s": round(model.model_s, 3),
        "eval_overhead_s": round(wall - model.model_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "recall@20": round(res["recall@20"], 5),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-items", type=int, default=60_000, help="catalogue size")
    ap.add_argument("--queries", type=int, default=60_000, help="number of test queries")
    ap.add_argument("--dim", type=int, default=100, help="embedding / hidden size")
    ap.add_argument("--batch-size", type=int, default=None, help="default: evaluate's auto")
    ap.add_argument("--ties", default="conservative", help="tie policy")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--in-process", action="store_true", help="no fresh process per case")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}; valid: {', '.join(CASES)}")

    print(
        f"{args.queries} queries, {args.n_items} items, dim {args.dim}, "
        f"{args.threads} threads, torch {torch.__version__}, {platform.processor() or ''}"
    )
    results = []
    ctx = mp.get_context("spawn")
    for case in cases:
        if args.in_process:
            r = run_case(case, args)
        else:
            with ctx.Pool(1) as pool:
                r = pool.apply(run_case, (case, args))
        results.append(r)
        print(
            f"{case:15s} {r['n_queries']:7d} queries  {r['wall_s']:7.2f} s  "
            f"{r['queries_per_s']:7.0f} q/s  (model {r['model_s']:6.2f} s, evaluation "
            f"{r['eval_overhead_s']:6.2f} s)  peak RSS {r['peak_rss_mb']:5.0f} MB"
        )
    print(
        json.dumps(
            {
                "benchmark": "eval_speed",
                "n_items": args.n_items,
                "dim": args.dim,
                "threads": args.threads,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
