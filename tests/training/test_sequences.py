"""Padded sequence batches: the target layouts against a naive per-session loop,
left truncation, masking statistics, the window layout's next-T targets, the optional
user array, shuffling and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec.data.sessions import SessionLog
from seqrec.training.sequences import MASK, PAD, SequenceBatcher


def _log(sessions: list[list[int]]) -> SessionLog:
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sessions])])
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions])
    return SessionLog(offsets=offsets, items=items)


def _random_sessions(seed: int, n: int = 60, n_items: int = 30) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n_items, rng.integers(1, 12)).tolist() for _ in range(n)]


def _row(seq: list[int], T: int) -> list[int]:
    seq = seq[-T:]
    return [PAD] * (T - len(seq)) + seq


def naive(sessions: list[list[int]], T: int, layout: str, n_targets: int = 1) -> tuple[list, list]:
    """Per-session loop reference (unshuffled order)."""
    inputs, targets = [], []
    for s in sessions:
        if len(s) < 2:
            continue
        if layout == "causal":
            inputs.append(_row(s[:-1], T))
            targets.append(_row(s[1:], T))
        elif layout == "window":
            for j in range(len(s) - 1):
                inputs.append(_row(s[: j + 1], T))
                nxt = s[j + 1 : j + 1 + n_targets]
                targets.append(nxt + [PAD] * (n_targets - len(nxt)))
        else:  # last
            for j in range(len(s) - 1):
                inputs.append(_row(s[: j + 1], T))
                targets.append([PAD] * (T - 1) + [s[j + 1]])
    return inputs, targets


def _all(b: SequenceBatcher, epoch: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    parts = list(b.batches(epoch, batch_size))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@pytest.mark.parametrize("layout", ["causal", "last"])
@pytest.mark.parametrize("T", [1, 3, 20])
def test_layouts_match_the_loop_reference(layout: str, T: int) -> None:
    sessions = _random_sessions(1)
    b = SequenceBatcher(_log(sessions), T, layout, shuffle=False)
    x, y = _all(b, 0, 7)
    want_x, want_y = naive(sessions, T, layout)
    assert x.tolist() == want_x and y.tolist() == want_y
    assert b.n_samples == len(want_x)
    assert b.plan(0).n_targets == int((y >= 0).sum())


def test_literal_causal_and_last_windows() -> None:
    log = _log([[1, 2, 3], [7], [10, 11, 12, 13, 14]])
    x, y = _all(SequenceBatcher(log, 3, "causal", shuffle=False), 0, 10)
    assert x.tolist() == [[PAD, 1, 2], [11, 12, 13]]  # left-truncated: the most recent kept
    assert y.tolist() == [[PAD, 2, 3], [12, 13, 14]]
    x, y = _all(SequenceBatcher(log, 2, "last", shuffle=False), 0, 10)
    assert x.tolist() == [[PAD, 1], [1, 2], [PAD, 10], [10, 11], [11, 12], [12, 13]]
    assert y[:, -1].tolist() == [2, 3, 11, 12, 13, 14] and np.all(y[:, 0] == PAD)


@pytest.mark.parametrize(("T", "n_targets"), [(1, 1), (3, 2), (5, 3), (4, 20)])
def test_window_layout_matches_the_loop_reference(T: int, n_targets: int) -> None:
    sessions = _random_sessions(4)
    b = SequenceBatcher(_log(sessions), T, "window", shuffle=False, n_targets=n_targets)
    x, y = _all(b, 0, 7)
    want_x, want_y = naive(sessions, T, "window", n_targets)
    assert x.tolist() == want_x and y.tolist() == want_y
    assert y.shape == (len(want_x), n_targets)
    assert b.plan(0).n_targets == int((y >= 0).sum())


def test_literal_window_samples_and_users() -> None:
    """L = 3 items -> the next T = 2; short windows left-padded, PAD past the end."""
    log = _log([[1, 2, 3, 4, 5], [7], [10, 11]])
    b = SequenceBatcher(log, 3, "window", n_targets=2, shuffle=False, users=np.array([4, 9, -1]))
    parts = list(b.batches(0, 3))
    assert [len(p) for p in parts] == [3, 3]  # inputs, targets, users
    x, y, u = (np.concatenate([p[i] for p in parts]).tolist() for i in range(3))
    assert x == [[PAD, PAD, 1], [PAD, 1, 2], [1, 2, 3], [2, 3, 4], [PAD, PAD, 10]]
    assert y == [[2, 3], [3, 4], [4, 5], [5, PAD], [11, PAD]]
    assert u == [4, 4, 4, 4, -1]  # the user of each sample's session
    assert b.plan(0).n_targets == 8
    shuffled = SequenceBatcher(log, 3, "window", n_targets=2, seed=1, users=np.array([4, 9, -1]))
    xs, _, us = next(iter(shuffled.batches(0, 5)))
    for row, user in zip(xs.tolist(), us.tolist(), strict=True):  # users follow their rows
        assert user == (-1 if row[-1] >= 10 else 4)


def test_masked_layout_consistency_and_rate() -> None:
    sessions = _random_sessions(2, n=400)
    b = SequenceBatcher(_log(sessions), 6, "masked", mask_prob=0.3, seed=5, shuffle=False)
    x, y = _all(b, 0, 64)
    kept = [s for s in sessions if len(s) >= 2]
    for s, xr, yr in zip(kept, x, y, strict=True):
        orig = np.asarray(_row(s, 6))
        hit = xr == MASK
        assert hit.any()  # every row has something to predict
        assert np.array_equal(yr[hit], orig[hit])  # targets: the masked items
        assert np.all(yr[~hit] == PAD) and np.array_equal(xr[~hit], orig[~hit])
    assert b.plan(0).n_targets == int((y >= 0).sum())
    # the rate over all window positions is ~mask_prob (plus the forced last masks)
    rate = (x == MASK).sum() / (x != PAD).sum()
    assert 0.27 < rate < 0.40


def test_masked_row_without_a_draw_gets_its_last_item_masked() -> None:
    log = _log([[1, 2, 3, 4]] * 50)
    b = SequenceBatcher(log, 4, "masked", mask_prob=1e-9, seed=0, shuffle=False)
    x, y = _all(b, 0, 50)
    assert np.all(x[:, -1] == MASK) and np.all(y[:, -1] == 4) and np.all(y[:, :-1] == PAD)


def test_last_item_samples_mask_only_the_last_item_of_their_windows() -> None:
    """mask_last_prob: that share of the windows (drawn per epoch) has exactly one MASK,
    at its last item (BERT4Rec's last-item samples); the others are masked as before,
    and mask_last_prob 0 leaves the plan of every epoch unchanged."""
    sessions = [s for s in _random_sessions(3, n=600) if len(s) >= 4]
    log = _log(sessions)
    base = SequenceBatcher(log, 6, "masked", mask_prob=0.5, seed=5, shuffle=False)
    zero = SequenceBatcher(log, 6, "masked", mask_prob=0.5, mask_last_prob=0.0, seed=5,
                           shuffle=False)  # fmt: skip
    assert np.array_equal(base.plan(1).masked, zero.plan(1).masked)
    every = SequenceBatcher(log, 6, "masked", mask_prob=0.5, mask_last_prob=1.0, seed=5,
                            shuffle=False)  # fmt: skip
    x, y = _all(every, 0, 64)
    assert np.all(x[:, -1] == MASK) and np.all((x == MASK).sum(1) == 1)
    assert np.array_equal(y[:, -1], [s[-1] for s in sessions]) and np.all(y[:, :-1] == PAD)
    half = SequenceBatcher(log, 6, "masked", mask_prob=0.5, mask_last_prob=0.3, seed=5,
                           shuffle=False)  # fmt: skip
    x, y = _all(half, 0, 64)
    xb, _ = _all(base, 0, 64)
    only_last = ((x == MASK).sum(1) == 1) & (x[:, -1] == MASK)
    assert 0.25 < only_last.mean() < 0.45  # 0.3 drawn + base rows that happen to be so
    changed = np.any(x != xb, axis=1)
    assert np.all(only_last[changed])  # every row that changed is a last-item sample
    assert half.plan(0).n_targets == int((y >= 0).sum())
    with pytest.raises(ValueError, match="mask_last_prob"):
        SequenceBatcher(log, 6, "masked", mask_last_prob=1.5)


@pytest.mark.parametrize("layout", ["causal", "masked", "last", "window"])
def test_shuffle_is_a_deterministic_permutation_per_epoch(layout: str) -> None:
    log = _log(_random_sessions(3))
    b1 = SequenceBatcher(log, 5, layout, seed=11)
    b2 = SequenceBatcher(log, 5, layout, seed=11)
    x0, y0 = _all(b1, 0, 8)
    x0b, y0b = _all(b2, 0, 8)
    assert np.array_equal(x0, x0b) and np.array_equal(y0, y0b)  # same seed, same epoch
    x1, _ = _all(b1, 1, 8)
    assert not np.array_equal(x0, x1)  # another epoch, another order
    order = b1.plan(1).order
    assert sorted(order.tolist()) == list(range(b1.n_samples))
    if layout != "masked":  # the same samples, reordered
        xs, _ = _all(SequenceBatcher(log, 5, layout, shuffle=False), 0, 8)
        assert np.array_equal(xs[order], x1)


def test_big_log_is_planned_without_a_loop_per_event() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, 100_000)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    log = SessionLog(offsets=offsets, items=rng.integers(0, 5000, offsets[-1]))
    b = SequenceBatcher(log, 20, "last", seed=1)
    assert b.n_samples == int((lengths - 1).sum())
    x, y = next(iter(b.batches(0, 256)))
    assert x.shape == y.shape == (256, 20)
    # the last input and the target are consecutive events of one session
    assert np.all(x[:, -1] >= 0) and np.all(y[:, -1] >= 0)


def test_bad_arguments() -> None:
    log = _log([[1, 2]])
    with pytest.raises(ValueError, match="max_len"):
        SequenceBatcher(log, 0)
    with pytest.raises(ValueError, match="layout"):
        SequenceBatcher(log, 3, "bidirectional")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask_prob"):
        SequenceBatcher(log, 3, "masked", mask_prob=0.0)
    with pytest.raises(ValueError, match="unknown items"):
        SequenceBatcher(_log([[1, -1]]), 3)
    with pytest.raises(ValueError, match="n_targets"):
        SequenceBatcher(log, 3, "last", n_targets=2)
    with pytest.raises(ValueError, match="one code per session"):
        SequenceBatcher(log, 3, users=np.array([1, 2]))
