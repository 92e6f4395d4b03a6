# ruff: noqa  (measurement script, the record of PROFILE.md section 9)
"""Interleaved A/B of FastStep variants: ab.py CONFIG PREC variantA variantB (variants: shadows, noshadows)"""

import sys, time, statistics

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import torch

torch.set_num_threads(2)
from seqrec.sysmem import keep_freed_memory

keep_freed_memory()
from compare import make
from seqrec.models.gru4rec_step import FastStep

cfg, prec = sys.argv[1], sys.argv[2]
variants = sys.argv[3:]
runs = {}
for v in variants:
    model, task = make(cfg, 0, 300_000, matmul_precision=prec)
    if v == "noshadows":
        task.fast_step = FastStep(task, shadows=False)
    it = iter(task.batches(0))
    for _ in range(20):
        task.train_step(next(it))
    runs[v] = (task, it, [])
for rnd in range(12):
    for v in variants:
        task, it, ts = runs[v]
        t = time.perf_counter()
        for _ in range(25):
            task.train_step(next(it))
        ts.append((time.perf_counter() - t) / 25 * 1e3)
for v in variants:
    ts = runs[v][2]
    print(f"{v:12s} median {statistics.median(ts):.2f} ms  min {min(ts):.2f}  max {max(ts):.2f}")
