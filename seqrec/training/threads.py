"""How many intra-op CPU threads the training steps use (training key ``threads``).

* ``0`` (the library default): torch's current setting, nothing is changed;
* ``N``: N threads while the training steps run, torch's setting restored afterwards;
* ``"auto"`` (what ``seqrec train`` uses): one thread for a small step
  (``batch_size * largest layer <= SMALL_STEP_WORK``, e.g. batch 32 with [100]), whose
  products are too short to pay for waking a second OpenMP thread at every op; for a
  larger step torch's setting, lowered to the cores that are free when training starts.

Free cores: the cores this process may run on (``os.sched_getaffinity``) minus those
that other processes kept busy during a short probe (``PROBE_SECONDS`` of the per-CPU
busy time in ``/proc/stat``, less this process's own CPU time). OpenMP threads wait for
each other at every parallel region, so one thread that shares its core with another
busy process stalls all of them (measurements: benchmarks/PROFILE.md, "Training
threads"). Where ``/proc/stat`` is not readable, every allowed core counts as free.
"""

from __future__ import annotations

import os
import time

import torch

__all__ = ["SMALL_STEP_WORK", "busy_other_cores", "free_cores", "resolve_threads"]

SMALL_STEP_WORK = 4096  # batch_size * largest layer up to which "auto" uses one thread
PROBE_SECONDS = 0.1
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _busy_ticks(cpus: set[int]) -> int | None:
    """Busy (non-idle, non-iowait) clock ticks of ``cpus`` since boot, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    total = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        v = [int(x) for x in rest.split()]
        total += sum(v[:8]) - v[3] - v[4]  # user..steal without idle and iowait
    return total


def busy_other_cores(seconds: float = PROBE_SECONDS) -> float | None:
    """Cores of this process's CPU set kept busy by other processes during ``seconds``
    (None where /proc/stat is unavailable)."""
    cpus = _allowed_cpus()
    b0, s0, t0 = _busy_ticks(cpus), time.process_time(), time.perf_counter()
    if b0 is None:
        return None
    time.sleep(seconds)
    b1, s1, t1 = _busy_ticks(cpus), time.process_time(), time.perf_counter()
    if b1 is None:
        return None
    other = (b1 - b0) / _TICK - (s1 - s0)
    return max(other, 0.0) / (t1 - t0)


def free_cores() -> int:
    """Allowed cores not kept busy by other processes (at least 1)."""
    cores = len(_allowed_cpus())
    busy = busy_other_cores()
    if busy is None:
        return cores
    return max(1, cores - int(busy + 0.5))


def resolve_threads(setting: int | str, work: int) -> int:
    """Threads for the training steps (0: leave torch's setting) for the ``threads`` key
    ``setting`` and a step of ``work`` = batch_size * largest layer."""
    if setting != "auto":
        return int(setting)
    if work <= SMALL_STEP_WORK:
        return 1
    current = torch.get_num_threads()
    free = free_cores()
    return free if free < current else 0
