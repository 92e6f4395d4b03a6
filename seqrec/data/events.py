"""Read event logs (CSV, TSV, Parquet, pandas / polars DataFrames) into a SessionLog.

The flow is ``read_table`` (I/O, one-line :class:`~seqrec.errors.DataError` on any bad
input) -> ``table_events`` (validate the session / item / time / user / event-type
columns, factorise ids) -> ``build_log`` (sort, map items, CSR). All three are
vectorised (pyarrow / numpy), so tens of millions of events are fine.

Conventions:

* Item ids and session ids are external ids, kept as strings.
* Times are unix seconds (float). A time column may hold numbers or ISO-8601 strings
  (``2014-04-06T20:21:58.444Z``; no zone means UTC), or be a timestamp column.
* Without a session column, each user's history is one session (sequential
  recommendation), unless ``session_gap`` splits it at inactivity gaps.
* Sessions are ordered by start time (ties keep file order); events inside a session
  by time (stable). Without times, file order is kept.
* Error locations: ``file line N`` for text files (1-based, counting the header),
  ``file row N`` (1-based) for Parquet files and DataFrames.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seqrec.data.compressed import plain_file
from seqrec.data.csvrows import bad_row, data_row, row_start_line
from seqrec.data.idmap import UNKNOWN, ItemIndex
from seqrec.data.preprocess import sessionize
from seqrec.data.report import DataReport
from seqrec.data.sessions import SessionLog
from seqrec.data.textfile import first_invalid_utf8, text_file
from seqrec.errors import DataError
from seqrec.quoting import escape, quote

ALIASES: dict[str, tuple[str, ...]] = {
    "session": ("SessionId", "session_id", "sessionId", "session"),
    "item": ("ItemId", "item_id", "itemId", "item", "movieId", "product_id"),
    "time": ("Time", "timestamp", "Timestamp", "time", "ts"),
    "user": ("UserId", "user_id", "userId", "user", "visitorid"),
    "event_type": ("event_type", "event", "behavior", "type"),
}
ROLES = tuple(ALIASES)


@dataclass(frozen=True)
class Columns:
    """Column names of the roles; ``None`` means auto-detect from :data:`ALIASES`."""

    session: str | None = None
    item: str | None = None
    time: str | None = None
    user: str | None = None
    event_type: str | None = None

    def resolve(self, names: Sequence[str], source: str) -> dict[str, str]:
        """Map each role to a column of ``names``; errors name the file and columns."""
        names = list(names)
        shown = ", ".join(escape(n, 40) for n in names[:30])
        if len(names) > 30:
            shown += f", ... ({len(names)} columns)"
        out: dict[str, str] = {}
        for role in ROLES:
            given = getattr(self, role)
            if given is not None:
                if given not in names:
                    raise DataError(f"{source}: column {quote(given)} not found (columns: {shown})")
                out[role] = given
                continue
            lower = {n.lower(): n for n in reversed(names)}
            for alias in ALIASES[role]:
                if alias in names or alias.lower() in lower:
                    out[role] = alias if alias in names else lower[alias.lower()]
                    break
        if "item" not in out:
            raise DataError(
                f"{source}: no item column found (looked for {', '.join(ALIASES['item'])}; "
                f"columns: {shown}); name it with --item-col"
            )
        if "session" not in out and "user" not in out:
            raise DataError(
                f"{source}: no session or user column found (looked for "
                f"{', '.join(ALIASES['session'] + ALIASES['user'])}; columns: {shown})"
            )
        used = list(out.values())
        dup = next((c for c in used if used.count(c) > 1), None)
        if dup is not None:
            roles = [r for r, c in out.items() if c == dup]
            raise DataError(f"{source}: column {quote(dup)} is used for {' and '.join(roles)}")
        return out


# ----------------------------------------------------------------------------- sources
@dataclass
class Table:
    """A raw table plus where it came from (for error messages)."""

    data: pa.Table
    name: str  # the file (as given) or "DataFrame"
    roles: dict[str, str]  # role -> column name
    path: Path | None = None  # text file: line numbers are computed from it
    delimiter: str = ","
    header: bool = True

    def where(self, row: int) -> str:
        """``"name line N"`` (text files) or ``"name row N"`` of 0-based data row ``row``."""
        if self.path is None:
            return f"{self.name} row {row + 1}"
        return f"{self.name} line {_line_of_row(self.path, row, self.delimiter, self.header)}"

    def column(self, role: str) -> pa.ChunkedArray | None:
        name = self.roles.get(role)
        return None if name is None else self.data.column(name)


def _line_of_row(path: Path, row: int, delimiter: str, header: bool) -> int:
    """1-based line on which 0-based data row ``row`` starts (blank lines are skipped)."""
    return row_start_line(path, delimiter, row, header)


def check_file(path: str | Path) -> Path:
    """The file to read for ``path``: DataError if it does not exist (or is a broken
    link or a link loop), is not a regular file, cannot be read or is empty; a
    compressed file (gzip, bzip2, xz, single-file zip) gives its decompressed temporary
    copy (:mod:`seqrec.data.compressed`). Messages keep naming ``path``."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            raise DataError(f"{path}: broken symbolic link (its target does not exist)") from None
        raise DataError(f"{path}: no such file or directory") from None
    except OSError as exc:  # a symbolic link loop, a name too long, ...
        raise DataError(f"{path}: cannot open ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{path}: is a directory, expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: not a regular file (a FIFO, socket or device), expected a file")
    try:
        with p.open("rb"):
            pass
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if st.st_size == 0:
        raise DataError(f"{path}: file is empty")
    return plain_file(p, path)


