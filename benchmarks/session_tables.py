"""One table per session dataset with every model of the library (issue 18).

Reads the recorded result lines, never the models: the baselines, neighbourhood models,
GRU4Rec and the hybrid from ``benchmarks/results/accuracy_knn.jsonl`` (the latest line
per dataset and model; GRU4Rec from ``accuracy.jsonl`` where the kNN file has none) and
the neural session models (NARM, STAMP and its variants, SR-GNN) from
``benchmarks/results/session_neural_accuracy.jsonl`` (every run, labelled by how it was
trained). Prints markdown: Recall@5/10/20, MRR@20, NDCG@20 and coverage@20 in %, training
and evaluation seconds.

    python benchmarks/session_tables.py                   # all four SR-GNN/CoTRec files
    python benchmarks/session_tables.py --datasets diginetica
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = {  # name in accuracy*.jsonl -> the --train path fragment of the neural runs
    "srgnn_yoochoose1_64": "rsc15/srgnn_yoochoose1_64",
    "diginetica": "diginetica/srgnn",
    "retailrocket": "retailrocket/cotrec",
    "nowplaying": "nowplaying/srgnn",
}
LABELLED = {"variant", "matmul_precision", "threads", "n_epochs", "patience"}  # said otherwise
QUOTES = "'\""
ORDER = [
    "pop",
    "session-pop",
    "ar",
    "markov",
    "sr",
    "itemknn",
    "sknn",
    "v-sknn",
    "stan",
    "vmis-knn",
    "gru4rec",
    "gru4rec+vsknn",
]


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def neural_label(line: dict) -> str:
    """`narm, full train, 17 epochs, bf16` or `stamp (stmp), valid-carved` from the command."""
    cmd = line.get("command", "")
    sets = {k: v.strip(QUOTES) for k, v in re.findall(r"--set (\w+)=(\S+)", cmd)}
    name = line["model"]
    if sets.get("variant"):
        name += f" ({sets['variant']})"
    if "--valid-fraction" in cmd:
        how = f"valid-carved, best epoch {line.get('best_epoch')} of {line.get('epochs_run')}"
    else:
        how = f"full train, {line.get('epochs_run')} epochs"
    if sets.get("matmul_precision") == "bfloat16":
        how += ", bf16"
    for key, value in sets.items():  # any other override, verbatim
        if key not in LABELLED:
            how += f", {key}={value}"
    return f"{name}, {how}"


def rows(
    dataset: str, results: Path = RESULTS
) -> list[tuple[str, dict, float | None, float | None]]:
    latest: dict[str, dict] = {}
    for line in _lines(results / "accuracy_knn.jsonl"):
        if line.get("dataset") == dataset:
            latest[line["model"]] = line
    if "gru4rec" not in latest:  # issue 4's run (e.g. Nowplaying, trained on a lent GPU)
        for line in _lines(results / "accuracy.jsonl"):
            if line.get("dataset") == dataset and line.get("model") == "gru4rec":
                latest["gru4rec"] = line
    out = [
        (m, latest[m], latest[m].get("train_seconds"), latest[m].get("eval_seconds"))
        for m in ORDER
        if m in latest
    ]
    fragment = DATASETS[dataset]
    for line in _lines(results / "session_neural_accuracy.jsonl"):
        if fragment in line.get("command", ""):
            out.append(
                (
                    neural_label(line),
                    line,
                    line.get("train_wall_seconds"),
                    line.get("eval_wall_seconds"),
                )
            )
    return out


def table(dataset: str, results: Path = RESULTS) -> str:
    head = (
        "| model | R@5 | R@10 | R@20 | MRR@20 | NDCG@20 | cov@20 | train s | eval s |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    body = []
    for label, line, train_s, eval_s in rows(dataset, results):
        cells = [
            f"{100 * line[k]:.2f}" if isinstance(line.get(k), (int, float)) else "-"
            for k in ("recall@5", "recall@10", "recall@20", "mrr@20", "ndcg@20", "coverage@20")
        ]
        secs = [f"{s:,.1f}" if isinstance(s, (int, float)) else "-" for s in (train_s, eval_s)]
        body.append(f"| {label} | " + " | ".join(cells + secs) + " |")
    return f"**{dataset}**\n\n{head}\n" + "\n".join(body)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--datasets",
        nargs="+",
        default=list(DATASETS),
        choices=list(DATASETS),
        help="which datasets to print (default: all four)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="directory holding the result lines (default: benchmarks/results)",
    )
    args = p.parse_args(argv)
    print("\n\n".join(table(d, args.results) for d in args.datasets))


if __name__ == "__main__":
    main()
