"""Format detection, training data (sessions vs histories) and test protocols."""

import numpy as np
import pandas as pd
import pytest

from seqrec.data.events import Columns
from seqrec.data.idmap import ItemIndex
from seqrec.data.loading import (
    FORMATS,
    detect_format,
    load_test_data,
    load_training_data,
    read_log,
)
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import DataError

FIXTURES = {
    "data.tsv": ("SessionId\tItemId\tTime\n1\ta\t1\n", "tsv"),
    "data.txt": ("SessionId\tItemId\tTime\n1\ta\t1\n", "tsv"),
    "data.csv": ("session_id,item_id\n1,a\n", "csv"),
    "views.csv": ("session_id;user_id;item_id\n1;NA;a\n", "csv"),
    "custom.csv": ("s,i\n1,a\n", "csv"),
    "custom.tsv": ("s\ti\n1\ta\n", "tsv"),
    "ratings.csv": ("userId,movieId,rating,timestamp\n1,1,4.0,9\n", "movielens"),
    "ml.inter": ("user_id:token\titem_id:token\n1\t2\n", "recbole"),
    "typed.tsv": ("user_id:token\titem_id:token\n1\t2\n", "recbole"),
    "UserBehavior.csv": ("1,2268318,2520377,pv,1511544070\n", "taobao"),
    "clicks.dat": ("832,2014-04-06T20:21:58.444Z,214717095,0\n", "yoochoose-raw"),
    "Beauty.txt": ("1 1 2 3\n2 4 5\n", "s3rec"),
    "beauty.txt": ("1 1\n1 2\n2 3\n", "user-item"),
    "my_sessions.txt": ("1 2\n3 4\n", "sessions"),
    "test_samples.tsv": ("prefix\tlabel\n1 2\t3\n", "sessions"),
    "samples.tsv": ("session_id\ttimestamp\tprefix\tlabel\n1\t2\t3\t4\n", "sessions"),
}


@pytest.mark.parametrize("name", list(FIXTURES))
def test_detect_format(write, name):
    text, fmt = FIXTURES[name]
    assert detect_format(write(name, text)) == fmt
    assert fmt in FORMATS


def test_detect_format_directories_and_parquet(tmp_path, write):
    write("folder/train_sessions.txt", "1 2\n")
    assert detect_format(tmp_path / "folder") == "sessions"
    pd.DataFrame({"SessionId": [1], "ItemId": [2]}).to_parquet(tmp_path / "d.parquet")
    assert detect_format(tmp_path / "d.parquet") == "parquet"
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="not a sessions folder"):
        detect_format(tmp_path / "empty_dir")


