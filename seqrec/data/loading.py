"""The glue the CLI calls: detect a format, load training data, load test data.

* :func:`detect_format` - one of :data:`FORMATS` from the path and its first lines.
* :func:`read_log` - any format (or a DataFrame) -> ``(SessionLog, ItemIndex, DataReport)``.
* :func:`load_training_data` - :class:`TrainingData`. Session formats: the whole file is
  training data. User-history formats (s3rec, user-item, recbole, movielens): the
  SASRec leave-one-out split (train = history[:-2], valid = history[:-2] -> history[-2];
  the item index holds every item of the file, so the test labels are known).
* :func:`load_test_data` - protocols ``next-item`` (SessionLog with the frozen index,
  unknown items kept as -1), ``samples`` (exact SR-GNN samples, or every position of a
  session log) and ``last-item`` (leave-one-out test samples of user histories).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from seqrec.data import benchmarks as bm
from seqrec.data.events import (
    ALIASES,
    Columns,
    check_file,
    check_text_file,
    read_events,
    sniff_delimiter,
)
from seqrec.data.formats import FORMATS, HISTORY_FORMATS, PROTOCOLS
from seqrec.data.idmap import ItemIndex
from seqrec.data.preprocess import leave_one_out
from seqrec.data.report import DataReport
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.data.textfile import text_file
from seqrec.errors import DataError
from seqrec.quoting import quote

SESSIONS_FILES = ("train_sessions.txt", "test_sessions.txt", "test_samples.tsv")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_INTS = re.compile(r"^[0-9 \t]+$")


@dataclass
class TrainingData:
    train: SessionLog
    valid: Samples | SessionLog | None
    item_index: ItemIndex
    kind: Literal["sessions", "histories"]
    report: DataReport
    format: str = ""
    test: Samples | None = None  # histories only: the leave-one-out test samples


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DataError(f"unknown format {quote(fmt)}; valid formats: auto, {', '.join(FORMATS)}")
    return fmt


def _head(p: Path, n: int = 1000) -> list[str]:
    """The first ``n`` non-blank lines (without line ends)."""
    out: list[str] = []
    with p.open(encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\r\n")
            if line.strip():
                out.append(line)
                if len(out) >= n:
                    break
    return out


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` (see the module doc); DataError if unsure."""
    p = Path(path)
    if p.is_dir():
        if any((p / f).is_file() for f in SESSIONS_FILES):
            return "sessions"
        raise DataError(
            f"{path}: directory without train_sessions.txt / test_sessions.txt "
            "(not a sessions folder)"
        )
    plain = check_file(p)  # a compressed file: its decompressed copy, named without .gz
    suffix = plain.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    with plain.open("rb") as fh:
        if fh.read(4) == b"PAR1":
            return "parquet"
    plain = text_file(plain, path)  # binary data is an error; UTF-16 read as UTF-8
    if suffix == ".inter":
        return "recbole"
    if plain.name in SESSIONS_FILES:
        return "sessions"
    head = _head(plain)
    if not head:
        raise DataError(f"{path}: no data (only blank lines)")
    first = head[0]
    if first.startswith(
        ("prefix\t", "session_id\ttimestamp\tprefix", "session_id\tlast_timestamp")
    ):
        return "sessions"
    if not _INTS.match(first):
        fields = [f.strip() for f in first.split(",")]
        ints = [f.isascii() and f.isdigit() for f in fields]
        if len(fields) == 5 and fields[3] in bm.TAOBAO_BEHAVIORS and all(ints[:3] + ints[4:]):
            return "taobao"
        if len(fields) == 4 and _ISO.match(fields[1]) and ints[0] and ints[2]:
            return "yoochoose-raw"
        delim = sniff_delimiter(first, ",")
        names = [h.strip().strip('"') for h in first.split(delim)]
        if "userId" in names and "movieId" in names:
            return "movielens"
        if delim == "\t" and all(":" in n for n in names):
            return "recbole"
        known = {a.lower() for aliases in ALIASES.values() for a in aliases}
        if suffix in (".csv", ".tsv", ".txt", ".dat") or any(n.lower() in known for n in names):
            return "tsv" if delim == "\t" else "csv"
        raise DataError(
            f"{path}: cannot detect the format (first line {quote(first, 80)}); "
            f"pass --format (one of {', '.join(FORMATS)})"
        )
    if all(_INTS.match(line) for line in head):
        if "session" in p.name.lower():
            return "sessions"
        if all(len(line.split()) == 2 for line in head):
            return "user-item"
        return "s3rec"
    raise DataError(
        f"{path}: cannot detect the format; pass --format (one of {', '.join(FORMATS)})"
    )


def _no_columns(fmt: str, columns: Columns | None) -> None:
    if columns is not None and any(v is not None for v in vars(columns).values()):
        raise DataError(f"column options (--session-col, ...) do not apply to format {quote(fmt)}")


