# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
"""BPR-max loss + gradient variants on (128, 2176), 1 thread, interleaved medians."""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
import torch.nn.functional as F
from fast_gru4rec import _bpr_max_manual

from seqrec.losses import bpr_max

torch.set_num_threads(1)


def bench(fns, reps=15, inner=20):
    res = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            res[k].append((time.perf_counter() - t) / inner * 1e6)
    for k, v in res.items():
        print(f"  {k:<44} {statistics.median(v):8.1f} us (min {min(v):.1f})")


S = torch.randn(128, 2176) * 2


def ref():
    s = S.clone().requires_grad_()
    l = bpr_max(F.elu(s, alpha=0.5), bpreg=1.95)
    l.backward()


def manual():
    _bpr_max_manual(S, 0.5, 1.95)


o = torch.empty_like(S)
bench(
    {
        "reference autograd (elu + bpr_max)": ref,
        "manual torch ops": manual,
        "F.elu": lambda: F.elu(S, alpha=0.5),
        "where(S>0, 1.0, S)": lambda: torch.where(S > 0, 1.0, S),
        "S.gt(0)": lambda: S.gt(0),
        "masked_fill_": lambda: o.masked_fill_(S > 0, 1.0),
        "softmax": lambda: torch.softmax(S, 1),
        "sigmoid_ (inplace)": lambda: o.copy_(S).sigmoid_(),
        "clone": lambda: S.clone(),
        "mul new": lambda: S * S,
        "sum(1)": lambda: S.sum(1),
        "sub bcast (B,1)-(B,C)": lambda: S[:, :1] - S,
        "exp": lambda: S.exp(),
    }
)
