"""Session-parallel batching invariants."""

import itertools

import numpy as np
import pytest

from seqrec.data.sessions import SessionLog
from seqrec.training.batching import session_parallel_plan


def _check_plan(log: SessionLog, batch_size: int, order=None) -> None:
    plan = session_parallel_plan(log, batch_size, order)
    order = np.arange(log.n_sessions) if order is None else order
    # every (input, target) pair of every session appears exactly once, in order, per slot
    expected = [
        (int(s[j]), int(s[j + 1]))
        for k in order
        for s in [log.session(k)]
        for j in range(len(s) - 1)
    ]
    assert plan.n_pairs == len(expected)
    got = []
    for slot in range(batch_size):
        seq = []
        for t in range(plan.n_steps):
            if plan.targets[t, slot] >= 0:
                seq.append(
                    (
                        t,
                        int(plan.inputs[t, slot]),
                        int(plan.targets[t, slot]),
                        bool(plan.resets[t, slot]),
                    )
                )
        got.extend((i, o) for _, i, o, _ in seq)
        # a slot resets exactly when a new session starts in it: consecutive pairs of one
        # session chain (target of step t == input of step t+1) and do not reset
        for (t0, _, o0, _), (t1, i1, _, r1) in itertools.pairwise(seq):
            assert t1 == t0 + 1, "a slot never idles before its last session"
            if not r1:
                assert i1 == o0
        if seq:
            assert seq[0][3], "the first step of a slot is a reset"
    assert sorted(got) == sorted(expected)
    # number of resets == number of sessions with at least one pair
    assert int(plan.resets.sum()) == int((log.lengths[order] >= 2).sum())
    # idle slots only at the end, and once idle a slot stays idle
    active = plan.targets >= 0
    for slot in range(batch_size):
        col = active[:, slot]
        if (~col).any():
            first_idle = int(np.argmin(col))
            assert not col[first_idle:].any()


def test_small_literal_plan():
    log = SessionLog.from_sequences([[1, 2, 3], [4, 5], [6], [7, 8, 9, 10], [11, 12]])
    plan = session_parallel_plan(log, 2)
    assert plan.inputs.tolist() == [[1, 4], [2, 7], [11, 8], [-1, 9]]
    assert plan.targets.tolist() == [[2, 5], [3, 8], [12, 9], [-1, 10]]
    assert plan.resets.tolist() == [[True, True], [False, True], [True, False], [False, False]]
    _check_plan(log, 2)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 50])
def test_random_logs_invariants(batch_size):
    rng = np.random.default_rng(batch_size)
    seqs = [list(rng.integers(0, 30, size=rng.integers(1, 9))) for _ in range(40)]
    log = SessionLog.from_sequences(seqs)
    _check_plan(log, batch_size)
    _check_plan(log, batch_size, order=rng.permutation(log.n_sessions))


def test_empty_and_bad_batch():
    log = SessionLog.from_sequences([[1], [2]])
    plan = session_parallel_plan(log, 4)
    assert plan.n_steps == 0 and plan.n_pairs == 0
    with pytest.raises(ValueError):
        session_parallel_plan(log, 0)
