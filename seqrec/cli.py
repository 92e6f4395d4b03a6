"""The ``seqrec`` command line.

Every sub-command explains each option in ``--help``. Problems caused by input (bad
files, unknown config keys, unknown models, bad values, bad arguments, unreadable or
unwritable paths) print one line ``error: ...`` on stderr and exit with code 2, never
a traceback. SIGTERM stops a command like Ctrl-C (exit 143 and 130, one line).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import typing
from pathlib import Path
from typing import Any

from seqrec import __version__
from seqrec.data.formats import FORMATS as _FORMATS
from seqrec.data.formats import PROTOCOLS as _PROTOCOLS
from seqrec.errors import SeqrecError

FORMATS = ["auto", *_FORMATS]
PROTOCOLS = ["auto", *_PROTOCOLS]
TIES = ["conservative", "optimistic", "average"]
SAMPLE_SEED = 42  # evaluate --seed default (sampled ranking)

log = logging.getLogger("seqrec")


# --------------------------------------------------------------------------- helpers
def _parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--k expects comma-separated integers, got {text!r}"
        ) from None
    if not ks or any(k <= 0 for k in ks):
        raise argparse.ArgumentTypeError(f"--k values must be positive integers, got {text!r}")
    return ks


def _finite_float(text: str, low: float = -math.inf, what: str = "a finite number") -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(v) or v < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    v = _finite_float(text, 0.0, "a positive finite number")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return v


def _fraction(text: str) -> float:
    v = _finite_float(text, 0.0, "a number between 0 and 1 (exclusive)")
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected a number between 0 and 1 (exclusive), got {text!r}"
        )
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= v < 2**64:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**64), got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        default="auto",
        choices=FORMATS,
        metavar="FMT",
        help="input format: " + ", ".join(FORMATS) + " (default: auto-detect from the "
        "file name and first lines)",
    )
    p.add_argument("--session-col", help="column holding session ids (default: auto-detect)")
    p.add_argument("--item-col", help="column holding item ids (default: auto-detect)")
    p.add_argument("--time-col", help="column holding timestamps (default: auto-detect)")
    p.add_argument("--user-col", help="column holding user ids (optional)")
    p.add_argument("--event-col", help="column holding event types (optional)")


def _columns(args: argparse.Namespace) -> Any:
    from seqrec.data.events import Columns

    return Columns(
        session=args.session_col,
        item=args.item_col,
        time=args.time_col,
        user=args.user_col,
        event_type=args.event_col,
    )


def model_config(
    model: str,
    config_file: str | None,
    overrides: list[str] | None,
    part_configs: list[str] | None = None,
) -> dict[str, Any]:
    """Merge a TOML config file, a hybrid's ``--part-config NAME=FILE`` tables and
    ``--set`` overrides (in this order, later ones win) into one config dict."""
    from seqrec.config import load_toml, parse_overrides
    from seqrec.errors import ConfigError

    values: dict[str, Any] = {}
    if config_file:
        values = load_toml(config_file)
        named = values.pop("model", None)
        if named is not None and named != model:
            raise ConfigError(f"{config_file}: config is for model {named!r}, not {model!r}")
    if part_configs:
        from seqrec.models import get_model_class
        from seqrec.models.hybrid import Hybrid

        if not issubclass(get_model_class(model), Hybrid):
            raise ConfigError(f"--part-config is for hybrid models; {model!r} is not one")
    for pair in part_configs or []:
        name, sep, file = pair.partition("=")
        if not sep or not name.strip() or not file.strip():
            raise ConfigError(f"--part-config expects NAME=FILE.toml, got {pair!r}")
        name = name.strip()
        table = load_toml(file.strip())
        named = table.pop("model", None)
        if named is not None and named != name:
            raise ConfigError(f"{file.strip()}: config is for model {named!r}, not {name!r}")
        values[name] = {**values.get(name, {}), **table}
    values.update(parse_overrides(overrides))
    return values


def _print_report(report: Any) -> None:
    text = str(report).strip()
    if text:
        print(text, file=sys.stderr)


def _check_train_outputs(out: str, checkpoint_dir: str | None, resume: bool) -> None:
    """Fail before training when the outputs cannot be written: --out must be absent,
    an empty directory or a seqrec model directory, in a writable place; the same for
    --checkpoint-dir's checkpoint, which must not lie inside --out (or hold it)."""
    from seqrec.errors import ConfigError
    from seqrec.persist import check_model_out
    from seqrec.training.loop import CHECKPOINT, check_checkpoint_dir

    if resume and not checkpoint_dir:
        raise ConfigError("--resume needs --checkpoint-dir (the directory to resume from)")
    check_model_out(out)
    if checkpoint_dir:
        o = os.path.abspath(out)
        c = os.path.abspath(checkpoint_dir)
        if os.path.commonpath([o, c]) == o or os.path.commonpath(
            [o, os.path.join(c, CHECKPOINT)]
        ) == os.path.join(c, CHECKPOINT):
            raise ConfigError(
                "--checkpoint-dir must not be --out or inside it (and --out not inside "
                "its checkpoint): the model directory is replaced as a whole"
            )
        check_checkpoint_dir(checkpoint_dir)


