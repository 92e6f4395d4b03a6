"""Text input that is not what it claims: binary data, other encodings, stray quotes,
control characters; messages that quote file content never carry raw control bytes
(issue 14, defects 18 and 19)."""

import gzip
import os
import subprocess
import sys

import pytest

from seqrec.data.csvrows import bad_row, scan_rows
from seqrec.data.events import read_events
from seqrec.data.loading import detect_format, read_log
from seqrec.data.textfile import binary_reason, first_invalid_utf8
from seqrec.errors import DataError
from seqrec.quoting import escape, quote

HEADER = b"SessionId\tItemId\tTime\n"


def error_of(path, fmt="auto") -> str:
    with pytest.raises(DataError) as info:
        read_log(path, fmt)
    msg = str(info.value)
    assert msg.isprintable(), f"raw control characters in {msg!r}"
    return msg


# ----------------------------------------------------------------------------- quoting
def test_quote_and_escape_keep_printable_text_and_escape_the_rest():
    assert quote("café") == "'café'"
    assert quote("a\x1b[31mb") == "'a\\x1b[31mb'"
    assert quote("\x00\t\n\r\x7f\u202e\U000e0001") == "'\\x00\\t\\n\\r\\x7f\\u202e\\U000e0001'"
    assert quote("it's a \\") == "'it\\'s a \\\\'"
    assert quote("x" * 100, limit=10) == "'xxxxxxxxxx'... (100 characters)"
    assert escape("a\x00b\u2028") == "a\\x00b\\u2028"
    assert escape("y" * 300, limit=5) == "yyyyy..."
    assert quote(7) == "'7'"


