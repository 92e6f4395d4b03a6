"""Reading event logs: formats, columns, time handling, ordering and errors."""

import numpy as np
import pandas as pd
import pytest

from seqrec.data.events import Columns, read_events
from seqrec.data.idmap import ItemIndex
from seqrec.errors import DataError

TSV = "SessionId\tItemId\tTime\n1\ta\t30\n1\tb\t20\n2\tc\t5\n2\ta\t6\n3\tb\t5\n"


def seqs(log, index):
    return [index.decode(s) for s in log]


def read_error(path_or_frame, columns=None, **kw) -> str:
    with pytest.raises(DataError) as info:
        read_events(path_or_frame, columns, **kw)
    msg = str(info.value)
    assert "\n" not in msg, "error messages are one line"
    return msg


# ----------------------------------------------------------------------------- ordering
def test_sessions_by_start_time_events_by_time(write):
    log, index, report = read_events(write("d.tsv", TSV))
    # session 1 starts at 20 (its events are re-sorted); 2 and 3 both start at 5: file order
    assert seqs(log, index) == [["c", "a"], ["b"], ["b", "a"]]
    assert log.session_ids.tolist() == ["2", "3", "1"]
    assert log.times.tolist() == [5, 6, 5, 20, 30]
    assert index.external_ids == ["c", "a", "b"]  # first appearance in the sorted log
    assert report.get("read", "rows") == 5
    assert report.get("read", "sessions") == 3
    assert report.get("read", "items") == 3


def test_time_ties_keep_file_order(write):
    text = "SessionId\tItemId\tTime\n7\tx\t1\n7\ty\t1\n7\tz\t0\n7\tw\t1\n"
    log, index, _ = read_events(write("d.tsv", text))
    assert seqs(log, index) == [["z", "x", "y", "w"]]


def test_without_time_column_file_order_is_kept(write):
    log, index, _ = read_events(write("d.csv", "session_id,item_id\n2,a\n1,b\n2,c\n"))
    assert seqs(log, index) == [["a", "c"], ["b"]]
    assert log.times is None


def test_user_histories_without_session_column(write):
    text = "user_id,item_id,timestamp\nu1,a,3\nu2,b,1\nu1,c,2\n"
    log, index, report = read_events(write("d.csv", text))
    assert seqs(log, index) == [["b"], ["c", "a"]]
    assert log.session_ids.tolist() == ["u2", "u1"]
    assert log.users is not None and len(np.unique(log.users)) == 2
    assert report.get("read", "users") == 2


def test_session_gap_splits_user_events(write):
    text = "user,item,ts\n1,a,0\n1,b,1800\n1,c,3601\n2,d,100\n"
    log, index, _ = read_events(write("d.csv", text), session_gap=1800)
    assert seqs(log, index) == [["a", "b"], ["d"], ["c"]]
    assert log.users.tolist() == [0, 1, 0]


def test_event_types_and_names(write):
    text = "session,item,time,event_type\n1,a,1,view\n1,a,2,cart\n1,b,3,view\n"
    log, _, _ = read_events(write("d.csv", text))
    assert log.event_type_names == ("view", "cart")
    assert log.event_types.tolist() == [0, 1, 0]


# ----------------------------------------------------------------------------- columns
@pytest.mark.parametrize(
    "header",
    [
        "SessionId,ItemId,Time",
        "session_id,item_id,timestamp",
        "sessionId,itemId,Timestamp",
        "session,item,ts",
        "SESSIONID,ITEMID,TIME",
    ],
)
def test_column_aliases(write, header):
    log, index, _ = read_events(write("d.csv", f"{header}\n1,a,2\n1,b,1\n"))
    assert seqs(log, index) == [["b", "a"]]


def test_explicit_columns_override_aliases(write):
    text = "s,i,t,ItemId\n1,a,2,zz\n1,b,1,zz\n"
    log, index, _ = read_events(write("d.csv", text), Columns(session="s", item="i", time="t"))
    assert seqs(log, index) == [["b", "a"]]


def test_unknown_column_name(write):
    path = write("data.csv", "a,b,c\n1,2,3\n")
    msg = read_error(path, Columns(item="Time"))
    assert msg == f"{path}: column 'Time' not found (columns: a, b, c)"


