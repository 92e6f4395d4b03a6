"""Training speed of seqrec's GRU4Rec against the official GRU4Rec figures.

One epoch of ``seqrec.training.fit(GRU4Rec(config), log)`` per configuration (with the
process tuning ``seqrec train`` applies: ``threads = "auto"``, ``malloc_tuning``), on a
synthetic log from :mod:`make_synthetic` (default 1,000,000 events, 60,000 items,
Zipf 1.0 popularity, session length 1 + geometric with mean 4.5, seed 0). Every
configuration (and every repeat) runs in a fresh Python subprocess, so its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own.

Configurations (all: n_sample 2048, constrained_embedding true, embedding 0, gru,
one epoch, Adagrad, seed 42, default sample_cache):

  ce-100-b32      cross-entropy, layers [100], batch 32,  sample_alpha 0.2,
                  dropout_p_hidden 0.2, learning_rate 0.07, logq 1  (official 4.8k ev/s)
  ce-100-b128     same, batch 128                                     (official 12.2k)
  ce-512-b128     same, layers [512], batch 128                       (official 4.2k)
  bprmax-100-b128 bpr-max, [100], batch 128, sample_alpha 0.4, elu_param 0.5,
                  bpreg 1.95, dropout_p_embed 0.5, dropout_p_hidden 0.05,
                  learning_rate 0.05, momentum 0.4                    (official 10.4k)
  ce-512-b128-bf16  ce-512-b128 with matmul_precision = "bfloat16" (bfloat16 operands
                  of the step's matrix products; compared with the same official 4.2k)

Measured per run:

  fit_s        wall time of the whole ``fit`` call (model build, sampler set-up and
               its first cache draw, the epoch plan, the epoch); data generation is
               excluded.
  events/s     training events / fit_s, where training events = the (input, target)
               pairs the epoch trains on = n_events - n_sessions (every event but the
               first of its session). This is the headline figure compared with the
               official one (``ratio`` = events/s / official, target >= 2.5).
  loop ev/s    ``model.history_[-1].events_per_second`` (same events, epoch loop only).
  fused        whether seqrec's compiled optimiser kernels (seqrec.training.kernels) were in use;
               they are built (or loaded from torch's extension cache) before the
               timer starts (``fused_load_s``), as a one-time per-machine cost;
               ``kernels`` (JSON): the path that trained, "fused-cpu kernels",
               "torch fallback" or "cuda" (the model's meta_).
  all ev/s     n_events / fit_s (counting every event of the log; for reference).
  peak RSS     ru_maxrss of the subprocess (includes the synthetic log, ~20 MB at 1M).
  cuda peak    torch.cuda.max_memory_allocated (with --device cuda).
  ev/cpu-s     training events / CPU seconds (user + sys, all threads) of this process
               during the fit: with --threads 1 a contention-robust estimate of what
               one dedicated core does (with 2+ threads it counts OpenMP spin-waits).
  host probe   ``host_before`` / ``host_after``: the speed of this host right before
               and after the fit (:func:`host_probe`: float32 GFLOP/s on the [512]
               step's product shape, microseconds to gather 2,080 cold rows); the
               table shows their mean (``sgemm``, ``gather``). On a shared VM the
               neighbours change these by 10-40% from hour to hour, and the training
               figures with them: compare runs whose probes agree, or interleave.
  ceiling      events/s if the step's matrix products (``step_gflop`` per step,
               :func:`step_flops`) ran at the probe's GFLOP/s (its bfloat16 rate for
               bfloat16 rows) and nothing else took any time: no implementation can
               beat it on that host at that moment; a row whose ceiling is below its
               target cannot meet the target in that precision there.
  other load   CPU cores used by *other* processes during the fit (busy time of all
               CPUs in /proc/stat minus this process's user+sys time, / fit_s). On a
               shared 2-core machine anything above ~0.2 makes the run unreliable:
               with 2 torch threads a competing process can slow training down by an
               order of magnitude (OpenMP threads wait for a descheduled peer). Runs
               are flagged with ``!`` in the table.

Output (stdout): one JSON object per run (lines starting with ``{``, so
``grep '^{'`` extracts machine-readable results), then a table.
With ``--repeat N`` the table shows medians over the N runs.

Examples::

    .venv/bin/python benchmarks/train_speed.py                      # all rows, 1M events
    .venv/bin/python benchmarks/train_speed.py --config ce-100-b32 --events 200000
    .venv/bin/python benchmarks/train_speed.py --repeat 3 --threads 1
    .venv/bin/python benchmarks/train_speed.py --config ce-100-b128 --set n_sample=0
    .venv/bin/python benchmarks/train_speed.py --set fast_step=false   # autograd step
    .venv/bin/python benchmarks/train_speed.py --env SEQREC_FUSED=0    # no C++ kernels
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

COMMON = {
    "cell": "gru",
    "n_sample": 2048,
    "constrained_embedding": True,
    "embedding": 0,
    "n_epochs": 1,
    "optimizer": "adagrad",
    "seed": 42,
}
CE = {
    "loss": "cross-entropy",
    "sample_alpha": 0.2,
    "dropout_p_embed": 0.0,
    "dropout_p_hidden": 0.2,
    "learning_rate": 0.07,
    "momentum": 0.0,
    "logq": 1.0,
}
BPRMAX = {
    "loss": "bpr-max",
    "sample_alpha": 0.4,
    "elu_param": 0.5,
    "bpreg": 1.95,
    "dropout_p_embed": 0.5,
    "dropout_p_hidden": 0.05,
    "learning_rate": 0.05,
    "momentum": 0.4,
}
# name -> (config, official events/s)
CONFIGS: dict[str, tuple[dict, float]] = {
    "ce-100-b32": ({**COMMON, **CE, "layers": [100], "batch_size": 32}, 4800.0),
    "ce-100-b128": ({**COMMON, **CE, "layers": [100], "batch_size": 128}, 12200.0),
    "ce-512-b128": ({**COMMON, **CE, "layers": [512], "batch_size": 128}, 4200.0),
    "bprmax-100-b128": ({**COMMON, **BPRMAX, "layers": [100], "batch_size": 128}, 10400.0),
    # the [512] row with bfloat16 matrix products (matmul_precision; float32 otherwise)
    "ce-512-b128-bf16": (
        {**COMMON, **CE, "layers": [512], "batch_size": 128, "matmul_precision": "bfloat16"},
        4200.0,
    ),
}
TARGET_RATIO = 2.5


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _cpu_ticks() -> tuple[float, float]:
    """(busy, total) seconds of all CPUs of the machine from /proc/stat (0, 0 if absent)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            v = [float(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    idle = v[3] + (v[4] if len(v) > 4 else 0.0)  # idle + iowait
    total = sum(v[:8])  # guest time is already included in user
    return (total - idle) / hz, total / hz


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def step_flops(cfg: dict) -> float:
    """FLOPs of the matrix products of one GRU4Rec training step (forward and backward).

    Per step of B sessions with C = B + n_sample candidates: the score product
    (B x H_last) @ (H_last x C) and its two backward products; per GRU layer with input
    size I and H units: forward x @ Wx (3H wide), h @ Wh_rz (2H), (r*h) @ Wh_n (H);
    backward d(r*h) (H), dWh_rz, dWh_n, dWx and the gradient of the layer's input (none
    into the carried state: one-step truncation). Constrained embedding: I = H_last for
    the first layer. Everything else (element-wise work, sampling, updates) is not
    counted.
    """
    B = int(cfg["batch_size"])
    layers = [int(h) for h in cfg["layers"]]
    C = B + int(cfg.get("n_sample", 0))
    total = 3 * 2.0 * B * layers[-1] * C
    inp = layers[-1] if cfg.get("constrained_embedding", True) else int(cfg.get("embedding") or 0)
    for H in layers:
        total += 2.0 * B * (9 * H * inp + 7 * H * H)
        inp = H
    return total


def host_probe() -> dict[str, float]:
    """How fast this host is right now, on this process's threads (~0.3 s, CPU only).

    ``sgemm_gflops`` / ``bf16_gflops``: float32 / bfloat16 (128 x 512) @ (512 x 1536)
    products (the [512] step's shapes), median of 5 rounds of 10. ``gather_us``:
    gathering 2,080 random rows of a (60,000 x 100) float32 table (a batch-32 step's
    touched rows) into a preallocated output, median of 9 draws after one warm-up, 32 MB
    of other memory written between draws so the rows come from memory. A shared host
    whose neighbours load the cores or the memory shows up here: compare runs only where
    these agree.
    """
    import torch

    def product_gflops(a: torch.Tensor, b: torch.Tensor) -> float:
        """a @ b: 3 warm-up products, then the median of 5 rounds of 10."""
        out = torch.mm(a, b)
        for _ in range(3):
            torch.mm(a, b, out=out)
        rounds = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(10):
                torch.mm(a, b, out=out)
            rounds.append((time.perf_counter() - t) / 10)
        return 2 * a.shape[0] * a.shape[1] * b.shape[1] / statistics.median(rounds) / 1e9

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(128, 512, generator=gen)
    b = torch.randn(512, 1536, generator=gen)
    sgemm = product_gflops(a, b)
    bf16 = product_gflops(a.bfloat16(), b.bfloat16())
    table = torch.randn(60_000, 100, generator=gen)
    sweep = torch.empty(8 * 2**20)  # 32 MB
    got = torch.empty(2_080, 100)  # preallocated: no page faults in the timed gathers
    draws = []
    for i in range(10):
        rows = torch.randint(0, 60_000, (2_080,), generator=gen).sort().values
        sweep.fill_(1.0)
        t = time.perf_counter()
        torch.index_select(table, 0, rows, out=got)
        if i > 0:  # the first draw warms up
            draws.append(time.perf_counter() - t)
    return {
        "sgemm_gflops": sgemm,
        "bf16_gflops": bf16,
        "gather_us": statistics.median(draws) * 1e6,
    }


def worker(args: argparse.Namespace) -> None:
    """Runs one configuration in this process and prints one JSON line."""
    import torch

    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    from make_synthetic import make_log

    from seqrec.models.gru4rec import GRU4Rec
    from seqrec.pipeline import with_process_tuning
    from seqrec.training import fit

    torch.set_num_threads(args.threads)
    cfg, official = CONFIGS[args._worker]
    cfg = dict(cfg, device=args.device)
    for kv in args.set or []:
        k, _, v = kv.partition("=")
        cfg[k] = _parse_value(v)
    t = time.perf_counter()
    log = make_log(args.events, args.items, args.zipf, args.mean_length, args.seed)
    gen_s = time.perf_counter() - t
    from seqrec.training import kernels as fused

    t = time.perf_counter()
    fused_ok = fused.kernels() is not None  # build / load outside the timed fit
    fused_load_s = time.perf_counter() - t
    probe_before = host_probe() if args.device == "cpu" else {}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = GRU4Rec(with_process_tuning(GRU4Rec, cfg))  # as `seqrec train` does
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    busy0, _ = _cpu_ticks()
    self0 = _self_cpu()
    t = time.perf_counter()
    fit(model, log, progress=False)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    fit_s = time.perf_counter() - t
    self_cpu = _self_cpu() - self0
    busy1, _ = _cpu_ticks()
    other = max(busy1 - busy0 - self_cpu, 0.0) / fit_s  # cores used by other processes
    h = model.history_[-1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    probe_after = host_probe() if args.device == "cpu" else {}  # after the RSS reading
    res = {
        "config": args._worker,
        "events_per_s": h.events / fit_s,
        "fit_s": fit_s,
        "loop_events_per_s": h.events_per_second,
        "loop_s": h.seconds,
        "all_events_per_s": log.n_events / fit_s,
        "train_events": h.events,
        "n_events": log.n_events,
        "n_sessions": log.n_sessions,
        "n_items": model.n_items_,
        "loss": h.loss,
        "peak_rss_mb": rss / 1024.0,
        "rss_before_fit_mb": rss_before / 1024.0,
        "official_events_per_s": official,
        "ratio": h.events / fit_s / official,
        "target_events_per_s": official * TARGET_RATIO,
        "threads": torch.get_num_threads(),
        "self_cpu_cores": self_cpu / fit_s,
        "events_per_cpu_s": h.events / self_cpu if self_cpu > 0 else float("nan"),
        "other_load_cores": other,
        "device": args.device,
        "gen_s": gen_s,
        "torch": torch.__version__,
        "overrides": args.set or [],
        "env": args.env or [],
        "fast_step": bool(cfg.get("fast_step", True)),
        "fused": fused_ok,
        "kernels": model.meta_.get("kernels"),  # the path that trained: fused.compute_path
        "fused_load_s": fused_load_s,
        "step_gflop": step_flops(cfg) / 1e9,
        "host_before": probe_before,
        "host_after": probe_after,
    }
    if args.device.startswith("cuda"):
        res["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(res), flush=True)


def run_one(name: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--_worker",
        name,
        "--events",
        str(args.events),
        "--items",
        str(args.items),
        "--zipf",
        str(args.zipf),
        "--mean-length",
        str(args.mean_length),
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
    ]
    for kv in args.set or []:
        cmd += ["--set", kv]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for kv in args.env or []:
        k, _, v = kv.partition("=")
        env[k] = v
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{name}: worker failed with exit code {proc.returncode}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1])


def _ceiling(r: dict) -> float:
    """Training events/s with the products at the host probe's rate and nothing else."""
    bf16 = any(o.replace(" ", "") == 'matmul_precision="bfloat16"' for o in r["overrides"])
    bf16 = bf16 or r["config"].endswith("-bf16")
    rate = _host(r, "bf16_gflops" if bf16 else "sgemm_gflops")
    per_event = r.get("step_gflop", float("nan")) / CONFIGS[r["config"]][0]["batch_size"]
    return rate / per_event


def _host(r: dict, key: str) -> float:
    """The host probe's ``key``, mean of before and after the fit (nan without a probe)."""
    vals = [r[w][key] for w in ("host_before", "host_after") if key in r.get(w, {})]
    return sum(vals) / len(vals) if vals else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--config",
        action="append",
        choices=list(CONFIGS),
        default=None,
        help="configuration to run (repeatable; default: all four rows)",
    )
    ap.add_argument(
        "--events",
        type=int,
        default=1_000_000,
        help="events in the synthetic log (default 1,000,000)",
    )
    ap.add_argument(
        "--items", type=int, default=60_000, help="item ids in the synthetic log (default 60,000)"
    )
    ap.add_argument(
        "--zipf", type=float, default=1.0, help="Zipf exponent of item popularity (default 1.0)"
    )
    ap.add_argument(
        "--mean-length", type=float, default=5.5, help="mean session length (default 5.5)"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic log (default 0)")
    ap.add_argument(
        "--threads", type=int, default=2, help="torch.set_num_threads in the worker (default 2)"
    )
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per configuration, each in a fresh process; the table shows medians",
    )
    ap.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a GRU4Rec config entry for every row, VALUE parsed as JSON "
        "if possible (e.g. --set n_sample=0 --set 'layers=[64]'); repeatable",
    )
    ap.add_argument(
        "--env",
        action="append",
        metavar="KEY=VALUE",
        help="environment variable for the worker processes (repeatable), e.g. "
        "--env GLIBC_TUNABLES=glibc.malloc.trim_threshold=268435456:"
        "glibc.malloc.mmap_threshold=67108864 (keeps freed memory in the heap: "
        "see PROFILE.md)",
    )
    ap.add_argument("--json-out", default=None, help="also append the JSON lines to this file")
    ap.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        worker(args)
        return 0

    names = args.config or list(CONFIGS)
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}; log: {args.events:,} events, {args.items:,} items, "
        f"zipf {args.zipf}, mean length {args.mean_length}, seed {args.seed}; "
        f"threads {args.threads}, device {args.device}, repeat {args.repeat}"
        + (f", env {' '.join(args.env)}" if args.env else ""),
        flush=True,
    )
    rows = []
    for name in names:
        runs = []
        for _ in range(args.repeat):
            r = run_one(name, args)
            print(json.dumps(r), flush=True)
            if args.json_out:
                with open(args.json_out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(r) + "\n")
            runs.append(r)
        med = {
            k: statistics.median(r[k] for r in runs)
            for k in (
                "events_per_s",
                "fit_s",
                "loop_events_per_s",
                "all_events_per_s",
                "peak_rss_mb",
                "ratio",
                "other_load_cores",
                "events_per_cpu_s",
            )
        }
        med["sgemm"] = statistics.median(_host(r, "sgemm_gflops") for r in runs)
        med["gather"] = statistics.median(_host(r, "gather_us") for r in runs)
        med["ceiling"] = statistics.median(_ceiling(r) for r in runs)
        rows.append(
            (name, runs[0], med, [(r["events_per_s"], r["other_load_cores"]) for r in runs])
        )

    head = (
        f"{'config':<16} {'events/s':>9} {'fit s':>7} {'loop ev/s':>9} {'all ev/s':>9} "
        f"{'ev/cpu-s':>9} {'peak RSS MB':>11} {'official':>8} {'ratio':>6} {'target':>7} {'ok':>3} "
        f"{'other':>6} {'sgemm':>5} {'gather':>6} {'ceiling':>8}"
    )
    print()
    print(head)
    print("-" * len(head))
    for name, r0, med, all_eps in rows:
        ok = "yes" if med["ratio"] >= TARGET_RATIO else "no"
        print(
            f"{name:<16} {med['events_per_s']:>9,.0f} {med['fit_s']:>7.1f} "
            f"{med['loop_events_per_s']:>9,.0f} {med['all_events_per_s']:>9,.0f} "
            f"{med['events_per_cpu_s']:>9,.0f} {med['peak_rss_mb']:>11,.0f} "
            f"{r0['official_events_per_s']:>8,.0f} "
            f"{med['ratio']:>6.2f} {r0['target_events_per_s']:>7,.0f} {ok:>3} "
            f"{med['other_load_cores']:>5.2f}{'!' if med['other_load_cores'] > 0.2 else ' '}"
            f" {med['sgemm']:>5.0f} {med['gather']:>6.0f} {med['ceiling']:>8,.0f}"
        )
        if len(all_eps) > 1:
            print(
                f"{'':<16}   runs: "
                + ", ".join(f"{e:,.0f}{'!' if o > 0.2 else ''}" for e, o in all_eps)
            )
    print(
        f"\nevents/s = training pairs ({rows[0][1]['train_events']:,}) / wall time of fit; "
        f"ratio = events/s / official; target ratio >= {TARGET_RATIO}; other = CPU cores "
        f"used by other processes during the fit (! = > 0.2, timing unreliable); sgemm "
        f"(GFLOP/s) and gather (us) = the host probe, mean of before and after the fit "
        f"(see host_probe: a slower host shows there); ceiling = events/s if the step's "
        f"matrix products ran at the probe's GFLOP/s (bfloat16 rate for bfloat16 rows) and "
        f"nothing else took time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