# ----------------------------------------------------------------------------- defect 18
def test_a_binary_file_given_as_tsv_is_recognised_early(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_bytes(bytes(range(256)) * 4)
    for fmt in ("auto", "tsv", "csv", "sessions", "s3rec", "recbole", "taobao"):
        msg = error_of(path, fmt)
        assert msg.startswith(f"{path}: looks like a binary file"), (fmt, msg)
        assert "not CSV/TSV" in msg


def test_binary_reasons():
    assert "NUL" in binary_reason(b"SessionId\tItemId\n1\ta\x00b\n")
    assert "UTF-16" in binary_reason("SessionId,ItemId\n".encode("utf-16-le"))
    assert "Parquet" in binary_reason(b"PAR1\x15\x04")
    assert "control" in binary_reason(bytes(range(1, 9)) * 20)
    assert binary_reason("SessionId,ItemId\n1,café\n".encode()) is None
    assert binary_reason(b"SessionId,ItemId\n1,caf\xe9\n") is None  # latin-1 text: not binary


def test_escape_sequences_in_a_file_are_escaped_in_the_message(write):
    path = write("e.csv", "SessionId,ItemId,Time\n1,a,\x1b[31mRED\x1b]0;title\x07\n")
    msg = error_of(path)
    assert "\x1b" not in msg and "\\x1b[31mRED" in msg and msg.startswith(f"{path} line 2:")


def test_header_content_in_messages_is_escaped_and_cut(tmp_path):
    path = tmp_path / "h.csv"
    path.write_bytes(b"\x1b[2J" + b"x" * 500 + b",other\n1,2\n")
    msg = error_of(path, "csv")
    assert "no item column found" in msg and "\\x1b[2J" in msg and len(msg) < 600


def test_a_parquet_file_with_a_text_name_is_detected_by_its_content(tmp_path):
    import pandas as pd

    path = tmp_path / "events.csv"
    pd.DataFrame({"SessionId": [1, 1], "ItemId": ["a", "b"]}).to_parquet(path)
    assert detect_format(path) == "parquet"
    assert read_log(path)[0].n_events == 2
    assert "a Parquet file: read it with --format parquet" in error_of(path, "csv")


def test_utf16_and_utf32_with_a_bom_are_read_like_utf8(tmp_path):
    text = "SessionId\tItemId\tTime\n1\tcafé\t1\n1\tb\t2\n"
    ref = None
    for enc in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"):
        path = tmp_path / f"{enc}.tsv"
        data = text.encode(enc)
        if enc == "utf-16-le":
            data = b"\xff\xfe" + data  # the BOM, written by hand for the -le codec
        path.write_bytes(data)
        log, index, _ = read_log(path)
        got = [index.decode(s) for s in log]
        assert got == [["café", "b"]], enc
        ref = ref or got
    gz = tmp_path / "u16.tsv.gz"
    gz.write_bytes(gzip.compress(text.encode("utf-16")))
    assert read_log(gz)[0].n_events == 2


def test_invalid_utf8_names_its_line_and_byte(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"SessionId,ItemId,Time\n1,a,1\n1,caf\xe9,2\n")
    assert error_of(path) == (
        f"{path} line 3: not valid UTF-8 (byte 0xe9 at column 6); seqrec reads UTF-8 text "
        "(or UTF-16 with a byte-order mark): convert the file, e.g. iconv -f latin1 -t utf-8"
    )


def test_first_invalid_utf8_across_chunk_boundaries(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes("aé\n".encode() * 5 + b"b\n\xff")
    for chunk in (1, 2, 3, 7, 1 << 20):
        assert first_invalid_utf8(path, chunk) == (7, 1, 0xFF)
    path.write_bytes("é€😀\n".encode() * 3)
    assert all(first_invalid_utf8(path, c) is None for c in (1, 2, 5))
    path.write_bytes(b"ab\xe2\x82")  # a character cut by the end of the file
    assert first_invalid_utf8(path, 1) == (1, 3, 0xE2)


def test_ids_with_nul_or_control_characters_are_errors(tmp_path):
    path = tmp_path / "n.csv"
    path.write_bytes(b"SessionId,ItemId\n" + b"1,a\n" * 40000 + b"1,x\x00y\n")  # past the sniff
    assert error_of(path) == (
        f"{path} line 40002: value 'x\\x00y' in column 'ItemId' contains a control character"
    )


def test_cli_prints_one_clean_error_line_for_a_binary_file(tmp_path):
    path = tmp_path / "evil.tsv"
    path.write_bytes(b"Session\x1b[31mId\tItem\x00Id\n\x1b]0;pwned\x07\n" + bytes(range(256)))
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    res = subprocess.run(
        [sys.executable, "-m", "seqrec.cli", "data", "stats", str(path)],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 2 and res.stdout == b""
    lines = res.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: looks like a binary file")
    assert all(0x20 <= b < 0x7F for b in res.stderr[:-1])


# ----------------------------------------------------------------------------- defect 19
def test_a_stray_quote_is_reported_on_its_own_line(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_bytes(HEADER + b'1\ta\t1\n1\t"b\t2\n2\tc\t3\n2\td\t4\n')
    assert error_of(path) == (
        f"{path} line 3: unclosed quote (the field runs on to line 5, the end of the file)"
    )


def test_a_stray_quote_closed_later_is_reported_where_it_opens(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_bytes(HEADER + b'1\ta\t1\n1\t"b\t2\n2\tc\t3\n2\td"\n3\te\t5\n')
    assert error_of(path) == (
        f"{path} line 3: unclosed quote (the field runs on to line 5, making a row of 2 "
        "fields, expected 3)"
    )
    # the field count happens to fit: the id holding line breaks is the error
    path.write_bytes(HEADER + b'1\ta\t1\n1\t"b\n2\tc\n2\td"\t4\n3\te\t5\n')
    assert error_of(path) == (
        f"{path} line 3: value 'b\\n2\\tc\\n2\\td' in column 'ItemId' contains a line break "
        "(an unclosed quote?)"
    )


def test_line_numbers_after_quoted_line_breaks_name_the_row_start(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b'SessionId,Title,ItemId,Time\n1,"two\nlines",a,1\n\n1,"x",b,zz\n')
    assert error_of(path) == (
        f"{path} line 5: time 'zz' is not a number or ISO-8601 date (column 'Time')"
    )
    ok = tmp_path / "ok.csv"
    ok.write_bytes(b'SessionId,Title,ItemId\r\n1,"a ""quoted""\r\ntitle",a\r\n1,t,b\r\n')
    log, index, _ = read_events(ok)
    assert [index.decode(s) for s in log] == [["a", "b"]]


@pytest.mark.parametrize(
    ("data", "rows"),
    [
        (b"a,b\n1,2\n", [(1, 1, 2, False), (2, 2, 2, False)]),
        (b'a,b\n"x\ny",2\n\n3,4', [(1, 1, 2, False), (2, 3, 2, False), (5, 5, 2, False)]),
        (b"a,b\r\n\r\n1,2\r\n", [(1, 1, 2, False), (3, 3, 2, False)]),
        (b"a,b\r1,2\r", [(1, 1, 2, False), (2, 2, 2, False)]),  # a bare CR ends a line
        (b'a,"b""\n",c\n', [(1, 2, 3, False)]),
        (b'a,x"y,c\n', [(1, 1, 3, False)]),  # a quote inside a field is a character
        (b'a,"b,c\nd\n', [(1, 2, 2, True)]),
        (b'"a"b,c\n', [(1, 1, 2, False)]),
    ],
)
def test_scan_rows_splits_like_pyarrow(tmp_path, data, rows):
    path = tmp_path / "r.csv"
    path.write_bytes(data)
    assert [tuple(r)[:4] for r in scan_rows(path, ",")] == rows


def test_bad_row_messages(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"a,b\n1,2\n1,2,3\n")
    assert bad_row(path, ",", 2) == "line 3: expected 2 fields, got 3"
    path.write_bytes(b"a,b\n1,2\n")
    assert bad_row(path, ",", 2) is None


# ----------------------------------------------------------------------------- files
def test_duplicate_column_in_the_header(write):
    path = write("d.csv", "SessionId,ItemId,ItemId\n1,a,b\n")
    assert error_of(path) == (
        f"{path} line 1: column 'ItemId' appears twice in the header (fields 2 and 3)"
    )
    # a duplicated column that is not read is harmless
    log, _, _ = read_log(write("ok.csv", "SessionId,ItemId,x,x\n1,a,1,2\n"))
    assert log.n_events == 1


def test_special_files(tmp_path):
    loop = tmp_path / "loop.csv"
    os.symlink(loop.name, loop)
    assert error_of(loop) == f"{loop}: cannot open (Too many levels of symbolic links)"
    dangling = tmp_path / "dangling.csv"
    os.symlink("nowhere.csv", dangling)
    assert error_of(dangling) == f"{dangling}: broken symbolic link (its target does not exist)"
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)  # never opened: reading a FIFO nobody writes to would block
    assert error_of(fifo) == (
        f"{fifo}: not a regular file (a FIFO, socket or device), expected a file"
    )


def test_token_files_with_a_utf8_bom(tmp_path):
    path = tmp_path / "my_sessions.txt"
    path.write_bytes(b"\xef\xbb\xbf1 2\r\n3 4\r\n")
    log, index, _ = read_log(path)
    assert [index.decode(s) for s in log] == [["1", "2"], ["3", "4"]]


def test_carriage_return_line_ends(tmp_path):
    path = tmp_path / "my_sessions.txt"
    path.write_bytes(b"1 2\r3 4\r\r5\r")
    log, index, report = read_log(path)
    assert [index.decode(s) for s in log] == [["1", "2"], ["3", "4"], ["5"]]
    assert report.get("read", "blank lines skipped") == 1
    csv_path = tmp_path / "old_mac.csv"
    csv_path.write_bytes(b"\rSessionId,ItemId,Time\r1,a,1\r1,b,x\r")
    assert error_of(csv_path) == (
        f"{csv_path} line 4: time 'x' is not a number or ISO-8601 date (column 'Time')"
    )


def test_first_invalid_utf8_counts_every_kind_of_line_end(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"a\r\nb\rc\nd\r\n\xe9")
    for chunk in (1, 2, 3, 4, 1 << 20):
        assert first_invalid_utf8(path, chunk) == (5, 1, 0xE9)


def test_format_detection_found_by_fuzzing(write):
    # a TSV ratings file is MovieLens too (the delimiter was forced to a comma)
    log, index, _ = read_log(write("r.tsv", "userId\tmovieId\trating\n1\t10\t4\n1\t11\t5\n"))
    assert [index.decode(s) for s in log] == [["10", "11"]]
    # a header that happens to hold "pv" in the 4th of 5 fields is not a Taobao row
    assert detect_format(write("h.csv", "a,b,c,pv,ItemId\n1,2,3,4,5\n")) == "csv"
    assert detect_format(write("UserBehavior.csv", "1,2,3,pv,4\n")) == "taobao"
    assert detect_format(write("y.csv", "s,2014-04-06T20:21:58Z,ItemId,c\n")) == "csv"


def test_messages_about_compressed_token_files_name_the_file_given(tmp_path):
    path = tmp_path / "train_sessions.txt.gz"
    path.write_bytes(gzip.compress(b"1 2\n3 x\n"))
    assert error_of(path) == f"{path} line 2: token 'x' is not an integer id"
    path.write_bytes(gzip.compress(b"1 2\n3\t4\n"))
    assert error_of(path) == f"{path} line 2: expected 1 tab-separated field, got 2"
    path.write_bytes(gzip.compress(b" \n\t\n"))
    assert error_of(path).startswith(f"{path}: ")


def test_every_seqrec_error_prints_as_one_printable_line(tmp_path):
    from seqrec.errors import ConfigError, SeqrecError

    assert str(SeqrecError("a\nb\x1b[31m")) == "a\\nb\\x1b[31m"
    assert str(ConfigError("plain é")) == "plain é"
    path = tmp_path / "new\nline\x1b[2J.csv"  # a hostile file name
    with pytest.raises(DataError) as info:
        read_log(path)
    assert str(info.value) == f"{tmp_path}/new\\nline\\x1b[2J.csv: no such file or directory"


def test_unreadable_files(tmp_path, monkeypatch):
    """Permission denied (simulated: the tests may run as root, who reads anything)."""
    import pathlib

    path = tmp_path / "secret.tsv"
    path.write_bytes(HEADER + b"1\ta\t1\n")
    real_open = pathlib.Path.open

    def deny(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", deny)
    assert error_of(path) == f"{path}: cannot read (Permission denied)"
