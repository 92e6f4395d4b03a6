# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
"""Is denormal arithmetic part of the cost? Interleaved timing with torch.set_flush_denormal
off/on for one task (the flag is per thread: toggled around each chunk)."""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
from compare import make

torch.set_num_threads(1)
config, level = sys.argv[1], int(sys.argv[2])
res = {False: [], True: []}
tasks = {}
for flush in (False, True):
    model, task = make(config, level, 200_000)
    it = iter(task.batches(0))
    for _ in range(30):
        task.train_step(next(it))
    tasks[flush] = (task, it)
for _ in range(10):
    for flush, (task, it) in tasks.items():
        torch.set_flush_denormal(flush)
        t = time.perf_counter()
        for _ in range(30):
            task.train_step(next(it))
        res[flush].append((time.perf_counter() - t) / 30 * 1e3)
torch.set_flush_denormal(False)
for k, v in res.items():
    print(
        f"{config} L{level} flush_denormal={k}: {statistics.median(v):.3f} ms/step (min {min(v):.3f})"
    )
