"""Hostile input for the readers and config files (issue 14): every case asserts the
exact outcome, in-process through the public entry points (``seqrec.data.loading``,
``seqrec.config``) and through ``seqrec data stats`` / ``seqrec train`` (exit code 2,
exactly one ``error:`` line, no traceback, nothing on stdout)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from seqrec.cli import main
from seqrec.config import load_toml, parse_overrides
from seqrec.data.formats import FORMATS
from seqrec.data.loading import load_test_data, load_training_data, read_log
from seqrec.errors import ConfigError, DataError
from seqrec.models.gru4rec import GRU4Rec

TSV = b"SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t2\n2\tc\t3\n"
Maker = Callable[[Path], Path]


def file(name: str, data: bytes) -> Maker:
    def make(d: Path) -> Path:
        path = d / name
        path.write_bytes(data)
        return path

    return make


def zipped(*members: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def symlink_loop(d: Path) -> Path:
    path = d / "loop.tsv"
    os.symlink(path.name, path)
    return path


def dangling(d: Path) -> Path:
    path = d / "gone.tsv"
    os.symlink("nowhere.tsv", path)
    return path


def fifo(d: Path) -> Path:
    path = d / "pipe.tsv"
    os.mkfifo(path)  # never opened: nobody writes to it, a read would block
    return path


def directory(d: Path) -> Path:
    path = d / "folder"
    path.mkdir()
    (path / "notes.txt").write_text("hello")
    return path


def parquet(d: Path, columns: dict) -> Path:
    import pandas as pd

    path = d / "d.parquet"
    pd.DataFrame(columns).to_parquet(path)
    return path


LONG = b"x" * 1_000_000
# (id, maker, --format, the exact message; {p} is the path)
CASES: list[tuple[str, Maker, str, str]] = [
    (
        "too-few-fields",
        file("d.tsv", TSV + b"3\td\n"),
        "auto",
        "{p} line 5: expected 3 fields, got 2",
    ),
    (
        "too-many-fields",
        file("d.tsv", TSV.replace(b"1\tb\t2", b"1\tb\t2\tx")),
        "auto",
        "{p} line 3: expected 3 fields, got 4",
    ),
    (
        "header-fields-short",
        file("d.tsv", b"SessionId\tItemId\tTime\n1\ta\n"),
        "tsv",
        "{p} line 2: expected 3 fields, got 2",
    ),
    (
        "nan-time",
        file("d.csv", b"SessionId,ItemId,Time\n1,a,nan\n"),
        "auto",
        "{p} line 2: time 'nan' is not a finite number (column 'Time')",
    ),
    (
        "inf-time",
        file("d.csv", b"SessionId,ItemId,Time\n1,a,1\n1,b,inf\n"),
        "auto",
        "{p} line 3: time 'inf' is not a finite number (column 'Time')",
    ),
    (
        "minus-inf-time",
        file("d.csv", b"SessionId,ItemId,Time\n1,a,-inf\n"),
        "auto",
        "{p} line 2: time '-inf' is not a finite number (column 'Time')",
    ),
    (
        "overflowing-time",
        file("d.csv", b"SessionId,ItemId,Time\n1,a,1e400\n"),
        "auto",
        "{p} line 2: time '1e400' is not a finite number (column 'Time')",
    ),
    (
        "time-as-text",
        file("d.csv", b"SessionId,ItemId,Time\n1,a,1\n1,b,yesterday\n"),
        "auto",
        "{p} line 3: time 'yesterday' is not a number or ISO-8601 date (column 'Time')",
    ),
    (
        "bad-iso-time",
        file("d.csv", b"SessionId,ItemId,Time\n1,a,2014-13-45T00:00:00Z\n"),
        "auto",
        "{p} line 2: time '2014-13-45T00:00:00Z' is not a number or ISO-8601 date (column 'Time')",
    ),
    (
        "missing-item",
        file("d.csv", b"SessionId,ItemId\n1,a\n2,  \n"),
        "auto",
        "{p} line 3: missing value in column 'ItemId'",
    ),
    (
        "fractional-float-id",
        lambda d: parquet(d, {"SessionId": [1, 1], "ItemId": [1.0, 2.5]}),
        "auto",
        "{p} row 2: id 2.5 in column 'ItemId' is not an integer or string",
    ),
    (
        "parquet-null-id",
        lambda d: parquet(d, {"SessionId": [1, None], "ItemId": ["a", "b"]}),
        "auto",
        "{p} row 2: missing value in column 'SessionId'",
    ),
    ("empty-file", file("d.tsv", b""), "auto", "{p}: file is empty"),
    (
        "header-only",
        file("d.tsv", b"SessionId\tItemId\tTime\n"),
        "auto",
        "{p}: no data rows (header only)",
    ),
    ("only-blank-lines", file("d.tsv", b"\n\r\n\n"), "auto", "{p}: no data (only blank lines)"),
    ("only-blank-lines-tsv", file("d.tsv", b"\n\n"), "tsv", "{p}: no data (only blank lines)"),
    (
        "spaces-line-in-data",
        file("d.csv", b"SessionId,ItemId\n1,a\n   \n1,b\n"),
        "auto",
        "{p} line 3: only spaces or tabs (expected 2 fields)",
    ),
    (
        "directory",
        directory,
        "auto",
        "{p}: directory without train_sessions.txt / test_sessions.txt (not a sessions folder)",
    ),
    ("directory-as-csv", directory, "csv", "{p}: is a directory, expected a file"),
    ("symlink-loop", symlink_loop, "auto", "{p}: cannot open (Too many levels of symbolic links)"),
    ("dangling-symlink", dangling, "auto", "{p}: broken symbolic link (its target does not exist)"),
    ("fifo", fifo, "auto", "{p}: not a regular file (a FIFO, socket or device), expected a file"),
    ("missing-file", lambda d: d / "nope.tsv", "auto", "{p}: no such file or directory"),
    (
        "binary",
        file("d.tsv", bytes(range(256))),
        "auto",
        "{p}: looks like a binary file (a NUL byte at offset 0), not CSV/TSV or other text",
    ),
    (
        "binary-as-sessions",
        file("train_sessions.txt", b"1 2\n\x00\x01\x02"),
        "auto",
        "{p}: looks like a binary file (a NUL byte at offset 4), not CSV/TSV or other text",
    ),
    (
        "control-bytes",
        file("d.tsv", bytes(range(1, 9)) * 40),
        "tsv",
        "{p}: looks like a binary file (320 of its first 320 bytes are control or non-UTF-8 "
        "bytes), not CSV/TSV or other text",
    ),
    (
        "pdf",
        file("d.csv", b"%PDF-1.7\n1 0 obj\n"),
        "csv",
        "{p}: looks like a binary file (a PDF document), not CSV/TSV or other text",
    ),
    (
        "nul-in-id-late",
        file("d.csv", b"SessionId,ItemId\n" + b"1,a\n" * 20000 + b"1,a\x00b\n"),
        "auto",
        "{p} line 20002: value 'a\\x00b' in column 'ItemId' contains a control character",
    ),
    (
        "escape-in-time",
        file("d.csv", b"SessionId,ItemId,Time\n1,a,\x1b[2J\x1b[31m\n"),
        "auto",
        "{p} line 2: time '\\x1b[2J\\x1b[31m' is not a number or ISO-8601 date (column 'Time')",
    ),
    (
        "truncated-gzip",
        file("d.tsv.gz", gzip.compress(TSV)[:-12]),
        "auto",
        "{p}: cannot decompress this gzip file (Compressed file ended before the end-of-stream "
        "marker was reached)",
    ),
    (
        "truncated-bz2",
        file("d.tsv.bz2", bz2.compress(TSV)[:30]),
        "auto",
        "{p}: cannot decompress this bzip2 file (Compressed file ended before the end-of-stream "
        "marker was reached)",
    ),
    (
        "truncated-xz",
        file("d.tsv.xz", lzma.compress(TSV)[:40]),
        "auto",
        "{p}: cannot decompress this xz file (Compressed file ended before the end-of-stream "
        "marker was reached)",
    ),
    (
        "truncated-zip",
        file("d.zip", zipped(("d.tsv", TSV))[:30]),
        "auto",
        "{p}: cannot decompress this zip file (File is not a zip file)",
    ),
    (
        "zip-with-two-files",
        file("d.zip", zipped(("a.tsv", TSV), ("b.tsv", TSV))),
        "auto",
        "{p}: zip archive with 2 files; seqrec reads an archive of exactly one file "
        "(extract the one you mean)",
    ),
    (
        "empty-zip",
        file("d.zip", zipped()),
        "auto",
        "{p}: zip archive with 0 files; seqrec reads an archive of exactly one file "
        "(extract the one you mean)",
    ),
    (
        "gzip-of-nothing",
        file("d.tsv.gz", gzip.compress(b"")),
        "auto",
        "{p}: file is empty (after gzip decompression)",
    ),
    (
        "zstd",
        file("d.tsv.zst", b"\x28\xb5\x2f\xfd" + b"\x00" * 16),
        "auto",
        "{p}: zstd-compressed file; decompress it first (e.g. unzstd d.tsv.zst): seqrec reads "
        "plain text, gzip, bzip2, xz, single-file zip and Parquet files",
    ),
    (
        "invalid-utf8",
        file("d.csv", b"SessionId,ItemId\n1,a\n2,caf\xe9\n"),
        "auto",
        "{p} line 3: not valid UTF-8 (byte 0xe9 at column 6); seqrec reads UTF-8 text (or "
        "UTF-16 with a byte-order mark): convert the file, e.g. iconv -f latin1 -t utf-8",
    ),
    (
        "utf16-without-bom",
        file("d.csv", "SessionId,ItemId\n1,a\n".encode("utf-16-le")),
        "auto",
        "{p}: looks like a binary file (NUL bytes between the characters: UTF-16 text without a "
        "byte-order mark?), not CSV/TSV or other text",
    ),
    (
        "bad-utf16",
        file("d.csv", b"\xff\xfe" + "SessionId,ItemId\n".encode("utf-16-le") + b"x"),
        "auto",
        "{p}: starts with a UTF-16-LE byte-order mark but is not valid UTF-16-LE at byte 36 "
        "(truncated data)",
    ),
    (
        "very-long-bad-time",
        file("d.csv", b"SessionId,ItemId,Time\n1,a," + LONG + b"\n"),
        "auto",
        "{p} line 2: time '" + "x" * 60 + "'... (1000000 characters) is not a number or ISO-8601 "
        "date (column 'Time')",
    ),
    (
        "duplicate-column",
        file("d.csv", b"SessionId,ItemId,ItemId\n1,a,b\n"),
        "auto",
        "{p} line 1: column 'ItemId' appears twice in the header (fields 2 and 3)",
    ),
    (
        "duplicate-header-in-data",
        file("d.tsv", TSV + b"SessionId\tItemId\tTime\n"),
        "auto",
        "{p} line 5: duplicate header line inside the data",
    ),
    (
        "no-item-column",
        file("d.csv", b"SessionId,Thing\n1,a\n"),
        "csv",
        "{p}: no item column found (looked for ItemId, item_id, itemId, item, movieId, "
        "product_id; columns: SessionId, Thing); name it with --item-col",
    ),
    (
        "no-session-column",
        file("d.csv", b"ItemId,Time\na,1\n"),
        "csv",
        "{p}: no session or user column found (looked for SessionId, session_id, sessionId, "
        "session, UserId, user_id, userId, user, visitorid; columns: ItemId, Time)",
    ),
    (
        "unknown-format",
        file("d.tsv", TSV),
        "xml",
        "unknown format 'xml'; valid formats: auto, " + ", ".join(FORMATS),
    ),
    (
        "unclosed-quote",
        file("d.tsv", b'SessionId\tItemId\n1\ta\n1\t"b\n2\tc\n2\td\n'),
        "auto",
        "{p} line 3: unclosed quote (the field runs on to line 5, the end of the file)",
    ),
    (
        "quote-spanning-lines",
        file("d.tsv", b'SessionId\tItemId\n1\t"b\n2\tc"\n'),
        "auto",
        "{p} line 2: value 'b\\n2\\tc' in column 'ItemId' contains a line break (an unclosed "
        "quote?)",
    ),
    (
        "s3rec-bad-token",
        file("Beauty.txt", b"1 2 3\n4 5 six\n"),
        "s3rec",
        "{p} line 2: token 'six' is not an integer id",
    ),
    (
        "sessions-id-too-long",
        file("train_sessions.txt", b"1 2\n3 12345678901234567890\n"),
        "auto",
        "{p} line 2: integer id too long (more than 18 digits)",
    ),
    (
        "negative-id",
        file("train_sessions.txt", b"1 -2\n"),
        "auto",
        "{p} line 1: token '-2' is not an integer id",
    ),
    (
        "taobao-unknown-behaviour",
        file("UserBehavior.csv", b"1,2,3,pv,4\n1,2,3,click,5\n"),
        "taobao",
        "{p} line 2: event type 'click' is not one of pv, cart, fav, buy",
    ),
    (
        "recbole-untyped-header",
        file("ml.inter", b"user_id\titem_id\n1\t2\n"),
        "recbole",
        "{p} line 1: expected a RecBole header like 'user_id:token', got 'user_id\\titem_id'",
    ),
    (
        "corrupt-parquet",
        file("d.parquet", b"PAR1" + b"\x00" * 40),
        "auto",
        "{p}: not a readable Parquet file (Parquet magic bytes not found in footer. Either the "
        "file is corrupted or this is not a parquet file.)",
    ),
]
# accepted on purpose: (id, maker, --format, events, sessions, items)
ACCEPTED: list[tuple[str, Maker, str, int, int, int]] = [
    ("negative-times", file("d.csv", b"SessionId,ItemId,Time\n1,a,-5\n1,b,-3\n"), "auto", 2, 1, 2),
    (
        "huge-finite-time",
        file("d.csv", b"SessionId,ItemId,Time\n1,a,1e300\n1,b,2\n"),
        "auto",
        2,
        1,
        2,
    ),
    ("utf8-bom", file("d.tsv", b"\xef\xbb\xbf" + TSV), "auto", 3, 2, 3),
    ("utf16-bom", file("d.tsv", TSV.decode().encode("utf-16")), "auto", 3, 2, 3),
    ("crlf-no-final-newline", file("d.tsv", TSV.replace(b"\n", b"\r\n")[:-2]), "auto", 3, 2, 3),
    ("very-long-id", file("d.csv", b"SessionId,ItemId\n1," + LONG + b"\n1,b\n"), "auto", 2, 1, 2),
    (
        "quoted-line-break-elsewhere",
        file("d.csv", b'SessionId,Note,ItemId\n1,"a\nb",x\n'),
        "auto",
        1,
        1,
        1,
    ),
    ("sessions-bom-and-cr", file("train_sessions.txt", b"\xef\xbb\xbf1 2\r3\r"), "auto", 3, 2, 3),
]


@pytest.mark.parametrize(
    ("maker", "fmt", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_reader_rejects_with_the_exact_message(tmp_path, maker, fmt, message):
    path = maker(tmp_path)
    with pytest.raises(DataError) as info:
        read_log(path, fmt)
    assert str(info.value) == message.format(p=path)
    with pytest.raises(DataError) as again:  # the same through the training-data loader
        load_training_data(path, fmt)
    assert str(again.value) == message.format(p=path)


@pytest.mark.parametrize(
    ("maker", "fmt", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_data_stats_prints_one_error_line(tmp_path, capsys, maker, fmt, message):
    path = maker(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["data", "stats", str(path)] + ([] if fmt == "auto" else ["--format", fmt])
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse rejects an unknown --format itself
        rc = exc.code
        assert fmt not in FORMATS
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    lines = err.splitlines()
    assert "Traceback" not in err
    if fmt in FORMATS or fmt == "auto":
        assert lines == [f"error: {message.format(p=path)}"]
    else:
        errors = [ln for ln in lines if "error:" in ln]  # argparse's usage, then one error
        assert len(errors) == 1 and f"invalid choice: {fmt!r}" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


@pytest.mark.parametrize(
    ("maker", "fmt", "n_events", "n_sessions", "n_items"),
    [c[1:] for c in ACCEPTED],
    ids=[c[0] for c in ACCEPTED],
)
def test_hostile_but_valid_input_is_read(
    tmp_path, capsys, maker, fmt, n_events, n_sessions, n_items
):
    path = maker(tmp_path)
    log, index, _ = read_log(path, fmt)
    assert (log.n_events, log.n_sessions, len(index)) == (n_events, n_sessions, n_items)
    assert main(["data", "stats", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"events    {n_events:,}" in out and "Traceback" not in err


def test_test_data_protocols_on_a_hostile_file(tmp_path):
    path = file("d.tsv", TSV + b"3\td\n")(tmp_path)
    index = read_log(file("ok.tsv", TSV)(tmp_path))[1]
    for protocol in ("next-item", "samples", "last-item"):
        with pytest.raises(DataError, match=r"d.tsv line 5: expected 3 fields, got 2"):
            load_test_data(path, "auto", index, protocol)
    with pytest.raises(DataError, match="unknown protocol 'x\\\\x1b'"):
        load_test_data(path, "auto", index, "x\x1b")


# ----------------------------------------------------------------------------- configs
CONFIG_CASES: list[tuple[str, bytes, str]] = [
    ("invalid-toml", b"layers = [100\n", "{p}: invalid TOML: Unclosed array (at end of document)"),
    (
        "escape-in-toml",
        b'loss = "\x1b[31m\n',
        "{p}: invalid TOML: Illegal character '\\x1b' (at line 1, column 9)",
    ),
    (
        "non-utf8",
        b'loss = "bpr"\n# caf\xe9\n',
        "{p} line 2: not valid UTF-8 (byte 0xe9); TOML files are UTF-8",
    ),
    (
        "deep-nesting",
        b"layers = " + b"[" * 5000 + b"]" * 5000 + b"\n",
        "{p}: invalid TOML: arrays or tables nested too deeply",
    ),
    ("binary", bytes(range(256)), "{p} line 2: not valid UTF-8 (byte 0x80); TOML files are UTF-8"),
    (
        "unknown-key",
        b"learning_rat = 0.1\n",
        "unknown config key 'learning_rat' for "
        "gru4rec (did you mean 'learning_rate'?); valid keys: ",
    ),
    ("wrong-type", b'n_epochs = "ten"\n', "config key 'n_epochs': expected an integer, got 'ten'"),
    (
        "bool-for-int",
        b"batch_size = true\n",
        "config key 'batch_size': expected an integer, got True",
    ),
    (
        "table-for-list",
        b"layers = {a = 1}\n",
        "config key 'layers': expected a list, got {{'a': 1}}",
    ),
    ("huge-int-for-float", b"learning_rate = 1" + b"0" * 400 + b"\n", ""),
    ("out-of-range", b"dropout_p_hidden = 1.5\n", "gru4rec: dropout_p_hidden must be in [0, 1)"),
    (
        "bad-literal",
        b'loss = "bpr-min"\n',
        "config key 'loss': 'bpr-min' is not one of "
        "'cross-entropy', 'bpr-max', 'top1-max', 'bpr', 'top1', 'bce', 'gbce', 'lambdarank', "
        "'infonce'",
    ),
]


def _config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        GRU4Rec(load_toml(path))  # flat keys routed to their owners, as the CLI does
    return str(info.value)


@pytest.mark.parametrize(
    ("data", "message"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES]
)
def test_config_file_errors(tmp_path, capsys, data, message):
    path = tmp_path / "c.toml"
    path.write_bytes(data)
    msg = _config_error(path)
    if message.endswith("valid keys: "):
        assert msg.startswith(message.format(p=path))
    elif message:
        assert msg == message.format(p=path)
    else:
        assert msg.startswith("config key 'learning_rate': 1000") and msg.endswith("is too large")
    # the CLI: the config is checked before any data is read or anything is written
    out_dir = tmp_path / "model"
    rc = main(
        [
            "train",
            "--train",
            str(tmp_path / "missing.tsv"),
            "--model",
            "gru4rec",
            "--config",
            str(path),
            "--out",
            str(out_dir),
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.splitlines() == [f"error: {msg}"]
    assert not out_dir.exists()


def test_config_file_that_is_a_directory_or_missing(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_toml(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, expected a TOML config file"
    with pytest.raises(ConfigError) as info:
        load_toml(tmp_path / "no.toml")
    assert str(info.value) == f"{tmp_path / 'no.toml'}: config file not found"


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["novalue"], "--set expects key=value, got 'novalue'"),
        (["=1"], "--set expects key=value, got '=1'"),
        (["\x1b[31m"], "--set expects key=value, got '\\x1b[31m'"),
    ],
)
def test_set_override_errors(pairs, message):
    with pytest.raises(ConfigError) as info:
        parse_overrides(pairs)
    assert str(info.value) == message


# ----------------------------------------------------------------------------- DataFrames
FRAME_CASES = [
    (
        "bytes-ids",
        {"SessionId": [1, 1], "ItemId": [b"a", b"\xff"]},
        "DataFrame: column 'ItemId' has type binary; ids must be integers or (UTF-8) strings",
    ),
    (
        "list-ids",
        {"SessionId": [1, 1], "ItemId": [[1], [2]]},
        "DataFrame: column 'ItemId' has type list<item: int64>; ids must be integers or (UTF-8) "
        "strings",
    ),
    (
        "bool-ids",
        {"SessionId": [1, 1], "ItemId": [True, False]},
        "DataFrame: column 'ItemId' holds true/false values, not ids",
    ),
    (
        "inf-float-id",
        {"SessionId": [1.0, float("inf")], "ItemId": ["a", "b"]},
        "DataFrame row 2: id inf in column 'SessionId' is not an integer or string",
    ),
    (
        "huge-float-id",
        {"SessionId": [1.0, 1e300], "ItemId": ["a", "b"]},
        "DataFrame row 2: id 1e+300 in column 'SessionId' is not an integer or string",
    ),
    (
        "huge-int",
        {"SessionId": [1, 2**70], "ItemId": ["a", "b"]},
        "DataFrame: cannot convert columns (Python int too large to convert to C long)",
    ),
    (
        "complex-ids",
        {"SessionId": [1, 1], "ItemId": [1 + 2j, 3j]},
        "DataFrame: cannot convert columns (('Unsupported numpy type 15', 'Conversion failed for "
        "column ItemId with type complex128'))",
    ),
    (
        "duration-times",
        {"SessionId": [1, 1], "ItemId": ["a", "b"], "Time": [1, 2]},
        "DataFrame: time column 'Time' has type duration[s]",
    ),
    ("no-rows", {"SessionId": [], "ItemId": []}, "DataFrame: no data rows"),
]


@pytest.mark.parametrize(
    ("columns", "message"), [c[1:] for c in FRAME_CASES], ids=[c[0] for c in FRAME_CASES]
)
def test_dataframe_errors(columns, message):
    import pandas as pd

    frame = pd.DataFrame(columns)
    if "Time" in columns:
        frame["Time"] = pd.to_timedelta(frame["Time"], unit="s").astype("timedelta64[s]")
    with pytest.raises(DataError) as info:
        read_log(frame)
    assert str(info.value) == message


def test_dataframe_with_a_column_read_twice():
    import pandas as pd

    frame = pd.DataFrame([[1, "a", "b"]], columns=["SessionId", "ItemId", "ItemId"])
    with pytest.raises(DataError) as info:
        read_log(frame)
    assert str(info.value) == (
        "DataFrame: column 'ItemId' appears twice among the columns (fields 2 and 3)"
    )
    numbered = pd.DataFrame([[1, "a"], [1, "b"]])  # column labels 0 and 1, not strings
    from seqrec.data.events import Columns

    log, index, _ = read_log(numbered, columns=Columns(session="0", item="1"))
    assert [index.decode(s) for s in log] == [["a", "b"]]
