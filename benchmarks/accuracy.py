"""Accuracy benchmark: train and evaluate models on the shared benchmark datasets.

Runs exactly what the CLI runs (``seqrec train`` + ``seqrec evaluate``), prints the
equivalent commands, a result table, and appends one JSON line per run to
``benchmarks/results/accuracy.jsonl``. Figures in benchmarks/README.md come from here.

    python benchmarks/accuracy.py pop:srgnn_yoochoose1_64 session-pop:rsc15_100k
    python benchmarks/accuracy.py gru4rec:rsc15_100k --set n_epochs=5

A run is MODEL:DATASET[:CONFIG]; CONFIG defaults to configs/MODEL/DATASET.toml when that
file exists (model defaults otherwise). ``--save-dir D`` also saves each trained model
as ``D/DATASET-MODEL`` (e.g. to combine them into hybrids later). ``--table`` prints the
markdown comparison tables (one per dataset, the latest line per model and config) from
the JSON lines instead of running anything:

    python benchmarks/accuracy.py --table benchmarks/results/accuracy_knn.jsonl
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

# this checkout's seqrec, not whichever one is installed (e.g. an editable install of
# another worktree): figures must come from the code next to this script
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqrec.cli import model_config
from seqrec.data.loading import load_test_data, load_training_data
from seqrec.evaluation import evaluate
from seqrec.models import get_model_class
from seqrec.pipeline import fit_model, with_process_tuning

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

# name -> (train path, test path, protocol)
DATASETS = {
    "rsc15_100k": (
        "rsc15/session-rec_100k/yoochoose-clicks-100k_train_full.txt",
        "rsc15/session-rec_100k/yoochoose-clicks-100k_test.txt",
        "next-item",
    ),
    "rsc15_100k_valid": (
        "rsc15/session-rec_100k/yoochoose-clicks-100k_train_tr.txt",
        "rsc15/session-rec_100k/yoochoose-clicks-100k_train_valid.txt",
        "next-item",
    ),
    "srgnn_yoochoose1_64": ("rsc15/srgnn_yoochoose1_64", "rsc15/srgnn_yoochoose1_64", "samples"),
    "diginetica": ("diginetica/srgnn", "diginetica/srgnn", "samples"),
    "retailrocket": ("retailrocket/cotrec", "retailrocket/cotrec", "samples"),
    "nowplaying": ("nowplaying/srgnn", "nowplaying/srgnn", "samples"),
    # user histories, leave-one-out (train: history[:-2], valid: history[-2], test: the
    # last item of each history, seen items excluded from the ranking)
    "s3rec_beauty": ("amazon_beauty/s3rec/Beauty.txt",) * 2 + ("last-item",),
    "s3rec_sports": ("amazon_sports_outdoors/s3rec/Sports_and_Outdoors.txt",) * 2 + ("last-item",),
    "s3rec_toys": ("amazon_toys_games/s3rec/Toys_and_Games.txt",) * 2 + ("last-item",),
    "s3rec_yelp": ("yelp/s3rec/Yelp.txt",) * 2 + ("last-item",),
    "s3rec_lastfm": ("lastfm_hetrec/s3rec/LastFM.txt",) * 2 + ("last-item",),
    "bert4rec_beauty": ("amazon_beauty/bert4rec/beauty.txt",) * 2 + ("last-item",),
    "sasrec_video": ("amazon_video_games/sasrec/Video.txt",) * 2 + ("last-item",),
    "excerpt": (
        str(REPO / "data/excerpt/train.tsv"),
        str(REPO / "data/excerpt/test.tsv"),
        "next-item",
    ),
}


def run_one(
    spec: str,
    overrides: list[str],
    ks: tuple[int, ...],
    progress: bool,
    save_dir: str | None = None,
) -> dict:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[1] not in DATASETS:
        raise SystemExit(
            f"error: bad run {spec!r}; use MODEL:DATASET[:CONFIG], datasets: " + ", ".join(DATASETS)
        )
    model_name, ds = parts[0], parts[1]
    cfg_file = str(Path(parts[2]).resolve()) if len(parts) == 3 else None
    if cfg_file is None and (REPO / "configs" / model_name / f"{ds}.toml").exists():
        cfg_file = str(REPO / "configs" / model_name / f"{ds}.toml")
    train_rel, test_rel, protocol = DATASETS[ds]
    train_path = str(SHARED / train_rel) if not Path(train_rel).is_absolute() else train_rel
    test_path = str(SHARED / test_rel) if not Path(test_rel).is_absolute() else test_rel
    cfg = model_config(model_name, cfg_file, overrides)
    sets = " ".join(f"--set {o}" for o in overrides)
    conf = f" --config {os.path.relpath(cfg_file, REPO)}" if cfg_file else ""
    cmd = (
        f"seqrec train --train {train_path} --model {model_name}{conf} {sets} --out runs/{ds}"
        f"-{model_name} && seqrec evaluate --model runs/{ds}-{model_name} --test {test_path} "
        f"--protocol {protocol}"
    ).replace("  ", " ")
    print(f"\n$ {cmd}", file=sys.stderr)
    cls = get_model_class(model_name)
    model = cls(with_process_tuning(cls, cfg))  # what `seqrec train` runs
    data = load_training_data(train_path)
    t0 = time.perf_counter()
    fit_model(model, data, progress=progress)
    fit_s = time.perf_counter() - t0
    if save_dir:
        model.save(Path(save_dir) / f"{ds}-{model_name}")
    test, _ = load_test_data(test_path, "auto", model.item_index_, protocol)
    res = evaluate(model, test, protocol=protocol, ks=ks, item_popularity=model.item_support_)
    res.update(
        model=model_name,
        dataset=ds,
        config=cfg,
        train_seconds=round(fit_s, 1),
        eval_seconds=round(res["eval_seconds"], 1),
        config_file=os.path.relpath(cfg_file, REPO) if cfg_file else None,
        overrides=list(overrides),
        command=cmd,
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        hardware=_hardware(str(getattr(model, "device_", "cpu"))),
    )
    miss = evaluate(model, test, protocol=protocol, ks=(20,), unknown="miss")
    res["recall@20_unknown_as_miss"] = miss["recall@20"]
    res["mrr@20_unknown_as_miss"] = miss["mrr@20"]
    return res


def _hardware(device: str) -> str:
    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus"
    hw = f"{cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device.startswith("cuda"):
        hw += f", {torch.cuda.get_device_name(torch.device(device))}"
    return hw


COLUMNS = ("recall@20", "mrr@20", "ndcg@20", "coverage@20", "popularity@20")


def table(path: str) -> str:
    """Markdown tables, one per dataset, from the JSON lines in ``path`` (the latest
    line for each model + config + overrides)."""
    latest: dict[tuple, dict] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            key = (r["dataset"], r["model"], r.get("config_file"), tuple(r.get("overrides", ())))
            latest[key] = r
    out = []
    for ds in sorted({k[0] for k in latest}):
        out.append(f"\n**{ds}**\n")
        out.append(
            "| model | settings | "
            + " | ".join(c.replace("@", "@") for c in COLUMNS)
            + " | train s | eval s |"
        )
        out.append("|---" * (len(COLUMNS) + 4) + "|")
        for key, r in latest.items():
            if key[0] != ds:
                continue
            settings = " ".join([key[2] or "defaults", *key[3]])
            vals = [f"{r[c]:.4f}" if isinstance(r.get(c), float) else "-" for c in COLUMNS]
            out.append(
                f"| {r['model']} | {settings} | "
                + " | ".join(vals)
                + f" | {r.get('train_seconds', '-')} | {r.get('eval_seconds', '-')} |"
            )
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "runs", nargs="*", help="MODEL:DATASET[:CONFIG] (datasets: " + ", ".join(DATASETS) + ")"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model parameter for every run (TOML value)",
    )
    p.add_argument("--k", default="5,10,20", help="cut-offs (default 5,10,20)")
    p.add_argument(
        "--out",
        default=str(REPO / "benchmarks/results/accuracy.jsonl"),
        help="append JSON lines here",
    )
    p.add_argument("--progress", action="store_true", help="show training progress bars")
    p.add_argument("--save-dir", help="also save every trained model as SAVE_DIR/DATASET-MODEL")
    p.add_argument("--table", metavar="JSONL", help="print markdown tables from JSONL and exit")
    args = p.parse_args()
    if args.table:
        print(table(args.table))
        return
    if not args.runs:
        p.error("give at least one MODEL:DATASET[:CONFIG] run (or --table JSONL)")
    if not SHARED.is_dir() and any(not r.split(":")[1:2] == ["excerpt"] for r in args.runs):
        raise SystemExit(f"error: {SHARED} not found (the shared datasets are needed)")
    ks = tuple(int(k) for k in args.k.split(","))
    rows = []
    for spec in args.runs:
        res = run_one(spec, args.set, ks, args.progress, args.save_dir)
        rows.append(res)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(res, sort_keys=True) + "\n")
        print(
            json.dumps(
                {
                    k: res[k]
                    for k in (
                        "model",
                        "dataset",
                        "recall@20",
                        "mrr@20",
                        "n_queries",
                        "train_seconds",
                    )
                }
            )
        )
    print(
        f"\n{'model':<12} {'dataset':<20} {'R@20':>7} {'MRR@20':>7} {'NDCG@20':>8} "
        f"{'queries':>8} {'unknown':>8} {'train s':>8}"
    )
    for r in rows:
        print(
            f"{r['model']:<12} {r['dataset']:<20} {r['recall@20']:>7.4f} {r['mrr@20']:>7.4f} "
            f"{r['ndcg@20']:>8.4f} {r['n_queries']:>8,} {r['n_unknown_targets']:>8,} "
            f"{r['train_seconds']:>8.1f}"
        )


if __name__ == "__main__":
    main()
