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

__all__ = ["Row", "bad_row", "data_row", "row_start_line", "scan_rows"]


class Row(NamedTuple):
    start: int  # 1-based line the row starts on
    end: int  # 1-based line it ends on (> start when a quoted field holds line breaks)
    n_fields: int
    open_quote: bool  # the file ended inside a quoted field
    blank: bool = False  # only spaces and tabs (skipped before a header line)


@cache
def _unquoted(delimiter: str) -> re.Pattern[str]:
    return re.compile("[^" + re.escape(delimiter) + "\r\n]*")


def scan_rows(path: Path, delimiter: str) -> Iterator[Row]:
    """The non-empty rows of ``path`` in order (see the module doc). Lines end at a line
    feed, a carriage return or both (as in pyarrow and Python's universal newlines)."""
    unquoted = _unquoted(delimiter)
    line = 0
    start = 0  # line the pending row started on (0: none pending)
    n = 1  # fields of the pending row so far
    in_quote = False
    field_start = True
    blank = True  # the pending row holds only spaces and tabs so far
    # latin-1 maps every byte to one character: quotes and delimiters (ASCII) are found
    # exactly where they are in the bytes, whatever the encoding of the rest
    with path.open(encoding="latin-1", newline="") as fh:
        for text in fh:
            line += 1
            if not in_quote and '"' not in text:  # a whole row (or an empty line)
                body = text.rstrip("\r\n")
                if body:
                    blank = not body.strip(" \t")
                    yield Row(line, line, body.count(delimiter) + 1, False, blank)
                continue
            i, size = 0, len(text)
            while i < size:
                if in_quote:
                    j = text.find('"', i)
                    if j < 0:
                        break  # the quoted field runs on to the next line
                    if text[j + 1 : j + 2] == '"':
                        i = j + 2  # an escaped quote
                    else:
                        in_quote, field_start, i = False, False, j + 1
                    continue
                c = text[i]
                if start == 0:
                    if c in "\r\n":
                        break  # an empty line
                    start, n, field_start, blank = line, 1, True, True
                if field_start and c == '"':
                    in_quote, field_start, blank, i = True, False, False, i + 1
                    continue
                end = unquoted.match(text, i).end()  # type: ignore[union-attr]
                if end > i:
                    blank = blank and not text[i:end].strip(" \t")
                    field_start, i = False, end
                    continue
                if c == delimiter:
                    n, field_start, i = n + 1, True, i + 1
                    continue
                yield Row(start, line, n, False, blank)  # the end of the line
                start = 0
                break
    if start:
        yield Row(start, line, n, in_quote, blank and not in_quote)


def data_row(path: Path, delimiter: str, row: int, header: bool = True) -> Row | None:
    """0-based data row ``row``: the header (if any) is the first row that is not
    blank, and blank rows before it do not count. None if there is no such row."""
    k = -1 if header else 0
    for r in scan_rows(path, delimiter):
        if k == -1:
            if not r.blank:
                k = 0
            continue
        if k == row:
            return r
        k += 1
    return None


def row_start_line(path: Path, delimiter: str, row: int, header: bool = True) -> int:
    """1-based line on which 0-based data row ``row`` starts (see :func:`data_row`)."""
    r = data_row(path, delimiter, row, header)
    return row + 1 + int(header) if r is None else r.start  # None: not for rows that exist


def bad_row(path: Path, delimiter: str, n_fields: int, header: bool = True) -> str | None:
    """``"line N: ..."`` for the first row without ``n_fields`` fields or with an
    unclosed quote, or None if every row is well-formed. With ``header``, blank rows
    before the header are skipped (as the reader does)."""
    leading = header
    for r in scan_rows(path, delimiter):
        if leading and r.blank:
            continue
        leading = False
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
            if r.blank and r.n_fields == 1:
                return f"line {r.start}: only spaces or tabs (expected {n_fields} fields)"
            return f"line {r.start}: expected {n_fields} fields, got {r.n_fields}"
    return None
