"""Glue between data, models and evaluation used by the CLI, the demo and tuning."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.models.base import Recommender


def default_protocol(path: str | Path, fmt: str) -> str:
    """samples for a sessions directory, last-item for user histories, else next-item."""
    from seqrec.data.loading import HISTORY_FORMATS, detect_format

    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "sessions":
        return "samples"
    if fmt in HISTORY_FORMATS:
        return "last-item"
    return "next-item"


# What the command line (train, demo, tune) opts neural models into unless their config
# sets these keys: the thread policy of seqrec.training.threads and the malloc setting of
# seqrec.training.sysmem. A library fit leaves the process's settings alone.
PROCESS_TUNING: dict[str, Any] = {"threads": "auto", "malloc_tuning": True}


def with_process_tuning(cls: type[Recommender], cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` plus :data:`PROCESS_TUNING` for a neural model or a hybrid's neural parts
    (keys in ``cfg`` win)."""
    return cls.with_run_defaults(cfg, PROCESS_TUNING)


def fit_model(
    model: Recommender,
    data: Any,
    *,
    valid_path: str | None = None,
    valid_format: str = "auto",
    checkpoint_dir: str | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Recommender:
    """Fit ``model`` on loaded TrainingData, with an optional validation file
    (:func:`seqrec.training.fit`: checkpoints and progress apply to neural models)."""
    from seqrec.training import fit

    valid: SessionLog | Samples | None = data.valid
    if valid_path is not None:
        from seqrec.data.loading import load_test_data

        valid, _report = load_test_data(valid_path, valid_format, data.item_index, "next-item")
        if isinstance(valid, SessionLog):
            valid, _ = valid.drop_unknown()
            valid = valid.drop_short(2)
    return fit(
        model,
        data.train,
        valid,
        item_index=data.item_index,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
    )


def _when(t: float) -> str:
    """A unix time as a UTC date, or as the number if no calendar date has it
    (a time in milliseconds, or garbage: year > 9999)."""
    import datetime as dt

    try:
        return f"{dt.datetime.fromtimestamp(t, dt.UTC):%Y-%m-%d %H:%M} UTC"
    except (OverflowError, OSError, ValueError):
        return f"{t:g} (not a date in seconds)"


def data_stats(path: str | Path, fmt: str = "auto", columns: Any = None) -> str:
    """Human-readable statistics of a data file (events, sessions, items, lengths)."""
    from seqrec.data.loading import detect_format, read_log

    fmt = detect_format(path) if fmt == "auto" else fmt
    log, index, report = read_log(path, fmt, columns)
    lengths = log.lengths
    lines = [f"{path} ({fmt})"]
    lines.append(f"  events    {log.n_events:,}")
    lines.append(f"  sessions  {log.n_sessions:,}")
    lines.append(f"  items     {len(index):,}")
    if log.users is not None:
        lines.append(f"  users     {len(np.unique(log.users)):,}")
    if log.times is not None and log.n_events:
        t0, t1 = float(np.min(log.times)), float(np.max(log.times))
        lines.append(f"  time span {_when(t0)} -> {_when(t1)}")
    if log.event_types is not None and log.event_type_names:
        counts = np.bincount(log.event_types.astype(np.int64), minlength=len(log.event_type_names))
        lines.append(
            "  event types " + ", ".join(f"{n} {c:,}" for n, c in zip(log.event_type_names, counts))
        )
    if len(lengths):
        q = np.percentile(lengths, [50, 90, 99])
        lines.append(
            f"  session length: mean {lengths.mean():.2f}, min {lengths.min()}, median {q[0]:.0f}, "
            f"p90 {q[1]:.0f}, p99 {q[2]:.0f}, max {lengths.max()}"
        )
        hist = np.bincount(np.minimum(lengths, 11))
        parts = [f"{k}: {hist[k]:,}" for k in range(1, min(len(hist), 11)) if hist[k]]
        if len(hist) > 11 and hist[11]:
            parts.append(f">10: {hist[11]:,}")
        lines.append("  length distribution  " + ", ".join(parts))
    counts = log.item_counts(len(index))
    if len(counts):
        lines.append(
            f"  item support: min {counts.min()}, median {np.median(counts):.0f}, "
            f"max {counts.max()}"
        )
    text = str(report).strip()
    if text:
        lines.append(text)
    return "\n".join(lines)


def run_demo(
    train: str = "data/excerpt/train.tsv",
    test: str = "data/excerpt/test.tsv",
    out: str = "runs/demo",
    models: str = "pop,session-pop,gru4rec",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train each model on the excerpt, evaluate next-item on its test part, print a table."""
    from seqrec.config import load_toml
    from seqrec.data.loading import load_test_data, load_training_data
    from seqrec.evaluation import evaluate
    from seqrec.models import get_model_class

    data = load_training_data(train, "auto")
    print(
        f"demo data: {train} ({data.train.n_events:,} events, {data.train.n_sessions:,} sessions, "
        f"{len(data.item_index):,} items); test: {test}",
        file=sys.stderr,
    )
    rows = []
    for name in [m.strip() for m in models.split(",") if m.strip()]:
        cls = get_model_class(name)
        cfg_file = Path("configs") / name / "excerpt.toml"
        cfg = load_toml(cfg_file) if cfg_file.exists() else {}
        cfg.pop("model", None)
        model = cls(with_process_tuning(cls, cfg))
        t0 = time.perf_counter()
        fit_model(model, data, progress=progress)
        fit_s = time.perf_counter() - t0
        model.save(Path(out) / name)
        test_data, _ = load_test_data(test, "auto", model.item_index_, "next-item")
        res = evaluate(
            model,
            test_data,
            protocol="next-item",
            ks=(5, 10, 20),
            item_popularity=model.item_support_,
        )
        res.update(model=name, train_seconds=fit_s)
        rows.append(res)
    print()
    print(
        f"next-item protocol, full ranking over {len(data.item_index):,} items, conservative ties, "
        f"{rows[0]['n_queries']:,} test queries"
        if rows
        else "no models"
    )
    head = (
        f"{'model':<13} {'R@5':>7} {'R@10':>7} {'R@20':>7} {'MRR@20':>7} {'NDCG@20':>8} "
        f"{'Cov@20':>7} {'train s':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['model']:<13} {r['recall@5']:>7.4f} {r['recall@10']:>7.4f} {r['recall@20']:>7.4f} "
            f"{r['mrr@20']:>7.4f} {r['ndcg@20']:>8.4f} {r['coverage@20']:>7.4f} "
            f"{r['train_seconds']:>8.1f}"
        )
    if rows:
        example = " ".join(model.item_index_.decode(test_data.session(0)[:2]))
        print(f"\nmodels saved under {out}/; try:")
        print(f'  seqrec recommend --model {out}/{rows[-1]["model"]} --items "{example}"')
    return rows
