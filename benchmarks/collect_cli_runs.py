"""Turn the logs of ``benchmarks/cli_run.sh`` into JSON lines and a markdown table.

Each log holds the host line, the ``seqrec train`` command, every epoch line (training
seconds, validation metrics on the second-to-last items) and the JSON of ``seqrec
evaluate --protocol last-item`` on the test items. For every log this prints one JSON
line (appended to ``--out``): the test metrics, the command, the host, the epochs run, the
best validation epoch (by ``--monitor``) and the training seconds up to it (the sum of
the epoch lines' seconds: validation time not included), then a markdown table of
HR@K / NDCG@K.

    python benchmarks/collect_cli_runs.py runs/*.log --out benchmarks/results/seq_accuracy.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

EPOCH = re.compile(r"^epoch (\d+)/\d+: loss [\d.]+, [\d,]+ events in ([\d.]+)s .*$")
VALID = re.compile(r"valid (\S+) ([\d.]+)")


def parse(path: Path, monitor: str) -> dict | None:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    head = [ln[2:] for ln in lines if ln.startswith("# ")]
    result = None
    epochs = []
    for ln in lines:
        if ln.startswith("{") and '"protocol"' in ln:
            result = json.loads(ln)
        m = EPOCH.match(ln)
        if m:
            metrics = {k: float(v) for k, v in VALID.findall(ln)}
            epochs.append({"epoch": int(m.group(1)), "seconds": float(m.group(2)), **metrics})
    if result is None:
        print(f"{path}: no evaluation result (run not finished?)", file=sys.stderr)
        return None
    validated = [e for e in epochs if monitor in e]  # none when trained without validation
    best = max(validated, key=lambda e: e[monitor]) if validated else None
    wall = [float(x) for x in re.findall(r"^train wall ([\d.]+) s", "\n".join(lines), re.M)]
    ev = [float(x) for x in re.findall(r"^eval wall ([\d.]+) s", "\n".join(lines), re.M)]
    return {
        "run": path.stem,
        "host": head[0] if head else "",
        "command": head[1] if len(head) > 1 else "",
        "epochs_run": len(epochs),
        "best_epoch": best["epoch"] if best else None,
        f"best_valid_{monitor}": best.get(monitor) if best else None,
        "train_seconds_to_best": round(sum(e["seconds"] for e in epochs[: best["epoch"]]), 1)
        if best
        else None,
        "train_wall_seconds": wall[-1] if wall else None,
        "eval_wall_seconds": ev[-1] if ev else None,
        **{k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))},
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("logs", nargs="+", help="logs written by benchmarks/cli_run.sh")
    p.add_argument("--out", help="append the JSON lines to this file")
    p.add_argument("--monitor", default="ndcg@10", help="validation metric of the best epoch")
    p.add_argument(
        "--sessions",
        action="store_true",
        help="session-based table (samples / next-item protocols): Recall@5/10/20, MRR@20, "
        "NDCG@20, coverage@20 in %%, training and evaluation wall seconds",
    )
    args = p.parse_args()
    rows = [r for r in (parse(Path(x), args.monitor) for x in args.logs) if r is not None]
    for r in rows:
        line = json.dumps(r, sort_keys=True)
        print(line)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
    if args.sessions:
        print_sessions_table(rows)
        return
    cols = "HR@5 | HR@10 | HR@20 | NDCG@5 | NDCG@10 | NDCG@20 | best epoch | train s to best"
    print(f"\n| run | {cols} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        vals = " | ".join(f"{r.get(m, float('nan')):.4f}" for m in (
            "recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20"))  # fmt: skip
        print(
            f"| {r['run']} | {vals} | {r['best_epoch']} of {r['epochs_run']} | "
            f"{r['train_seconds_to_best']} |"
        )


def print_sessions_table(rows: list[dict]) -> None:
    metrics = ("recall@5", "recall@10", "recall@20", "mrr@20", "ndcg@20", "coverage@20")
    head = "R@5 | R@10 | R@20 | MRR@20 | NDCG@20 | cov@20 | best epoch | train s | eval s"
    print(f"\n| run | {head} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        vals = " | ".join(f"{100 * r.get(m, float('nan')):.2f}" for m in metrics)
        best = f"{r['best_epoch']} of {r['epochs_run']}" if r["best_epoch"] else "-"
        print(
            f"| {r['run']} | {vals} | {best} | {r['train_wall_seconds']} | "
            f"{r['eval_wall_seconds']} |"
        )


if __name__ == "__main__":
    main()
