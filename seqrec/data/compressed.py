"""Compressed input files: gzip, bzip2, xz and single-file zip archives are decompressed
once per process into a temporary file, which every reader then reads like a plain file.

Compression is recognised by the file's first bytes, not its name. The temporary copy
keeps the file's name without the compression suffix (``events.csv.gz`` ->
``events.csv``, so suffix-based defaults still apply), lives in a private temporary
directory removed when the process exits, and is reused while the source file is
unchanged (same size and modification time). Error messages always name the file as the
user gave it. zstd is recognised but not read (Python 3.11's standard library has no
zstd): a clear error says how to decompress it.
"""

from __future__ import annotations

import atexit
import bz2
import gzip
import logging
import lzma
import os
import shutil
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

from seqrec.errors import DataError
from seqrec.quoting import escape, quote

__all__ = ["compression_of", "plain_file"]

log = logging.getLogger("seqrec.data")

# (name, magic bytes, opener of the decompressed stream; None: zip (member-wise), zstd (none))
_KINDS: tuple[tuple[str, bytes, Callable[..., IO[bytes]] | None], ...] = (
    ("gzip", b"\x1f\x8b", gzip.open),
    ("bzip2", b"BZh", bz2.open),
    ("xz", b"\xfd7zXZ\x00", lzma.open),
    ("zip", b"PK\x03\x04", None),
    ("zip", b"PK\x05\x06", None),  # an empty archive
    ("zstd", b"\x28\xb5\x2f\xfd", None),
)
_ERRORS = (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile, zlib.error, ValueError)

_lock = threading.Lock()
_cache: dict[tuple[str, str, int, int], Path] = {}
_tmpdir: str | None = None


def compression_of(p: Path) -> str | None:
    """ "gzip", "bzip2", "xz", "zip", "zstd" from the first bytes of ``p``, or None."""
    with p.open("rb") as fh:
        magic = fh.read(6)
    for kind, prefix, _ in _KINDS:
        # bzip2's magic is "BZh" + a block-size digit: a text file may start with "BZh"
        if magic.startswith(prefix) and (kind != "bzip2" or magic[3:4].isdigit()):
            return kind
    return None


def _plain_name(p: Path) -> str:
    """The name without a compression suffix (whichever: the name may not match the
    content), so that nothing downstream takes the copy for a compressed file."""
    name = p.name
    for suffix in (".gz", ".gzip", ".bz2", ".xz", ".zip", ".zst", ".zstd", ".lz4"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _directory() -> str:
    global _tmpdir
    if _tmpdir is None:
        _tmpdir = tempfile.mkdtemp(prefix="seqrec-input-")
        atexit.register(shutil.rmtree, _tmpdir, True)
    return _tmpdir


def plain_file(p: Path, shown: str | Path) -> Path:
    """``p`` itself if it is not compressed, else its decompressed temporary copy.

    ``shown`` is how the file is named in error messages (the path the user gave).
    """
    kind = compression_of(p)
    if kind is None:
        return p
    if kind == "zstd":
        raise DataError(
            f"{shown}: zstd-compressed file; decompress it first (e.g. unzstd {p.name}): "
            "seqrec reads plain text, gzip, bzip2, xz, single-file zip and Parquet files"
        )
    return converted_copy(p, kind, lambda folder: _decompress(p, kind, shown, folder))


def converted_copy(p: Path, kind: str, convert: Callable[[Path], Path]) -> Path:
    """The temporary copy ``convert(folder)`` makes of ``p`` (decompressed, re-encoded),
    made once per process while ``p`` is unchanged. ``convert`` writes one file into the
    fresh private ``folder`` and returns it (the folder is removed if it raises)."""
    st = p.stat()
    key = (str(p.resolve()), kind, st.st_size, st.st_mtime_ns)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached.exists():
            return cached
        folder = Path(tempfile.mkdtemp(dir=_directory()))  # one folder per input: no clashes
        try:
            out = convert(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        os.chmod(out, 0o600)
        _cache[key] = out
        return out


def _decompress(p: Path, kind: str, shown: str | Path, folder: Path) -> Path:
    try:
        if kind == "zip":
            with zipfile.ZipFile(p) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise DataError(
                        f"{shown}: zip archive with {len(members)} files; seqrec reads an "
                        "archive of exactly one file (extract the one you mean)"
                    )
                name = _plain_name(Path(members[0].filename))
                if name in ("", ".", ".."):
                    name = "member"  # a hostile member name never leaves the folder
                shown_name = quote(members[0].filename)
                log.info("%s: reading %s from the zip archive (temporary copy)", shown, shown_name)
                out = folder / name
                with zf.open(members[0]) as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        else:
            opener = next(o for k, _, o in _KINDS if k == kind)
            assert opener is not None
            out = folder / _plain_name(p)
            log.info("%s: decompressing (%s) into a temporary copy", shown, kind)
            with opener(p) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except _ERRORS as exc:
        text = str(exc).strip()
        msg = escape(text.splitlines()[0] if text else type(exc).__name__, 120)
        raise DataError(f"{shown}: cannot decompress this {kind} file ({msg})") from None
    if out.stat().st_size == 0:
        raise DataError(f"{shown}: file is empty (after {kind} decompression)")
    return out
