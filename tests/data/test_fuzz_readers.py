"""Property-based fuzzing of the data readers (Hypothesis).

Properties, for every reader entry point (``seqrec.data.loading``):

* no exception but a :class:`~seqrec.errors.SeqrecError` (no traceback-class error),
  whose message is one printable line;
* no hang (a hard time limit per example, on top of Hypothesis' deadline);
* every file that is accepted round-trips: it is generated from a known list of events
  and what is read back (events, sessions, items, the item sequence of every session,
  the session order) is exactly what the documented rules give (sessions ordered by
  start time, ties by first row; events by time, ties in file order; blank lines
  skipped; no times: file order).

Budget: ``max_examples`` per test (``SEQREC_FUZZ_EXAMPLES``, default 60), derandomized
when the ``CI`` environment variable is set, so CI runs are reproducible.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import example, given, note
from hypothesis import strategies as st

from seqrec.data.events import ALIASES, Columns
from seqrec.data.formats import FORMATS, PROTOCOLS
from seqrec.data.loading import detect_format, load_test_data, load_training_data, read_log
from seqrec.errors import DataError, SeqrecError
from tests.fuzzing import FUZZ

LIMIT_S = 30  # a hard limit per example: a hang fails the test instead of stalling CI


@contextmanager
def time_limit(seconds: float = LIMIT_S) -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"no answer after {seconds} s (a hang?)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def outcome(fn: Callable[[], Any]) -> Any:
    """``fn()``'s result, or the SeqrecError it raised (checked: one printable line).
    Any other exception propagates and fails the test."""
    try:
        with time_limit():
            return fn()
    except SeqrecError as exc:
        msg = str(exc)
        assert msg and msg.isprintable(), f"not one printable line: {msg!r}"
        assert len(msg) < 2000, f"message of {len(msg)} characters"
        return exc


@contextmanager
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="seqrec-fuzz-") as d:
        yield Path(d)


def decoded(log: Any, index: Any) -> list[list[str]]:
    return [index.decode(s) for s in log]


# ----------------------------------------------------------------------------- random bytes
NAMES = (
    "data.csv",
    "data.tsv",
    "events.txt",
    "clicks.dat",
    "ratings.csv",
    "ml.inter",
    "train_sessions.txt",
    "test_samples.tsv",
    "Beauty.txt",
    "data.csv.gz",
    "data.parquet",
)
PREFIXES = (
    b"",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xfe\xff",
    b"\x1f\x8b",
    b"BZh9",
    b"\xfd7zXZ\x00",
    b"PK\x03\x04",
    b"\x28\xb5\x2f\xfd",
    b"PAR1",
    b"SessionId\tItemId\tTime\n",
    b"session_id,item_id\n",
    b"prefix\tlabel\n",
    b"session_id\tlast_timestamp\titems\n",
    b"user_id:token\titem_id:token\n",
    b"userId,movieId,rating,timestamp\n",
)
TEXTISH = st.text(st.sampled_from('0123456789 \t\n\r,;|"abcAB:-.eZT\x00\x1b\\\u00e9'), max_size=300)


@st.composite
def random_files(draw: st.DrawFn) -> bytes:
    prefix = draw(st.sampled_from(PREFIXES))
    body = draw(
        st.one_of(
            st.binary(max_size=600),
            TEXTISH.map(lambda t: t.encode("utf-8")),
            TEXTISH.map(lambda t: t.encode("utf-16")),
        )
    )
    return prefix + body


@FUZZ
@given(data=random_files(), name=st.sampled_from(NAMES), fmt=st.sampled_from(("auto", *FORMATS)))
@example(data=b"\x00\x01binary\x1b[31m", name="data.tsv", fmt="tsv")
@example(data=b'SessionId\tItemId\n1\t"a\n2\tb\n', name="data.tsv", fmt="auto")
@example(data=b"1 2\n\xef\xbb\xbf3\n", name="train_sessions.txt", fmt="auto")
def test_random_bytes_give_data_or_one_error_line(data: bytes, name: str, fmt: str) -> None:
    with folder() as d:
        path = d / name
        path.write_bytes(data)
        got = outcome(lambda: load_training_data(path, fmt))
        if isinstance(got, SeqrecError):
            assert isinstance(got, DataError)
            assert str(got).startswith(str(path)), f"the message does not name the file: {got}"
            return
        assert got.train.n_events >= 0 and len(got.item_index) >= 0
        for protocol in PROTOCOLS:  # the same file as test data, with its own index
            res = outcome(lambda p=protocol: load_test_data(path, fmt, got.item_index, p))
            assert not isinstance(res, SeqrecError) or isinstance(res, DataError)


# ----------------------------------------------------------------------------- CSV / TSV
# ids: any printable text (no control characters: those are errors, tested elsewhere)
ID_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=6
).filter(lambda s: s.strip() != "")
NASTY = (
    '"',
    '""',
    ",",
    "a\tb",
    ";",
    "|",
    " a",
    "b ",
    "0",
    "00",
    "1.0",
    "nan",
    "NA",
    "NULL",
    "#",
    "'",
    "é",
    "😀",
    "\ufeff",
    'a"b',
    "x,y",
    "\\",
    "None",
    "-1",
    "1e3",
)
IDS = st.one_of(st.sampled_from(NASTY), ID_TEXT)
ROLE_NAMES = {role: [a for a in aliases if a != "movieId"] for role, aliases in ALIASES.items()}
KNOWN = {a.lower() for aliases in ALIASES.values() for a in aliases}


def iso(ns: int, style: int) -> str:
    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ns // 1000)
    text = t.strftime("%Y-%m-%dT%H:%M:%S") if style != 2 else t.strftime("%Y-%m-%d %H:%M:%S")
    if ns % 1_000_000_000:
        text += f".{(ns % 1_000_000_000) // 1_000_000:03d}"
    return text + ("Z" if style == 0 else "")


@st.composite
def time_columns(draw: st.DrawFn, n: int) -> tuple[list[str], list[float]]:
    """(texts, their values in seconds) of one time column: one kind per file."""
    kind = draw(st.sampled_from(["int", "float", "iso", "huge"]))
    if kind == "int":
        vals = draw(st.lists(st.integers(-(10**12), 10**12), min_size=n, max_size=n))
        return [str(v) for v in vals], [float(str(v)) for v in vals]
    if kind == "huge":
        vals = draw(st.lists(st.floats(-1e300, 1e300, allow_nan=False), min_size=n, max_size=n))
        return [repr(v) for v in vals], vals
    if kind == "float":
        vals = draw(st.lists(st.integers(0, 10**7), min_size=n, max_size=n))
        return [f"{v / 1000:.3f}" for v in vals], [float(f"{v / 1000:.3f}") for v in vals]
    style = draw(st.sampled_from([0, 1, 2]))
    ms = draw(st.lists(st.integers(0, 4 * 10**12), min_size=n, max_size=n))
    ns = [m * 1_000_000 for m in ms]
    return [iso(v, style) for v in ns], [v / 1e9 for v in ns]


def cell(value: str, delim: str, quote_all: bool) -> str:
    """A CSV field: quoted when needed (or always), quotes doubled."""
    special = delim in value or "\r" in value or "\n" in value or value.startswith('"')
    if quote_all or special:
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def delimited_files(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 25))
    roles = ["item"]
    roles += draw(st.sampled_from([["session"], ["user"], ["session", "user"]]))
    if draw(st.booleans()):
        roles.append("time")
    if draw(st.booleans()):
        roles.append("event_type")
    sessions = draw(st.lists(st.sampled_from(NASTY[:12]) | ID_TEXT, min_size=1, max_size=5))
    columns: dict[str, list[str]] = {}
    for role in roles:
        if role == "time":
            columns["time"], times = draw(time_columns(n))
        elif role == "event_type":
            columns[role] = draw(
                st.lists(st.sampled_from(["view", "cart", "buy", "x y"]), min_size=n, max_size=n)
            )
        elif role == "item":
            columns[role] = draw(st.lists(IDS, min_size=n, max_size=n))
        else:
            columns[role] = draw(st.lists(st.sampled_from(sessions), min_size=n, max_size=n))
    # column names: an alias (in any case) or a custom name given as an option
    names: dict[str, str] = {}
    given: dict[str, str] = {}
    for role in roles:
        if draw(st.booleans()):
            alias = draw(st.sampled_from(ROLE_NAMES[role]))
            names[role] = draw(st.sampled_from([alias, alias.lower(), alias.upper()]))
        else:
            custom = draw(st.from_regex(r"\A[a-z][a-z0-9_ ]{0,8}[a-z0-9]\Z"))
            if custom.lower() in KNOWN or custom in names.values():
                custom = f"col_{role}_{len(names)}"
            names[role] = given[role] = custom
    extra = draw(st.integers(0, 2))
    for k in range(extra):
        names[f"extra{k}"] = f"extra_{k}"
        columns[f"extra{k}"] = draw(
            st.lists(st.text(st.sampled_from('ab ,;|\t"'), max_size=4), min_size=n, max_size=n)
        )
    order = draw(st.permutations(list(names)))
    delim = draw(st.sampled_from([",", "\t", ";", "|"]))
    quote_all = draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [delim.join(cell(names[c], delim, quote_all) for c in order)]
    for r in range(n):
        lines.append(delim.join(cell(columns[c][r], delim, quote_all) for c in order))
    blank = draw(st.lists(st.integers(0, len(lines)), max_size=3))
    for pos in sorted(blank, reverse=True):
        lines.insert(pos, "")
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "latin-1"]))
    return {
        "text": text,
        "encoding": encoding,
        "suffix": draw(st.sampled_from([".csv", ".tsv", ".txt"])),
        "roles": roles,
        "columns": columns,
        "times": times if "time" in roles else None,
        "given": given,
        "n": n,
        "delim": delim,
    }


def expected_sessions(
    keys: list[str], items: list[str], times: list[float] | None
) -> list[tuple[str, list[int]]]:
    """(session key, its file rows in log order), in log order: the documented rules."""
    groups: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    out = []
    for key, rows in groups.items():
        if times is not None:
            rows = sorted(rows, key=lambda r: (times[r], r))
            out.append(((times[rows[0]], min(rows)), key, rows))
        else:
            out.append(((min(rows),), key, rows))
    out.sort(key=lambda s: s[0])
    return [(key, rows) for _, key, rows in out]


def encode(text: str, encoding: str) -> bytes | None:
    if encoding == "utf-16-be":
        return b"\xfe\xff" + text.encode("utf-16-be")
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return None


def compress(data: bytes, kind: str) -> bytes:
    import bz2
    import gzip
    import io
    import lzma
    import zipfile

    if kind == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("inner.csv", data)
        return buf.getvalue()
    return {"": bytes, "gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](data)


@FUZZ
@given(
    spec=delimited_files(),
    fmt=st.sampled_from(["auto", "given"]),
    packed=st.sampled_from(["", "", "", "gz", "bz2", "xz", "zip"]),
)
def test_delimited_files_round_trip(spec: dict[str, Any], fmt: str, packed: str) -> None:
    data = encode(spec["text"], spec["encoding"])
    if data is None:  # not representable in latin-1: write it as UTF-8
        data = spec["text"].encode("utf-8")
    note(f"file: {data!r}, format {fmt}, columns {spec['given']}, compression {packed}")
    with folder() as d:
        path = d / f"events{spec['suffix']}{'.' + packed if packed else ''}"
        path.write_bytes(compress(data, packed))
        cols = Columns(**spec["given"]) if spec["given"] else None
        use = fmt if fmt == "auto" else "tsv" if spec["delim"] == "\t" else "csv"
        got = outcome(lambda: read_log(path, use, cols))
        non_ascii_latin1 = spec["encoding"] == "latin-1" and not spec["text"].isascii()
        if non_ascii_latin1 and data != spec["text"].encode("utf-8"):
            assert isinstance(got, DataError), "latin-1 bytes accepted as UTF-8"
            return
        if isinstance(got, SeqrecError):
            raise AssertionError(f"a well-formed file was rejected: {got}")
        log, index, report = got
        if fmt == "auto":
            assert detect_format(path) == ("tsv" if spec["delim"] == "\t" else "csv")
        check_round_trip(spec, log, index)
        assert report.get("read", "rows") == spec["n"]
        again = outcome(lambda: read_log(path, use, cols, item_index=index))
        assert not isinstance(again, SeqrecError), again
        assert again[0].items.tolist() == log.items.tolist()
        # as test data for every protocol, with the frozen index: the same events
        n_queries = int((log.lengths - 1).clip(0).sum())
        for protocol, n in (("next-item", None), ("samples", n_queries), ("last-item", None)):
            test = outcome(lambda p=protocol: load_test_data(path, use, index, p, cols))
            assert not isinstance(test, SeqrecError), test
            if n is not None:
                assert len(test[0]) == n


def check_round_trip(spec: dict[str, Any], log: Any, index: Any) -> None:
    cols = spec["columns"]
    key_role = "session" if "session" in spec["roles"] else "user"
    expect = expected_sessions(cols[key_role], cols["item"], spec["times"])
    want = [[cols["item"][r] for r in rows] for _, rows in expect]
    assert log.n_events == spec["n"]
    assert log.n_sessions == len(expect)
    assert len(index) == len(set(cols["item"]))
    assert decoded(log, index) == want
    assert list(log.session_ids) == [key for key, _ in expect]
    assert index.external_ids == list(dict.fromkeys(i for s in want for i in s))
    if spec["times"] is not None:
        assert log.times.tolist() == [spec["times"][r] for _, rows in expect for r in rows]
    if "event_type" in spec["roles"]:
        names = log.event_type_names
        got_types = [names[c] for c in log.event_types.tolist()]
        assert got_types == [cols["event_type"][r] for _, rows in expect for r in rows]


# ----------------------------------------------------------------------------- Parquet
@st.composite
def frames(draw: st.DrawFn) -> tuple[Any, list[str], list[str], list[float] | None]:
    import pandas as pd

    n = draw(st.integers(1, 20))
    keys = draw(st.lists(st.sampled_from(["1", "2", "x", "é"]), min_size=n, max_size=n))
    item_kind = draw(st.sampled_from(["str", "int", "float"]))
    raw = draw(st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n))
    items = [str(v) for v in raw]
    column = {"str": items, "int": raw, "float": [float(v) for v in raw]}[item_kind]
    frame = {"SessionId": keys, "ItemId": column}
    times = None
    time_kind = draw(st.sampled_from(["none", "int", "float", "timestamp"]))
    if time_kind != "none":
        secs = draw(st.lists(st.integers(0, 2 * 10**9), min_size=n, max_size=n))
        times = [float(v) for v in secs]
        frame["Time"] = {
            "int": secs,
            "float": times,
            "timestamp": pd.to_datetime(secs, unit="s"),
        }[time_kind]
    order = draw(st.permutations(list(frame)))
    return pd.DataFrame({c: frame[c] for c in order}), keys, items, times


@FUZZ
@given(spec=frames(), as_file=st.booleans())
def test_parquet_files_and_frames_round_trip(spec: tuple, as_file: bool) -> None:
    frame, keys, items, times = spec
    with folder() as d:
        path = d / "events.parquet"
        frame.to_parquet(path)
        got = outcome(lambda: read_log(path if as_file else frame))
        assert not isinstance(got, SeqrecError), got
        log, index, _ = got
        expect = expected_sessions(keys, items, times)
        assert decoded(log, index) == [[items[r] for r in rows] for _, rows in expect]
        assert list(log.session_ids) == [key for key, _ in expect]


CELLS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.datetimes(),
    st.timedeltas(),
)


@st.composite
def odd_frames(draw: st.DrawFn) -> Any:
    """DataFrames with columns of any kind: one dtype per column, or mixed objects."""
    import pandas as pd

    n = draw(st.integers(0, 6))
    names = draw(st.permutations(["SessionId", "ItemId", "Time", "UserId", "event_type"]))
    names = names[: draw(st.integers(1, 5))]
    data = {}
    for name in names:
        cell = draw(st.sampled_from([CELLS, st.integers(0, 9), st.floats(), st.text(max_size=3)]))
        data[name] = draw(st.lists(cell, min_size=n, max_size=n))
    try:
        return pd.DataFrame(data)
    except (ValueError, TypeError, OverflowError):  # pandas itself refuses the columns
        return pd.DataFrame({name: pd.Series(v, dtype=object) for name, v in data.items()})


@FUZZ
@given(frame=odd_frames())
def test_odd_frames_give_data_or_one_error_line(frame: Any) -> None:
    got = outcome(lambda: read_log(frame))
    if not isinstance(got, SeqrecError):
        log, index, _ = got
        assert log.n_events == len(frame) and len(index) <= len(frame)


# ----------------------------------------------------------------------------- token files
TOKEN = st.integers(0, 10**18 - 1)
GAP = st.sampled_from([" ", "  ", " \t"[:1], "   "])


def token(draw: st.DrawFn, value: int) -> str:
    return str(value).zfill(draw(st.integers(0, 3))) if draw(st.booleans()) else str(value)


def join_lines(draw: st.DrawFn, lines: list[str], blanks: tuple[str, ...] = ("", "  ")) -> bytes:
    """The lines with blank lines inserted, CR LF or LF line ends, a trailing line end
    or not, a UTF-8 byte-order mark or not. Token files skip lines of spaces too; a
    delimited file only empty ones (a line of spaces is a row of one field)."""
    blank = draw(
        st.lists(st.tuples(st.integers(0, len(lines)), st.sampled_from(blanks)), max_size=3)
    )
    lines = list(lines)
    for pos, text in sorted(blank, reverse=True):
        lines.insert(pos, text)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode()


@st.composite
def sessions_files(draw: st.DrawFn) -> tuple[bytes, list[list[int]], list[int] | None]:
    sessions = draw(st.lists(st.lists(TOKEN, min_size=1, max_size=6), min_size=1, max_size=12))
    with_header = draw(st.booleans())
    sids = draw(st.lists(TOKEN, min_size=len(sessions), max_size=len(sessions)))
    lines = []
    for sid, s in zip(sids, sessions):
        pad = draw(st.sampled_from(["", " "]))
        items = pad + draw(GAP).join(token(draw, v) for v in s) + pad
        lines.append(f"{sid}\t{draw(TOKEN)}\t{items}" if with_header else items)
    if with_header:
        lines.insert(0, "session_id\tlast_timestamp\titems")
    return join_lines(draw, lines), sessions, sids if with_header else None


@FUZZ
@given(spec=sessions_files(), fmt=st.sampled_from(["auto", "sessions"]))
@example(spec=(b"\xef\xbb\xbf1 2\r\n\r\n3\r\n", [[1, 2], [3]], None), fmt="auto")
def test_sessions_files_round_trip(spec: tuple[bytes, list[list[int]], Any], fmt: str) -> None:
    data, sessions, sids = spec
    with folder() as d:
        path = d / "train_sessions.txt"
        path.write_bytes(data)
        got = outcome(lambda: read_log(path, fmt))
        assert not isinstance(got, SeqrecError), got
        log, index, _ = got
        assert decoded(log, index) == [[str(v) for v in s] for s in sessions]
        assert len(index) == len({v for s in sessions for v in s})
        if sids is not None:
            assert list(log.session_ids) == [str(v) for v in sids]


@st.composite
def samples_files(draw: st.DrawFn) -> tuple[bytes, list[list[int]], list[int]]:
    prefixes = draw(st.lists(st.lists(TOKEN, min_size=1, max_size=5), min_size=1, max_size=10))
    labels = draw(st.lists(TOKEN, min_size=len(prefixes), max_size=len(prefixes)))
    four = draw(st.booleans())
    lines = ["session_id\ttimestamp\tprefix\tlabel" if four else "prefix\tlabel"]
    for p, label in zip(prefixes, labels):
        body = f"{draw(GAP).join(token(draw, v) for v in p)}\t{label}"
        lines.append(f"{draw(TOKEN)}\t{draw(TOKEN)}\t{body}" if four else body)
    return join_lines(draw, lines), prefixes, labels


@FUZZ
@given(spec=samples_files())
def test_samples_files_round_trip(spec: tuple[bytes, list[list[int]], list[int]]) -> None:
    from seqrec.data.benchmarks import read_samples_file

    data, prefixes, labels = spec
    with folder() as d:
        path = d / "test_samples.tsv"
        path.write_bytes(data)
        got = outcome(lambda: read_samples_file(path))
        assert not isinstance(got, SeqrecError), got
        samples, index, _ = got
        assert decoded(samples.prefixes, index) == [[str(v) for v in p] for p in prefixes]
        assert index.decode(samples.labels) == [str(v) for v in labels]


@st.composite
def history_files(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]], str]:
    """s3rec (``user i1 i2 ...``) or user-item (``user item``) lines: (file, events, fmt)."""
    fmt = draw(st.sampled_from(["s3rec", "user-item"]))
    users = draw(st.lists(TOKEN, min_size=1, max_size=4))
    events: list[tuple[int, int]] = []
    lines = []
    for _ in range(draw(st.integers(1, 10))):
        user = draw(st.sampled_from(users))
        items = draw(st.lists(TOKEN, min_size=1, max_size=1 if fmt == "user-item" else 5))
        events += [(user, i) for i in items]
        lines.append(draw(GAP).join(token(draw, v) for v in [user, *items]))
    return join_lines(draw, lines), events, fmt


@FUZZ
@given(spec=history_files(), auto=st.booleans())
def test_history_files_round_trip(spec: tuple[bytes, list[tuple[int, int]], str], auto: bool):
    data, events, fmt = spec
    with folder() as d:
        path = d / "Beauty.txt"
        path.write_bytes(data)
        got = outcome(lambda: read_log(path, "auto" if auto else fmt))
        assert not isinstance(got, SeqrecError), got
        log, index, _ = got
        users = [str(u) for u, _ in events]
        expect = expected_sessions(users, [], None)
        assert decoded(log, index) == [[str(events[r][1]) for r in rows] for _, rows in expect]
        assert log.n_events == len(events)


@st.composite
def raw_logs(draw: st.DrawFn) -> tuple[bytes, str, list[str], list[str], list[float], list]:
    """taobao (user,item,category,behavior,ts), yoochoose-raw (sid,ISO time,item,category),
    movielens (userId,movieId,rating,timestamp) or recbole (typed header) files."""
    fmt = draw(st.sampled_from(["taobao", "yoochoose-raw", "movielens", "recbole"]))
    n = draw(st.integers(1, 20))
    keys = draw(st.lists(st.sampled_from(["1", "2", "30", "444"]), min_size=n, max_size=n))
    items = [str(v) for v in draw(st.lists(TOKEN, min_size=n, max_size=n))]
    secs = draw(st.lists(st.integers(1_400_000_000, 1_400_010_000), min_size=n, max_size=n))
    types = draw(st.lists(st.sampled_from(["pv", "cart", "fav", "buy"]), min_size=n, max_size=n))
    if fmt == "taobao":
        lines = [f"{k},{i},7,{b},{t}" for k, i, b, t in zip(keys, items, types, secs)]
    elif fmt == "yoochoose-raw":
        lines = [f"{k},{iso(t * 10**9, 0)},{i},0" for k, i, t in zip(keys, items, secs)]
    elif fmt == "movielens":
        lines = ["userId,movieId,rating,timestamp"]
        lines += [f"{k},{i},4.5,{t}" for k, i, t in zip(keys, items, secs)]
    else:
        lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
        lines += [f"{k}\t{i}\t3\t{t}" for k, i, t in zip(keys, items, secs)]
    name = {
        "taobao": "UserBehavior.csv",
        "yoochoose-raw": "clicks.dat",
        "movielens": "ratings.csv",
        "recbole": "ml.inter",
    }[fmt]
    return join_lines(draw, lines, ("",)), fmt, keys, items, [float(t) for t in secs], types, name


def taobao_sessions(keys: list[str], times: list[float]) -> list[str]:
    """Session key of every row: a user's events split at gaps of more than 30 minutes."""
    out = [""] * len(keys)
    for user in dict.fromkeys(keys):
        rows = sorted((r for r, k in enumerate(keys) if k == user), key=lambda r: (times[r], r))
        part = 0
        for a, b in zip([None, *rows], rows):
            if a is not None and times[b] - times[a] > 1800:
                part += 1
            out[b] = f"{user}/{part}"
    return out


@FUZZ
@given(spec=raw_logs(), auto=st.booleans())
def test_raw_logs_round_trip(spec: tuple, auto: bool) -> None:
    data, fmt, keys, items, times, types, name = spec
    with folder() as d:
        path = d / name
        path.write_bytes(data)
        got = outcome(lambda: read_log(path, "auto" if auto else fmt))
        assert not isinstance(got, SeqrecError), got
        log, index, _ = got
        if fmt == "taobao":
            keys = taobao_sessions(keys, times)
        expect = expected_sessions(keys, items, times)
        assert decoded(log, index) == [[items[r] for r in rows] for _, rows in expect]
        assert log.times.tolist() == [times[r] for _, rows in expect for r in rows]
        if fmt == "taobao":
            names = log.event_type_names
            got_types = [names[c] for c in log.event_types.tolist()]
            assert got_types == [types[r] for _, rows in expect for r in rows]


def test_fuzz_budget_is_bounded() -> None:
    """The profile every fuzz test here runs under (CI: derandomized, reproducible)."""
    assert FUZZ.deadline is not None and FUZZ.database is None
    assert FUZZ.derandomize == bool(os.environ.get("CI"))
