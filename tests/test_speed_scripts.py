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


def test_seq_speed_helpers_by_hand():
    from seq_speed import config_file, dataset_name, interleave, model_overrides, replay_sessions

    from seqrec.data.samples import Samples
    from seqrec.data.sessions import SessionLog

    sets = ["sasrec.batch_size=256", "bert4rec.mask_prob=0.6", "learning_rate=0.1"]
    assert model_overrides("sasrec", sets) == ["batch_size=256", "learning_rate=0.1"]
    assert model_overrides("fpmc", sets) == ["learning_rate=0.1"]
    assert dataset_name("../shared/data/amazon_beauty/s3rec/Beauty.txt") == "beauty"
    assert dataset_name(str(BENCH.parent / "data" / "excerpt" / "train.tsv")) == "excerpt"
    configs = BENCH.parent / "configs"
    assert config_file("sasrec", "beauty", {}) == str(configs / "sasrec" / "excerpt.toml")
    assert config_file("gru4rec", "rsc15_100k", {}) == str(configs / "gru4rec" / "rsc15_100k.toml")
    assert config_file("sasrec", "beauty", {"sasrec": "/x/my.toml"}) == "/x/my.toml"

    # the last 3 clicks of each history, its target included; unknown items (-1) dropped
    prefixes = SessionLog(
        offsets=np.array([0, 3, 4]),
        items=np.array([0, 1, 2, 3], dtype=np.int32),
        session_ids=np.array(["u1", "u2"]),
    )
    test = Samples(prefixes, np.array([4, -1]))
    ext = ["i0", "i1", "i2", "i3", "i4"]
    assert replay_sessions(test, ext, 3) == [("u1", ["i1", "i2", "i4"]), ("u2", ["i3"])]

    # 2 sessions at a time, one click each in turn; "a" comes round again as "a#2"
    sessions = [("a", ["1", "2"]), ("b", ["3"]), ("c", ["4", "5", "6"])]
    assert interleave(sessions, 7, 2) == [
        ("a", "1"), ("b", "3"), ("a", "2"), ("c", "4"), ("a#2", "1"), ("c", "5"), ("a#2", "2"),
    ]  # fmt: skip


def test_seq_speed_rejects_bad_options():
    import pytest
    from seq_speed import main, parse_args

    with pytest.raises(SystemExit):  # a --set for a model that is not run
        parse_args(["--models", "sasrec", "--set", "bert4rec.mask_prob=0.6"])
    with pytest.raises(SystemExit):
        parse_args(["--config", "sasrec"])
    args = parse_args(["--quick", "--epochs", "3"])  # explicit options beat --quick's
    assert args.epochs == 3 and args.threads == 1 and args.out is None
    assert args.train.endswith("data/excerpt/train.tsv") and args.dataset == "excerpt"
    excerpt = str(BENCH.parent / "data" / "excerpt" / "train.tsv")
    with pytest.raises(SystemExit, match="holds sessions"):  # session data needs --test
        main(["--train", excerpt, "--models", "sasrec"])


def _seq_speed(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "seq_speed.py"), *args],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PYTHONPATH": str(BENCH.parent)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


