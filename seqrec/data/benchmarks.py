"""Loaders for the formats of the shared benchmark datasets.

* ``read_session_rec`` - session-rec / GRU4Rec TSV ``SessionId ItemId Time`` (rsc15).
* ``read_sessions_file`` - SR-GNN ``train_sessions.txt`` / ``test_sessions.txt``: one
  session per line (space-separated item ids, in order), optional header
  ``session_id<TAB>last_timestamp<TAB>items`` (COTREC RetailRocket).
* ``read_samples_file`` - SR-GNN ``test_samples.tsv``: the exact prefix -> label queries,
  header ``prefix<TAB>label`` or ``session_id<TAB>timestamp<TAB>prefix<TAB>label``.
* ``read_s3rec`` (``user i1 i2 ...`` lines), ``read_user_item`` (``user item`` lines, one
  interaction per line, in order), ``read_recbole`` (atomic ``.inter``, typed header),
  ``read_movielens`` (``ratings.csv``): one history per user.
* ``read_taobao`` - UserBehavior CSV without header (user,item,category,behavior,ts):
  sessions at a 30-minute inactivity gap, behaviours pv/cart/fav/buy as event types.
* ``read_yoochoose_raw`` - raw ``yoochoose-clicks.dat`` (SessionId,ISO time,ItemId,Cat).

Every reader returns ``(SessionLog or Samples, ItemIndex, DataReport)`` and raises a
one-line :class:`~seqrec.errors.DataError` naming the file and line on bad input.
Token files (sessions, s3rec, user-item) are parsed with numpy over the raw bytes,
without a Python loop per line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrec.data.events import Columns, Events, build_log, check_text_file, read_events
from seqrec.data.idmap import ItemIndex
from seqrec.data.report import DataReport
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import DataError
from seqrec.quoting import quote

TAOBAO_COLUMNS = ("user", "item", "category", "behavior", "timestamp")
TAOBAO_BEHAVIORS = ("pv", "cart", "fav", "buy")
YOOCHOOSE_COLUMNS = ("SessionId", "Time", "ItemId", "Category")
SESSION_GAP = 30 * 60.0

Result = tuple[SessionLog, ItemIndex, DataReport]


# ----------------------------------------------------------------------------- tokens
@dataclass
class TokenFile:
    """Whitespace-separated integer tokens of a text file, with their line and field.

    Fields are separated by tabs (a line without tabs is one field); tokens inside a
    field by spaces. ``header`` holds the tab-separated first line when it is not
    made of integers.
    """

    path: Path  # as the caller named it (for messages)
    header: list[str] | None
    values: np.ndarray  # (n_tokens,) int64
    line: np.ndarray  # (n_tokens,) 0-based line index in the body
    field: np.ndarray  # (n_tokens,) 0-based tab-separated field of the token
    n_lines: int  # body lines (blank ones included)
    tabs: np.ndarray  # (n_lines,) tab count per line
    first_line_no: int = 1  # line number of the first body line
    lead_blank: int = 0  # blank lines before the header (not in the body)

    def where(self, line: int) -> str:
        return f"{self.path} line {self.first_line_no + int(line)}"

    def tokens_per_line(self) -> np.ndarray:
        return np.bincount(self.line, minlength=self.n_lines)

    def blank_lines(self) -> np.ndarray:
        """0-based indices of lines without tokens (and without tabs)."""
        return np.flatnonzero((self.tokens_per_line() == 0) & (self.tabs == 0))


def scan_tokens(path: str | Path, allow_header: bool = False) -> TokenFile:
    """Parse a file of integer tokens. With ``allow_header``, a first line that is not
    made of integers is returned as ``header`` (tab-separated) for the caller to check."""
    p = check_text_file(path)
    raw = p.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark is not a token
        raw = raw[3:]
    if not raw.strip():
        raise DataError(f"{path}: no data (only blank lines)")
    if raw.count(b"\r") != raw.count(b"\r\n"):  # a carriage return alone ends a line too
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lead = re.match(rb"(?:[ \t\r]*\n)*", raw).end() if allow_header else 0  # type: ignore[union-attr]
    nl = raw.find(b"\n", lead)
    first = raw[lead : nl if nl >= 0 else len(raw)].decode("utf-8", errors="replace")
    first = first.strip("\r\ufeff")
    is_header = allow_header and any(c.isalpha() for c in first)  # words, not ids
    header = [h.strip() for h in first.split("\t")] if is_header else None
    skip = (nl + 1 if nl >= 0 else len(raw)) if is_header else 0
    body = np.frombuffer(raw, dtype=np.uint8)[skip:]
    n_lead = raw.count(b"\n", 0, lead) if is_header else 0
    base = 2 + n_lead if is_header else 1
    is_nl = body == 10
    is_tab = body == 9
    is_space = is_nl | is_tab | (body == 32) | (body == 13)
    is_digit = (body >= 48) & (body <= 57)
    nl_pos = np.flatnonzero(is_nl)
    bad = np.flatnonzero(~(is_space | is_digit))
    if len(bad):
        i = int(bad[0])
        line = int(np.searchsorted(nl_pos, i))
        lo = int(nl_pos[line - 1]) + 1 if line > 0 else 0
        hi = int(nl_pos[line]) if line < len(nl_pos) else len(body)
        text = bytes(body[lo:hi]).decode("utf-8", errors="replace")
        if header is not None and text.strip() == first.strip():
            raise DataError(f"{path} line {base + line}: duplicate header line inside the data")
        tok = next((t for t in text.split() if any(c not in "0123456789" for c in t)), text)
        raise DataError(f"{path} line {base + line}: token {quote(tok)} is not an integer id")
    n_lines = len(nl_pos) + (1 if len(body) and not is_nl[-1] else 0)
    prev_space = np.empty(len(body), dtype=bool)
    if len(body):
        prev_space[0] = True
        prev_space[1:] = is_space[:-1]
    starts = np.flatnonzero(~is_space & prev_space)
    next_space = np.empty(len(body), dtype=bool)
    if len(body):
        next_space[-1] = True
        next_space[:-1] = is_space[1:]
    ends = np.flatnonzero(~is_space & next_space) + 1
    long = np.flatnonzero(ends - starts > 18)
    if len(long):
        line = int(np.searchsorted(nl_pos, starts[long[0]]))
        raise DataError(f"{path} line {base + line}: integer id too long (more than 18 digits)")
    values = np.fromstring(bytes(body).decode("ascii"), dtype=np.int64, sep=" ")
    if len(values) != len(starts):  # cannot happen after the checks above
        raise DataError(f"{path}: could not parse the integer tokens")
    line = np.searchsorted(nl_pos, starts)
    tab_pos = np.flatnonzero(is_tab)
    line_start = np.concatenate([[0], nl_pos + 1])
    tabs_before_tok = np.searchsorted(tab_pos, starts)
    tabs_before_line = np.searchsorted(tab_pos, line_start[line])
    field = tabs_before_tok - tabs_before_line
    tabs = np.bincount(np.searchsorted(nl_pos, tab_pos), minlength=n_lines)[:n_lines]
    # messages name the file as given, not its decompressed / re-encoded temporary copy
    return TokenFile(Path(path), header, values, line, field, n_lines, tabs, base, n_lead)


def _ids_to_str(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques as str) of integer ids."""
    uniq, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), np.array([str(int(v)) for v in uniq], dtype=object)


