# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
import statistics
import sys
import time

sys.path.insert(0, "benchmarks/_proto")
import torch
from fused_ext import ext

torch.set_num_threads(1)
m = ext()
N, H, R = 60000, 100, 2040
g = torch.Generator().manual_seed(0)
W = torch.randn(N, H)
A = torch.rand(N, H)
V = torch.zeros(N, H)
Bv = torch.randn(N)
AB = torch.rand(N)
VB = torch.zeros(N)


def bench(fns, reps=21, inner=30):
    res = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            res[k].append((time.perf_counter() - t) / inner * 1e6)
    for k, v in res.items():
        print(f"  {k:<40} {statistics.median(v):8.1f} us (min {min(v):.1f})")


rows = torch.randperm(N, generator=g)[:R].sort().values
G = torch.randn(R, H) * 0.01
gb = torch.randn(R) * 0.01


def torch_rows():
    w = W.index_select(0, rows)
    b = Bv.index_select(0, rows)
    a = A.index_select(0, rows).addcmul_(G, G)
    A.index_copy_(0, rows, a)
    u = G / a.add_(1e-6).sqrt_()
    W.index_copy_(0, rows, w.add_(u, alpha=-0.07))
    ab = AB.index_select(0, rows).addcmul_(gb, gb)
    AB.index_copy_(0, rows, ab)
    ub = gb / ab.add_(1e-6).sqrt_()
    Bv.index_copy_(0, rows, b + ub * -0.07)


def fused_rows():
    m.adagrad_rows_(W, A, V, rows, G, 0.07, 1e-6, 0.0)
    m.adagrad_rows_(Bv, AB, VB, rows, gb, 0.07, 1e-6, 0.0)


def fused_W_only():
    m.adagrad_rows_(W, A, V, rows, G, 0.07, 1e-6, 0.0)


Pd = torch.randn(60300)
Ad = torch.rand(60300)
Vd = torch.zeros(60300)
Gd = torch.randn(60300) * 0.01


def torch_dense():
    Ad.addcmul_(Gd, Gd)
    u = Gd / (Ad + 1e-6).sqrt_()
    Pd.sub_(u, alpha=0.07)


def fused_dense():
    m.adagrad_dense_(Pd, Ad, Vd, Gd, 0.07, 1e-6, 0.0)


bench(
    {
        "torch row update (W+B)": torch_rows,
        "fused row update (W+B)": fused_rows,
        "fused W only": fused_W_only,
        "torch dense (60300)": torch_dense,
        "fused dense (60300)": fused_dense,
    }
)
