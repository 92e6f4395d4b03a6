"""Index build time and memory of the session-kNN models (issue 16 target: build < 10 s
on the 1/64 Yoochoose training file).

    PYTHONPATH=$PWD python benchmarks/knn_index.py \\
        [--train /work/shared/data/rsc15/srgnn_yoochoose1_64] \\
        [--model v-sknn --model vmis-knn] [--set m=500] [--repeat 3] [--out FILE.jsonl]

Every (model, repeat) runs in a fresh Python subprocess, so its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own. Measured per run:

  load_s     reading the training file into a SessionLog (not part of the build);
  build_s    wall time of ``model.fit(log, item_index=...)``: the index build (for the
             session-kNN models fit is nothing else) and the item support;
  index_s    the model's own ``meta_["index_build_seconds"]`` (the index arrays alone);
  index_mib  the model's ``meta_["index_mib"]``: bytes of its index arrays / 2**20;
  peak_mib   peak RSS of the subprocess (Python, numpy, torch, the log and the index);
  cpu_s      user + sys CPU seconds of the subprocess during fit;
  other      CPU cores used by other processes during fit (busy CPU time in /proc/stat
             minus this process's, / build_s); above ~0.2 on a 2-core host the timing
             is disturbed by neighbours and the row is flagged with ``!``.

The header prints the host's CPU model (``lscpu``'s "Model name"), its core count and
the load average before the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_TRAIN = "/work/shared/data/rsc15/srgnn_yoochoose1_64"
TARGET_S = 10.0


def cpu_model() -> str:
    """``lscpu``'s "Model name" (or /proc/cpuinfo's, or the platform's)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _busy_ticks() -> float:
    """Busy CPU seconds of the whole host so far (/proc/stat; 0 where unavailable)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    vals = [float(x) for x in fields]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)
    return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def one_run(train: str, model: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Load, build, measure (runs inside the child process)."""
    from seqrec.data.loading import load_training_data
    from seqrec.models import get_model_class

    t0 = time.perf_counter()
    data = load_training_data(train)
    load_s = time.perf_counter() - t0
    m = get_model_class(model)(overrides)
    busy0, cpu0, t0 = _busy_ticks(), _self_cpu(), time.perf_counter()
    m.fit(data.train, item_index=data.item_index)
    build_s = time.perf_counter() - t0
    cpu_s = _self_cpu() - cpu0
    other = max(0.0, (_busy_ticks() - busy0 - cpu_s) / build_s) if build_s > 0 else 0.0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "model": model,
        "config": overrides,
        "train": train,
        "events": int(data.train.n_events),
        "sessions": int(data.train.n_sessions),
        "items": len(data.item_index),
        "load_s": round(load_s, 3),
        "build_s": round(build_s, 3),
        "index_s": m.meta_.get("index_build_seconds"),
        "index_mib": m.meta_.get("index_mib"),
        "peak_mib": round(peak_kib / 1024, 1),
        "cpu_s": round(cpu_s, 3),
        "other_load": round(other, 2),
    }


def parse_set(pairs: list[str]) -> dict[str, Any]:
    from seqrec.config import parse_overrides

    return parse_overrides(pairs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", default=DEFAULT_TRAIN, help="training data (as for train)")
    ap.add_argument(
        "--model", action="append", help="model name (repeatable; default v-sknn, vmis-knn)"
    )
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE model key")
    ap.add_argument("--repeat", type=int, default=1, help="runs per model (default 1)")
    ap.add_argument("--out", help="append the JSON lines to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    overrides = parse_set(args.set)
    if args.child:  # inside the subprocess: one run, one JSON line on stdout
        print(json.dumps(one_run(args.train, args.child, overrides)))
        return 0

    models = args.model or ["v-sknn", "vmis-knn"]
    cores = os.cpu_count()
    print(f"host: {cpu_model()}, {cores} cores, load average {os.getloadavg()}")
    print(f"train: {args.train}")
    print("command: python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]))
    head = (
        f"{'model':<10} {'events':>9} {'load_s':>7} {'build_s':>8} {'index_s':>8} "
        f"{'index_MiB':>9} {'peak_MiB':>9} {'cpu_s':>6} {'other':>6}"
    )
    print(head)
    print("-" * len(head))
    rows = []
    for model in models:
        for _ in range(args.repeat):
            cmd = [sys.executable, __file__, "--train", args.train, "--child", model]
            for pair in args.set:
                cmd += ["--set", pair]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["host"] = cpu_model()
            r["load_after"] = os.getloadavg()[0]
            rows.append(r)
            flag = "!" if r["other_load"] > 0.2 else " "
            print(
                f"{model:<10} {r['events']:>9,} {r['load_s']:>7.2f} {r['build_s']:>8.2f} "
                f"{r['index_s']:>8.2f} {r['index_mib']:>9.1f} {r['peak_mib']:>9.1f} "
                f"{r['cpu_s']:>6.2f} {r['other_load']:>5.2f}{flag}"
            )
    best = min(r["build_s"] for r in rows)
    verdict = "meets" if best < TARGET_S else "misses"
    print(f"fastest build {best:.2f}s: {verdict} the < {TARGET_S:.0f} s target")
    if args.out:
        with open(args.out, "a") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
