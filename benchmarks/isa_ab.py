"""Interleaved A/B of seqrec's CPU kernels built for two instruction sets (a prototype
kept at one commit only; benchmarks/PROFILE.md section 11 quotes its output).

    python benchmarks/isa_ab.py --threads 1 --rounds 20 -- -march=native -march=x86-64-v4

Builds seqrec/csrc/fused.cpp twice into a temporary directory (with seqrec's other
flags), times each kernel on fixed inputs, A and B in turn (20 calls per round), prints
the median microseconds per call and whether the two builds' outputs are bit-identical.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils import cpp_extension

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from seqrec import fused


def build(march: str, directory: str, tag: str):
    flags = [*fused._CFLAGS, march, *fused._OPENMP]
    return cpp_extension.load(
        name=f"seqrec_isa_{tag}",
        sources=[str(p) for p in fused.SOURCES],
        extra_cflags=flags,
        extra_ldflags=list(fused._OPENMP),
        build_directory=directory,
        with_cuda=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("march", nargs=2, help="the -march flags of A and B")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        exts = {}
        for tag, march in zip("AB", args.march, strict=True):
            Path(tmp, tag).mkdir()
            exts[tag] = build(march, str(Path(tmp, tag)), tag)
        g = torch.Generator().manual_seed(0)
        n, d, r = 1_000_000, 100, 2200
        p, acc, vel = torch.randn(n, d, generator=g) * 0.1, torch.rand(n, d), torch.zeros(n, d)
        no = torch.empty(0, dtype=torch.bfloat16)
        dense = [torch.randn(100, 300, generator=g) for _ in range(6)]
        daccs, dgs = [torch.rand_like(x) for x in dense], [torch.randn_like(x) for x in dense]
        s = torch.randn(128, 2176, generator=g) * 3
        noise, out = torch.empty(512 * 100), torch.empty(r, d)

        def cases(ext):
            rows = torch.randperm(n, generator=g)[:r].sort().values
            grad = torch.randn(r, d, generator=g)
            return {
                "adagrad_rows_": lambda: ext.adagrad_rows_(
                    p, acc, vel, rows, grad, 0.01, 1e-6, 0.0, no
                ),
                "adagrad_dense_": lambda: ext.adagrad_dense_(
                    dense, daccs, [], dgs, [], 0.01, 1e-6, 0.0
                ),
                "bpr_max_": lambda: ext.bpr_max_(
                    s.clone(), torch.empty(128, 2176), torch.empty(128), 1.0, 0.5
                ),
                "cross_entropy_": lambda: ext.cross_entropy_(s.clone(), torch.empty(128)),
                "dropout_noise_": lambda: ext.dropout_noise_(noise, 7, 0.7),
                "gather_rows_": lambda: ext.gather_rows_(out, p, rows),
            }

        times = {k: {"A": [], "B": []} for k in cases(exts["A"])}
        for rnd in range(args.rounds):
            for tag in "AB" if rnd % 2 == 0 else "BA":
                for k, f in cases(exts[tag]).items():
                    f()
                    t = time.perf_counter()
                    for _ in range(20):
                        f()
                    times[k][tag].append((time.perf_counter() - t) / 20 * 1e6)
        print(
            f"A {args.march[0]}, B {args.march[1]}, {args.threads} thread(s), "
            f"{args.rounds} interleaved rounds, median us per call"
        )
        for k, v in times.items():
            a, b = statistics.median(v["A"]), statistics.median(v["B"])
            print(f"{k:15s} A {a:9.1f}  B {b:9.1f}  B/A {b / a:.3f}")
        same = []
        for ext in exts.values():
            x, loss, nz = s.clone(), torch.empty(128), torch.empty(10_000)
            ext.bpr_max_(x, x, loss, 1.0, 0.5)
            y, loss2 = s.clone(), torch.empty(128)
            ext.cross_entropy_(y, loss2)
            ext.dropout_noise_(nz, 3, 0.6)
            same.append((x, loss, y, loss2, nz))
        equal = all(torch.equal(u, w) for u, w in zip(*same, strict=True))
        print("outputs bit-identical (bpr_max_, cross_entropy_, dropout_noise_):", equal)


if __name__ == "__main__":
    main()
