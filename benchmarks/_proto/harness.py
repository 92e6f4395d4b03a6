"""Step-level timing / profiling harness for GRU4Rec training (prototype, not imported
by the package). Builds the real seqrec training task and calls ``train_step``
directly, so individual steps can be timed and profiled.

    .venv/bin/python benchmarks/_proto/harness.py time --config ce-100-b32 --steps 600
    .venv/bin/python benchmarks/_proto/harness.py torchprof --config ce-100-b128
    .venv/bin/python benchmarks/_proto/harness.py cprofile --config ce-100-b32
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

import torch  # noqa: E402
from make_synthetic import make_log  # noqa: E402
from train_speed import CONFIGS  # noqa: E402

from seqrec.models.gru4rec import GRU4Rec, _Task  # noqa: E402


def cpu_busy() -> float:
    with open("/proc/stat", encoding="ascii") as f:
        v = [float(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def build(config: str, events: int = 200_000, items: int = 60_000, task_cls=_Task, **over):
    cfg = dict(CONFIGS[config][0], **over)
    log = make_log(events, items)
    model = GRU4Rec(cfg)
    model._begin_fit(log, None)
    torch.manual_seed(model.config.seed)
    model._build(model.n_items_)
    task = task_cls(model, log, None)
    return model, task


def time_steps(task, steps: int, warmup: int = 50, chunk: int = 50):
    """Median ms/step over chunks of ``chunk`` steps, after ``warmup`` steps; also the
    cores used by other processes meanwhile."""
    it = iter(task.batches(0))
    for _ in range(warmup):
        task.train_step(next(it))
    times = []
    b0, s0, w0 = cpu_busy(), self_cpu(), time.perf_counter()
    done = 0
    while done < steps:
        t = time.perf_counter()
        for _ in range(chunk):
            task.train_step(next(it))
        times.append((time.perf_counter() - t) / chunk * 1e3)
        done += chunk
    wall = time.perf_counter() - w0
    other = max(cpu_busy() - b0 - (self_cpu() - s0), 0.0) / wall
    return statistics.median(times), min(times), other


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["time", "torchprof", "cprofile"])
    ap.add_argument("--config", default="ce-100-b32")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", type=int, default=40)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, task = build(a.config, a.events)
    B = model.config.batch_size
    if a.mode == "time":
        med, best, other = time_steps(task, a.steps)
        print(
            f"{a.config} threads={a.threads}: {med:.3f} ms/step median, {best:.3f} best -> "
            f"{B / med * 1e3:,.0f} ev/s (full batches), other load {other:.2f} cores"
        )
    elif a.mode == "torchprof":
        from torch.profiler import ProfilerActivity, profile

        it = iter(task.batches(0))
        for _ in range(50):
            task.train_step(next(it))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t = time.perf_counter()
            for _ in range(a.steps):
                task.train_step(next(it))
            wall = time.perf_counter() - t
        print(f"wall {wall / a.steps * 1e3:.3f} ms/step (with profiler overhead)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows))
    else:
        import cProfile
        import pstats

        it = iter(task.batches(0))
        for _ in range(50):
            task.train_step(next(it))
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(a.steps):
            task.train_step(next(it))
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(a.rows)


if __name__ == "__main__":
    main()
