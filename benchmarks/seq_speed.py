"""Speed of the sequential models on user histories: training, evaluation, serving.

The speed benchmark of issue 17. For every model (default: sasrec, bert4rec, caser,
gru4rec, bprmf, fpmc), each in a fresh Python subprocess (its threads, memory and peak
RSS are its own), on one data file (default: S3-Rec's Amazon Beauty user histories,
``../shared/data/amazon_beauty/s3rec/Beauty.txt``):

1. **training** - ``seqrec.training.fit`` on the training part, exactly what ``seqrec
   train --train FILE`` trains on (user histories: the leave-one-out split, history[:-2];
   session data: the whole file), with the process tuning ``seqrec train`` applies
   (``malloc_tuning``), ``n_epochs`` = ``--epochs``, ``threads`` = ``--threads`` and
   ``patience`` 0, and **no validation set** (nothing but training is timed). Per epoch:
   ``seconds`` and ``events`` of the training loop (``model.history_``: batches, forward,
   backward, optimiser steps; model build and epoch set-up are in ``fit_s`` only) and
   ``events_per_s`` = events / seconds. An event is a training target as the model's
   task counts it: the next item at every position (SASRec, GRU4Rec, FPMC), each of
   Caser's T targets per window, the masked positions (BERT4Rec: ~``mask_prob`` of
   them), one (user, item) pair (BPR-MF); so events/s compares runs of one model, epoch
   seconds compare models.
2. **evaluation** - full-ranking evaluation of the test split, as ``seqrec evaluate
   --protocol last-item`` builds it: for user histories (``--test`` defaults to the
   training file) the leave-one-out test, history[:-1] -> history[-1], of every user with
   3+ items; for session data (``--test`` required) the last item of each test session.
   History items excluded (the protocol's default), conservative ties, k = 5, 10, 20,
   ``--eval-batch-size`` queries at once; ``eval_s`` = wall time of ``evaluate`` (the
   test file's loading is ``eval_load_s``), ``queries_per_s`` = queries / eval_s.
   recall@20 / ndcg@20 are recorded as a sanity check only: after ``--epochs`` epochs
   they are no accuracy figures.
3. **serving** - the trained model is saved and loaded by
   ``seqrec.serving.runtime.Runtime`` (as ``seqrec serve`` loads it; in-memory store,
   ``--ann`` top-K, ``--max-history``), torch with ``--serve-threads`` threads; then
   ``--serve-warmup`` unrecorded and ``--serve-clicks`` timed calls of
   ``add_event(session, item, k=20)`` (one click + top-20: state update or rescoring of
   the capped history, top-K, store), replayed from the test histories: each session is
   the last ``--session-clicks`` clicks of one test history (its test item included),
   ``--active-sessions`` sessions interleaved click by click; a session is named after
   its user (so BPR-MF and Caser use a known user's vector, as in the evaluation).
   ``p50/p90/p99/max_ms`` of the wall time per call, ``cpu_p50/p99_ms`` of its thread
   CPU time.

Host state, recorded per model (``host_before`` right before training, ``host_after``
right after serving): the CPU model, core count, load average, the cores busy with other
processes during a 0.5 s window and the busiest of those processes (pid, cores, command
line), and train_speed.py's probe (float32 / bfloat16 GFLOP/s, cold-row gather us).
``other_cores`` per phase = CPU cores used by other processes while it ran (busy time
in /proc/stat minus this process's); above ~0.2 on a 2-core host the timing is
disturbed, and the row is flagged with ``!``.

Output: the command, then one JSON line per model on stdout (lines starting with ``{``),
also appended to ``--out`` (default ``benchmarks/results/seq_speed.jsonl``), then a
markdown table. ``--quick``: the shipped excerpt (session data), 1 epoch, 1 thread, 200
timed clicks; writes no JSON file unless ``--out`` is given (a smoke run, not a figure).

Examples::

    python benchmarks/seq_speed.py                                  # all six, Beauty
    python benchmarks/seq_speed.py --models sasrec,gru4rec --epochs 3 --threads 1
    python benchmarks/seq_speed.py --models sasrec --config sasrec=my.toml \\
        --set sasrec.batch_size=256
    python benchmarks/seq_speed.py --quick --models sasrec,fpmc
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# this checkout's seqrec, not whichever one is installed (e.g. an editable install of
# another worktree): figures must come from the code next to this script
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(HERE))

from knn_index import _busy_ticks, _self_cpu, cpu_model  # noqa: E402
from train_speed import host_probe as speed_probe  # noqa: E402

MODELS = ("sasrec", "bert4rec", "caser", "gru4rec", "bprmf", "fpmc")
DEFAULTS: dict[str, Any] = {
    "train": str(REPO.parent / "shared" / "data" / "amazon_beauty" / "s3rec" / "Beauty.txt"),
    "test": None,
    "epochs": 2,
    "threads": 2,
    "serve_clicks": 2000,
    "serve_warmup": 200,
    "out": str(HERE / "results" / "seq_speed.jsonl"),
}
QUICK: dict[str, Any] = {
    "train": str(REPO / "data" / "excerpt" / "train.tsv"),
    "test": str(REPO / "data" / "excerpt" / "test.tsv"),
    "epochs": 1,
    "threads": 1,
    "serve_clicks": 200,
    "serve_warmup": 20,
    "out": None,
}
OTHER_LOAD_FLAG = 0.2  # cores used by other processes above which a timing is unreliable


# ------------------------------------------------------------------ host state
def busy_processes(window: float = 0.5, top: int = 5) -> tuple[float, list[dict[str, Any]]]:
    """(cores busy with other processes, the ``top`` busiest of them) over ``window`` s.

    From /proc/stat (all CPUs' busy time minus this process's) and every process's
    /proc/PID/stat user + system time (all its threads); processes under 0.05 cores are
    left out of the list. ``(nan, [])`` where /proc is unavailable.
    """
    tick = os.sysconf("SC_CLK_TCK")

    def snapshot() -> dict[int, int]:
        out: dict[int, int] = {}
        try:
            entries = list(os.scandir("/proc"))
        except OSError:
            return out
        for d in entries:
            if not d.name.isdigit():
                continue
            try:
                fields = Path(f"/proc/{d.name}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            out[int(d.name)] = int(fields[11]) + int(fields[12])  # utime + stime
        return out

    b0, s0, p0 = _busy_ticks(), _self_cpu(), snapshot()
    time.sleep(window)
    b1, s1, p1 = _busy_ticks(), _self_cpu(), snapshot()
    if not p1:
        return float("nan"), []
    other = max(0.0, (b1 - b0) - (s1 - s0)) / window
    me = os.getpid()
    rows = []
    for pid, t in p1.items():
        if pid == me or pid not in p0:
            continue
        cores = (t - p0[pid]) / tick / window
        if cores >= 0.05:
            rows.append((cores, pid))
    rows.sort(reverse=True)
    procs = []
    for cores, pid in rows[:top]:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            cmd = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            cmd = "?"
        procs.append({"pid": pid, "cores": round(cores, 2), "cmd": cmd[:160]})
    return round(other, 2), procs


def host_state() -> dict[str, Any]:
    """The host right now (~1 s): CPU model, cores, load, other processes, speed probe."""
    other, procs = busy_processes()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "other_cores": other,
        "processes": procs,
        **{k: round(v, 2) for k, v in speed_probe().items()},
    }


class Phase:
    """Times a block: wall seconds and the CPU cores other processes used meanwhile."""

    def __enter__(self) -> Phase:
        self.busy0, self.self0, self.t0 = _busy_ticks(), _self_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu = _self_cpu() - self.self0
        busy = _busy_ticks() - self.busy0
        self.other = max(0.0, busy - self.cpu) / self.seconds if self.seconds > 0 else 0.0


def git_commit() -> str:
    """HEAD of this checkout, ``+dirty`` with uncommitted changes to tracked files."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# ------------------------------------------------------------------ configuration