def _check_fields(tf: TokenFile, n_fields: int, lines: np.ndarray) -> None:
    """Every non-blank line must have ``n_fields`` tab-separated fields."""
    wrong = lines[tf.tabs[lines] != n_fields - 1]
    if len(wrong):
        k = int(wrong[0])
        plural = "s" if n_fields != 1 else ""
        got = int(tf.tabs[k]) + 1
        raise DataError(
            f"{tf.where(k)}: expected {n_fields} tab-separated field{plural}, got {got}"
        )


def _field_counts(tf: TokenFile, field: int) -> np.ndarray:
    return np.bincount(tf.line[tf.field == field], minlength=tf.n_lines)


def _require_one(tf: TokenFile, field: int, name: str, lines: np.ndarray) -> None:
    counts = _field_counts(tf, field)[lines]
    bad = np.flatnonzero(counts != 1)
    if len(bad):
        k = int(lines[bad[0]])
        got = "nothing" if counts[bad[0]] == 0 else f"{counts[bad[0]]} tokens"
        raise DataError(f"{tf.where(k)}: expected one integer {name}, got {got}")


def _nonblank(tf: TokenFile, report: DataReport) -> np.ndarray:
    blank = tf.blank_lines()
    if len(blank) + tf.lead_blank:
        report.add("read", "blank lines skipped", len(blank) + tf.lead_blank)
    keep = np.ones(tf.n_lines, dtype=bool)
    keep[blank] = False
    lines = np.flatnonzero(keep)
    if len(lines) == 0:
        raise DataError(f"{tf.path}: no data lines")
    return lines


