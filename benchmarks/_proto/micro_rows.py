# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
"""Row-table update variants for the Adagrad row step (B=32-like: ~2040 unique rows of 60k)."""

import statistics
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
N, H, R = 60000, 100, 2040
g = torch.Generator().manual_seed(0)
rows = torch.randperm(N, generator=g)[:R].sort().values
G = torch.randn(R, H)
gb = torch.randn(R)
lr, eps = 0.07, 1e-6
W = torch.randn(N, H)
A = torch.rand(N, H)
Bv = torch.randn(N)
AB = torch.rand(N)
T = torch.randn(N, 2 * H + 2)  # interleaved [W | By | accW | accB]


def bench(fns, reps=21, inner=30):
    res = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            res[k].append((time.perf_counter() - t) / inner * 1e6)
    for k, v in res.items():
        print(f"  {k:<46} {statistics.median(v):8.1f} us (min {min(v):.1f})")


def separate():  # 4 tables: gather W, B, accW, accB; scatter 4
    w = W.index_select(0, rows)
    b = Bv.index_select(0, rows)
    a = A.index_select(0, rows).addcmul_(G, G)
    A.index_copy_(0, rows, a)
    u = G / a.add_(eps).sqrt_()
    W.index_copy_(0, rows, w.add_(u, alpha=-lr))
    ab = AB.index_select(0, rows).addcmul_(gb, gb)
    AB.index_copy_(0, rows, ab)
    ub = gb / ab.add_(eps).sqrt_()
    Bv.index_copy_(0, rows, b + ub * -lr)


Gf = torch.cat([G, gb[:, None]], 1)  # (R, H+1): gradient of [W | By]


def interleaved():  # one gather + one scatter of (R, 2H+2) rows
    t = T.index_select(0, rows)
    p, a = t[:, : H + 1], t[:, H + 1 :]
    a.addcmul_(Gf, Gf)
    u = Gf / (a + eps).sqrt_()
    p.add_(u, alpha=-lr)
    T.index_copy_(0, rows, t)


def gather_only():
    W.index_select(0, rows)
    A.index_select(0, rows)


def scatter_only():
    W.index_copy_(0, rows, G)
    A.index_copy_(0, rows, G)


def scatter_put():
    W.index_put_((rows,), G)
    A.index_put_((rows,), G)


def scatter_loop_free():
    W[rows] = G
    A[rows] = G


def gather_T():
    T.index_select(0, rows)


def scatter_T():
    T.index_copy_(0, rows, T.index_select(0, rows))


bench(
    {
        "4 tables (current layout, index_copy_)": separate,
        "interleaved (N, 2H+2) table": interleaved,
        "gather W+accW (2x index_select)": gather_only,
        "scatter W+accW (2x index_copy_)": scatter_only,
        "scatter W+accW (2x index_put_)": scatter_put,
        "scatter W+accW (W[rows]=)": scatter_loop_free,
        "gather T (N,202)": gather_T,
        "gather+scatter T": scatter_T,
    }
)
