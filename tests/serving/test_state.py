"""Session state <-> bytes."""

import numpy as np
import pytest

from seqrec.serving.state import HEADER_SIZE, SessionState, StateFormatError


def test_round_trip_with_hidden_state():
    st = SessionState(
        model_fp=b"m" * 8,
        catalog_fp=b"c" * 8,
        n_events=7,
        history=np.array([3, 1, 4, 1, 5], np.int32),
        hidden=np.linspace(-1, 1, 12, dtype=np.float32),
    )
    raw = st.to_bytes()
    assert len(raw) == HEADER_SIZE + 5 * 4 + 12 * 4
    back = SessionState.from_bytes(raw)
    assert back.model_fp == st.model_fp and back.catalog_fp == st.catalog_fp
    assert back.n_events == 7
    np.testing.assert_array_equal(back.history, st.history)
    np.testing.assert_array_equal(back.hidden, st.hidden)


def test_round_trip_without_hidden_state():
    back = SessionState.from_bytes(SessionState(history=np.array([2], np.int32)).to_bytes())
    assert back.hidden is None
    assert back.history.tolist() == [2]


def test_gru4rec_100_state_is_compact():
    st = SessionState(history=np.zeros(50, np.int32), hidden=np.zeros(100, np.float32))
    assert len(st.to_bytes()) == 628


@pytest.mark.parametrize("raw", [b"", b"\x01" * 10, b"\x09" + b"\x00" * 27])
def test_garbage_is_rejected(raw):
    with pytest.raises(StateFormatError):
        SessionState.from_bytes(raw)


def test_truncated_payload_is_rejected():
    raw = SessionState(history=np.arange(4, dtype=np.int32)).to_bytes()
    with pytest.raises(StateFormatError, match="header says"):
        SessionState.from_bytes(raw[:-1])
