"""Where the rows of a delimited text file start and end, for error messages.

pyarrow parses the file (fast, vectorised) but reports rows, not lines; a quoted field
may hold line breaks, so row N is not line N + 1. :func:`scan_rows` splits a file into
rows exactly as pyarrow's CSV parser does (RFC 4180 quoting: a field that *starts*
with a double quote runs to the closing quote, across line ends, ``""`` inside it is
a quote; a quote elsewhere is an ordinary character; a line feed, a carriage return
or both end a row outside quotes; empty rows are skipped) and gives the lines each row
starts and ends on. It only runs when a message needs a line number: lines without a
quote or a stray carriage return take a fast path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import NamedTuple

__all__ = ["Row", "bad_row", "row_start_line", "scan_rows"]


class Row(NamedTuple):
    start: int  # 1-based line the row starts on
    end: int  # 1-based line it ends on (> start when a quoted field holds line breaks)
    n_fields: int
    open_quote: bool  # the file ended inside a quoted field


@cache
def _unquoted(delimiter: bytes) -> re.Pattern[bytes]:
    return re.compile(b"[^" + re.escape(delimiter) + b"\r\n]*")


def scan_rows(path: Path, delimiter: str) -> Iterator[Row]:
    """The non-empty rows of ``path`` in order (see the module doc)."""
    d = delimiter.encode("utf-8")
    unquoted = _unquoted(d)
    line = 0
    start = 0  # line the pending row started on (0: none pending)
    n = 1  # fields of the pending row so far
    in_quote = False
    field_start = True
    with path.open("rb") as fh:
        for raw in fh:
            line += 1
            if not in_quote and b'"' not in raw:
                body = raw[:-1] if raw.endswith(b"\n") else raw
                body = body[:-1] if body.endswith(b"\r") else body
                if b"\r" not in body:  # one row (or an empty line)
                    if body:
                        yield Row(line, line, body.count(d) + 1, False)
                    continue
            i, size = 0, len(raw)
            while i < size:
                if in_quote:
                    j = raw.find(b'"', i)
                    if j < 0:
                        break  # the quoted field runs on to the next line
                    if raw[j + 1 : j + 2] == b'"':
                        i = j + 2  # an escaped quote
                    else:
                        in_quote, field_start, i = False, False, j + 1
                    continue
                c = raw[i : i + 1]
                if start == 0:
                    if c in (b"\r", b"\n"):
                        i += 1  # an empty row
                        continue
                    start, n, field_start = line, 1, True
                if field_start and c == b'"':
                    in_quote, field_start, i = True, False, i + 1
                    continue
                end = unquoted.match(raw, i).end()  # type: ignore[union-attr]
                if end > i:
                    field_start, i = False, end
                    continue
                if c == d:
                    n, field_start, i = n + 1, True, i + 1
                    continue
                yield Row(start, line, n, False)  # a line feed or carriage return
                start, i = 0, i + 1
    if start:
        yield Row(start, line, n, in_quote)


def row_start_line(path: Path, delimiter: str, row: int) -> int:
    """1-based line on which the 0-based non-empty row ``row`` starts."""
    for k, r in enumerate(scan_rows(path, delimiter)):
        if k == row:
            return r.start
    return row + 1  # not reached for rows that exist


def bad_row(path: Path, delimiter: str, n_fields: int) -> str | None:
    """``"line N: ..."`` for the first row without ``n_fields`` fields or with an
    unclosed quote, or None if every row is well-formed."""
    for r in scan_rows(path, delimiter):
        if r.open_quote:
            return (
                f"line {r.start}: unclosed quote (the field runs on to line {r.end}, "
                "the end of the file)"
            )
        if r.n_fields != n_fields:
            if r.end > r.start:
                return (
                    f"line {r.start}: unclosed quote (the field runs on to line {r.end}, "
                    f"making a row of {r.n_fields} fields, expected {n_fields})"
                )
            return f"line {r.start}: expected {n_fields} fields, got {r.n_fields}"
    return None
