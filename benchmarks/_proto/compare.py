"""Equivalence and interleaved A/B timing of the prototype levels against the reference.

.venv/bin/python benchmarks/_proto/compare.py exact --config ce-100-b32 --steps 300
.venv/bin/python benchmarks/_proto/compare.py time --config ce-100-b32 --levels 0 1 2 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from fast_gru4rec import FastTask  # noqa: E402
from harness import build, cpu_busy, self_cpu  # noqa: E402

from seqrec.models.gru4rec import _Task  # noqa: E402


def make(config, level, events, bg=False, **over):
    if level == 0:
        return build(config, events, task_cls=_Task, **over)
    cls = type(f"L{level}", (FastTask,), {"level": level, "bg_sampler": bg})
    return build(config, events, task_cls=cls, **over)


def weights(model, task):
    return {k: v.detach().clone() for k, v in model.net_.state_dict().items()}


def exact(a) -> None:
    results = {}
    for level in a.levels:
        torch.manual_seed(0)
        model, task = make(a.config, level, a.events)
        torch.manual_seed(123)  # dropout RNG
        it = iter(task.batches(0))
        losses = []
        for i, batch in enumerate(it):
            if a.steps and i >= a.steps:
                break
            loss, _ = task.train_step(batch)
            losses.append(float(loss))
        results[level] = (
            weights(model, task),
            losses,
            {k: v.clone() for k, v in task.opt.state_dict().items()},
        )
    ref_w, ref_l, ref_o = results[a.levels[0]]
    for level in a.levels[1:]:
        w, lo, o = results[level]
        same_w = all(torch.equal(ref_w[k], w[k]) for k in ref_w)
        same_o = all(torch.equal(ref_o[k], o[k]) for k in ref_o)
        maxd = max((ref_w[k] - w[k]).abs().max().item() for k in ref_w)
        rel = max(
            ((ref_w[k] - w[k]).norm() / ref_w[k].norm().clamp_min(1e-30)).item() for k in ref_w
        )
        dl = max(abs(x - y) for x, y in zip(ref_l, lo, strict=True))
        print(
            f"level {level} vs {a.levels[0]}: weights bit-exact {same_w}, opt state bit-exact "
            f"{same_o}, max |dw| {maxd:.3g}, max rel norm diff {rel:.3g}, "
            f"max |dloss| {dl:.3g} "
            f"(mean loss {sum(lo) / len(lo):.5f} vs {sum(ref_l) / len(ref_l):.5f}, {len(lo)} steps)"
        )


def timing(a) -> None:
    torch.set_num_threads(a.threads)
    tasks = {}
    for level in a.levels:
        key = f"L{level}{'+bg' if a.bg and level else ''}"
        model, task = make(a.config, level, a.events, bg=a.bg and level > 0)
        it = iter(task.batches(0))
        for _ in range(30):
            task.train_step(next(it))
        tasks[key] = (task, it, model.config.batch_size)
    res = {k: [] for k in tasks}
    cpu = {k: [] for k in tasks}
    b0, s0, w0 = cpu_busy(), self_cpu(), time.perf_counter()
    for _ in range(a.rounds):
        for k, (task, it, _) in tasks.items():
            t, c = time.perf_counter(), time.process_time()
            for _ in range(a.chunk):
                task.train_step(next(it))
            res[k].append((time.perf_counter() - t) / a.chunk * 1e3)
            cpu[k].append((time.process_time() - c) / a.chunk * 1e3)
    other = max(cpu_busy() - b0 - (self_cpu() - s0), 0.0) / (time.perf_counter() - w0)
    base = statistics.median(res[next(iter(res))])
    cbase = statistics.median(cpu[next(iter(cpu))])
    print(
        f"{a.config}, threads {a.threads}, {a.rounds}x{a.chunk} steps each, interleaved; "
        f"other load {other:.2f} cores"
    )
    for k, v in res.items():
        med = statistics.median(v)
        B = tasks[k][2]
        cm = statistics.median(cpu[k])
        print(
            f"  {k:<8} wall {med:7.3f} ms/step (min {min(v):.3f}) = {B / med * 1e3:8,.0f} ev/s, "
            f"x{base / med:.2f} | cpu {cm:7.3f} ms/step = {B / cm * 1e3:8,.0f} ev/cpu-s, "
            f"x{cbase / cm:.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["exact", "time"])
    ap.add_argument("--config", default="ce-100-b32")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--chunk", type=int, default=40)
    ap.add_argument("--bg", action="store_true")
    a = ap.parse_args()
    if a.mode == "exact":
        torch.set_num_threads(a.threads)
        exact(a)
    else:
        timing(a)


if __name__ == "__main__":
    main()
