# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
"""Where the time of one GRU4Rec training step goes, by category and by function, from
torch.profiler with Python stacks (1 thread). Shares are of the profiled step time
(profiler overhead included: its Python-function events make Python look ~1.5x costlier).

    prof_breakdown.py CONFIG [LEVEL] [STEPS]      (LEVEL 0 = seqrec's current code)
"""

import collections
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
from compare import make
from torch.profiler import ProfilerActivity, profile

torch.set_num_threads(1)
config = sys.argv[1]
level = int(sys.argv[2]) if len(sys.argv) > 2 else 0
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 150
model, task = make(config, level, 200_000)
it = iter(task.batches(0))
for _ in range(30):
    task.train_step(next(it))
c0 = time.process_time()
for _ in range(steps):
    task.train_step(next(it))
cpu_plain = (time.process_time() - c0) / steps * 1e3
with profile(activities=[ProfilerActivity.CPU], with_stack=True) as prof:
    for _ in range(steps):
        task.train_step(next(it))

PY = re.compile(r"^(.*\.py)\((\d+)\): (.*)$")


def context(e):
    """(innermost project function, inside autograd backward?)"""
    fn, bwd, p = None, False, e.cpu_parent
    while p is not None:
        if p.name.startswith("autograd::engine"):
            bwd = True
        m = PY.match(p.name)
        if (
            fn is None
            and m
            and ("seqrec/" in m.group(1) or "_proto/" in m.group(1))
            and "compare.py" not in m.group(1)
            and "prof_breakdown" not in m.group(1)
        ):
            fn = f"{m.group(1).split('/')[-1]}:{m.group(3)}"
        p = p.cpu_parent
    return fn or "?", bwd


def category(e, fn, bwd):
    n = e.name
    if PY.match(n) or n.startswith("<built-in") or n.startswith("<"):
        return "Python (interpreter time inside functions)"
    if n.startswith("autograd::engine") or n.endswith("Backward0") or n.endswith("Backward1"):
        return "autograd engine bookkeeping"
    mm = n in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul")
    if bwd:
        if mm:
            return "backward: matmuls"
        if n in (
            "aten::scatter_add_",
            "aten::index_add_",
            "aten::index_select_backward",
            "aten::zeros",
            "aten::zero_",
            "aten::fill_",
            "aten::new_zeros",
        ):
            return "backward: scatter (index_select backward) + zero fills"
        return "backward: elementwise (loss, gates, dropout, sums)"
    if "optim" in fn or "_rows_update" in fn or "_dense_update" in fn:
        if n in ("aten::index_select", "aten::index_copy_", "aten::index_add_"):
            return "optimizer: row gather/scatter"
        return "optimizer: elementwise"
    if "sampl" in fn or "sample" in fn:
        return "sampling"
    if n in ("aten::_unique2", "aten::sort", "aten::_unique"):
        return "torch.unique"
    if mm:
        return "forward: matmuls"
    if n == "aten::index_select":
        return "forward: index_select gathers"
    if n in ("aten::bernoulli_",):
        return "forward: dropout RNG"
    if (
        "loss" in fn
        or "cross_entropy" in fn
        or "bpr" in fn
        or n in ("aten::logsumexp", "aten::_softmax", "aten::_log_softmax", "aten::elu")
    ):
        return "forward: loss"
    return "forward: other (gates, cat, masked_fill, views)"


by_cat, by_fn, by_op = collections.Counter(), collections.Counter(), collections.Counter()
total = 0.0
for e in prof.events():
    if (
        e.name.startswith("ProfilerStep")
        or "profiler" in e.name
        or "compare.py" in e.name
        or "prof_breakdown" in e.name
    ):
        continue
    fn, bwd = context(e)
    us = e.self_cpu_time_total
    total += us
    by_cat[category(e, fn, bwd)] += us
    by_fn[("[bwd] " if bwd else "") + fn] += us
    if not PY.match(e.name):
        by_op[e.name] += us
T = total / steps / 1e3
print(f"{config} L{level}: {cpu_plain:.3f} ms CPU/step without profiler; profiled step {T:.3f} ms")
print("by category:")
for k, v in by_cat.most_common():
    print(f"  {v / steps / 1e3:7.3f} ms  {100 * v / total:5.1f}%  {k}")
print("by function (innermost seqrec/prototype function; [bwd] = run by autograd backward):")
for k, v in by_fn.most_common(14):
    print(f"  {v / steps / 1e3:7.3f} ms  {100 * v / total:5.1f}%  {k}")
print("top ops (self time):")
for k, v in by_op.most_common(14):
    print(f"  {v / steps / 1e3:7.3f} ms  {100 * v / total:5.1f}%  {k}")