# ----------------------------------------------------------------------------- sessions
SESSIONS_HEADER = ["session_id", "last_timestamp", "items"]
SAMPLES_HEADERS = (["prefix", "label"], ["session_id", "timestamp", "prefix", "label"])


def read_sessions_file(path: str | Path, item_index: ItemIndex | None = None) -> Result:
    """An SR-GNN sessions file: one session per line (space-separated item ids, in order),
    optionally with the header ``session_id<TAB>last_timestamp<TAB>items``."""
    tf = scan_tokens(path, allow_header=True)
    report = DataReport()
    lines = _nonblank(tf, report)
    if tf.header is not None:
        if tf.header != SESSIONS_HEADER:
            raise DataError(
                f"{path} line 1: unexpected header {quote(chr(9).join(tf.header))} "
                f"(expected {quote(chr(9).join(SESSIONS_HEADER))} or no header)"
            )
        _check_fields(tf, 3, lines)
        _require_one(tf, 0, "session id", lines)
        _require_one(tf, 1, "timestamp", lines)
        item_field = 2
    else:
        _check_fields(tf, 1, lines)
        item_field = 0
    is_item = tf.field == item_field
    n_items = np.bincount(tf.line[is_item], minlength=tf.n_lines)[lines]
    empty = np.flatnonzero(n_items == 0)
    if len(empty):
        raise DataError(f"{tf.where(int(lines[empty[0]]))}: session without items")
    items, item_ids = _ids_to_str(tf.values[is_item])
    sess_line = tf.line[is_item]
    ev = Events(items=items, item_ids=item_ids, sessions=np.searchsorted(lines, sess_line))
    if tf.header is not None:
        sid = tf.values[tf.field == 0]  # one per non-blank line, in line order
        ev.session_ids = np.array([str(int(v)) for v in sid], dtype=object)
    return build_log(ev, item_index, report=report)


def read_samples_file(
    path: str | Path, item_index: ItemIndex | None = None
) -> tuple[Samples, ItemIndex, DataReport]:
    """The exact ``test_samples.tsv`` queries (header ``prefix<TAB>label`` or
    ``session_id<TAB>timestamp<TAB>prefix<TAB>label``), in file order. Items unknown to
    a frozen ``item_index`` become -1 (counted in the report)."""
    tf = scan_tokens(path, allow_header=True)
    if tf.header not in SAMPLES_HEADERS:
        expected = " or ".join(quote("\t".join(h)) for h in SAMPLES_HEADERS)
        got = "no header" if tf.header is None else quote("\t".join(tf.header))
        raise DataError(f"{path} line 1: expected the header {expected}, got {got}")
    report = DataReport()
    lines = _nonblank(tf, report)
    n_fields = len(tf.header)
    _check_fields(tf, n_fields, lines)
    if n_fields == 4:
        _require_one(tf, 0, "session id", lines)
        _require_one(tf, 1, "timestamp", lines)
    pf, lf = n_fields - 2, n_fields - 1
    _require_one(tf, lf, "label", lines)
    n_prefix = _field_counts(tf, pf)[lines]
    if (n_prefix == 0).any():
        k = int(lines[np.flatnonzero(n_prefix == 0)[0]])
        raise DataError(f"{tf.where(k)}: empty prefix")
    used = (tf.field == pf) | (tf.field == lf)
    codes, ids = _ids_to_str(tf.values[used])
    frozen = item_index is not None
    if item_index is None:
        item_index = ItemIndex(ids)
    dense = item_index.encode(ids)[codes]
    is_label = tf.field[used] == lf
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(n_prefix, out=offsets[1:])
    samples = Samples(SessionLog(offsets=offsets, items=dense[~is_label]), dense[is_label])
    report.add("read", "samples", len(samples))
    n_unk_label = int((samples.labels < 0).sum())
    n_unk_prefix = int((samples.prefixes.items < 0).sum())
    if frozen:
        report.add("encode", "sample labels not in the training index (kept as -1)", n_unk_label)
        report.add("encode", "prefix items not in the training index (kept as -1)", n_unk_prefix)
    return samples, item_index, report