def test_detect_format_errors(write, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        detect_format(tmp_path / "missing.tsv")
    with pytest.raises(DataError, match="cannot detect the format") as info:
        detect_format(write("odd.xyz", "foo,bar\n1,2\n"))
    assert "pass --format (one of tsv, csv" in str(info.value)
    with pytest.raises(DataError, match="file is empty"):
        detect_format(write("e.txt", ""))


TSV = b"SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t2\n2\tb\t3\n2\tc\t4\n2\ta\t5\n"


def _zip(data: bytes, name: str = "train.tsv", extra: bool = False) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
        if extra:
            zf.writestr("README.txt", b"two files")
    return buf.getvalue()


COMPRESSORS = {
    "gzip": lambda b: __import__("gzip").compress(b),
    "bzip2": lambda b: __import__("bz2").compress(b),
    "xz": lambda b: __import__("lzma").compress(b),
    "zip": _zip,
}


@pytest.mark.parametrize("kind", list(COMPRESSORS))
@pytest.mark.parametrize("fmt", ["auto", "tsv"])
@pytest.mark.parametrize("name", ["train.tsv.x", "train.tsv.gz"])
def test_compressed_input_reads_like_the_plain_file(tmp_path, kind, fmt, name):
    plain = tmp_path / "plain.tsv"
    plain.write_bytes(TSV)
    path = tmp_path / name
    path.write_bytes(COMPRESSORS[kind](TSV))
    ref = load_training_data(plain, fmt)
    got = load_training_data(path, fmt)
    assert got.item_index.external_ids == ref.item_index.external_ids
    assert got.train.items.tolist() == ref.train.items.tolist()
    assert got.train.offsets.tolist() == ref.train.offsets.tolist()


def test_compressed_sessions_file_and_test_data(tmp_path):
    import gzip

    path = tmp_path / "train_sessions.txt.gz"  # the name without .gz selects the format
    path.write_bytes(gzip.compress(b"3 1 3\n2 2\n7 3\n"))
    assert detect_format(path) == "sessions"
    data = load_training_data(path)
    assert data.train.n_sessions == 3
    test = tmp_path / "test.tsv.bz2"
    test.write_bytes(__import__("bz2").compress(b"SessionId\tItemId\n9\t3\n9\t7\n"))
    log, _ = load_test_data(test, "auto", data.item_index, "next-item")
    assert log.n_sessions == 1


def test_compressed_input_errors(tmp_path):
    bad = tmp_path / "broken.tsv.gz"
    bad.write_bytes(__import__("gzip").compress(TSV)[:-12])  # truncated stream
    with pytest.raises(DataError, match=r"broken.tsv.gz: cannot decompress this gzip file"):
        load_training_data(bad)
    two = tmp_path / "two.zip"
    two.write_bytes(_zip(TSV, extra=True))
    with pytest.raises(DataError, match="zip archive with 2 files"):
        load_training_data(two)
    zst = tmp_path / "e.tsv.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 16)
    with pytest.raises(DataError, match="zstd-compressed file; decompress it first"):
        load_training_data(zst)
    empty = tmp_path / "empty.tsv.gz"
    empty.write_bytes(__import__("gzip").compress(b""))
    with pytest.raises(DataError, match="empty"):
        load_training_data(empty)


def test_a_bad_row_in_a_compressed_file_names_the_file_given(tmp_path):
    path = tmp_path / "rows.tsv.gz"
    path.write_bytes(__import__("gzip").compress(TSV + b"3\tx\n"))
    with pytest.raises(DataError) as info:
        load_training_data(path)
    msg = str(info.value)
    assert msg.startswith(f"{path} line 7") and "seqrec-input-" not in msg


def test_text_starting_like_a_magic_number_is_not_compressed(write):
    path = write("bz.tsv", "BZh\tItemId\n1\ta\n")  # "BZh" without bzip2's level digit
    assert detect_format(path) == "tsv"


def test_unknown_format_lists_valid_ones(write):
    path = write("d.tsv", "SessionId\tItemId\n1\ta\n")
    with pytest.raises(DataError) as info:
        load_training_data(path, "xml")
    assert str(info.value) == "unknown format 'xml'; valid formats: auto, " + ", ".join(FORMATS)


def test_column_options_rejected_for_token_formats(write):
    with pytest.raises(DataError, match="do not apply to format 's3rec'"):
        load_training_data(write("b.txt", "1 2 3\n"), "s3rec", Columns(item="x"))


# ----------------------------------------------------------------------------- training
SESSIONS = "SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t2\n2\tb\t3\n2\tc\t4\n"


def test_session_format_is_all_training_data(write):
    data = load_training_data(write("train.tsv", SESSIONS))
    assert data.kind == "sessions" and data.valid is None and data.format == "tsv"
    assert data.train.n_events == 4
    assert data.item_index.external_ids == ["a", "b", "c"]
    assert "rows: 4" in str(data.report)


def test_user_history_format_uses_sasrec_leave_one_out(write):
    data = load_training_data(write("Beauty.txt", "1 10 11 12 13\n2 20 21 22\n3 30 31\n"))
    assert data.kind == "histories" and data.format == "s3rec"
    ix = data.item_index
    assert [ix.decode(s) for s in data.train] == [["10", "11"], ["20"], ["30", "31"]]
    assert isinstance(data.valid, Samples)
    assert [ix.decode(p) for p in data.valid.prefixes] == [["10", "11"], ["20"]]
    assert ix.decode(data.valid.labels) == ["12", "21"]
    assert ix.decode(data.test.labels) == ["13", "22"]
    # the index holds every item of the file, test labels included
    assert len(ix) == 9 and "13" in ix
    assert data.report.get("split", "valid samples") == 2


def test_recbole_with_session_column_is_sessions(write):
    text = "session_id:token\titem_id:token\ttimestamp:float\n1\t5\t1\n1\t6\t2\n"
    data = load_training_data(write("s.inter", text))
    assert data.kind == "sessions" and data.train.n_events == 2


def test_training_data_from_a_dataframe():
    df = pd.DataFrame({"SessionId": [1, 1], "ItemId": ["x", "y"], "Time": [1, 2]})
    data = load_training_data(df)
    assert data.kind == "sessions" and data.train.n_events == 2


# ----------------------------------------------------------------------------- test data
def test_next_item_uses_the_frozen_index(write):
    index = load_training_data(write("train.tsv", SESSIONS)).item_index
    test = write("test.tsv", "SessionId\tItemId\tTime\n9\ta\t10\n9\tz\t11\n9\tc\t12\n")
    log, report = load_test_data(test, "auto", index, "next-item")
    assert isinstance(log, SessionLog)
    assert log.items.tolist() == [0, -1, 2]  # unknown kept as -1, not dropped
    assert report.get("encode", "events with items not in the training index (kept as -1)") == 1
    assert len(index) == 3  # never grows


def test_samples_protocol_from_a_session_log(write):
    index = ItemIndex(["a", "b", "c"])
    test = write("test.tsv", "SessionId\tItemId\tTime\n9\ta\t10\n9\tb\t11\n9\tc\t12\n")
    samples, report = load_test_data(test, "tsv", index, "samples")
    assert [p.tolist() for p in samples.prefixes] == [[0], [0, 1]]
    assert samples.labels.tolist() == [1, 2]
    assert report.get("samples", "samples (every position t >= 1 of every session)") == 2


def test_sessions_folder_protocols(tmp_path, write):
    write("f/train_sessions.txt", "1 2 3\n2 3\n")
    write("f/test_sessions.txt", "1 2 3\n3 9\n")
    write("f/test_samples.tsv", "prefix\tlabel\n1 2\t3\n1\t2\n3\t9\n")
    folder = tmp_path / "f"
    data = load_training_data(folder)
    assert data.kind == "sessions" and data.train.n_sessions == 2
    samples, _ = load_test_data(folder, "auto", data.item_index, "samples")
    assert samples.labels.tolist() == [2, 1, -1]  # exact file order, unknown label -1
    log, _ = load_test_data(folder, "auto", data.item_index, "next-item")
    assert [s.tolist() for s in log] == [[0, 1, 2], [2, -1]]
    last, report = load_test_data(folder, "auto", data.item_index, "last-item")
    assert last.labels.tolist() == [2, -1]
    assert report.get("samples", "last-item samples") == 2


def test_sessions_folder_without_test_sessions(tmp_path, write):
    write("f/train_sessions.txt", "1 2 3\n")
    with pytest.raises(DataError, match=r"has no test_sessions\.txt"):
        load_test_data(tmp_path / "f", "auto", ItemIndex(["1"]), "next-item")


def test_last_item_protocol_on_histories(write):
    path = write("Beauty.txt", "1 10 11 12 13\n2 20 21 22\n3 30 31\n")
    data = load_training_data(path)
    test, report = load_test_data(path, "auto", data.item_index, "last-item")
    ix = data.item_index
    assert [ix.decode(p) for p in test.prefixes] == [["10", "11", "12"], ["20", "21"]]
    assert ix.decode(test.labels) == ["13", "22"]
    assert report.get("split", "histories shorter than 3 (all in train, no valid/test sample)") == 1


def test_unknown_protocol(write):
    with pytest.raises(DataError, match="valid protocols: next-item, samples, last-item"):
        load_test_data(write("t.tsv", SESSIONS), "auto", ItemIndex(), "session-rest")


def test_read_log_returns_report(write):
    log, index, report = read_log(write("t.tsv", SESSIONS))
    assert (log.n_events, len(index)) == (4, 3)
    assert report.get("read", "sessions") == 2


# ----------------------------------------------------------------------------- excerpt
def test_shipped_excerpt(excerpt):
    data = load_training_data(excerpt / "train.tsv")
    assert (data.train.n_events, data.train.n_sessions, len(data.item_index)) == (5293, 1265, 1171)
    test, _ = load_test_data(excerpt / "test.tsv", "auto", data.item_index, "next-item")
    assert (test.n_events, test.n_sessions) == (1342, 368)
    assert (test.items >= 0).all() and (test.lengths >= 2).all()
    assert test.times.min() > data.train.times.max()  # test strictly after train
    assert np.all(np.diff(data.train.times[data.train.offsets[:-1]]) >= 0)  # start-time order


def test_a_plain_file_with_a_compression_suffix_is_read_as_plain(tmp_path):
    path = tmp_path / "events.tsv.gz"  # not actually compressed
    path.write_bytes(TSV)
    assert load_training_data(path, "tsv").train.n_sessions == 2


def test_recbole_error_names_the_input_not_its_utf8_copy(tmp_path):
    """A UTF-16 RecBole file is read through a UTF-8 temporary copy; a column error must
    still name the file the user gave (found by the reader fuzz test)."""
    from seqrec.data.loading import load_training_data
    from seqrec.errors import DataError

    path = tmp_path / "ml.inter"
    path.write_bytes("\ufeffuser_id:token\tfoo:token\n1\t2\n".encode("utf-16-le"))
    with pytest.raises(DataError) as err:
        load_training_data(path, "recbole")
    assert str(err.value).startswith(str(path)), str(err.value)
    assert "no item column" in str(err.value)