def check_text_file(path: str | Path) -> Path:
    """:func:`check_file`, then the text checks of :func:`~seqrec.data.textfile.text_file`
    (binary data is an error; UTF-16/32 with a byte-order mark is read as UTF-8)."""
    return text_file(check_file(path), path)


def sniff_delimiter(first_line: str, default: str) -> str:
    """The most frequent of tab, comma, semicolon, pipe in a header line (else ``default``)."""
    counts = {d: first_line.count(d) for d in ("\t", ",", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else default


def first_row(path: Path, delimiter: str, shown: str | Path | None = None) -> list[str]:
    """The first non-blank row of a text file, split by ``delimiter`` (a quoted header
    cell may not hold a line break)."""
    import csv

    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        line = next((ln for ln in fh if ln.strip()), "")
    if not line:
        raise DataError(f"{shown or path}: no data (only blank lines)")
    return next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])


def read_text_table(
    path: str | Path,
    columns: Columns | None = None,
    *,
    delimiter: str | None = None,
    names: Sequence[str] | None = None,
    header: bool = True,
) -> Table:
    """Read a delimited text file with every needed column as strings.

    ``names`` renames the columns (the header line, if ``header``, is then skipped);
    a headerless file (``header=False``) needs ``names``. ``delimiter`` defaults to the
    one sniffed from the first line (tab for ``.tsv``/``.txt``, comma otherwise).
    """
    import pyarrow.csv as pcsv

    p = check_text_file(path)
    if delimiter is None:
        with p.open(encoding="utf-8-sig", errors="replace") as fh:
            line = next((ln for ln in fh if ln.strip()), "")
        default = "\t" if p.suffix.lower() in (".tsv", ".txt") else ","
        delimiter = sniff_delimiter(line, default)
    first = first_row(p, delimiter, path)
    if not header and names is None:
        raise DataError(f"{path}: a file without header needs column names")
    all_names = [h.strip() for h in first] if names is None else list(names)
    if len(first) != len(all_names):
        bad = bad_row(p, delimiter, len(all_names), header)
        raise DataError(
            f"{path} {bad or f'line 1: expected {len(all_names)} fields, got {len(first)}'}"
        )
    raw_header = [h.strip() for h in first] if header else None
    roles = (columns or Columns()).resolve(all_names, str(path))
    _check_header_names(all_names, set(roles.values()), str(path))
    needed = list(dict.fromkeys(roles.values()))
    # name the columns ourselves (header cells stripped of spaces / BOM)
    read_opts = pcsv.ReadOptions(column_names=all_names, skip_rows=_header_skip(p) if header else 0)
    try:
        # an opened stream: given a path, pyarrow would guess a compression from the name
        with pa.input_stream(str(p), compression=None) as src:
            data = pcsv.read_csv(
                src,
                read_options=read_opts,
                parse_options=pcsv.ParseOptions(delimiter=delimiter),
                convert_options=pcsv.ConvertOptions(
                    column_types={c: pa.string() for c in needed},
                    include_columns=needed,
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        bad = bad_row(p, delimiter, len(all_names), header)
        if bad is not None:
            raise DataError(f"{path} {bad}") from None
        where = first_invalid_utf8(p)
        if where is not None:
            raise DataError(
                f"{path} line {where[0]}: not valid UTF-8 (byte 0x{where[2]:02x} at column "
                f"{where[1]}); seqrec reads UTF-8 text (or UTF-16 with a byte-order mark): "
                "convert the file, e.g. iconv -f latin1 -t utf-8"
            ) from None
        text = str(exc).strip()
        msg = escape(text.splitlines()[0] if text else type(exc).__name__, 160)
        raise DataError(f"{path}: cannot parse as delimited text ({msg})") from None
    if data.num_rows == 0:
        raise DataError(f"{path}: no data rows (header only)")
    table = Table(data, str(path), roles, path=p, delimiter=delimiter, header=header)
    if raw_header is not None:
        _check_duplicate_header(table, dict(zip(all_names, raw_header)))
    return table


def _check_header_names(
    names: list[str], used: set[str], source: str, where: str = "in the header"
) -> None:
    """A column to read named twice is ambiguous: which one is meant?"""
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        if name in seen and name in used:
            line = " line 1" if where == "in the header" else ""
            raise DataError(
                f"{source}{line}: column {quote(name)} appears twice {where} "
                f"(fields {seen[name] + 1} and {k + 1})"
            )
        seen[name] = k


def _header_skip(p: Path) -> int:
    """Rows to skip so that reading starts after the header (leading blank lines too;
    lines end at a line feed, a carriage return or both, as for the parser)."""
    with p.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        for k, line in enumerate(fh):
            if line.strip():
                return k + 1
    return 0


def _check_duplicate_header(table: Table, raw: dict[str, str]) -> None:
    mask = None
    for name in dict.fromkeys(table.roles.values()):
        eq = pc.equal(pc.utf8_trim_whitespace(table.data.column(name)), raw[name])
        mask = eq if mask is None else pc.and_(mask, eq)
    if mask is not None and pc.any(mask).as_py():
        row = int(np.flatnonzero(_np(mask))[0])
        raise DataError(f"{table.where(row)}: duplicate header line inside the data")


def read_parquet_table(path: str | Path, columns: Columns | None = None) -> Table:
    """Read the needed columns of a Parquet file."""
    import pyarrow.parquet as pq

    p = check_file(path)
    try:
        schema = pq.read_schema(p)
        roles = (columns or Columns()).resolve(schema.names, str(path))
        data = pq.read_table(p, columns=list(dict.fromkeys(roles.values())))
    except (pa.ArrowInvalid, OSError) as exc:
        msg = escape(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 160)
        raise DataError(f"{path}: not a readable Parquet file ({msg})") from None
    if data.num_rows == 0:
        raise DataError(f"{path}: no data rows")
    return Table(data, str(path), roles)


def frame_table(frame: Any, columns: Columns | None = None, name: str = "DataFrame") -> Table:
    """Wrap a pandas or polars DataFrame (or a pyarrow Table)."""
    import pandas as pd

    if isinstance(frame, pa.Table):
        data = frame
    elif isinstance(frame, pd.DataFrame):
        names = [str(c) for c in frame.columns]
        roles = (columns or Columns()).resolve(names, name)
        _check_header_names(names, set(roles.values()), name, "among the columns")
        used = list(dict.fromkeys(roles.values()))
        sub = frame.iloc[:, [names.index(c) for c in used]]  # labels may not be strings
        sub.columns = used
        try:
            data = pa.Table.from_pandas(sub, preserve_index=False)
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
            raise DataError(
                f"{name}: cannot convert columns ({escape(str(exc).splitlines()[0], 160)})"
            ) from None
    elif hasattr(frame, "to_arrow") and hasattr(frame, "schema"):  # polars
        data = frame.to_arrow()
    else:
        raise DataError(
            f"{name}: expected a pandas or polars DataFrame, got {type(frame).__name__}"
        )
    roles = (columns or Columns()).resolve(data.column_names, name)
    _check_header_names(data.column_names, set(roles.values()), name, "among the columns")
    data = data.select(list(dict.fromkeys(roles.values())))
    if data.num_rows == 0:
        raise DataError(f"{name}: no data rows")
    return Table(data, name, roles)


# ----------------------------------------------------------------------------- columns
def _np(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr.to_numpy(zero_copy_only=False)


def _is_stringish(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _check_missing(table: Table, role: str, col: pa.ChunkedArray) -> None:
    missing = col.is_null()
    if _is_stringish(col.type):
        missing = pc.or_(missing, pc.equal(pc.utf8_trim_whitespace(col), ""))
    if pc.any(missing).as_py():
        row = int(np.flatnonzero(_np(missing))[0])
        raise DataError(f"{table.where(row)}: missing value in column {quote(table.roles[role])}")


def factorize_ids(table: Table, role: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques): codes (n,) int64 in order of first appearance; uniques as str."""
    col = table.column(role)
    assert col is not None
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    _check_missing(table, role, col)
    column = quote(table.roles[role])
    if pa.types.is_floating(col.type):
        vals = _np(col).astype(np.float64)
        # integral and exactly representable (|v| <= 2**53): 1e300 or inf is no id
        frac = np.flatnonzero((vals != np.round(vals)) | ~(np.abs(vals) <= 2.0**53))
        if len(frac):
            raise DataError(
                f"{table.where(int(frac[0]))}: id {float(vals[frac[0]])!r} in column "
                f"{column} is not an integer or string"
            )
        col = pa.chunked_array([pa.array(vals.astype(np.int64))])
    if pa.types.is_boolean(col.type):
        raise DataError(f"{table.name}: column {column} holds true/false values, not ids")
    try:
        if not _is_stringish(col.type):
            col = pc.cast(col, pa.string())
        elif not pa.types.is_string(col.type):
            col = pc.cast(col, pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise DataError(
            f"{table.name}: column {column} has type {col.type}; ids must be integers or "
            "(UTF-8) strings"
        ) from None
    enc = pc.dictionary_encode(col.combine_chunks() if col.num_chunks != 1 else col.chunk(0))
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    _check_control_chars(table, role, enc.dictionary, codes)
    uniques = enc.dictionary.to_numpy(zero_copy_only=False).astype(object)
    return codes, uniques


# C0 control characters but the tab, and DEL: never part of an id
_CONTROL_RE = r"[\x00-\x08\x0a-\x1f\x7f]"


def _check_control_chars(table: Table, role: str, uniques: pa.Array, codes: np.ndarray) -> None:
    """Ids holding a line break (an unclosed quote ran over lines) or another control
    character (binary data) are errors, named at their first row. Checked on the
    distinct values, so it costs little."""
    bad = _np(pc.match_substring_regex(uniques, _CONTROL_RE)).astype(bool)
    if not bad.any():
        return
    row = int(np.flatnonzero(np.isin(codes, np.flatnonzero(bad)))[0])
    value = str(uniques[int(codes[row])].as_py())
    column = quote(table.roles[role])
    if "\n" not in value and "\r" not in value:
        raise DataError(
            f"{table.where(row)}: value {quote(value)} in column {column} "
            "contains a control character"
        )
    r = None if table.path is None else data_row(table.path, table.delimiter, row, table.header)
    if r is not None and r.open_quote:
        raise DataError(
            f"{table.name} line {r.start}: unclosed quote (the field runs on to line {r.end}, "
            "the end of the file)"
        )
    raise DataError(
        f"{table.where(row)}: value {quote(value)} in column {column} contains a line break "
        "(an unclosed quote?)"
    )


def parse_times(table: Table) -> np.ndarray:
    """(n,) float64 unix seconds from numbers, ISO-8601 strings or timestamp columns."""
    col = table.column("time")
    assert col is not None
    _check_missing(table, "time", col)
    t = col.type
    if pa.types.is_timestamp(t):
        factor = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
        out = _np(pc.cast(col, pa.int64())).astype(np.float64) / factor
    elif pa.types.is_date(t):
        out = _np(pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64())).astype(np.float64)
    elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        out = _np(pc.cast(col, pa.float64())).astype(np.float64)
    elif _is_stringish(t):
        out = _fast_time_strings(col)
        if out is None:  # mixed or bad values: the slow path finds and names them
            out = _parse_time_strings(table, _np(col))
    else:
        raise DataError(f"{table.name}: time column {quote(table.roles['time'])} has type {t}")
    bad = np.flatnonzero(~np.isfinite(out))
    if len(bad):
        raw = _np(col)[bad[0]]
        raise DataError(
            f"{table.where(int(bad[0]))}: time {quote(raw)} is not a finite number "
            f"(column {quote(table.roles['time'])})"
        )
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fast_time_strings(col: pa.ChunkedArray) -> np.ndarray | None:
    """Numbers, or ISO-8601 dates with or without a zone (UTC), parsed by Arrow."""
    col = pc.utf8_trim_whitespace(col)
    try:
        return _np(pc.cast(col, pa.float64())).astype(np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for tz in ("UTC", None):
        try:
            ts = pc.cast(col, pa.timestamp("ns", tz))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        return _np(pc.cast(ts, pa.int64())).astype(np.float64) / 1e9
    return None


def _parse_time_strings(table: Table, values: np.ndarray) -> np.ndarray:
    import pandas as pd

    s = pd.Series(values, dtype=object)
    if _is_number(str(values[0])):
        out = pd.to_numeric(s.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(out) & ~s.str.strip().str.lower().isin(["nan", "+nan", "-nan"]).to_numpy()
    else:
        dt = pd.to_datetime(s.str.strip(), utc=True, format="ISO8601", errors="coerce")
        out = ((dt - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        bad = np.isnan(out)
    idx = np.flatnonzero(bad)
    if len(idx):
        raise DataError(
            f"{table.where(int(idx[0]))}: time {quote(values[idx[0]])} is not a number or "
            f"ISO-8601 date (column {quote(table.roles['time'])})"
        )
    return out


# ----------------------------------------------------------------------------- events
@dataclass
class Events:
    """Validated, factorised event columns in file order (one entry per event)."""

    items: np.ndarray  # (n,) int64 codes into item_ids
    item_ids: np.ndarray  # (n_items,) external ids (str), first-appearance order
    sessions: np.ndarray | None = None  # (n,) int64 codes into session_ids
    session_ids: np.ndarray | None = None
    users: np.ndarray | None = None  # (n,) int64 codes into user_ids
    user_ids: np.ndarray | None = None
    times: np.ndarray | None = None  # (n,) float64 unix seconds
    event_types: np.ndarray | None = None  # (n,) int8 codes into event_type_names
    event_type_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.items)


def table_events(table: Table, event_type_order: Sequence[str] | None = None) -> Events:
    """Validate and factorise the role columns of ``table``.

    ``event_type_order`` fixes the event-type codes (values outside it are errors);
    otherwise codes follow first appearance.
    """
    items, item_ids = factorize_ids(table, "item")
    ev = Events(items=items, item_ids=item_ids)
    if "session" in table.roles:
        ev.sessions, ev.session_ids = factorize_ids(table, "session")
    if "user" in table.roles:
        ev.users, ev.user_ids = factorize_ids(table, "user")
    if "time" in table.roles:
        ev.times = parse_times(table)
    if "event_type" in table.roles:
        codes, names = factorize_ids(table, "event_type")
        names = [str(n) for n in names]
        if event_type_order is not None:
            order = list(event_type_order)
            unknown = [n for n in names if n not in order]
            if unknown:
                row = int(np.flatnonzero(codes == names.index(unknown[0]))[0])
                raise DataError(
                    f"{table.where(row)}: event type {quote(unknown[0])} is not one of "
                    f"{', '.join(order)}"
                )
            codes = np.asarray([order.index(n) for n in names], dtype=np.int64)[codes]
            names = order
        if len(names) > 127:
            raise DataError(
                f"{table.name}: column {quote(table.roles['event_type'])} has {len(names)} "
                "distinct event types (at most 127)"
            )
        ev.event_types, ev.event_type_names = codes.astype(np.int8), tuple(names)
    return ev


def _stable_order(keys: np.ndarray, within: np.ndarray | None = None) -> np.ndarray:
    """Indices sorting by ``keys`` (stable), after a stable pre-sort by ``within``."""
    if within is None:
        return np.argsort(keys, kind="stable")
    o = np.argsort(within, kind="stable")
    return o[np.argsort(keys[o], kind="stable")]


def build_log(
    ev: Events,
    item_index: ItemIndex | None = None,
    *,
    session_gap: float | None = None,
    report: DataReport | None = None,
) -> tuple[SessionLog, ItemIndex, DataReport]:
    """Group, sort and encode events into a SessionLog.

    Without ``item_index`` a new index is built (items in order of first appearance in
    the sorted log). With a frozen ``item_index``, unknown items become ``-1`` (counted
    in the report, not dropped). ``session_gap`` (seconds) splits each user's events into
    sessions at inactivity gaps longer than it (needs users and times).
    """
    report = report if report is not None else DataReport()
    n = len(ev)
    report.add("read", "rows", n)
    session_ids = ev.session_ids
    if session_gap is not None:
        if ev.users is None or ev.times is None:
            raise DataError("splitting sessions at inactivity gaps needs user and time columns")
        sessions = sessionize(ev.users, ev.times, session_gap)
        session_ids = None
    elif ev.sessions is not None:
        sessions = ev.sessions
    elif ev.users is not None:
        sessions, session_ids = ev.users, ev.user_ids  # one history per user
    else:
        raise DataError("events need a session or a user column")
    n_sess = int(sessions.max()) + 1 if n else 0
    # events grouped by session, time-sorted inside (stable: ties keep file order)
    grouped = _stable_order(sessions, ev.times)
    lengths = np.bincount(sessions, minlength=n_sess)
    starts = np.zeros(n_sess, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    # session order: start time, ties by first row in the file
    first_row = np.full(n_sess, n, dtype=np.int64)
    np.minimum.at(first_row, sessions, np.arange(n, dtype=np.int64))
    if ev.times is not None:
        order = np.lexsort((first_row, ev.times[grouped[starts]]))
    else:
        order = np.argsort(first_row, kind="stable")
    sel_len = lengths[order]
    offsets = np.zeros(n_sess + 1, dtype=np.int64)
    np.cumsum(sel_len, out=offsets[1:])
    pos = np.repeat(starts[order] - offsets[:-1], sel_len) + np.arange(n, dtype=np.int64)
    final = grouped[pos]  # file row of every event of the log, in log order

    codes = ev.items[final]
    frozen = item_index is not None
    first_pos = np.full(len(ev.item_ids), n, dtype=np.int64)
    np.minimum.at(first_pos, codes, np.arange(n, dtype=np.int64))
    n_present = int((first_pos < n).sum())
    if item_index is None:
        by_first = np.argsort(first_pos, kind="stable")[:n_present]
        item_index = ItemIndex(str(x) for x in ev.item_ids[by_first])
        lookup = np.empty(len(ev.item_ids), dtype=np.int32)
        lookup[by_first] = np.arange(len(by_first), dtype=np.int32)
    else:
        lookup = item_index.encode(str(x) for x in ev.item_ids)
    items = lookup[codes]

    first_ev = final[offsets[:-1]]
    users = None if ev.users is None else ev.users[first_ev]
    sids = None
    if session_ids is not None:
        sids = np.asarray(session_ids, dtype=object)[sessions[first_ev]]
    log = SessionLog(
        offsets=offsets,
        items=items,
        times=None if ev.times is None else ev.times[final],
        event_types=None if ev.event_types is None else ev.event_types[final],
        users=users,
        session_ids=sids,
        event_type_names=ev.event_type_names,
    )
    report.add("read", "sessions", log.n_sessions)
    if ev.user_ids is not None:
        report.add("read", "users", len(ev.user_ids))
    report.add("read", "items", n_present)
    if frozen:
        n_unknown = int((items == UNKNOWN).sum())
        report.add("encode", "events with items not in the training index (kept as -1)", n_unknown)
    return log, item_index, report


# ----------------------------------------------------------------------------- facade
def read_table(
    source: Any,
    columns: Columns | None = None,
    *,
    fmt: str | None = None,
    delimiter: str | None = None,
    names: Sequence[str] | None = None,
    header: bool = True,
) -> Table:
    """Read a file (``fmt``: csv, tsv or parquet; default from the suffix) or a frame.
    ``delimiter``, ``names`` and ``header`` apply to text files (see read_text_table)."""
    if not isinstance(source, (str, Path)):
        return frame_table(source, columns)
    suffix = Path(source).suffix.lower()
    fmt = fmt or (
        "parquet" if suffix in (".parquet", ".pq") else "tsv" if suffix == ".tsv" else "csv"
    )
    if fmt == "parquet":
        return read_parquet_table(source, columns)
    if fmt not in ("csv", "tsv"):
        raise DataError(f"{source}: read_table reads csv, tsv or parquet, not {quote(fmt)}")
    if delimiter is None and fmt == "tsv":
        delimiter = "\t"
    return read_text_table(source, columns, delimiter=delimiter, names=names, header=header)


def read_events(
    source: Any,
    columns: Columns | None = None,
    *,
    fmt: str | None = None,
    item_index: ItemIndex | None = None,
    session_gap: float | None = None,
    delimiter: str | None = None,
    names: Sequence[str] | None = None,
    header: bool = True,
    event_type_order: Sequence[str] | None = None,
) -> tuple[SessionLog, ItemIndex, DataReport]:
    """Read an event log (path or DataFrame) into ``(SessionLog, ItemIndex, DataReport)``.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"SessionId": [1, 1, 2], "ItemId": ["a", "b", "a"],
    ...                    "Time": [10.0, 11.0, 5.0]})
    >>> log, index, _ = read_events(df)
    >>> [list(index.decode(s)) for s in log]
    [['a'], ['a', 'b']]
    """
    table = read_table(source, columns, fmt=fmt, delimiter=delimiter, names=names, header=header)
    ev = table_events(table, event_type_order)
    log, index, report = build_log(ev, item_index, session_gap=session_gap)
    if table.path is not None:  # the CSV reader skips empty lines: count them
        blank = count_blank_lines(table.path)
        if blank:
            report.add("read", "blank lines skipped", blank)
    return log, index, report


def count_blank_lines(path: Path, chunk: int = 1 << 24) -> int:
    """Lines of ``path`` that are empty (or a lone carriage return), read in chunks."""
    count = 0
    since = 0  # bytes of the current line so far
    only_cr = True  # ... all of them carriage returns
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            a = np.frombuffer(block, dtype=np.uint8)
            nl = np.flatnonzero(a == 10)
            if len(nl) == 0:
                since += len(a)
                only_cr = only_cr and bool((a == 13).all())
                continue
            first = since + int(nl[0])  # the line that ends at the first newline
            first_cr = only_cr and bool((a[: nl[0]] == 13).all())
            count += int(first == 0 or (first == 1 and first_cr))
            gaps = np.diff(nl) - 1  # lengths of the lines between newlines
            starts = nl[:-1] + 1
            count += int((gaps == 0).sum())
            one = gaps == 1
            count += int((a[starts[one]] == 13).sum())
            tail = a[nl[-1] + 1 :]
            since = len(tail)
            only_cr = bool((tail == 13).all())
    return count + int(since == 1 and only_cr)  # a last line of a lone carriage return