def dataset_name(path: str) -> str:
    """The --train file's name without extensions, lowercased (``Beauty.txt`` ->
    ``beauty``); for a directory or a file named train*/test*/valid*, its folder's name
    (``data/excerpt/train.tsv`` -> ``excerpt``)."""
    p = Path(path)
    stem = p.name.split(".")[0].lower()
    if p.is_dir():
        return p.name.lower()
    if stem.startswith(("train", "test", "valid")):
        return p.resolve().parent.name.lower()
    return stem


def config_file(model: str, dataset: str, given: dict[str, str]) -> str | None:
    """``--config MODEL=FILE``, else configs/MODEL/DATASET.toml, else
    configs/MODEL/excerpt.toml, else None (the model's defaults)."""
    if model in given:
        return str(Path(given[model]).resolve())
    for name in (dataset, "excerpt"):
        f = REPO / "configs" / model / f"{name}.toml"
        if f.exists():
            return str(f)
    return None


def model_overrides(model: str, sets: list[str]) -> list[str]:
    """The ``key=value`` pairs of ``--set`` for ``model``: ``MODEL.key=value`` for that
    model, ``key=value`` (no model prefix) for every model."""
    out = []
    for pair in sets:
        key, sep, value = pair.partition("=")
        name, dot, sub = key.partition(".")
        if not dot:
            out.append(pair)
        elif name.strip() == model:
            out.append(f"{sub}{sep}{value}")
    return out


