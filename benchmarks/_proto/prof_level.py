# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
"""torch.profiler table for one prototype level: prof_level.py CONFIG LEVEL [steps]"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
from compare import make
from torch.profiler import ProfilerActivity, profile

torch.set_num_threads(1)
config, level = sys.argv[1], int(sys.argv[2])
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 200
model, task = make(config, level, 200_000)
it = iter(task.batches(0))
for _ in range(30):
    task.train_step(next(it))
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    for _ in range(steps):
        task.train_step(next(it))
print(
    prof.key_averages().table(
        sort_by="self_cpu_time_total",
        row_limit=int(sys.argv[4]) if len(sys.argv) > 4 else 30,
        max_name_column_width=40,
    )
)
