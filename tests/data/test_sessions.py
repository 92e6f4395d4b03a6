"""SessionLog, ItemIndex and Samples basics."""

import numpy as np
import pytest

from seqrec.data.idmap import UNKNOWN, ItemIndex
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ModelFileError, UnknownItemError


# ----------------------------------------------------------------------------- ItemIndex
def test_item_index_maps_strings_both_ways():
    index = ItemIndex(["b", "a", 7])
    assert len(index) == 3
    assert index.external_ids == ["b", "a", "7"]
    assert index.encode(["a", 7, "7", "zz"]).tolist() == [1, 2, 2, UNKNOWN]
    assert index.decode([2, 0]) == ["7", "b"]
    assert "7" in index and 7 in index and "zz" not in index


def test_item_index_add_keeps_existing_ids():
    index = ItemIndex(["a"])
    assert index.add(["b", "a", "c"]).tolist() == [1, 0, 2]
    assert index.external_ids == ["a", "b", "c"]


def test_item_index_strict_encoding_names_unknown_ids():
    index = ItemIndex(["a"])
    with pytest.raises(UnknownItemError, match="'x'"):
        index.encode_strict(["a", "x"])


def test_item_index_save_load_round_trip(tmp_path):
    index = ItemIndex(["214536502", "1", "x y"])
    index.save(tmp_path / "items.json")
    assert ItemIndex.load(tmp_path / "items.json") == index


def test_item_index_load_errors(tmp_path):
    with pytest.raises(ModelFileError, match="missing"):
        ItemIndex.load(tmp_path / "nope.json")
    (tmp_path / "dup.json").write_text('["a", "a"]')
    with pytest.raises(ModelFileError, match="duplicate"):
        ItemIndex.load(tmp_path / "dup.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ModelFileError, match="corrupt"):
        ItemIndex.load(tmp_path / "bad.json")


# ----------------------------------------------------------------------------- SessionLog
def _log():
    return SessionLog.from_sequences(
        [[0, 1, 2], [3], [1, -1, 4, 2]], times=[[1, 2, 3], [4], [5, 6, 7, 8]]
    )


def test_session_log_csr_layout():
    log = _log()
    assert log.n_sessions == 3 and log.n_events == 8 and len(log) == 3
    assert log.offsets.tolist() == [0, 3, 4, 8]
    assert log.lengths.tolist() == [3, 1, 4]
    assert log.session(2).tolist() == [1, -1, 4, 2]
    assert [s.tolist() for s in log] == [[0, 1, 2], [3], [1, -1, 4, 2]]
    assert log.session_index().tolist() == [0, 0, 0, 1, 2, 2, 2, 2]
    assert log.n_items_seen() == 5
    assert log.item_counts(5).tolist() == [1, 2, 2, 1, 1]


def test_session_log_select_sessions_in_given_order():
    log = _log().select_sessions(np.array([2, 0]))
    assert [s.tolist() for s in log] == [[1, -1, 4, 2], [0, 1, 2]]
    assert log.times.tolist() == [5, 6, 7, 8, 1, 2, 3]
    mask = _log().select_sessions(np.array([True, False, True]))
    assert [s.tolist() for s in mask] == [[0, 1, 2], [1, -1, 4, 2]]


def test_session_log_select_events_drop_short_and_unknown():
    log = _log()
    kept, n = log.drop_unknown()
    assert n == 1
    assert [s.tolist() for s in kept] == [[0, 1, 2], [3], [1, 4, 2]]
    assert kept.times.tolist() == [1, 2, 3, 4, 5, 7, 8]
    assert [s.tolist() for s in kept.drop_short(2)] == [[0, 1, 2], [1, 4, 2]]
    emptied = log.select_events(log.items != 3)
    assert emptied.lengths.tolist() == [3, 0, 4]


def test_session_log_validates_layout():
    with pytest.raises(ValueError):
        SessionLog(offsets=np.array([0, 2]), items=np.array([1]))
    with pytest.raises(ValueError):
        SessionLog(offsets=np.array([1, 2]), items=np.array([1, 2]))
    with pytest.raises(ValueError):
        SessionLog(offsets=np.array([0, 1]), items=np.array([1]), times=np.array([1.0, 2.0]))


# ----------------------------------------------------------------------------- Samples
def test_samples_from_sessions_every_position():
    s = Samples.from_sessions(SessionLog.from_sequences([[5, 6, 7], [8], [1, 2]]))
    assert [p.tolist() for p in s.prefixes] == [[5], [5, 6], [1]]
    assert s.labels.tolist() == [6, 7, 2]


def test_samples_last_item():
    s = Samples.last_item(SessionLog.from_sequences([[5, 6, 7], [8], [1, 2]]))
    assert [p.tolist() for p in s.prefixes] == [[5, 6], [1]]
    assert s.labels.tolist() == [7, 2]
    assert len(s) == 2


def test_samples_need_one_label_per_prefix():
    with pytest.raises(ValueError):
        Samples(SessionLog.from_sequences([[1]]), np.array([1, 2]))