def _sessions_file(path: Path, name: str) -> Path:
    if path.is_dir():
        f = path / name
        if not f.is_file():
            raise DataError(f"{path}: sessions folder has no {name}")
        return f
    return path


def read_log(
    path: Any,
    fmt: str = "auto",
    columns: Columns | None = None,
    item_index: ItemIndex | None = None,
) -> tuple[SessionLog, ItemIndex, DataReport]:
    """Read any supported file (a sessions folder: its train_sessions.txt) or DataFrame.
    With a frozen ``item_index`` unknown items become -1 (counted in the report)."""
    if not isinstance(path, (str, Path)):
        return read_events(path, columns, item_index=item_index)
    fmt = detect_format(path) if fmt == "auto" else _check_format(fmt)
    p = Path(path)
    if fmt in ("tsv", "csv", "parquet"):
        return read_events(
            p, columns, fmt=fmt, item_index=item_index, delimiter="\t" if fmt == "tsv" else None
        )
    if fmt == "recbole":
        return bm.read_recbole(p, item_index, columns)
    if fmt == "movielens":
        return bm.read_movielens(p, item_index, columns)
    _no_columns(fmt, columns)
    if fmt == "sessions":
        return bm.read_sessions_file(_sessions_file(p, "train_sessions.txt"), item_index)
    readers = {
        "s3rec": bm.read_s3rec,
        "user-item": bm.read_user_item,
        "taobao": bm.read_taobao,
        "yoochoose-raw": bm.read_yoochoose_raw,
    }
    return readers[fmt](p, item_index)


def _is_history(path: Any, fmt: str, columns: Columns | None) -> bool:
    """User-history formats, unless the file has a session column (RecBole can)."""
    if fmt not in HISTORY_FORMATS:
        return False
    if fmt == "recbole" and (columns is None or columns.session is None):
        with check_text_file(path).open(encoding="utf-8-sig", errors="replace") as fh:
            first = fh.readline().rstrip("\r\n").split("\t")
        names = {h.split(":", 1)[0].strip() for h in first}
        return not names & set(ALIASES["session"])
    return columns is None or columns.session is None


def load_training_data(
    path: Any, format: str = "auto", columns: Columns | None = None
) -> TrainingData:
    """Read training data; user histories get the SASRec leave-one-out split."""
    if not isinstance(path, (str, Path)):
        log, index, report = read_log(path, "auto", columns)
        return TrainingData(log, None, index, "sessions", report, "frame")
    fmt = detect_format(path) if format == "auto" else _check_format(format)
    log, index, report = read_log(path, fmt, columns)
    if not _is_history(path, fmt, columns):
        return TrainingData(log, None, index, "sessions", report, fmt)
    train, valid, test, split = leave_one_out(log)
    report.extend(split)
    return TrainingData(train, valid, index, "histories", report, fmt, test)


def load_test_data(
    path: Any,
    format: str,
    item_index: ItemIndex,
    protocol: str,
    columns: Columns | None = None,
) -> tuple[SessionLog | Samples, DataReport]:
    """Test data for ``protocol`` encoded with the frozen ``item_index`` (unknown items
    are -1 and counted in the report; evaluation decides what to drop)."""
    if protocol not in PROTOCOLS:
        raise DataError(
            f"unknown protocol {quote(protocol)}; valid protocols: {', '.join(PROTOCOLS)}"
        )
    if not isinstance(path, (str, Path)):
        fmt = "frame"
    else:
        fmt = detect_format(path) if format == "auto" else _check_format(format)
    if fmt == "sessions":
        p = Path(path)
        samples_file = p / "test_samples.tsv" if p.is_dir() else p
        if protocol == "samples" and samples_file.is_file() and _is_samples_file(samples_file):
            samples, _, report = bm.read_samples_file(samples_file, item_index)
            return samples, report
        test_file = _sessions_file(p, "test_sessions.txt")
        if _is_samples_file(test_file):
            raise DataError(f"{test_file}: is a prefix/label samples file; use protocol 'samples'")
        log, _, report = bm.read_sessions_file(test_file, item_index)
    else:
        log, _, report = read_log(path, fmt, columns, item_index)
    if protocol == "next-item":
        return log, report
    if protocol == "samples":
        samples = Samples.from_sessions(log)
        report.add("samples", "samples (every position t >= 1 of every session)", len(samples))
        return samples, report
    # last-item
    if fmt != "frame" and _is_history(path, fmt, columns):
        _, _, test, split = leave_one_out(log)
        report.extend(split)
        return test, report
    short = int((log.lengths < 2).sum())
    samples = Samples.last_item(log)
    report.add("samples", "sessions shorter than 2 (no last-item query) dropped", short)
    report.add("samples", "last-item samples", len(samples))
    return samples, report


def _is_samples_file(path: Path) -> bool:
    with check_text_file(path).open(encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    return first.startswith(("prefix\t", "session_id\ttimestamp\tprefix"))
