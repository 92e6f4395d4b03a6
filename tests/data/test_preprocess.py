"""Filters and splits: exact rules and dropped-row counting."""

from dataclasses import replace

import numpy as np
import pytest

from seqrec.data.idmap import ItemIndex
from seqrec.data.preprocess import (
    DAY,
    compact_items,
    drop_short_sessions,
    leave_one_out,
    min_item_support,
    sessionize,
    sort_by_time,
    time_split,
    valid_split,
)
from seqrec.data.report import DataReport
from seqrec.data.sessions import SessionLog
from seqrec.errors import DataError


def lists(log):
    return [s.tolist() for s in log]


def test_sessionize_gap_is_strictly_greater():
    users = np.array([5, 5, 5, 5, 9])
    times = np.array([0.0, 1800.0, 3601.0, 3602.0, 0.0])
    assert sessionize(users, times, 1800).tolist() == [0, 0, 1, 1, 2]
    # unsorted input: result aligned with the input
    assert sessionize(users[::-1], times[::-1], 1800).tolist() == [2, 1, 1, 0, 0]


def test_drop_short_sessions_counts():
    log = SessionLog.from_sequences([[1], [1, 2], [3], [4, 5, 6]])
    out, report = drop_short_sessions(log, 2)
    assert lists(out) == [[1, 2], [4, 5, 6]]
    assert report.get("filter", "sessions shorter than 2 dropped") == 2
    assert report.get("filter", "events in sessions shorter than 2 dropped") == 2


def test_min_item_support_iterates_until_stable():
    # item 9 has support 1 -> dropping it makes [7, 9] a single-event session, which
    # removes one 7 -> 7 falls below support 2 in the second round
    log = SessionLog.from_sequences([[7, 9], [7, 8], [8, 8], [1, 1, 8]])
    out, report = min_item_support(log, min_support=2, min_length=2)
    assert lists(out) == [[8, 8], [1, 1, 8]]
    counts = out.item_counts(10)
    assert counts[counts > 0].min() >= 2
    text = str(report)
    assert "2 round(s)): 4" in text  # 4 of the 9 events dropped
    assert "sessions dropped by the item-support filter: 2" in text


def test_min_item_support_keeps_everything_when_nothing_is_rare():
    log = SessionLog.from_sequences([[1, 2], [2, 1]])
    out, report = min_item_support(log, min_support=2)
    assert lists(out) == lists(log)
    assert [e.count for e in report] == [0, 0]


def test_sort_by_time():
    log = SessionLog.from_sequences([[1, 2, 3], [4, 5]], times=[[30, 10, 20], [5, 5]])
    out, report = sort_by_time(log)
    assert lists(out) == [[4, 5], [2, 3, 1]]
    assert out.times.tolist() == [5, 5, 10, 20, 30]
    assert report.get("sort", "sessions moved by the start-time sort") == 2
    with pytest.raises(DataError, match="needs timestamps"):
        sort_by_time(SessionLog.from_sequences([[1]]))


def _split_log():
    last = 10 * DAY
    return SessionLog.from_sequences(
        [[1, 2], [2, 3, 4], [1, 5], [2, 1, 6], [7]],
        times=[
            [0, 10],
            [last - DAY - 1, last - DAY - 1, last],  # starts before the cutoff -> train
            [last - DAY, last - 5],  # starts exactly at the cutoff -> test
            [last - 10, last - 9, last - 8],  # test; 6 unseen in train -> removed
            [last - 3],  # test, too short
        ],
    )


def test_time_split_rules_and_report():
    train, test, report = time_split(_split_log(), 1)
    assert lists(train) == [[1, 2], [2, 3, 4]]
    # [1, 5]: 5 unseen -> [1] -> dropped; [2, 1, 6] -> [2, 1]; [7] -> [] -> dropped
    assert lists(test) == [[2, 1]]
    assert report.get("split", "test sessions") == 3
    assert report.get("split", "test events with items not in train removed") == 3
    assert report.get("split", "test sessions shorter than 2 dropped") == 2
    assert report.get("split", "test events in sessions shorter than 2 dropped") == 1
    removed = sum(e.count for e in report if e.what.startswith("test events"))
    assert train.n_events + test.n_events + removed == _split_log().n_events  # all accounted


def test_time_split_errors():
    with pytest.raises(DataError, match="needs timestamps"):
        time_split(SessionLog.from_sequences([[1, 2]]), 1)
    with pytest.raises(DataError, match="positive"):
        time_split(_split_log(), 0)


def test_valid_split_is_time_split_on_train():
    tr, va, report = valid_split(_split_log(), 1)
    tr2, va2, _ = time_split(_split_log(), 1)
    assert lists(tr) == lists(tr2) and lists(va) == lists(va2)
    assert {e.stage for e in report} == {"valid-split"}


def test_leave_one_out_sasrec_convention():
    log = SessionLog.from_sequences([[1, 2, 3, 4], [5, 6, 7], [8, 9], [10]])
    train, valid, test, report = leave_one_out(log)
    assert lists(train) == [[1, 2], [5], [8, 9], [10]]  # history[:-2]; short ones whole
    assert lists(valid.prefixes) == [[1, 2], [5]]
    assert valid.labels.tolist() == [3, 6]
    assert lists(test.prefixes) == [[1, 2, 3], [5, 6]]
    assert test.labels.tolist() == [4, 7]
    assert report.get("split", "histories shorter than 3 (all in train, no valid/test sample)") == 2
    assert report.get("split", "events held out of train (valid + test labels)") == 4


def test_leave_one_out_keeps_user_metadata():
    log = replace(
        SessionLog.from_sequences([[1, 2, 3], [4, 5, 6]]),
        users=np.array([10, 11]),
        session_ids=np.array(["u10", "u11"], dtype=object),
    )
    train, _, test, _ = leave_one_out(log)
    assert train.users.tolist() == [10, 11]
    assert test.prefixes.session_ids.tolist() == ["u10", "u11"]


def test_compact_items():
    index = ItemIndex(["a", "b", "c", "d"])
    log = SessionLog.from_sequences([[3, 1], [1, -1]])
    out, new_index, report = compact_items(log, index)
    assert new_index.external_ids == ["b", "d"]
    assert lists(out) == [[1, 0], [0, -1]]
    assert report.get("filter", "items without events removed from the index") == 2


def test_report_rendering():
    report = DataReport()
    report.add("read", "rows", 70278)
    report.add("filter", "sessions shorter than 2 dropped", 12)
    text = str(report)
    assert text.splitlines() == [
        "data report:",
        "  read    rows: 70,278",
        "  filter  sessions shorter than 2 dropped: 12",
    ]
    assert str(DataReport()) == ""
    assert [tuple(e) for e in report] == [
        ("read", "rows", 70278),
        ("filter", "sessions shorter than 2 dropped", 12),
    ]
    assert report.get("read", "nothing") is None