def test_missing_item_and_session_columns(write):
    msg = read_error(write("data.csv", "SessionId,x\n1,2\n"))
    assert "data.csv: no item column found" in msg and "columns: SessionId, x" in msg
    msg = read_error(write("data.csv", "ItemId,x\n1,2\n"))
    assert "data.csv: no session or user column found" in msg


# ----------------------------------------------------------------------------- times
def test_iso_times_with_and_without_zone(write):
    text = (
        "s,i,t\n1,a,2014-04-01T10:00:00Z\n1,b,2014-04-01 10:00:05\n"
        "2,c,2014-04-01T09:00:00.5+01:00\n"
    )
    log, index, _ = read_events(write("d.csv", text), Columns(session="s", item="i", time="t"))
    t0 = pd.Timestamp("2014-04-01T10:00:00Z").timestamp()
    assert seqs(log, index) == [["c"], ["a", "b"]]
    assert log.times.tolist() == [t0 - 7200 + 0.5, t0, t0 + 5]  # 09:00+01:00 = 08:00Z


def test_iso_times_fast_path(write):
    text = "SessionId,Time,ItemId\n1,2014-04-06T20:21:58.444Z,9\n1,2014-04-06T20:21:59.677Z,8\n"
    log, _, _ = read_events(write("d.csv", text))
    assert log.times.tolist() == pytest.approx([1396815718.444, 1396815719.677])


def test_datetime_and_date_columns_in_frames():
    when = pd.to_datetime(["2014-04-01 00:00:01", "2014-04-01 00:00:00"])
    log, index, _ = read_events(pd.DataFrame({"session": [1, 1], "item": ["a", "b"], "time": when}))
    assert seqs(log, index) == [["b", "a"]]
    assert log.times.tolist() == [1396310400.0, 1396310401.0]
    days = pd.DataFrame(
        {"session": [1], "item": ["a"], "time": [pd.Timestamp("1970-01-02").date()]}
    )
    assert read_events(days)[0].times.tolist() == [86400.0]


# ----------------------------------------------------------------------------- sources agree
def _frame():
    return pd.DataFrame(
        {
            "SessionId": [1, 1, 2, 2, 3],
            "ItemId": ["a", "b", "c", "a", "b"],
            "Time": [30.0, 20.0, 5.0, 6.0, 5.0],
        }
    )


def _same(a, b):
    (la, ia, _), (lb, ib, _) = a, b
    assert ia == ib
    for name in ("offsets", "items", "times"):
        assert np.array_equal(getattr(la, name), getattr(lb, name)), name
    assert la.session_ids.tolist() == lb.session_ids.tolist()


def test_csv_tsv_parquet_pandas_polars_agree(tmp_path):
    pl = pytest.importorskip("polars")
    df = _frame()
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_csv(tmp_path / "d.tsv", index=False, sep="\t")
    df.to_parquet(tmp_path / "d.parquet", index=False)
    ref = read_events(tmp_path / "d.csv")
    assert ref[0].session_ids.tolist() == ["2", "3", "1"]
    _same(ref, read_events(tmp_path / "d.tsv"))
    _same(ref, read_events(tmp_path / "d.parquet"))
    _same(ref, read_events(df))
    _same(ref, read_events(pl.from_pandas(df)))
    _same(ref, read_events(str(tmp_path / "d.csv")))


def test_semicolon_csv_is_sniffed(write):
    log, index, _ = read_events(write("d.csv", "session_id;item_id\n1;a\n1;b\n"))
    assert seqs(log, index) == [["a", "b"]]


def test_integral_float_ids_become_integer_strings():
    df = pd.DataFrame({"SessionId": [1.0, 1.0], "ItemId": [10.0, 11.0], "Time": [1, 2]})
    log, index, _ = read_events(df)
    assert index.external_ids == ["10", "11"]
    assert log.session_ids.tolist() == ["1"]


def test_frozen_index_marks_unknown_items(write):
    frozen = ItemIndex(["a", "b"])
    log, index, report = read_events(write("d.tsv", TSV), item_index=frozen)
    assert index is frozen
    assert [s.tolist() for s in log] == [[-1, 0], [1], [1, 0]]
    assert report.get("encode", "events with items not in the training index (kept as -1)") == 1


# ----------------------------------------------------------------------------- errors
def test_error_wrong_number_of_fields(write):
    path = write("data.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n\n1\tb\t2\t9\n")
    assert read_error(path) == f"{path} line 4: expected 3 fields, got 4"
    path = write("data.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n1\tb\n")
    assert read_error(path) == f"{path} line 3: expected 3 fields, got 2"