# ----------------------------------------------------------------------------- histories
def read_s3rec(path: str | Path, item_index: ItemIndex | None = None) -> Result:
    """S3-Rec lines ``user i1 i2 ...`` (items in time order): one history per user."""
    tf = scan_tokens(path)
    report = DataReport()
    lines = _nonblank(tf, report)
    counts = tf.tokens_per_line()[lines]
    short = np.flatnonzero(counts < 2)
    if len(short):
        raise DataError(
            f"{tf.where(int(lines[short[0]]))}: expected a user id and at least one item id"
        )
    first = np.zeros(len(tf.values), dtype=bool)
    starts = np.zeros(tf.n_lines + 1, dtype=np.int64)
    np.cumsum(tf.tokens_per_line(), out=starts[1:])
    first[starts[lines]] = True
    users, user_ids = _ids_to_str(tf.values[first])
    items, item_ids = _ids_to_str(tf.values[~first])
    ev = Events(
        items=items, item_ids=item_ids, users=np.repeat(users, counts - 1), user_ids=user_ids
    )
    return build_log(ev, item_index, report=report)


def read_user_item(path: str | Path, item_index: ItemIndex | None = None) -> Result:
    """``user item`` lines (BERT4Rec / SASRec), one interaction per line, in time order."""
    tf = scan_tokens(path)
    report = DataReport()
    lines = _nonblank(tf, report)
    counts = tf.tokens_per_line()[lines]
    bad = np.flatnonzero(counts != 2)
    if len(bad):
        raise DataError(f"{tf.where(int(lines[bad[0]]))}: expected 2 fields, got {counts[bad[0]]}")
    pairs = tf.values.reshape(-1, 2)
    users, user_ids = _ids_to_str(pairs[:, 0])
    items, item_ids = _ids_to_str(pairs[:, 1])
    ev = Events(items=items, item_ids=item_ids, users=users, user_ids=user_ids)
    return build_log(ev, item_index, report=report)


def read_recbole(
    path: str | Path, item_index: ItemIndex | None = None, columns: Columns | None = None
) -> Result:
    """A RecBole atomic ``.inter`` file: TSV with a typed header (``user_id:token``).

    The ``:type`` suffixes are dropped before the usual column detection, so ML-100K
    gives one history per user, sorted by timestamp (ties keep file order)."""
    p = check_text_file(path)
    with p.open(encoding="utf-8-sig", errors="replace") as fh:
        first = next((ln for ln in fh if ln.strip()), "").rstrip("\r\n")
    raw = first.split("\t")
    if not all(":" in h for h in raw):
        raise DataError(
            f"{path} line 1: expected a RecBole header like 'user_id:token', got {quote(first)}"
        )
    names = [h.split(":", 1)[0].strip() for h in raw]
    return read_events(path, columns, fmt="tsv", item_index=item_index, names=names, header=True)


def read_movielens(
    path: str | Path, item_index: ItemIndex | None = None, columns: Columns | None = None
) -> Result:
    """MovieLens ``ratings.csv`` (``userId,movieId,rating,timestamp``): one history per
    user sorted by timestamp (ties keep file order). The delimiter is sniffed (a tab
    too); without a timestamp column, file order is kept."""
    cols = columns or Columns(user="userId", item="movieId")
    return read_events(path, cols, fmt="csv", item_index=item_index)


# ----------------------------------------------------------------------------- raw logs
def read_session_rec(
    path: str | Path, item_index: ItemIndex | None = None, columns: Columns | None = None
) -> Result:
    """session-rec / GRU4Rec TSV with header ``SessionId<TAB>ItemId<TAB>Time``."""
    return read_events(path, columns, fmt="tsv", item_index=item_index)


def read_taobao(
    path: str | Path, item_index: ItemIndex | None = None, session_gap: float = SESSION_GAP
) -> Result:
    """Taobao UserBehavior CSV (no header): sessions split per user at inactivity gaps of
    more than ``session_gap`` seconds; behaviours pv/cart/fav/buy as event types."""
    cols = Columns(user="user", item="item", time="timestamp", event_type="behavior")
    return read_events(
        path,
        cols,
        fmt="csv",
        item_index=item_index,
        delimiter=",",
        names=TAOBAO_COLUMNS,
        header=False,
        session_gap=session_gap,
        event_type_order=TAOBAO_BEHAVIORS,
    )


def read_yoochoose_raw(path: str | Path, item_index: ItemIndex | None = None) -> Result:
    """Raw ``yoochoose-clicks.dat`` (no header: SessionId,ISO-8601 time,ItemId,Category)."""
    cols = Columns(session="SessionId", item="ItemId", time="Time")
    return read_events(
        path,
        cols,
        fmt="csv",
        item_index=item_index,
        delimiter=",",
        names=YOOCHOOSE_COLUMNS,
        header=False,
    )
