# ruff: noqa  (measurement script, the record of benchmarks/README.md "dropout noise")
"""RSC15 accuracy with the fused-kernel dropout noise (hash) or bernoulli_ (bern):
    python benchmarks/_proto/dropout_rng_accuracy.py bern 5 6 7 8 9
    python benchmarks/_proto/dropout_rng_accuracy.py hash 5 6 7 8 9
One JSON line per seed on stdout (results/accuracy_dropout_rng_seeds5-9.jsonl)."""

import sys, json, types

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import accuracy
import seqrec.models.gru4rec as g
from seqrec import fused

variant = sys.argv[1]
if variant == "bern":
    g.fused = types.SimpleNamespace(
        kernels=lambda: None, cpu_float_contiguous=fused.cpu_float_contiguous
    )
for s in sys.argv[2:]:
    r = accuracy.run_one("gru4rec:rsc15_100k", [f"seed={s}"], (20,), False)
    print(
        json.dumps(
            {"variant": variant, "seed": s, "recall@20": r["recall@20"], "mrr@20": r["mrr@20"]}
        ),
        flush=True,
    )
