# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
"""ms/step and minor page faults/step of one task (for A/B across processes/env settings).
steps.py CONFIG LEVEL [STEPS]"""

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
from compare import make
from harness import cpu_busy, self_cpu

torch.set_num_threads(int(__import__("os").environ.get("THREADS", "1")))
config, level = sys.argv[1], int(sys.argv[2])
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 300
model, task = make(config, level, 200_000)
it = iter(task.batches(0))
for _ in range(30):
    task.train_step(next(it))
r0 = resource.getrusage(resource.RUSAGE_SELF)
b0, s0 = cpu_busy(), self_cpu()
t = time.perf_counter()
for _ in range(steps):
    task.train_step(next(it))
dt = time.perf_counter() - t
r1 = resource.getrusage(resource.RUSAGE_SELF)
other = max(cpu_busy() - b0 - (self_cpu() - s0), 0) / dt
print(
    f"{config} L{level}: {dt / steps * 1e3:.3f} ms/step, {(r1.ru_minflt - r0.ru_minflt) / steps:.1f} minflt/step, "
    f"cpu {(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / dt:.2f} (sys {(r1.ru_stime - r0.ru_stime) / dt:.2f}), other {other:.2f}"
)
