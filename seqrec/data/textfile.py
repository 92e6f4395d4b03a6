"""Text input files: encodings and binary data, recognised before any parser runs.

* :func:`text_file` - the file to parse: UTF-8 files as they are; UTF-16 / UTF-32 files
  with a byte-order mark re-encoded once into a temporary UTF-8 copy (the machinery of
  :mod:`seqrec.data.compressed`); a binary file (NUL bytes, mostly control or invalid
  bytes, or the magic number of a known binary format) is a one-line DataError.
* :func:`first_invalid_utf8` - where the first byte that is not UTF-8 is (line, column,
  byte), for the message when a parser meets one later in the file.

Only the first :data:`HEAD` bytes are sniffed, so a huge file costs nothing; content
further on is checked by the readers themselves (ids with control characters, tokens
that are not integers), with quoted and escaped messages (:mod:`seqrec.quoting`).
"""

from __future__ import annotations

from pathlib import Path

from seqrec.data.compressed import converted_copy
from seqrec.errors import DataError

__all__ = ["HEAD", "binary_reason", "first_invalid_utf8", "text_file"]

HEAD = 1 << 16
BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)
MAGIC = (
    (b"PAR1", "a Parquet file: read it with --format parquet"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an executable"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow IPC file"),
    (b"\x93NUMPY", "a NumPy array file"),
)
# C0 control bytes that never occur in text (tab, line feed, vertical tab, form feed,
# carriage return and escape are left to the readers)
_CONTROL = bytes([*range(0, 9), *range(14, 27), *range(28, 32), 127])


def binary_reason(head: bytes) -> str | None:
    """Why the first bytes of a file are not text (None: they may be)."""
    for magic, what in MAGIC:
        if head.startswith(magic):
            return what
    nul = head.find(b"\x00")
    if nul >= 0:
        even, odd = head[0::2], head[1::2]
        if len(head) >= 4 and max(even.count(0), odd.count(0)) > 0.8 * len(odd):
            return "NUL bytes between the characters: UTF-16 text without a byte-order mark?"
        return f"a NUL byte at offset {nul}"
    bad = len(head) - len(head.translate(None, _CONTROL))
    bad += head.decode("utf-8", errors="replace").count("\ufffd")
    if bad >= 8 and bad > 0.1 * len(head):
        return f"{bad} of its first {len(head)} bytes are control or non-UTF-8 bytes"
    return None


def _reencode(p: Path, encoding: str, shown: str | Path, folder: Path) -> Path:
    out = folder / p.name
    try:
        text = p.read_bytes().decode(encoding)  # the codec drops the byte-order mark
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{shown}: starts with a {encoding.upper()} byte-order mark but is not valid "
            f"{encoding.upper()} at byte {exc.start} ({exc.reason})"
        ) from None
    out.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    return out


def text_file(p: Path, shown: str | Path) -> Path:
    """``p`` if it may be UTF-8 text, its UTF-8 copy if it is UTF-16/32 with a byte-order
    mark; DataError (naming ``shown``) if it looks binary."""
    with p.open("rb") as fh:
        head = fh.read(HEAD)
    encoding = next((enc for bom, enc in BOMS if head.startswith(bom)), None)
    if encoding is not None:
        return converted_copy(p, encoding, lambda f: _reencode(p, encoding, shown, f))
    why = binary_reason(head)
    if why is not None:
        raise DataError(f"{shown}: looks like a binary file ({why}), not CSV/TSV or other text")
    return p


def _breaks(data: bytes, end: int) -> int:
    """Line ends in ``data[:end]``: a line feed, a carriage return, or both together."""
    return data.count(b"\n", 0, end) + data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end)


def first_invalid_utf8(p: Path, chunk: int = 1 << 20) -> tuple[int, int, int] | None:
    """(1-based line, 1-based byte column, byte value) of the first byte of ``p`` that is
    not part of valid UTF-8, or None if the whole file is UTF-8. Lines end at a line
    feed, a carriage return or both (as for the CSV parser)."""
    line = 1
    line_start = 0  # file offset of the current line
    offset = 0  # file offset of data[0]
    carry = b""
    after_cr = False  # the data before data[0] ended with a carriage return
    with p.open("rb") as fh:
        while True:
            block = fh.read(chunk)
            final = not block
            data = carry + block
            try:
                data.decode("utf-8")
                good, carry = len(data), b""
            except UnicodeDecodeError as exc:
                if exc.reason == "unexpected end of data" and not final:
                    good, carry = exc.start, data[exc.start :]  # a character cut by the chunk
                else:
                    good, carry = exc.start, b""
            if after_cr and data[:1] == b"\n" and good:
                line -= 1  # a CR LF pair split by the chunk boundary: one line end
            line += _breaks(data, good)
            last = max(data.rfind(b"\n", 0, good), data.rfind(b"\r", 0, good))
            if last >= 0:
                line_start = offset + last + 1
            if good < len(data) and not carry:
                return line, offset + good - line_start + 1, data[good]
            if good:
                after_cr = data[good - 1 : good] == b"\r"
            offset += good
            if final:
                return None
