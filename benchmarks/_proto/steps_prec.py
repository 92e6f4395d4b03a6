# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md section 8)
"""ms per training step (2 threads, wall) and minor page faults per step: steps_prec.py CONFIG float32|bfloat16 [p]"""

import sys, time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import torch
from compare import make

torch.set_num_threads(2)
from seqrec.sysmem import keep_freed_memory

keep_freed_memory()
cfg = sys.argv[1]
prec = sys.argv[2]
model, task = make(cfg, 0, 200_000, matmul_precision=prec)
it = iter(task.batches(0))
for _ in range(20):
    task.train_step(next(it))
res = []
for rep in range(3):
    t = time.perf_counter()
    for _ in range(60):
        task.train_step(next(it))
    res.append((time.perf_counter() - t) / 60 * 1e3)
print(cfg, prec, "ms/step", ["%.2f" % r for r in res])
if len(sys.argv) > 3:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(60):
            task.train_step(next(it))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
import resource

r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(60):
    task.train_step(next(it))
print("minflt/step", (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 60)