def test_seq_speed_on_the_excerpt_records_training_evaluation_and_serving(tmp_path):
    out = tmp_path / "seq.jsonl"
    args = ["--quick", "--models", "sasrec,gru4rec", "--serve-clicks", "50",
            "--serve-warmup", "5", "--active-sessions", "4", "--out", str(out)]  # fmt: skip
    proc = _seq_speed(*args)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["model"] for r in rows] == ["sasrec", "gru4rec"]
    printed = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert printed == rows
    test_sessions: dict[str, int] = {}
    test_tsv = BENCH.parent / "data" / "excerpt" / "test.tsv"
    for line in test_tsv.read_text().splitlines()[1:]:
        sid = line.split("\t")[0]
        test_sessions[sid] = test_sessions.get(sid, 0) + 1
    last_item_queries = sum(n >= 2 for n in test_sessions.values())
    for r in rows:
        assert r["config_file"] == f"configs/{r['model']}/excerpt.toml" and r["overrides"] == []
        assert r["config"]["n_epochs"] == 1 and r["config"]["threads"] == 1
        assert r["config"]["patience"] == 0 and r["threads"] == 1
        assert r["kind"] == "sessions" and r["test_split"] == "last item of a session"
        (ep,) = r["epochs"]
        # both train on every (prefix, next item) pair of the excerpt once per epoch
        assert ep["events"] == r["train_log_events"] - r["train_sessions"]
        assert ep["seconds"] > 0
        assert abs(ep["events_per_s"] / (ep["events"] / ep["seconds"]) - 1) < 1e-4
        assert r["fit_s"] >= ep["seconds"] and r["loop_s"] == ep["seconds"]
        assert r["eval_queries"] + r["n_unknown_targets"] == last_item_queries
        assert r["protocol"] == "last-item" and r["eval_s"] > 0
        assert abs(r["queries_per_s"] / (r["eval_queries"] / r["eval_s"]) - 1) < 1e-4
        sv = r["serve"]
        assert sv["clicks"] == 50 and sv["warmup"] == 5 and sv["top_k"] == "exact"
        assert 0 < sv["p50_ms"] <= sv["p90_ms"] <= sv["p99_ms"] <= sv["max_ms"]
        assert sv["sessions"] >= 55 // 5 and sv["max_history"] == 50 and sv["k"] == 20
        for when in ("host_before", "host_after"):
            h = r[when]
            assert h["cores"] == os.cpu_count() and len(h["load_avg"]) == 3 and h["cpu"]
            assert h["sgemm_gflops"] > 0 and isinstance(h["processes"], list)
        assert r["command"] == "python benchmarks/seq_speed.py " + " ".join(args)
    assert "| sasrec | configs/sasrec/excerpt.toml |" in proc.stdout
    assert (
        "| gru4rec |" in proc.stdout and "reproduce: python benchmarks/seq_speed.py" in proc.stdout
    )


