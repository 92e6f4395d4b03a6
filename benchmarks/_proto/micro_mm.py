# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
"""GFLOP/s of the matmuls of one training step (fwd + bwd) for H=100/512, B=32/128, C=B+2048."""

import statistics
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)


def run(B, H, reps=7, inner=10):
    C = B + 2048
    out = torch.randn(B, H)
    wc = torch.randn(C, H)
    bc = torch.randn(C)
    dS = torch.randn(B, C)
    x = torch.randn(B, H)
    Wx = torch.randn(H, 3 * H)
    Wh = torch.randn(H, 3 * H)
    b = torch.randn(3 * H)
    dg = torch.randn(B, 3 * H)
    h = torch.randn(B, H)
    ops = {
        "scores fwd addmm": (lambda: torch.addmm(bc, out, wc.t()), 2 * B * H * C),
        "d_out = dS @ w_c": (lambda: dS.mm(wc), 2 * B * H * C),
        "d_wc = dS.T @ out": (lambda: dS.t().mm(out), 2 * B * H * C),
        "gx = addmm(b, x, Wx)": (lambda: torch.addmm(b, x, Wx), 2 * B * H * 3 * H),
        "h @ Wh (3 blocks)": (lambda: h @ Wh, 2 * B * H * 3 * H),
        "dWx = x.T @ dg": (lambda: x.t().mm(dg), 2 * B * H * 3 * H),
        "dWh = h.T @ dg": (lambda: h.t().mm(dg), 2 * B * H * 3 * H),
        "d_x = dg @ Wx.T": (lambda: dg.mm(Wx.t()), 2 * B * H * 3 * H),
    }
    res = {k: [] for k in ops}
    for _ in range(reps):
        for k, (f, fl) in ops.items():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            res[k].append((time.perf_counter() - t) / inner)
    tot_t = tot_f = 0.0
    print(f"B={B} H={H} C={C} threads={torch.get_num_threads()}")
    for k, (f, fl) in ops.items():
        t = statistics.median(res[k])
        tot_t += t
        tot_f += fl
        print(f"  {k:<22} {t * 1e3:7.3f} ms  {fl / t / 1e9:6.1f} GFLOP/s")
    print(
        f"  {'total':<22} {tot_t * 1e3:7.3f} ms  {tot_f / tot_t / 1e9:6.1f} GFLOP/s  ({tot_f / 1e6:.0f} MFLOP/step, "
        f"{tot_f / B / 1e6:.2f} MFLOP/event -> matmul-only bound {B / tot_t:,.0f} ev/s)"
    )


for B, H in [(32, 100), (128, 100), (128, 512)]:
    run(B, H)
