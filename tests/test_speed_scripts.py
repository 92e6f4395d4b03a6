"""The speed benchmark scripts run end to end (tiny logs: behaviour, not timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

from make_synthetic import make_log  # noqa: E402
from train_speed import CONFIGS, host_probe, step_flops  # noqa: E402


def test_synthetic_log_is_deterministic_and_shaped_as_documented():
    a, b = make_log(20_000, 3_000, seed=5), make_log(20_000, 3_000, seed=5)
    assert a.n_events == 20_000
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.items, b.items)
    lengths = np.diff(a.offsets)
    assert lengths.min() >= 2
    assert abs(lengths.mean() - 5.5) < 0.3
    assert a.items.max() < 3_000
    c = make_log(20_000, 3_000, seed=6)
    assert not np.array_equal(a.items, c.items)


def test_host_probe_measures_something():
    probe = host_probe()
    assert set(probe) == {"sgemm_gflops", "bf16_gflops", "gather_us"}
    assert min(probe.values()) > 0


def test_step_flops_count_the_products_by_hand():
    B, H, C = 128, 512, 128 + 2048
    scores = 3 * 2 * B * H * C  # forward, d(out), d(candidate rows)
    # forward x@Wx, h@Wh_rz, (r*h)@Wh_n; backward d(r*h), dWh_rz, dWh_n, dWx, d(input)
    gru = 2 * B * (H * 3 * H + H * 2 * H + H * H) + 2 * B * (
        H * H + H * 2 * H + H * H + 2 * H * 3 * H
    )
    assert step_flops(CONFIGS["ce-512-b128"][0]) == scores + gru
    assert abs(step_flops(CONFIGS["ce-512-b128"][0]) / 1e9 - 1.929) < 1e-3
    two = dict(CONFIGS["ce-100-b32"][0], layers=[100, 50])
    one = dict(CONFIGS["ce-100-b32"][0], layers=[50])
    # a second layer of 50 on an input of 100 (the first layer's input: the last layer, 50)
    extra = 2 * 32 * (9 * 100 * 50 + 7 * 100 * 100) - 2 * 32 * (9 * 50 * 50 + 7 * 50 * 50)
    assert step_flops(two) - step_flops(one) == extra + 2 * 32 * (9 * 50 * 100 + 7 * 50 * 50)


def test_train_speed_prints_json_and_table():
    cmd = [
        sys.executable,
        str(BENCH / "train_speed.py"),
        "--config",
        "ce-100-b32",
        "--events",
        "4000",
        "--items",
        "600",
        "--set",
        "n_sample=64",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1
    r = json.loads(lines[0])
    assert r["config"] == "ce-100-b32" and r["n_events"] == 4000
    assert r["train_events"] == r["n_events"] - r["n_sessions"]
    assert r["events_per_s"] > 0 and r["peak_rss_mb"] > 0
    assert r["overrides"] == ["n_sample=64"]
    for when in ("host_before", "host_after"):
        assert r[when]["sgemm_gflops"] > 0 and r[when]["gather_us"] > 0
    assert r["step_gflop"] == step_flops(dict(CONFIGS["ce-100-b32"][0], n_sample=64)) / 1e9
    table = proc.stdout.split(lines[0], 1)[1]
    assert "ce-100-b32" in table and "sgemm" in table and "ceiling" in table


def test_knn_index_benchmark_prints_the_figures(tmp_path):
    excerpt = BENCH.parent / "data" / "excerpt" / "train.tsv"
    out = tmp_path / "knn.jsonl"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "knn_index.py"), "--train", str(excerpt),
         "--model", "vmis-knn", "--set", "m=50", "--out", str(out)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(BENCH.parent)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "host: " in proc.stdout and "vmis-knn" in proc.stdout and "target" in proc.stdout
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["model"] == "vmis-knn" and row["config"] == {"m": 50}
    assert row["index_mib"] > 0 and row["build_s"] > 0 and row["peak_mib"] > 0


def test_accuracy_saves_models_and_hybrid_combines_them_into_the_table(tmp_path):
    """accuracy.py --save-dir, then hybrid.py on the saved parts, then --table: the
    hybrid's row sits beside its parts' rows (the excerpt; behaviour, not figures)."""
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent)}
    res, runs = tmp_path / "acc.jsonl", tmp_path / "runs"

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, check=False, env=env
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    run(str(BENCH / "accuracy.py"), "sknn:excerpt", "sr:excerpt", "--out", str(res),
        "--save-dir", str(runs))  # fmt: skip
    assert (runs / "excerpt-sknn" / "config.json").exists()
    run(str(BENCH / "hybrid.py"), "excerpt", "--parts", str(runs / "excerpt-sknn"),
        str(runs / "excerpt-sr"), "--out", str(runs / "hyb"), "--name", "sknn+sr",
        "--results", str(res))  # fmt: skip
    rows = [json.loads(line) for line in res.read_text().splitlines()]
    assert [r["model"] for r in rows] == ["sknn", "sr", "sknn+sr"]
    hyb = rows[-1]
    parts_s = rows[0]["train_seconds"] + rows[1]["train_seconds"]
    assert hyb["parts_train_seconds"] == round(parts_s, 1)
    assert len(hyb["config"]["hybrid"]["weights"]) == 2 and 0 <= hyb["recall@20"] <= 1
    table = run(str(BENCH / "accuracy.py"), "--table", str(res)).stdout
    assert "**excerpt**" in table and "| sknn+sr |" in table and "| sr |" in table
