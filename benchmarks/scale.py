"""Memory and catalogue scaling of GRU4Rec training and evaluation, with PNG plots.

    python benchmarks/scale.py memory      # peak RSS of one epoch at 1M, 10M, 30M events
    python benchmarks/scale.py catalogue   # train events/s and eval queries/s at 10k-1M items
    python benchmarks/scale.py plot        # benchmarks/plots/*.png from results/scale.jsonl

``memory`` runs ``train_speed.py`` (one epoch of the ``ce-100-b128`` row, each size in a
fresh process, so ``peak_rss_mb`` is that process's ``ru_maxrss``: synthetic log, epoch
plan, model, optimiser state, sampler cache and the epoch itself). ``catalogue`` runs
``train_speed.py --items N`` (same row, a smaller log) and ``eval_speed.py --n-items N``
(a real GRU4Rec, ``samples`` and ``next-item``) for each catalogue size. Every result is
appended to ``benchmarks/results/scale.jsonl`` with the command that produced it;
``plot`` draws the latest result of each kind and size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scale.jsonl"
PLOTS = HERE / "plots"


def _run(cmd: list[str], threads: int) -> list[dict]:
    """Run a benchmark script; return the JSON objects it printed (lines starting '{')."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit(f"error: {cmd[1]} failed with exit code {proc.returncode}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _record(kind: str, row: dict, cmd: list[str]) -> dict:
    rec = {
        "kind": kind,
        **row,
        "command": " ".join(
            ["python", *[os.path.relpath(c) if c.endswith(".py") else c for c in cmd[1:]]]
        ),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}",
        "load_avg": os.getloadavg(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")
    return rec


def memory(args: argparse.Namespace) -> None:
    for n in args.events:
        cmd = [
            sys.executable, str(HERE / "train_speed.py"), "--config", args.config,
            "--events", str(n), "--threads", str(args.threads),
        ]  # fmt: skip
        for row in _run(cmd, args.threads):
            rec = _record("memory", {"events": n, **row}, cmd)
            print(
                f"{n:>11,} events  peak RSS {rec['peak_rss_mb']:7,.0f} MB  "
                f"(before fit {rec.get('rss_before_fit_mb', 0):6,.0f} MB)  "
                f"{rec['events_per_s']:8,.0f} ev/s  fit {rec['fit_s']:7.1f} s",
                flush=True,
            )


def catalogue(args: argparse.Namespace) -> None:
    for n in args.items:
        cmd = [
            sys.executable, str(HERE / "train_speed.py"), "--config", args.config,
            "--events", str(args.events), "--items", str(n), "--threads", str(args.threads),
        ]  # fmt: skip
        for row in _run(cmd, args.threads):
            rec = _record("catalogue-train", {"items": n, **row}, cmd)
            print(
                f"{n:>9,} items  train {rec['events_per_s']:8,.0f} ev/s  "
                f"peak RSS {rec['peak_rss_mb']:6,.0f} MB",
                flush=True,
            )
        cmd = [
            sys.executable, str(HERE / "eval_speed.py"), "--n-items", str(n),
            "--queries", str(args.queries), "--threads", str(args.threads),
            "--cases", "samples-gru4rec,next-item-gru4rec",
        ]  # fmt: skip
        out = _run(cmd, args.threads)
        for row in out[-1]["results"]:
            rec = _record("catalogue-eval", {"items": n, **row}, cmd)
            print(
                f"{n:>9,} items  eval {row['case']:18s} {row['queries_per_s']:8,.0f} q/s  "
                f"peak RSS {row['peak_rss_mb']:6,.0f} MB",
                flush=True,
            )


def _latest(kind: str, key: str, extra: str | None = None) -> dict:
    """Latest record of ``kind`` per value of ``key`` (and ``extra``)."""
    out: dict = {}
    if not RESULTS.exists():
        return out
    for line in RESULTS.read_text().splitlines():
        r = json.loads(line)
        if r.get("kind") == kind:
            out[(r[key], r.get(extra) if extra else None)] = r
    return out


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    mem = _latest("memory", "events")
    if mem:
        rows = sorted(mem.values(), key=lambda r: r["events"])
        fig, ax = plt.subplots(figsize=(6, 4))
        x = [r["events"] / 1e6 for r in rows]
        ax.plot(x, [r["peak_rss_mb"] / 1024 for r in rows], "o-", label="peak RSS (one epoch)")
        ax.plot(
            x,
            [r.get("rss_before_fit_mb", 0) / 1024 for r in rows],
            "s--",
            label="RSS before fit (log)",
        )
        ax.axhline(4, color="red", lw=0.8, ls=":", label="4 GiB (issue 5 limit at 10M)")
        ax.set_xlabel("synthetic events (millions)")
        ax.set_ylabel("GiB")
        ax.set_title(f"GRU4Rec training memory ({rows[0]['config']}, 60k items)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(PLOTS / "memory.png", dpi=110)
        print(f"wrote {PLOTS / 'memory.png'}")
    tr = _latest("catalogue-train", "items")
    ev = _latest("catalogue-eval", "items", "case")
    if tr or ev:
        fig, ax = plt.subplots(figsize=(6, 4))
        if tr:
            rows = sorted(tr.values(), key=lambda r: r["items"])
            ax.plot([r["items"] for r in rows], [r["events_per_s"] for r in rows], "o-",
                    label=f"training, events/s ({rows[0]['config']})")  # fmt: skip
        for case in sorted({k[1] for k in ev}):
            rows = sorted((r for k, r in ev.items() if k[1] == case), key=lambda r: r["items"])
            ax.plot([r["items"] for r in rows], [r["queries_per_s"] for r in rows], "s--",
                    label=f"evaluation {case.replace('-gru4rec', '')}, queries/s")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("catalogue size (items)")
        ax.set_ylabel("per second")
        ax.set_title("GRU4Rec [100]: speed as the catalogue grows")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(PLOTS / "catalogue.png", dpi=110)
        print(f"wrote {PLOTS / 'catalogue.png'}")


def _ints(text: str) -> list[int]:
    try:
        return [int(float(x)) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of numbers, got {text!r}"
        ) from None


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="what", required=True, metavar="memory|catalogue|plot")
    m = sub.add_parser("memory", help="peak RSS of one training epoch as the log grows")
    m.add_argument("--events", type=_ints, default=[1_000_000, 10_000_000, 30_000_000],
                   help="comma list of log sizes (default 1e6,1e7,3e7)")  # fmt: skip
    c = sub.add_parser("catalogue", help="training and evaluation speed as the catalogue grows")
    c.add_argument("--items", type=_ints, default=[10_000, 100_000, 1_000_000],
                   help="comma list of catalogue sizes (default 1e4,1e5,1e6)")  # fmt: skip
    c.add_argument("--events", type=int, default=300_000,
                   help="training log size per catalogue size (default 300,000)")  # fmt: skip
    c.add_argument("--queries", type=int, default=5_000,
                   help="evaluation queries per case (default 5,000)")  # fmt: skip
    for p in (m, c):
        p.add_argument(
            "--config", default="ce-100-b128", help="train_speed.py row (default ce-100-b128)"
        )
        p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    sub.add_parser("plot", help="draw benchmarks/plots/*.png from results/scale.jsonl")
    args = ap.parse_args()
    {"memory": memory, "catalogue": catalogue, "plot": plot}[args.what](args)


if __name__ == "__main__":
    main()
