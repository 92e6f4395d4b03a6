# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
"""Cross-entropy forward+dL/dS variants on (B, C) logits, 1 thread, interleaved medians."""

import statistics
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)


def bench(fns, reps=25, inner=40):
    res = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            res[k].append((time.perf_counter() - t) / inner * 1e6)
    for k, v in res.items():
        print(f"  {k:<44} {statistics.median(v):8.1f} us (min {min(v):.1f})")


for B in (32, 128):
    C = B + 2048
    S = torch.randn(B, C) * 3
    lq = torch.randn(C)
    print(f"B={B} C={C}")

    def cur_autograd():
        s = S.clone().requires_grad_()
        logits = s - 1.0 * lq[None, :]
        l = (torch.logsumexp(logits, 1) - logits.diagonal()).mean()
        l.backward()

    def l2_manual():
        logits = S - 1.0 * lq[None, :]
        lse = torch.logsumexp(logits, 1)
        l = (lse - logits.diagonal()).mean()
        d = (logits - lse.unsqueeze(1)).exp_().mul_(1.0 / B)
        d.diagonal().sub_(1.0 / B)

    def l3_logsoftmax():
        ls = torch.log_softmax(S, 1)
        l = -ls.diagonal().mean()
        d = ls.exp_().mul_(1.0 / B)
        d.diagonal().sub_(1.0 / B)

    def l5_softmax():
        d = torch.softmax(S, 1)
        mx, am = S.max(1)
        l = (mx - d.gather(1, am.unsqueeze(1)).squeeze(1).log_() - S.diagonal()).mean()
        d.diagonal().sub_(1.0)

    def l5b_softmax_amax():
        d = torch.softmax(S, 1)
        mx = S.amax(1)
        l = (mx - d.amax(1).log_() - S.diagonal()).mean()
        d.diagonal().sub_(1.0)

    def softmax_only():
        torch.softmax(S, 1)

    def logsoftmax_only():
        torch.log_softmax(S, 1)

    def max_only():
        S.max(1)

    def amax_only():
        S.amax(1)

    def sum0():
        S.sum(0)

    bench(
        {
            "current (autograd logsumexp)": cur_autograd,
            "L2 manual logsumexp (bit-exact)": l2_manual,
            "L3 log_softmax + exp_": l3_logsoftmax,
            "L5 softmax + max": l5_softmax,
            "L5b softmax + 2x amax": l5b_softmax_amax,
            "softmax only": softmax_only,
            "log_softmax only": logsoftmax_only,
            "max(1)": max_only,
            "amax(1)": amax_only,
            "sum(0)": sum0,
        }
    )
