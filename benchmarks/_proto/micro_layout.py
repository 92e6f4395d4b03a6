# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
"""Layout variants of the three (B, H) x (H, C) score matmuls at B=128, H=100, C=2176
(CPU time per call, 1 thread, interleaved medians)."""

import statistics
import time

import torch

torch.set_num_threads(1)
B, H, C = 128, 100, 2176
out = torch.randn(B, H)
wc = torch.randn(C, H)
bc = torch.randn(C)
dS = torch.randn(B, C)
dST = dS.t().contiguous()
outT = out.t().contiguous()
wcT = wc.t().contiguous()
o1 = torch.empty(B, C)
o2 = torch.empty(C, H)
v = {
    "fwd addmm(b, out, wc.t())": lambda: torch.addmm(bc, out, wc.t()),
    "fwd mm(out, wc.t()) no bias": lambda: torch.mm(out, wc.t()),
    "fwd mm(out, wcT contiguous)": lambda: torch.mm(out, wcT),
    "fwd (wc @ out.t()).t()": lambda: torch.mm(wc, out.t()),
    "fwd addmm out=": lambda: torch.addmm(bc, out, wc.t(), out=o1),
    "d_out dS.mm(wc)": lambda: dS.mm(wc),
    "d_out (wc.t() @ dS.t()).t()": lambda: wc.t().mm(dS.t()),
    "d_wc dS.t().mm(out)": lambda: dS.t().mm(out),
    "d_wc dST.mm(out) (dS^T contiguous)": lambda: dST.mm(out),
    "d_wc (out.t() @ dS).t()": lambda: out.t().mm(dS),
    "d_wc out=": lambda: torch.mm(dS.t(), out, out=o2),
}
res = {k: [] for k in v}
for _ in range(15):
    for k, f in v.items():
        c = time.process_time()
        for _ in range(20):
            f()
        res[k].append((time.process_time() - c) / 20 * 1e6)
for k, r in res.items():
    t = statistics.median(r)
    print(f"  {k:<40} {t:8.1f} us cpu  {2 * B * H * C / t / 1e3:6.1f} GFLOP/s")
