# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
"""torch.compile (inductor, CPU) of the closed-form bpr-max loss+gradient on (128, 2176):
compile time and per-call CPU time vs eager. 1 thread."""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
from fast_gru4rec import _bpr_max_manual

torch.set_num_threads(1)
S = torch.randn(128, 2176) * 2
f = torch.compile(_bpr_max_manual, dynamic=False)
t = time.perf_counter()
c = time.process_time()
l1, g1 = f(S, 0.5, 1.95)
print(
    f"first call (compile): wall {time.perf_counter() - t:.1f}s, cpu {time.process_time() - c:.1f}s"
)
l0, g0 = _bpr_max_manual(S, 0.5, 1.95)
print(
    "max rel diff vs eager:", ((g1 - g0).abs().max() / g0.abs().max()).item(), float(l1), float(l0)
)
res = {"eager": [], "compiled": []}
for _ in range(15):
    for k, fn in (("eager", _bpr_max_manual), ("compiled", f)):
        c = time.process_time()
        for _ in range(20):
            fn(S, 0.5, 1.95)
        res[k].append((time.process_time() - c) / 20 * 1e6)
for k, v in res.items():
    print(f"{k}: {statistics.median(v):.0f} us cpu/call")