# --------------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> int:
    from seqrec.data.loading import load_training_data
    from seqrec.models import get_model_class
    from seqrec.pipeline import fit_model, with_process_tuning

    cls = get_model_class(args.model)
    cfg = model_config(args.model, args.config, args.set, args.part_config)
    if args.device:
        cfg["device"] = args.device
    model = cls(with_process_tuning(cls, cfg))  # validates the config before any data is read
    _check_refit(args, model)
    _check_train_outputs(args.out, args.checkpoint_dir, args.resume)  # before any work
    full = load_training_data(args.train, args.format, _columns(args))
    data = _carve_train_validation(full, args)
    _print_report(data.report)
    t0 = time.perf_counter()
    fit_model(
        model,
        data,
        valid_path=args.valid,
        valid_format=args.format,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        progress=not args.quiet,
    )
    if args.refit:
        model = _refit(model, cls, cfg, full, args)
        data = full
    seconds = time.perf_counter() - t0
    model.meta_["train_seconds"] = round(seconds, 3)
    model.meta_["train_data"] = str(args.train)
    model.save(args.out)
    path = f", {model.meta_['kernels']}" if "kernels" in model.meta_ else ""
    if "index_mib" in model.meta_:  # index-based models (rules, kNN)
        print(
            f"index: {model.meta_['index_mib']:.1f} MiB, "
            f"built in {model.meta_['index_build_seconds']:.2f}s"
        )
    print(
        f"trained {args.model} on {data.train.n_events:,} events "
        f"({len(data.item_index):,} items) in {seconds:.1f}s{path} -> {args.out}"
    )
    return 0


def _check_refit(args: argparse.Namespace, model: Any) -> None:
    """``--refit`` needs a carved validation split and a model trained in epochs."""
    if not args.refit:
        return
    from seqrec.errors import ConfigError

    if args.valid_fraction is None and args.valid_days is None:
        raise ConfigError(
            "--refit retrains on all of --train for the epoch count a carved validation "
            "split chose: give --valid-fraction or --valid-days"
        )
    if model.family is None:
        raise ConfigError(f"--refit applies to models trained in epochs; {model.name} is not")


def _refit(model: Any, cls: Any, cfg: dict[str, Any], full: Any, args: argparse.Namespace) -> Any:
    """``--refit``: a fresh model with the same config and seed, trained on every
    training session (the validation split included) for the epoch count that scored
    best on validation; the validation run's history is kept in its meta."""
    from seqrec.pipeline import fit_model, with_process_tuning

    monitor = str(model.training_keys["monitor"])
    scored = [h for h in model.history_ if monitor in h.metrics]
    if not scored:
        from seqrec.errors import DataError

        raise DataError(
            f"--refit: no epoch was scored on {monitor} (empty validation split?): nothing "
            "to choose the epoch count from"
        )
    best = max(scored, key=lambda h: h.metrics[monitor])  # the first of equal values
    epochs = best.epoch + 1
    log.info(
        "refit: best validation epoch %d (%s %.4f); retraining on all %s training sessions "
        "for %d epochs", epochs, monitor, best.metrics[monitor], f"{full.train.n_sessions:,}",
        epochs,
    )  # fmt: skip
    refit = cls(with_process_tuning(cls, {**cfg, "n_epochs": epochs}))  # as the first run
    refit_ck = str(Path(args.checkpoint_dir) / "refit") if args.checkpoint_dir else None
    fit_model(refit, full, checkpoint_dir=refit_ck, resume=args.resume, progress=not args.quiet)
    refit.meta_["refit"] = {
        "epochs": epochs,
        "monitor": monitor,
        "valid_value": best.metrics[monitor],
        "valid_history": model.meta_["history"],
    }
    return refit


def _carve_train_validation(data: Any, args: argparse.Namespace) -> Any:
    """``--valid-fraction`` / ``--valid-days``: hold the last sessions of the training data
    out as the validation split (early stopping, per-epoch validation); no test data is
    read. The held-out sessions are not trained on; validation events whose item the
    remaining training data lacks are dropped (as ``seqrec tune`` does)."""
    if args.valid_fraction is None and args.valid_days is None:
        return data
    import copy
    import dataclasses

    from seqrec.data.preprocess import carve_validation
    from seqrec.errors import ConfigError

    if args.valid:
        raise ConfigError("give either --valid or --valid-fraction / --valid-days, not both")
    if data.kind == "histories":
        raise ConfigError(
            "--valid-fraction / --valid-days apply to session data; user histories already "
            "validate on the second-to-last item of each history"
        )
    train, valid = carve_validation(data.train, args.valid_days, args.valid_fraction or 0.1)
    what = (
        f"the sessions starting in the last {args.valid_days:g} days"
        if args.valid_days is not None
        else f"the last {(args.valid_fraction or 0.1) * 100:g} % of sessions"
    )
    report = copy.deepcopy(data.report)
    report.add("valid", f"sessions carved from --train ({what})", valid.n_sessions)
    report.add("valid", "validation events (items unseen in the rest dropped)", valid.n_events)
    report.add("valid", "training sessions left", train.n_sessions)
    return dataclasses.replace(data, train=train, valid=valid, report=report)