def rel(path: str | None) -> str | None:
    """``path`` relative to the checkout when inside it (shorter table and JSON)."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return path


# ------------------------------------------------------------------ serving replay
def replay_sessions(test: Any, external_ids: list[str], clicks: int) -> list[tuple[str, list[str]]]:
    """(session id, external item ids) per test query: the last ``clicks`` items of its
    history followed by its target, unknown items (-1) dropped; the session id is the
    query's user / session id (its row number where the data has none)."""
    prefixes, labels = test.prefixes, test.labels
    ids = prefixes.session_ids
    out = []
    for q in range(len(labels)):
        seq = prefixes.items[prefixes.offsets[q] : prefixes.offsets[q + 1]]
        seq = np.append(seq, labels[q])
        seq = seq[seq >= 0][-clicks:]
        if len(seq):
            sid = str(ids[q]) if ids is not None else f"q{q}"
            out.append((sid, [external_ids[int(i)] for i in seq]))
    return out


def interleave(sessions: list[tuple[str, list[str]]], n: int, active: int) -> list[tuple[str, str]]:
    """``n`` clicks (session id, item) of ``active`` sessions in turn, one click each; a
    finished session is replaced by the next one. The list of sessions cycles; a second
    pass names its sessions ``ID#2`` (and so on), so that each starts empty."""
    if not sessions:
        raise SystemExit("no test history with a known item to replay")
    nxt = 0

    def new() -> tuple[str, list[str]]:
        nonlocal nxt
        sid, items = sessions[nxt % len(sessions)]
        lap = nxt // len(sessions)
        nxt += 1
        return (sid if lap == 0 else f"{sid}#{lap + 1}"), list(items)

    slots = [new() for _ in range(min(active, len(sessions)))]
    out: list[tuple[str, str]] = []
    turn = 0
    while len(out) < n:
        i = turn % len(slots)
        turn += 1
        while not slots[i][1]:
            slots[i] = new()
        sid, items = slots[i]
        out.append((sid, items.pop(0)))
    return out


def serve(model_dir: Path, clicks: list[tuple[str, str]], warmup: int, args: Any) -> dict:
    """Replay ``clicks`` through a Runtime on ``model_dir`` (the first ``warmup`` untimed)."""
    import torch

    from seqrec.serving.options import RuntimeOptions
    from seqrec.serving.runtime import Runtime

    torch.set_num_threads(args.serve_threads)
    t0 = time.perf_counter()
    rt = Runtime(model_dir, options=RuntimeOptions(ann=args.ann, max_history=args.max_history))
    load_s = time.perf_counter() - t0
    try:
        for sid, item in clicks[:warmup]:
            rt.add_event(sid, item, args.k)
        wall, cpu = [], []
        with Phase() as ph:
            for sid, item in clicks[warmup:]:
                c0, t0 = time.thread_time(), time.perf_counter()
                rt.add_event(sid, item, args.k)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
        top_k = rt.model.info["top_k"]
    finally:
        rt.close()
    ms, cpu_ms = np.asarray(wall) * 1e3, np.asarray(cpu) * 1e3
    p = np.percentile(ms, [50, 90, 99])
    return {
        "clicks": len(ms),
        "warmup": warmup,
        "k": args.k,
        "p50_ms": round(float(p[0]), 4),
        "p90_ms": round(float(p[1]), 4),
        "p99_ms": round(float(p[2]), 4),
        "max_ms": round(float(ms.max()), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 4),
        "cpu_p99_ms": round(float(np.percentile(cpu_ms, 99)), 4),
        "sessions": len({sid for sid, _ in clicks}),
        "session_clicks": args.session_clicks,
        "active_sessions": args.active_sessions,
        "max_history": args.max_history,
        "top_k": top_k,
        "threads": args.serve_threads,
        "load_s": round(load_s, 3),
        "other_cores": round(ph.other, 2),
    }


