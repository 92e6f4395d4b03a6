"""The neighbourhood models' session index on a literal toy log, arrays by hand."""

import numpy as np

from seqrec.data.session_index import build_index, gather
from seqrec.data.sessions import SessionLog

SESSIONS = [[1, 2, 3], [2, 4, 2], [], [3, 4, 5, 4]]  # the empty session is dropped


def test_index_without_times_keeps_log_order():
    ix = build_index(SessionLog.from_sequences(SESSIONS), 6, cap=10, sequences=True)
    assert ix["sess_offsets"].tolist() == [0, 3, 5, 8]
    assert ix["sess_items"].tolist() == [1, 2, 3, 2, 4, 3, 4, 5]  # distinct, ascending
    # the last position of each item in its session's event sequence (1-based)
    assert ix["sess_pos"].tolist() == [1, 2, 3, 3, 2, 1, 4, 3]
    assert ix["sess_events"].tolist() == [3, 3, 4]  # repeats counted
    assert ix["sess_time"].tolist() == [0.0, 1.0, 2.0]  # recency rank when no times
    # item -> sessions, most recent first, with the item's position there
    assert ix["item_offsets"].tolist() == [0, 0, 1, 3, 5, 7, 8]
    assert ix["item_sessions"].tolist() == [0, 1, 0, 2, 0, 2, 1, 2]
    assert ix["item_pos"].tolist() == [1, 3, 2, 1, 3, 4, 2, 3]
    assert np.allclose(ix["idf"], [0, np.log(3), np.log(1.5), np.log(1.5), np.log(1.5), np.log(3)])


def test_index_with_times_orders_sessions_by_their_last_event_and_caps_lists():
    times = [[5, 6, 30], [1, 2, 3], [], [10, 11, 12, 13]]
    log = SessionLog.from_sequences(SESSIONS, times=times)
    ix = build_index(log, 6, cap=1, sequences=True)
    # recency: [2, 4, 2] (3) -> id 0, [3, 4, 5, 4] (13) -> id 1, [1, 2, 3] (30) -> id 2
    assert ix["sess_time"].tolist() == [3.0, 13.0, 30.0]
    assert ix["sess_events"].tolist() == [3, 4, 3]
    assert ix["sess_items"].tolist() == [2, 4, 3, 4, 5, 1, 2, 3]
    assert ix["sess_pos"].tolist() == [3, 2, 1, 4, 3, 1, 2, 3]
    # cap 1: only the most recent session of each item
    assert ix["item_offsets"].tolist() == [0, 0, 1, 2, 3, 4, 5]
    assert ix["item_sessions"].tolist() == [2, 2, 2, 1, 1]
    assert ix["item_pos"].tolist() == [1, 2, 3, 4, 3]


def test_index_without_sequences_has_only_the_shared_arrays():
    ix = build_index(SessionLog.from_sequences(SESSIONS), 6, cap=10)
    assert sorted(ix) == ["idf", "item_offsets", "item_sessions", "sess_items", "sess_offsets"]


def test_gather_concatenates_csr_rows():
    offsets = np.array([0, 2, 2, 5])
    values = np.array([10, 11, 20, 21, 22])
    got, which = gather(offsets, values, np.array([2, 0, 1, 2]))
    assert got.tolist() == [20, 21, 22, 10, 11, 20, 21, 22]
    assert which.tolist() == [0, 0, 0, 1, 1, 3, 3, 3]