def json_dumps_finite(obj: Any) -> str:
    """``json.dumps`` that never writes NaN/Infinity (not JSON): non-finite floats
    become null."""

    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:
            return clean(v.item())  # numpy / torch scalars
        return v

    return json.dumps(clean(obj), sort_keys=True, allow_nan=False)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from seqrec.data.loading import load_test_data
    from seqrec.errors import DataError
    from seqrec.evaluation import evaluate
    from seqrec.models import load_model
    from seqrec.pipeline import default_protocol

    sampling = _sampling_args(args)  # before loading anything: a usage error is quick
    model = load_model(args.model, device=args.device)
    protocol = args.protocol
    if protocol == "auto":
        protocol = default_protocol(args.test, args.format)
    data, report = load_test_data(args.test, args.format, model.item_index_, protocol)
    if not args.json:
        _print_report(report)
    res = evaluate(
        model,
        data,
        protocol=protocol,
        ks=args.k,
        ties=args.ties,
        exclude_history=args.exclude_history,
        batch_size=args.batch_size,
        item_popularity=model.item_support_,
        unknown=args.unknown,
        progress=not (args.quiet or args.json),
        **sampling,
    )
    res["model"] = model.name
    if not res.get("n_queries"):
        raise DataError(
            f"{args.test}: nothing to evaluate: no query remains "
            f"({res.get('n_unknown_targets', 0):,} with a target unknown to the model; "
            "a query needs a known target after a known item)"
        )
    if args.json:
        print(json_dumps_finite(res))
    else:
        print(format_results(res, args.k))
    return 0


def _sampling_args(args: argparse.Namespace) -> dict[str, Any]:
    """evaluate's sampled-ranking keywords; --sampler and --seed only with
    --sampled-negatives (full ranking is never changed silently)."""
    from seqrec.errors import ConfigError

    if args.sampled_negatives is None:
        given = [
            f for f, v in (("--sampler", args.sampler), ("--seed", args.seed)) if v is not None
        ]
        if given:
            raise ConfigError(
                f"{' and '.join(given)} only {'apply' if len(given) > 1 else 'applies'} to "
                "sampled ranking: add --sampled-negatives N (the default is full ranking)"
            )
        return {}
    return {
        "sampled_negatives": args.sampled_negatives,
        "sampler": args.sampler or "uniform",
        "seed": SAMPLE_SEED if args.seed is None else args.seed,
    }


def format_results(res: dict[str, Any], ks: tuple[int, ...]) -> str:
    lines = []
    if res.get("sampled_negatives"):
        n = res["sampled_negatives"]
        lines += [
            f"SAMPLED RANKING, NOT FULL RANKING ({res['ranking']}): each target is ranked "
            f"among itself and {n:,} sampled items outside its history",
            f"(Recall/MRR/NDCG over {n + 1:,} candidates, not comparable with full-ranking "
            "figures; Coverage/Popularity from the full-catalogue top-K lists)",
        ]
    ranking = res.get("ranking", "full")
    lines += [
        f"protocol {res['protocol']}, {'full ranking' if ranking == 'full' else ranking}, "
        f"ties {res['ties']}, "
        f"exclude_history {res['exclude_history']}: "
        f"{res['n_queries']:,} queries ({res['n_unknown_targets']:,} unknown targets "
        f"{'dropped' if res.get('unknown', 'drop') == 'drop' else 'counted as misses'})",
        f"{'K':>5} {'Recall':>8} {'MRR':>8} {'NDCG':>8} {'Coverage':>9} {'Popularity':>11}",
    ]
    for k in ks:
        lines.append(
            f"{k:>5} {res[f'recall@{k}']:>8.4f} {res[f'mrr@{k}']:>8.4f} {res[f'ndcg@{k}']:>8.4f} "
            f"{res[f'coverage@{k}']:>9.4f} {res.get(f'popularity@{k}', float('nan')):>11.5f}"
        )
    return "\n".join(lines)


