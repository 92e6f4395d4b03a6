"""Hybrid benchmark: combine two saved models of a dataset into a weighted hybrid with
``seqrec hybrid`` (weights tuned on a split carved from the training data: fresh copies
of the parts are trained on the rest), evaluate it, and append one JSON line in
``benchmarks/accuracy.py``'s format, so ``accuracy.py --table`` shows it beside its parts.

    python benchmarks/accuracy.py gru4rec:diginetica v-sknn:diginetica --save-dir runs/b
    python benchmarks/hybrid.py diginetica --parts runs/b/diginetica-gru4rec \\
        runs/b/diginetica-v-sknn --out runs/b/diginetica-gru4rec+vsknn

``train_seconds`` of the line is the parts' own training time (``--parts-seconds``, or
the latest ``train_seconds`` of each part in the results file, matched by the part
directory's name ``DATASET-MODEL`` as ``accuracy.py --save-dir`` writes it) plus the
hybrid's tuning time (which retrains the parts on the carved split); both are also
recorded separately.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accuracy import DATASETS, REPO, SHARED, _hardware

from seqrec.data.loading import load_test_data
from seqrec.evaluation import evaluate
from seqrec.models import load_model


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("dataset", choices=sorted(DATASETS), help="dataset name (as in accuracy.py)")
    p.add_argument("--parts", nargs="+", required=True, help="saved model directories")
    p.add_argument("--out", required=True, help="hybrid model directory to write")
    p.add_argument("--name", default="gru4rec+vsknn", help="model name in the table")
    p.add_argument("--parts-seconds", type=float, default=None, help="the parts' training time (s)")
    p.add_argument("--metric", default="mrr@20", help="validation metric of the weights")
    p.add_argument("--k", default="5,10,20", help="cut-offs (default 5,10,20)")
    p.add_argument(
        "--results",
        default=str(REPO / "benchmarks/results/accuracy_knn.jsonl"),
        help="append the JSON line here",
    )
    args = p.parse_args()
    train_rel, test_rel, protocol = DATASETS[args.dataset]
    train_path = train_rel if Path(train_rel).is_absolute() else str(SHARED / train_rel)
    test_path = test_rel if Path(test_rel).is_absolute() else str(SHARED / test_rel)
    cmd = [
        sys.executable, "-m", "seqrec.cli", "hybrid", "--parts", *args.parts,
        "--train", train_path, "--metric", args.metric, "--out", args.out,
    ]  # fmt: skip
    shown = " ".join(["seqrec", *cmd[3:]])
    print(f"$ {shown}", file=sys.stderr)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    tune_s = time.perf_counter() - t0
    model = load_model(args.out)
    test, _ = load_test_data(test_path, "auto", model.item_index_, protocol)
    ks = tuple(int(k) for k in args.k.split(","))
    res = evaluate(model, test, protocol=protocol, ks=ks, item_popularity=model.item_support_)
    parts_s = args.parts_seconds
    if parts_s is None and Path(args.results).exists():
        latest: dict[str, float] = {}
        for line in Path(args.results).read_text(encoding="utf-8").splitlines():
            r = json.loads(line) if line.strip() else {}
            if r.get("dataset") == args.dataset:
                latest[f"{args.dataset}-{r['model']}"] = r.get("train_seconds") or 0.0
        names = [Path(x).name for x in args.parts]
        if all(n in latest for n in names):
            parts_s = round(sum(latest[n] for n in names), 1)
    res.update(
        model=args.name,
        dataset=args.dataset,
        config={"hybrid": json.loads((Path(args.out) / "config.json").read_text()).get("hybrid")},
        config_file=None,
        overrides=[f"parts={','.join(Path(x).name for x in args.parts)}"],
        tune_seconds=round(tune_s, 1),
        parts_train_seconds=parts_s,
        train_seconds=round(tune_s + (parts_s or 0.0), 1),
        eval_seconds=round(res["eval_seconds"], 1),
        command=f"{shown} && seqrec evaluate --model {args.out} --test {test_path} "
        f"--protocol {protocol}",
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        hardware=_hardware("cpu"),
        torch=torch.__version__,
    )
    with open(args.results, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(res, sort_keys=True, default=str) + "\n")
    print(json.dumps({k: res[k] for k in ("model", "dataset", "recall@20", "mrr@20")}))


if __name__ == "__main__":
    main()