# ------------------------------------------------------------------ one model (child)
def measure(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Train, evaluate and serve one model in this process; the JSON record."""
    import torch

    from seqrec.cli import model_config
    from seqrec.data.loading import load_test_data, load_training_data
    from seqrec.evaluation import evaluate
    from seqrec.models import get_model_class
    from seqrec.pipeline import with_process_tuning
    from seqrec.training import fit

    torch.set_num_threads(args.threads)
    cfg_file = config_file(name, args.dataset, args.config_map)
    overrides = model_overrides(name, args.set)
    cls = get_model_class(name)
    cfg = model_config(name, cfg_file, overrides)
    if cls.family is not None:  # a neural model: the benchmark's training keys win
        cfg.update(n_epochs=args.epochs, threads=args.threads, patience=0)
    cfg = with_process_tuning(cls, cfg)  # what `seqrec train` trains with
    model = cls(cfg)  # validates the config before any data is read

    t0 = time.perf_counter()
    data = load_training_data(args.train)
    load_s = time.perf_counter() - t0
    host_before = host_state()
    with Phase() as train:
        fit(model, data.train, None, item_index=data.item_index, progress=False)
    history = getattr(model, "history_", [])
    epochs = [
        {
            "epoch": h.epoch + 1,
            "seconds": round(h.seconds, 6),
            "events": int(h.events),
            "events_per_s": round(h.events_per_second, 1),
            "loss": round(h.loss, 5),
        }
        for h in history
    ]
    loop_s = sum(h.seconds for h in history)
    loop_events = sum(h.events for h in history)

    protocol = "last-item"
    test_path = args.test or args.train
    t0 = time.perf_counter()
    test, _ = load_test_data(test_path, "auto", model.item_index_, protocol)
    eval_load_s = time.perf_counter() - t0
    with Phase() as ev:
        res = evaluate(
            model,
            test,
            protocol=protocol,
            ks=(5, 10, 20),
            batch_size=args.eval_batch_size,
            item_popularity=model.item_support_,
        )
    n_queries = int(res["n_queries"])

    sessions = replay_sessions(test, model.item_index_.external_ids, args.session_clicks)
    clicks = interleave(sessions, args.serve_warmup + args.serve_clicks, args.active_sessions)
    with tempfile.TemporaryDirectory(prefix="seq_speed-") as tmp:
        model_dir = Path(tmp) / name
        model.save(model_dir)
        serving = serve(model_dir, clicks, args.serve_warmup, args)
    host_after = host_state()

    return {
        "benchmark": "seq_speed",
        "model": name,
        "config_file": rel(cfg_file),
        "overrides": overrides,
        "config": cfg,
        "train": rel(args.train),
        "test": rel(test_path),
        "dataset": args.dataset,
        "format": data.format,
        "kind": data.kind,
        "n_items": len(data.item_index),
        "train_sessions": int(data.train.n_sessions),
        "train_log_events": int(data.train.n_events),
        "load_s": round(load_s, 3),
        "epochs": epochs,
        "fit_s": round(train.seconds, 6),
        "loop_s": round(loop_s, 6),
        "events_per_s": round(loop_events / loop_s, 1) if loop_s > 0 else None,
        "train_other_cores": round(train.other, 2),
        "train_cpu_cores": round(train.cpu / train.seconds, 2) if train.seconds > 0 else None,
        "kernels": model.meta_.get("kernels"),
        "protocol": protocol,
        "test_split": "leave-one-out" if data.kind == "histories" else "last item of a session",
        "eval_s": round(ev.seconds, 6),
        "eval_load_s": round(eval_load_s, 3),
        "eval_queries": n_queries,
        "queries_per_s": round(n_queries / ev.seconds, 1) if ev.seconds > 0 else None,
        "eval_batch_size": args.eval_batch_size,
        "eval_other_cores": round(ev.other, 2),
        "n_unknown_targets": int(res.get("n_unknown_targets", 0)),
        "recall@20": round(float(res["recall@20"]), 5),
        "ndcg@20": round(float(res["ndcg@20"]), 5),
        "serve": serving,
        "threads": args.threads,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": git_commit(),
        "command": args.command,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host_before": host_before,
        "host_after": host_after,
    }


# ------------------------------------------------------------------ report (parent)
def _flag(cores: float) -> str:
    return "!" if cores > OTHER_LOAD_FLAG else ""


def _secs(s: float) -> str:
    return f"{s:.1f}" if s >= 10 else f"{s:.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of the records ``rows`` (one row per model)."""
    who = "users" if rows and rows[0]["kind"] == "histories" else "sessions"
    out = [
        f"| model | config | epoch s | events/s | eval s | {who} | queries/s "
        "| serve p50 ms | serve p99 ms | other cores |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        conf = " ".join([r["config_file"] or "defaults", *r["overrides"]])
        ep_s = " / ".join(_secs(e["seconds"]) for e in r["epochs"]) or f"{_secs(r['fit_s'])} (fit)"
        ev_s = " / ".join(f"{e['events_per_s']:,.0f}" for e in r["epochs"]) or "-"
        other = max(r["train_other_cores"], r["eval_other_cores"], r["serve"]["other_cores"])
        sv = r["serve"]
        out.append(
            f"| {r['model']} | {conf} | {ep_s} | {ev_s} | {r['eval_s']:.2f} | "
            f"{r['eval_queries']:,} | {r['queries_per_s']:,.0f} | {sv['p50_ms']:.2f} | "
            f"{sv['p99_ms']:.2f} | {other:.2f}{_flag(other)} |"
        )
    return "\n".join(out)


def command_line(argv: list[str]) -> str:
    """The command that reproduces this run, from the checkout's root."""
    return shlex.join(["python", "benchmarks/seq_speed.py", *argv])


def run_child(name: str, argv: list[str]) -> dict[str, Any] | str:
    """One model in a fresh subprocess: its record, or the error's last line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--_child", name]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()
        sys.stderr.write(proc.stderr[-4000:])
        return tail[-1] if tail else f"exit code {proc.returncode}"
    return json.loads(lines[-1])


def parse_args(argv: list[str]) -> argparse.Namespace:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        prog="seq_speed.py",
        description=doc.split("\n\n")[0],
        epilog=doc.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"comma-separated models to run, in order (default {','.join(MODELS)})",
    )
    ap.add_argument(
        "--train",
        help="the data file (any format seqrec train reads; default "
        "../shared/data/amazon_beauty/s3rec/Beauty.txt; --quick: data/excerpt/train.tsv)",
    )
    ap.add_argument(
        "--test",
        help="the test file (default: --train itself for user histories, whose "
        "leave-one-out test split is evaluated; required for session data: the last "
        "item of each of its sessions is evaluated; --quick: data/excerpt/test.tsv)",
    )
    ap.add_argument(
        "--dataset",
        help="the name in configs/MODEL/DATASET.toml (default: from --train, e.g. beauty "
        "for Beauty.txt, excerpt for data/excerpt/train.tsv)",
    )
    ap.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="MODEL=FILE",
        help="a model's TOML config (repeatable; default configs/MODEL/DATASET.toml if "
        "present, else configs/MODEL/excerpt.toml, else the model's defaults)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODEL.KEY=VALUE",
        help="override one key of one model's config, VALUE parsed as TOML (e.g. --set "
        "sasrec.batch_size=256); KEY=VALUE without a model applies to every model; "
        "repeatable. n_epochs, threads and patience are set by this script",
    )
    ap.add_argument("--epochs", type=int, help="training epochs (n_epochs; default 2)")
    ap.add_argument(
        "--threads",
        type=int,
        help="torch threads for training (the threads key) and evaluation (default 2)",
    )
    ap.add_argument(
        "--eval-batch-size",
        type=int,
        default=512,
        help="queries scored at once in the evaluation (default 512, as seqrec evaluate)",
    )
    ap.add_argument(
        "--serve-clicks",
        type=int,
        help="timed add_event calls per model (default 2000; --quick: 200)",
    )
    ap.add_argument(
        "--serve-warmup",
        type=int,
        help="untimed add_event calls before them (default 200; --quick: 20)",
    )
    ap.add_argument(
        "--session-clicks",
        type=int,
        default=5,
        help="clicks per replayed session: the last N items of a test history, its test "
        "item included (default 5)",
    )
    ap.add_argument(
        "--active-sessions",
        type=int,
        default=100,
        help="sessions replayed at once, interleaved click by click (default 100)",
    )
    ap.add_argument(
        "--max-history",
        type=int,
        default=50,
        help="the runtime's max_history: clicks a session keeps (default 50, as seqrec serve)",
    )
    ap.add_argument("--k", type=int, default=20, help="top-k of every served click (default 20)")
    ap.add_argument(
        "--ann",
        default="exact",
        choices=["exact", "auto", "faiss"],
        help="the runtime's top-K search (default exact: the same for every model)",
    )
    ap.add_argument(
        "--serve-threads",
        type=int,
        default=1,
        help="torch threads while serving (default 1, as seqrec serve)",
    )
    ap.add_argument(
        "--out",
        help="append one JSON line per model here (default "
        "benchmarks/results/seq_speed.jsonl; --quick: none)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run on the shipped excerpt: --train/--test data/excerpt, 1 epoch, 1 "
        "thread, 200 + 20 clicks, no JSON file (explicit options still win)",
    )
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("epochs", "threads", "serve_clicks", "session_clicks", "active_sessions"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be >= 1")
    for key in ("serve_warmup", "eval_batch_size", "max_history", "k", "serve_threads"):
        if getattr(args, key) < (0 if key == "serve_warmup" else 1):
            ap.error(f"--{key.replace('_', '-')} is out of range")
    args.model_list = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.model_list:
        ap.error("--models names no model")
    args.config_map = {}
    for pair in args.config:
        name, sep, file = pair.partition("=")
        if not sep or not name.strip() or not file.strip():
            ap.error(f"--config expects MODEL=FILE, got {pair!r}")
        args.config_map[name.strip()] = file.strip()
    for pair in args.set:
        name, dot, _ = pair.partition("=")[0].partition(".")
        if dot and name.strip() not in args.model_list:
            ap.error(f"--set {pair}: {name.strip()!r} is not among --models")
    for name in args.config_map:
        if name not in args.model_list:
            ap.error(f"--config {name}=...: {name!r} is not among --models")
    if args.dataset is None:
        args.dataset = dataset_name(args.train)
    if args._child:  # the parent's command, without the child's own option
        i = argv.index("--_child")
        argv = argv[:i] + argv[i + 2 :]
    args.command = command_line(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args._child:
        print(json.dumps(measure(args, args._child)), flush=True)
        return 0
    if not Path(args.train).exists():
        raise SystemExit(f"error: {args.train} not found")
    from seqrec.data.formats import HISTORY_FORMATS
    from seqrec.data.loading import detect_format

    if args.test is None and detect_format(args.train) not in HISTORY_FORMATS:
        raise SystemExit(
            f"error: {args.train} holds sessions, not user histories: give --test (its "
            "sessions' last items are evaluated)"
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"host: {cpu_model()}, {os.cpu_count()} cores, load average {load}")
    print(
        f"data: {rel(args.train)} (dataset {args.dataset}), test: {rel(args.test or args.train)}; "
        f"{args.epochs} epochs, {args.threads} threads; serving {args.serve_clicks} clicks "
        f"after {args.serve_warmup}, {args.serve_threads} thread(s)"
    )
    print(f"command: {args.command}", flush=True)
    rows, failed = [], []
    for name in args.model_list:
        r = run_child(name, argv)
        if isinstance(r, str):
            print(f"{name}: FAILED: {r}", flush=True)
            failed.append(name)
            continue
        rows.append(r)
        print(json.dumps(r), flush=True)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(r) + "\n")
    if rows:
        print()
        print(table(rows))
        print(
            f"\nepoch s / events/s: each epoch's training loop (no validation), events = "
            f"training targets; eval s: full-ranking {rows[0]['protocol']} "
            f"({rows[0]['test_split']}), one query per test history, history items "
            f"excluded; serve: "
            f"in-process Runtime.add_event + top-{args.k}, {args.serve_clicks} clicks; "
            f"other cores: most CPU cores other processes used in a phase "
            f"(! = > {OTHER_LOAD_FLAG}: timing unreliable)"
        )
        print(f"\nreproduce: {args.command}")
        if args.out:
            print(f"JSON lines appended to {rel(args.out)}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