def test_error_unparsable_time(write):
    path = write("data.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t2\n\n1\tc\tabc\n")
    assert read_error(path) == (
        f"{path} line 5: time 'abc' is not a number or ISO-8601 date (column 'Time')"
    )
    path = write("iso.csv", "SessionId,ItemId,Time\n1,a,2014-04-01T00:00:00Z\n1,b,yesterday\n")
    assert "iso.csv line 3: time 'yesterday' is not a number or ISO-8601 date" in read_error(path)


def test_error_nan_time(write):
    path = write("data.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n1\tb\tNaN\n")
    assert read_error(path) == f"{path} line 3: time 'NaN' is not a finite number (column 'Time')"
    df = pd.DataFrame({"SessionId": [1, 1], "ItemId": ["a", "b"], "Time": [1.0, np.inf]})
    assert read_error(df) == "DataFrame row 2: time 'inf' is not a finite number (column 'Time')"


def test_error_missing_values(write):
    path = write("data.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n1\t\t2\n")
    assert read_error(path) == f"{path} line 3: missing value in column 'ItemId'"
    path = write("data.tsv", "SessionId\tItemId\tTime\n1\ta\t1\n \tb\t2\n")
    assert read_error(path) == f"{path} line 3: missing value in column 'SessionId'"
    path = write("data.tsv", "SessionId\tItemId\tTime\n1\ta\t\n")
    assert read_error(path) == f"{path} line 2: missing value in column 'Time'"
    df = pd.DataFrame({"SessionId": [1, None], "ItemId": ["a", "b"], "Time": [1, 2]})
    assert read_error(df) == "DataFrame row 2: missing value in column 'SessionId'"


def test_error_duplicate_header(write):
    path = write("data.tsv", "SessionId\tItemId\tTime\n1\ta\t1\nSessionId\tItemId\tTime\n1\tb\t2\n")
    assert read_error(path) == f"{path} line 3: duplicate header line inside the data"


def test_error_empty_header_only_and_missing_files(write, tmp_path):
    path = write("empty.tsv", "")
    assert read_error(path) == f"{path}: file is empty"
    path = write("head.tsv", "SessionId\tItemId\tTime\n")
    assert read_error(path) == f"{path}: no data rows (header only)"
    assert (
        read_error(tmp_path / "nope.tsv") == f"{tmp_path / 'nope.tsv'}: no such file or directory"
    )
    assert "is a directory" in read_error(tmp_path)


def test_error_not_parquet(write):
    path = write("data.parquet", "not parquet at all")
    assert read_error(path).startswith(f"{path}: not a readable Parquet file")


def test_error_fractional_float_id():
    df = pd.DataFrame({"SessionId": [1, 1], "ItemId": [1.0, 1.5], "Time": [1, 2]})
    assert "DataFrame row 2: id 1.5 in column 'ItemId'" in read_error(df)


def test_error_unknown_event_type(write):
    path = write("d.csv", "session,item,time,behavior\n1,a,1,pv\n1,b,2,click\n")
    msg = read_error(path, event_type_order=("pv", "buy"))
    assert msg == f"{path} line 3: event type 'click' is not one of pv, buy"


def test_blank_lines_in_a_text_file_are_counted_in_the_report(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes(b"\nSessionId,ItemId\n1,a\n\n1,b\r\n\r\n2,a\n2,c\n\n")
    log, _, report = read_events(path)
    assert log.n_events == 4
    assert report.get("read", "blank lines skipped") == 4
    plain = tmp_path / "p.csv"
    plain.write_bytes(b"SessionId,ItemId\n1,a\n1,b\n")
    assert read_events(plain)[2].get("read", "blank lines skipped") is None  # none: no line


def test_count_blank_lines_against_a_line_split(tmp_path):
    import random

    from seqrec.data.events import count_blank_lines

    def reference(data: bytes) -> int:
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines = lines[:-1]
        return sum(1 for line in lines if line in (b"", b"\r"))

    rng = random.Random(0)
    path = tmp_path / "b.txt"
    for _ in range(500):
        data = bytes(rng.choice(b"ab\r\n\n\n") for _ in range(rng.randint(0, 40)))
        path.write_bytes(data)
        for chunk in (1, 2, 7, 1 << 20):  # lines split across reads
            assert count_blank_lines(path, chunk) == reference(data), (data, chunk)