def cmd_recommend(args: argparse.Namespace) -> int:
    from seqrec.data.idmap import UNKNOWN
    from seqrec.errors import ConfigError, UnknownItemError
    from seqrec.models import load_model
    from seqrec.quoting import quote

    model = load_model(args.model, device=args.device)
    assert model.item_index_ is not None
    users, known_user = None, False
    if args.user is not None:
        if not model.uses_users:
            raise ConfigError(f"--user: model {model.name} does not use user ids")
        users = [args.user]
        known_user = model.user_index_ is not None and args.user in model.user_index_
        if not known_user:
            print(
                f"note: user {quote(args.user)} is not one of the model's users: "
                "scored from --items alone",
                file=sys.stderr,
            )
    ext = args.items.split()
    dense = model.item_index_.encode(ext)
    unknown = [e for e, d in zip(ext, dense) if d == UNKNOWN]
    if unknown and args.strict:
        raise UnknownItemError(f"unknown item id(s): {', '.join(unknown[:10])}")
    if unknown:
        print(
            f"warning: ignored {len(unknown)} unknown item id(s): {', '.join(unknown[:10])}",
            file=sys.stderr,
        )
    history = dense[dense != UNKNOWN]
    if not len(history) and not known_user:
        print(
            "note: the session is empty"
            + (" (no known item)" if ext else "")
            + f": showing what {model.name} recommends with no history (for GRU4Rec its "
            "empty-session scores; popularity for pop models)",
            file=sys.stderr,
        )
    ids, scores = model.recommend(
        [history], args.k, exclude_history=args.exclude_history, users=users
    )
    rows = [
        (model.item_index_.decode([i])[0], float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0
    ]
    if args.json:
        print(
            json_dumps_finite(
                {
                    "items": [r[0] for r in rows],
                    "scores": [r[1] for r in rows],
                    "unknown_items": unknown,
                }
            )
        )
    else:
        print(f"{'rank':>4}  {'item':<20} score")
        for r, (item, score) in enumerate(rows, 1):
            print(f"{r:>4}  {item:<20} {score:.6g}")
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from seqrec.pipeline import data_stats

    print(data_stats(args.path, args.format, _columns(args)))
    return 0


def _check_out_file(path: str) -> None:
    """--out of tune: a file (replaced if it exists), never a directory; writable."""
    from seqrec.errors import OutputError
    from seqrec.persist import check_writable

    for p in (path, path + ".trials.jsonl"):
        if os.path.isdir(p) or os.path.islink(p):
            raise OutputError(f"{p}: is a directory or a link; --out must name a file")
    check_writable(path)


def cmd_tune(args: argparse.Namespace) -> int:
    from seqrec.tuning import tune

    _check_out_file(args.out)
    tune(
        train_path=args.train,
        fmt=args.format,
        columns=_columns(args),
        model_name=args.model,
        space_path=args.space,
        base_config=model_config(args.model, args.config, args.set),
        n_trials=args.trials,
        timeout=args.timeout,
        metric=args.metric,
        valid_days=args.valid_days,
        valid_fraction=args.valid_fraction,
        out=args.out,
        seed=args.seed,
        progress=not args.quiet,
        start_from_base=not args.no_base_trial,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from seqrec.models import get_model_class
    from seqrec.persist import check_model_out
    from seqrec.pipeline import run_demo

    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        get_model_class(name)
        check_model_out(os.path.join(args.out, name))
    run_demo(
        train=args.train, test=args.test, out=args.out, models=args.models, progress=not args.quiet
    )
    return 0


# --------------------------------------------------------------------------- serve
def cmd_serve(args: argparse.Namespace) -> int:
    """``seqrec serve``: the real-time HTTP service (seqrec.serving.api)."""
    from seqrec.serving.api import ServeConfig, serve

    config = ServeConfig(
        model=args.model,
        store=args.store,
        api_key_env=args.api_key_env,
        strict=args.strict,
        max_history=args.max_history,
        session_ttl=args.session_ttl,
        max_sessions=args.max_sessions,
        max_k=args.max_k,
        max_body_bytes=args.max_body_bytes,
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=args.threads,
        offload={"auto": None, "on": True, "off": False}[args.offload],
        device=args.device or "cpu",
        ann=args.ann,
        ann_nprobe=args.ann_nprobe,
        log_level=args.log_level,
    )
    return serve(config)


# --------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: seqrec train: ...`` and exit code 2
    (sub-command parsers are made of this class too)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="seqrec",
        formatter_class=fmt,
        description="Session-based and sequential recommendation: train, evaluate, recommend.",
    )
    parser.add_argument("--version", action="version", version=f"seqrec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-q", "--quiet", action="store_true", help="no progress bars or per-epoch logs"
        )

    # train
    p = sub.add_parser(
        "train",
        help="train a model and save it to a model directory",
        formatter_class=fmt,
        description=(
            "Train a model on an event log and write a model directory (weights, "
            "config JSON, item index) atomically.\n\nExample:\n  seqrec train --train "
            "data/excerpt/train.tsv --model gru4rec --config configs/gru4rec/"
            "excerpt.toml --set n_epochs=3 --out runs/gru4rec\n\nLearning-rate schedule of "
            "the padded-sequence models (sasrec, bert4rec, caser, fpmc, srgnn, ...):\nevery "
            "lr_decay_step epochs the learning rate is multiplied by lr_decay (default 0.1, "
            "in (0, 1]);\nlr_decay_step = 0 (the default) keeps it constant. A resumed run "
            "continues the schedule.\n  seqrec train ... --set lr_decay_step=3 --set "
            "lr_decay=0.1\n\nHybrids (see `seqrec "
            "hybrid --help`) train every part, then tune their weights on a validation "
            "split carved from --train:\n  seqrec train --train DATA --model gru4rec+vsknn "
            "--part-config gru4rec=configs/gru4rec/diginetica.toml \\\n    --part-config "
            "v-sknn=configs/v-sknn/diginetica.toml --out runs/hybrid"
        ),
    )
    p.add_argument(
        "--train",
        required=True,
        metavar="PATH",
        help="training data: an event file (CSV/TSV/Parquet/...) or a 'sessions' "
        "directory (its train_sessions.txt is used). User-history formats (s3rec, "
        "user-item, recbole, movielens) use leave-one-out: the last item of each "
        "history is never trained on, the second-to-last is the validation target",
    )
    _add_data_args(p)
    p.add_argument(
        "--model", required=True, metavar="NAME", help="model name (see `seqrec models`)"
    )
    p.add_argument(
        "--config",
        metavar="FILE.toml",
        help="TOML file of model parameters (e.g. configs/gru4rec/rsc15_100k.toml)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one parameter; VALUE is parsed as TOML (0.2, true, [480]) or "
        "else taken as a string (loss=bpr-max). Repeatable",
    )
    p.add_argument(
        "--part-config",
        action="append",
        metavar="NAME=FILE.toml",
        help="hybrids: the keys of part NAME from a model's own config file, e.g. "
        "gru4rec=configs/gru4rec/diginetica.toml (same as a [NAME] table in --config; "
        "--set NAME.KEY=VALUE overrides one). Repeatable",
    )
    p.add_argument(
        "--valid",
        metavar="PATH",
        help="validation sessions (same format) evaluated after every epoch (next-item "
        "recall@20 / mrr@20; used for early stopping when the config sets patience); "
        "hybrids tune their weights on it instead of a split carved from --train",
    )
    p.add_argument(
        "--valid-fraction",
        type=float,
        metavar="F",
        help="session data: hold out the last F of the training sessions (0 < F < 1) as "
        "the validation split, evaluated after every epoch and used for early stopping "
        "(patience); those sessions are not trained on. No test data is read",
    )
    p.add_argument(
        "--valid-days",
        type=float,
        metavar="D",
        help="as --valid-fraction, the sessions starting in the last D days of the training "
        "data (needs timestamps)",
    )
    p.add_argument(
        "--refit",
        action="store_true",
        help="with --valid-fraction / --valid-days: after the validated run, train the same "
        "config again from scratch on all of --train (validation sessions included) for the "
        "epoch count that scored best on validation, and write that model (the validated "
        "run's epochs are kept in its config.json, under meta.refit)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    p.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="write a full training checkpoint here after every epoch (atomically; "
        "--refit's second run checkpoints in DIR/refit)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in --checkpoint-dir (exactly: same weights "
        "as an uninterrupted run on CPU with a fixed seed)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides the config)")
    common(p)
    p.set_defaults(func=cmd_train)

    # evaluate
    p = sub.add_parser(
        "evaluate",
        help="evaluate a model with full ranking (or, when asked, sampled ranking)",
        formatter_class=fmt,
        description=(
            "Full-ranking evaluation over the whole catalogue (the default; "
            "--sampled-negatives N ranks each target among N sampled items instead, "
            "labelled as such).\n\nProtocols:\n"
            "  next-item  every position of each test session is a query (GRU4Rec)\n"
            "  samples    explicit prefix->label pairs (SR-GNN test_samples.tsv)\n"
            "  last-item  leave-one-out: the last item of each history\n"
            "Ties: conservative (rank = #items scoring >= target; default), "
            "optimistic (1 + #items scoring > target), average."
        ),
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model directory from `train`")
    p.add_argument(
        "--test",
        required=True,
        metavar="PATH",
        help="test data: event file, or 'sessions' directory (test_samples.tsv for "
        "samples, test_sessions.txt for next-item)",
    )
    _add_data_args(p)
    p.add_argument(
        "--protocol",
        default="auto",
        choices=PROTOCOLS,
        help="evaluation protocol (auto: samples for a sessions directory, last-item "
        "for user-history formats, next-item otherwise)",
    )
    p.add_argument(
        "--k",
        type=_parse_ks,
        default=(5, 10, 20),
        metavar="K1,K2,...",
        help="cut-offs for Recall/MRR/NDCG/coverage/popularity (default 5,10,20)",
    )
    p.add_argument(
        "--ties",
        default="conservative",
        choices=TIES,
        help="tie policy for items scoring equal to the target (default conservative)",
    )
    ex = p.add_mutually_exclusive_group()
    ex.add_argument(
        "--exclude-history",
        dest="exclude_history",
        action="store_true",
        default=None,
        help="never recommend items already in the history (default: on for "
        "last-item, off otherwise)",
    )
    ex.add_argument(
        "--include-history",
        dest="exclude_history",
        action="store_false",
        help="allow items already in the history",
    )
    p.add_argument(
        "--unknown",
        default="drop",
        choices=["drop", "miss"],
        help="targets unknown to the model: drop them (counted as n_unknown_targets; "
        "default) or count them as misses",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=512,
        help="queries scored at once (bounds memory: batch x n_items floats)",
    )
    p.add_argument(
        "--sampled-negatives",
        type=_positive_int,
        metavar="N",
        help="sampled ranking instead of full ranking: rank each target among itself and "
        "N items sampled outside its history (the protocol of papers that report "
        "sampled metrics; much higher figures, not comparable with full ranking); the "
        "output is labelled 'sampled: N <sampler> negatives, seed S'",
    )
    p.add_argument(
        "--sampler",
        choices=["uniform", "popularity"],
        help="with --sampled-negatives: uniform (default) or in proportion to the "
        "training popularity saved with the model",
    )
    p.add_argument(
        "--seed",
        type=_seed,
        metavar="S",
        help=f"with --sampled-negatives: seed of the negatives (default {SAMPLE_SEED}); the "
        "same seed gives the same negatives",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print exactly one JSON object on stdout (recall@K, mrr@K, ndcg@K, ...; "
        "ranking says full or sampled)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    # recommend
    p = sub.add_parser("recommend", help="top-k items after a sequence of clicks")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory")
    p.add_argument(
        "--items",
        required=True,
        metavar='"I1 I2 ..."',
        help="the session so far: external item ids separated by spaces, oldest first",
    )
    p.add_argument("-k", "--k", type=_positive_int, default=10, help="how many items (default 10)")
    p.add_argument(
        "--exclude-history", action="store_true", help="do not recommend items already in --items"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail on unknown item ids (default: report them and ignore them)",
    )
    p.add_argument(
        "--user",
        metavar="ID",
        help="the user's id, for models that score known users (bprmf): a user of the "
        "training data gets its learned vector, any other id is scored from --items",
    )
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    p.set_defaults(func=cmd_recommend)

    # data stats
    p = sub.add_parser("data", help="inspect data files")
    dsub = p.add_subparsers(dest="data_command", metavar="COMMAND")
    dsub.required = True
    q = dsub.add_parser("stats", help="events, sessions, items and length distribution of a file")
    q.add_argument("path", metavar="PATH", help="event file or sessions directory")
    _add_data_args(q)
    q.set_defaults(func=cmd_data_stats)

    # tune
    p = sub.add_parser(
        "tune",
        help="Optuna hyper-parameter search on a validation split",
        formatter_class=fmt,
        description=(
            "Search hyper-parameters on a train/validation split carved from the "
            "TRAINING data (never the test set) and write the best config as TOML. "
            "Sessions: next-item on the last sessions (--valid-days / --valid-fraction). "
            "User histories (s3rec, user-item, recbole, movielens): train on history[:-2], "
            "score the second-to-last item; the last item (test) is never trained on nor "
            "scored."
        ),
    )
    p.add_argument("--train", required=True, metavar="PATH", help="training data (as for train)")
    _add_data_args(p)
    p.add_argument(
        "--model", default="gru4rec", metavar="NAME", help="model name (default gru4rec)"
    )
    p.add_argument(
        "--space",
        required=True,
        metavar="FILE.toml",
        help="parameter space, e.g. configs/gru4rec/space.toml",
    )
    p.add_argument("--config", metavar="FILE.toml", help="base parameters (fixed unless searched)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a base parameter")
    p.add_argument("--trials", type=_positive_int, default=20, help="number of trials (default 20)")
    p.add_argument(
        "--timeout", type=_positive_float, help="stop starting trials after this many seconds"
    )
    p.add_argument(
        "--metric",
        default="mrr@20",
        help="validation metric to maximise: recall@K, mrr@K or ndcg@K (default mrr@20)",
    )
    p.add_argument(
        "--valid-days",
        type=_positive_float,
        default=None,
        help="validation = training sessions starting in the last D days (needs times)",
    )
    p.add_argument(
        "--valid-fraction",
        type=_fraction,
        default=0.1,
        help="without times: validation = the last fraction of sessions (default 0.1)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampler seed of the search")
    p.add_argument(
        "--no-base-trial",
        action="store_true",
        help="do not spend the first trial on the base config (defaults + --config/--set); "
        "by default it is tried first, so the result is never worse on validation",
    )
    p.add_argument(
        "--out", required=True, metavar="FILE.toml", help="where to write the best config"
    )
    common(p)
    p.set_defaults(func=cmd_tune)

    # demo
    p = sub.add_parser("demo", help="train and compare models on the shipped excerpt")
    p.add_argument("--train", default="data/excerpt/train.tsv", help="training file")
    p.add_argument("--test", default="data/excerpt/test.tsv", help="test file (next-item protocol)")
    p.add_argument("--out", default="runs/demo", help="directory for the trained models")
    p.add_argument(
        "--models",
        default="pop,session-pop,gru4rec",
        help="comma-separated models to compare (default pop,session-pop,gru4rec)",
    )
    common(p)
    p.set_defaults(func=cmd_demo)

    # serve (seqrec.serving; needs the 'serve' extra)
    p = sub.add_parser(
        "serve",
        help="real-time recommendation HTTP service with per-session state",
        formatter_class=fmt,
        description=(
            "Serve a model directory over HTTP (FastAPI + uvicorn): POST "
            "/v1/sessions/{id}/events adds a click and returns the top-K, GET "
            "/v1/sessions/{id}/recommendations, POST /v1/recommendations (stateless), "
            "DELETE /v1/sessions/{id}, POST /v1/admin/reload, /healthz, /readyz, "
            "/v1/model, /metrics; OpenAPI docs at /docs. SIGHUP reloads the model "
            "directory.\n\nExample:\n  seqrec serve --model runs/demo/gru4rec --port 8000"
        ),
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model directory to serve")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument(
        "--store",
        default="memory",
        metavar="memory|redis://HOST:PORT/DB",
        help="session-state store: 'memory' (default; bounded LRU with TTL, per process) "
        "or a Redis URL (shared by workers and servers)",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="server processes (default 1; more than 1 needs a Redis store)",
    )
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require the API key held in environment variable VAR on /v1/ routes "
        "(Authorization: Bearer KEY or X-API-Key: KEY); enables /v1/admin/reload",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="reject unknown item ids (default: report them and ignore them)",
    )
    p.add_argument(
        "--max-history",
        type=_positive_int,
        default=50,
        help="clicks remembered per session (default 50)",
    )
    p.add_argument(
        "--session-ttl",
        type=_positive_float,
        default=1800.0,
        metavar="SECONDS",
        help="forget a session this long after its last request (default 1800)",
    )
    p.add_argument(
        "--max-sessions",
        type=_positive_int,
        default=1_000_000,
        help="in-memory store: most sessions kept, least recently used dropped first "
        "(default 1000000)",
    )
    p.add_argument(
        "--max-k", type=_positive_int, default=1000, help="largest k a request may ask for"
    )
    p.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=65536,
        help="largest request body in bytes (default 65536)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch threads per worker (default 1: lowest latency under concurrent load)",
    )
    p.add_argument(
        "--offload",
        default="auto",
        choices=["auto", "on", "off"],
        help="answer requests in a worker thread instead of on the event loop: on keeps "
        "the loop parsing requests while a store call blocks; auto (default) = on for a "
        "Redis store, off for the in-memory one (lower latency)",
    )
    p.add_argument(
        "--ann",
        default="auto",
        choices=["auto", "exact", "faiss"],
        help="top-K search: exact scoring, or an approximate faiss inner-product index "
        "(GRU4Rec; needs faiss-cpu); auto (default) = faiss from 15,000 items when "
        "faiss is installed (recall@20 0.999 measured at 43k items), else exact",
    )
    p.add_argument(
        "--ann-nprobe",
        type=_positive_int,
        default=32,
        help="faiss clusters searched per query (more = better recall, slower; default 32)",
    )
    p.add_argument("--device", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default info)",
    )
    p.set_defaults(func=cmd_serve)

    # models
    p = sub.add_parser("models", help="list available models")
    p.set_defaults(func=cmd_models)

    _add_build_kernels(sub, fmt)
    _add_hybrid(sub, fmt)
    return parser


HYBRID_HELP = """Combine saved model directories (trained on the same data: one catalogue) into
a hybrid model directory that holds copies of them (part-0/, part-1/, ...).

  weighted   each part's score row is normalised per query (--normalise), then
             summed with --weights, or with weights tuned on validation (a simplex
             grid of step --weight-step, best --metric, full ranking)
  switching  two parts: the first answers histories shorter than --threshold
             items, the second the rest (threshold given or tuned: 0..--max-threshold)

Validation for tuning: --valid PATH (sessions the parts did not train on), or
--train PATH (the data the parts trained on: a split is carved from it as `seqrec
tune` does, fresh copies of the parts are trained on the rest and tuned on the
split; the saved parts are kept). Given --weights / --threshold need neither.

Parts with different catalogues are refused (retrain them on the same data).
To train a hybrid from scratch: seqrec train --model hybrid|gru4rec+vsknn.

Example:
  seqrec hybrid --parts runs/gru4rec runs/v-sknn --train DATA --out runs/hybrid
  seqrec hybrid --parts runs/sknn runs/sr --weights 0.7 0.3 --out runs/hybrid"""


def _add_hybrid(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "hybrid",
        help="combine saved models into a weighted or switching hybrid",
        formatter_class=fmt,
        description=HYBRID_HELP,
    )
    p.add_argument(
        "--parts", required=True, nargs="+", metavar="DIR", help="model directories (2 or more)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="hybrid model directory to write")
    p.add_argument(
        "--kind",
        default="weighted",
        choices=["weighted", "switching"],
        help="weighted sum of normalised scores (default) or switch by session length",
    )
    p.add_argument(
        "--normalise",
        default="minmax",
        choices=["minmax", "softmax", "none"],
        help="per-query normalisation of each part's scores: minmax to [0, 1] (default), "
        "softmax, or none (raw scores)",
    )
    p.add_argument(
        "--weights",
        nargs="+",
        type=_finite_float,
        metavar="W",
        help="weighted: one weight >= 0 per part, in --parts order (no tuning)",
    )
    p.add_argument(
        "--threshold",
        type=int,
        metavar="N",
        help="switching: histories shorter than N items go to the first part (no tuning)",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--valid", metavar="PATH", help="validation data the parts did not train on")
    src.add_argument(
        "--train",
        metavar="PATH",
        help="the parts' training data: tune on a split carved from it (retrains copies)",
    )
    _add_data_args(p)
    p.add_argument(
        "--metric",
        default="mrr@20",
        help="what tuning maximises: mrr@K or recall@K (default mrr@20)",
    )
    p.add_argument(
        "--weight-step",
        type=_positive_float,
        default=0.1,
        help="tuning grid step of the weights, 1/N (default 0.1)",
    )
    p.add_argument(
        "--max-threshold",
        type=int,
        default=10,
        help="switching: thresholds tried are 0..N (default 10)",
    )
    p.add_argument(
        "--valid-fraction",
        type=_fraction,
        default=0.1,
        help="--train: validation = the last fraction of sessions (default 0.1)",
    )
    p.add_argument(
        "--valid-days",
        type=_positive_float,
        help="--train: validation = sessions starting in the last D days (needs times)",
    )
    p.add_argument(
        "--valid-queries",
        type=_positive_int,
        default=20000,
        help="most validation queries scored while tuning (a seeded sample; default 20000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (where the parts run)")
    p.set_defaults(func=cmd_hybrid)


def cmd_hybrid(args: argparse.Namespace) -> int:
    from seqrec.errors import ConfigError
    from seqrec.models import load_model
    from seqrec.models.hybrid import Hybrid
    from seqrec.persist import check_model_out

    keys: dict[str, Any] = {
        "kind": args.kind,
        "normalise": args.normalise,
        "metric": args.metric,
        "weight_step": args.weight_step,
        "max_threshold": args.max_threshold,
        "valid_fraction": args.valid_fraction,
        "valid_days": args.valid_days,
        "valid_queries": args.valid_queries,
        "seed": args.seed,
    }
    if args.weights is not None:
        keys["weights"] = args.weights
    if args.threshold is not None:
        keys["threshold"] = args.threshold
    given = args.weights is not None or args.threshold is not None
    if given and (args.valid or args.train):
        raise ConfigError(
            "--weights / --threshold are given: nothing to tune (drop --valid/--train)"
        )
    if not given and not (args.valid or args.train):
        raise ConfigError("give --weights (or --threshold), or --valid or --train to tune them")
    check_model_out(args.out)
    t0 = time.perf_counter()
    parts = [load_model(d, device=args.device) for d in args.parts]
    hybrid = Hybrid.combine(parts, names=args.parts, **keys)
    if args.valid:
        from seqrec.data.loading import load_test_data
        from seqrec.pipeline import default_protocol

        protocol = default_protocol(args.valid, args.format)
        assert hybrid.item_index_ is not None
        valid, report = load_test_data(args.valid, args.format, hybrid.item_index_, protocol)
        _print_report(report)
        hybrid.tune(valid)
    elif args.train:
        from seqrec.data.loading import load_training_data

        data = load_training_data(args.train, args.format, _columns(args))
        if data.item_index != hybrid.item_index_:
            raise ConfigError(
                f"{args.train}: its catalogue ({len(data.item_index):,} items) is not the "
                f"parts' ({hybrid.n_items_:,}): is it the data they were trained on?"
            )
        hybrid.tune_by_retraining(data.train)
    hybrid.meta_["combined_from"] = [str(d) for d in args.parts]
    hybrid.meta_["tune_seconds"] = round(time.perf_counter() - t0, 3)
    hybrid.save(args.out)
    print(f"hybrid of {', '.join(p.name for p in parts)}: {_tuned(hybrid)} -> {args.out}")
    return 0


def _tuned(hybrid: Any) -> str:
    """The weights (or threshold) of a hybrid and, when tuned, the validation score."""
    what = (
        f"weights {[round(w, 4) for w in hybrid.weights_]}"
        if hybrid.weights_ is not None
        else f"threshold {hybrid.threshold_}"
    )
    tuning = hybrid.meta_.get("tuning")
    if tuning:
        what += (
            f" (validation {tuning['metric']} {tuning['best']:.4f}, {tuning['queries']:,} queries)"
        )
    return what


def _add_build_kernels(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "build-kernels",
        help="compile seqrec's CPU training kernels for this machine (once; make setup runs it)",
        formatter_class=fmt,
        description="Compile seqrec's CPU training kernels (seqrec/csrc/*.cpp: optimiser\n"
        "updates, GRU4Rec's losses, row gathers, dropout noise) with the C++ compiler ($CXX,\n"
        "default c++) and ninja into torch's extension cache ($TORCH_EXTENSIONS_DIR, default\n"
        "~/.cache/torch_extensions): once per machine, CPU, torch and Python version, ~1 min.\n"
        "Training then loads them from the cache; without them (no compiler, or\n"
        "SEQREC_FUSED=0) it takes a slower pure-torch path with the same results up to float\n"
        "rounding. Prints where they are and how long the build took; exits with code 2\n"
        "when they cannot be built. `make setup` runs this.",
    )
    p.set_defaults(func=cmd_build_kernels)


def cmd_build_kernels(args: argparse.Namespace) -> int:
    from seqrec.training import kernels as fused

    info = fused.build()
    what = f"built in {info.seconds:.1f}s" if info.compiled else "already built"
    threads = "" if info.openmp else " (without OpenMP: one thread)"
    print(f"seqrec's CPU kernels {what}{threads}: {info.library}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from seqrec.models import MODELS

    for name, cls in sorted(MODELS.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name:<14} {doc}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (
        logging.DEBUG
        if args.verbose
        else (logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    )
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    # SIGTERM stops a command the way Ctrl-C does (serve: uvicorn handles its signals)
    catch_term = args.command != "serve" and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if catch_term else None
    # (None also when the old handler was set outside Python: it cannot be restored)
    try:
        return int(args.func(args) or 0)
    except SeqrecError as exc:
        print(
            f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            file=sys.stderr,
        )
        return 2
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Terminated:
        print(
            f"error: interrupted by SIGTERM (nothing half-written was left){_resume_hint(args)}",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(
            f"error: interrupted (nothing half-written was left){_resume_hint(args)}",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # e.g. permission denied on an input or output path
        log.debug("OS error", exc_info=True)
        print(f"error: {_os_error_line(exc)}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _resume_hint(args: argparse.Namespace) -> str:
    """What an interrupted ``train`` keeps: its checkpoint and how to resume, or nothing."""
    if args.command != "train":
        return ""
    if getattr(args, "checkpoint_dir", None):
        return (
            f"; the last finished epoch is in {args.checkpoint_dir}: "
            "the same command with --resume continues from it"
        )
    return (
        "; the epochs trained are lost (--checkpoint-dir DIR keeps each finished epoch "
        "for --resume)"
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so every cleanup runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def _os_error_line(exc: OSError) -> str:
    what = exc.strerror or str(exc) or type(exc).__name__
    return f"{exc.filename}: {what}" if exc.filename is not None else what


if __name__ == "__main__":
    raise SystemExit(main())