def test_seq_speed_on_user_histories_evaluates_the_leave_one_out_test(tmp_path):
    data = tmp_path / "Beauty.txt"  # s3rec: "user item item ...", 30 users, 6 items each
    data.write_text("".join(f"{u} " + " ".join(str((u + j) % 12 + 1) for j in range(6)) + "\n"
                            for u in range(1, 31)))  # fmt: skip
    out = tmp_path / "seq.jsonl"
    proc = _seq_speed("--train", str(data), "--models", "bprmf", "--epochs", "2",
                      "--threads", "1", "--serve-clicks", "40", "--serve-warmup", "0",
                      "--set", "bprmf.batch_size=16", "--out", str(out))  # fmt: skip
    (r,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert r["dataset"] == "beauty" and r["format"] == "s3rec" and r["kind"] == "histories"
    assert r["test_split"] == "leave-one-out" and r["test"] == str(data)
    assert r["eval_queries"] == 30 and r["n_unknown_targets"] == 0  # one query per user
    assert r["overrides"] == ["batch_size=16"] and r["config"]["batch_size"] == 16
    # BPR-MF trains on every (user, item) pair of history[:-2]: 30 x 4 per epoch
    assert [e["events"] for e in r["epochs"]] == [120, 120]
    assert r["train_log_events"] == 120 and r["serve"]["clicks"] == 40
    assert (
        "| users |" in proc.stdout
        and "| bprmf | configs/bprmf/excerpt.toml batch_size=16 |" in proc.stdout
    )


def test_collect_cli_runs_reads_epochs_best_epoch_and_the_evaluation(tmp_path):
    from collect_cli_runs import parse

    result = {"protocol": "last-item", "recall@10": 0.25, "ndcg@10": 0.125, "n_queries": 8}
    log = tmp_path / "run.log"
    log.write_text(
        "# Wed host: Model name: AMD EPYC tree /t abc123\n"
        "# seqrec train --train x.txt --model sasrec --config c.toml --out runs/run.model\n"
        "epoch 1/9: loss 9.0, 1,000 events in 10.5s (95 ev/s), valid recall@10 0.1000, "
        "valid ndcg@10 0.0500\n"
        "epoch 2/9: loss 8.0, 1,000 events in 11.0s (91 ev/s), valid recall@10 0.2000, "
        "valid ndcg@10 0.0700\n"
        "epoch 3/9: loss 7.0, 1,000 events in 12.0s (83 ev/s), valid recall@10 0.3000, "
        "valid ndcg@10 0.0600\n"
        "train wall 40.0 s\n" + json.dumps(result) + "\neval wall 2.0 s\n",
        encoding="utf-8",
    )
    r = parse(log, "ndcg@10")
    assert r is not None
    assert r["best_epoch"] == 2 and r["epochs_run"] == 3 and r["best_valid_ndcg@10"] == 0.07
    assert r["train_seconds_to_best"] == 21.5 and r["train_wall_seconds"] == 40.0
    assert r["recall@10"] == 0.25 and r["command"].startswith("seqrec train")
    assert parse(log, "recall@10")["best_epoch"] == 3
    assert r["eval_wall_seconds"] == 2.0
    unfinished = tmp_path / "u.log"
    unfinished.write_text("# host\nepoch 1/9: loss 9.0, 10 events in 1.0s (10 ev/s)\n")
    assert parse(unfinished, "ndcg@10") is None


def test_collect_cli_runs_sessions_table(tmp_path, capsys):
    from collect_cli_runs import print_sessions_table

    row = {"run": "yoo", "recall@5": 0.4, "recall@10": 0.5, "recall@20": 0.6, "mrr@20": 0.3,
           "ndcg@20": 0.35, "coverage@20": 0.7, "best_epoch": 3, "epochs_run": 5,
           "train_wall_seconds": 90.0, "eval_wall_seconds": 2.5}  # fmt: skip
    print_sessions_table([row])
    out = capsys.readouterr().out
    assert "| yoo | 40.00 | 50.00 | 60.00 | 30.00 | 35.00 | 70.00 | 3 of 5 | 90.0 | 2.5 |" in out


def test_session_tables_join_baselines_gru4rec_and_labelled_neural_runs(tmp_path):
    from session_tables import table

    metrics = {"recall@5": 0.1, "recall@10": 0.2, "recall@20": 0.3, "mrr@20": 0.05,
               "ndcg@20": 0.08, "coverage@20": 0.5}  # fmt: skip
    knn = [
        dict(metrics, dataset="diginetica", model="v-sknn", train_seconds=0.2, eval_seconds=9.0),
        dict(metrics, dataset="diginetica", model="v-sknn", train_seconds=0.3, eval_seconds=8.0),
        dict(metrics, dataset="retailrocket", model="pop", train_seconds=0.0, eval_seconds=1.0),
    ]
    gru = [
        dict(metrics, dataset="diginetica", model="gru4rec", train_seconds=300.0, eval_seconds=3.0)
    ]
    neural = [
        dict(
            metrics,
            model="stamp",
            command="seqrec train --train d/diginetica/srgnn --model stamp "
            "--set variant=stmo --set matmul_precision=bfloat16 --valid-fraction 0.1",
            best_epoch=3,
            epochs_run=5,
            train_wall_seconds=500.0,
            eval_wall_seconds=7.0,
        ),
        dict(
            metrics,
            model="narm",
            command="seqrec train --train d/diginetica/srgnn --model narm --set n_epochs=17 "
            "--set learning_rate=0.002",
            best_epoch=None,
            epochs_run=17,
            train_wall_seconds=2000.0,
            eval_wall_seconds=20.0,
        ),
        dict(
            metrics,
            model="narm",
            command="seqrec train --train d/nowplaying/srgnn --model narm",
            epochs_run=2,
            train_wall_seconds=1.0,
            eval_wall_seconds=1.0,
        ),
    ]
    for name, lines in [
        ("accuracy_knn", knn),
        ("accuracy", gru),
        ("session_neural_accuracy", neural),
    ]:
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = table("diginetica", tmp_path)
    body = [ln for ln in out.splitlines() if ln.startswith("| ") and not ln.startswith("| model")]
    assert [ln.split(" | ")[0] for ln in body] == [
        "| v-sknn", "| gru4rec", "| stamp (stmo), valid-carved, best epoch 3 of 5, bf16",
        "| narm, full train, 17 epochs, learning_rate=0.002"]  # fmt: skip
    assert (
        body[0] == "| v-sknn | 10.00 | 20.00 | 30.00 | 5.00 | 8.00 | 50.00 | 0.3 | 8.0 |"
    )  # latest line
    assert body[3].endswith("| 2,000.0 | 20.0 |")
