"""Batch width: every batch is cut to its longest window (trim_batch), which leaves the
states of real positions unchanged, and ``sort_pool`` groups histories of similar length
into batches while still visiting every sample once per epoch (issue 17: a Beauty
history is 5.7 items on average of a 50-item window)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.evaluation import VALID_METRICS, validator
from seqrec.models.sasrec import SASRec
from seqrec.trainconfig import MONITORS
from seqrec.training import build_task
from seqrec.training.sequences import PAD, SequenceBatcher, trim_batch


def _log(sessions: list[list[int]]) -> SessionLog:
    return SessionLog.from_sequences(sessions)


def test_trim_drops_only_the_all_pad_leading_columns() -> None:
    x = np.array([[PAD, PAD, PAD, 1, 2], [PAD, PAD, 3, 4, 5]])
    y = np.array([[PAD, PAD, PAD, 2, 6], [PAD, PAD, 4, 5, 7]])
    tx, ty = trim_batch(x, y)
    assert tx.tolist() == [[PAD, 1, 2], [3, 4, 5]] and ty.tolist() == [[PAD, 2, 6], [4, 5, 7]]
    # a target in a column whose input is PAD keeps that column
    y2 = y.copy()
    y2[0, 1] = 9
    assert trim_batch(x, y2)[0].shape == (2, 4)
    # window layout: targets of another width stay whole; users pass through
    users = np.array([3, 8])
    tx, ty, tu = trim_batch(x, np.array([[2, 6], [7, PAD]]), users)
    assert tx.shape == (2, 3) and ty.tolist() == [[2, 6], [7, PAD]] and tu is users
    # an all-PAD batch keeps one column
    assert trim_batch(np.full((2, 4), PAD), np.full((2, 4), PAD))[0].shape == (2, 1)


@pytest.mark.parametrize("positions", ["absolute", "recent"])
def test_trimmed_batches_give_the_same_states_for_real_positions(positions: str) -> None:
    model = SASRec(hidden=8, n_blocks=2, n_heads=2, positions=positions, dropout=0.0)
    model.build_net(20, torch.device("cpu"), 0)
    model.net_.eval()
    x = np.array([[PAD] * 6 + [1, 2], [PAD] * 5 + [3, 4, 5]])
    y = np.array([[PAD] * 6 + [2, 6], [PAD] * 5 + [4, 5, 7]])
    tx, _ = trim_batch(x, y)
    with torch.no_grad():
        full = model.net_(torch.from_numpy(x))[:, -tx.shape[1] :]
        cut = model.net_(torch.from_numpy(tx))
    real = torch.from_numpy(tx >= 0)
    torch.testing.assert_close(cut[real], full[real], rtol=1e-5, atol=1e-6)


def test_the_task_yields_trimmed_batches() -> None:
    sessions = [[1, 2, 3]] * 8 + [[4, 5]] * 8
    model = SASRec(hidden=8, n_blocks=1, max_len=10, batch_size=8, shuffle=False)
    task = build_task(model, _log(sessions))
    widths = [b[0].shape[1] for b in task.batches(0)]
    assert widths == [2, 1]  # causal: 2 and 1 input items, not max_len 10


def _lengths(b: SequenceBatcher, log: SessionLog, epoch: int, bs: int) -> list[np.ndarray]:
    plan = b.plan(epoch)
    lens = np.minimum(log.lengths - 1, b.T)  # causal windows
    return [lens[plan.order[lo : lo + bs]] for lo in range(0, len(plan.order), bs)]


def test_sort_pool_groups_similar_lengths_and_keeps_every_sample() -> None:
    rng = np.random.default_rng(0)
    sessions = [rng.integers(0, 50, rng.integers(2, 40)).tolist() for _ in range(1000)]
    log = _log(sessions)
    plain = SequenceBatcher(log, 50, "causal", seed=3)
    pooled = SequenceBatcher(log, 50, "causal", seed=3, sort_pool=100, batch_size=32)
    order = pooled.plan(0).order
    assert sorted(order.tolist()) == list(range(1000))  # a permutation: each sample once
    spread = lambda b: np.mean([g.max() - g.min() for g in _lengths(b, log, 0, 32)])  # noqa: E731
    assert spread(pooled) < 0.2 * spread(plain)
    # the batch order is shuffled (not shortest first) and differs between epochs
    maxima = [g.max() for g in _lengths(pooled, log, 0, 32)]
    assert maxima != sorted(maxima)
    assert not np.array_equal(order, pooled.plan(1).order)
    assert np.array_equal(order, pooled.plan(0).order)  # deterministic per epoch


def test_sort_pool_needs_a_batch_size_and_is_a_config_key() -> None:
    with pytest.raises(ValueError, match="sort_pool"):
        SequenceBatcher(_log([[1, 2]]), 5, sort_pool=4)
    with pytest.raises(ConfigError, match="sort_pool"):
        build_task(SASRec(hidden=8, sort_pool=-1), _log([[1, 2, 3]]))


def test_leave_one_out_validation_excludes_history_and_reports_ndcg() -> None:
    # item 1 is in the history: excluded, the target 2 ranks first
    model = SASRec(hidden=8, n_blocks=1, n_epochs=1, batch_size=4).fit(
        _log([[1, 2, 3, 1, 2], [3, 1, 2, 3]])
    )
    prefixes = _log([[1, 1, 1]])
    loo = Samples(prefixes, np.array([2]), exclude_history=True)
    plain = Samples(prefixes, np.array([2]))
    res_loo, res_plain = validator(model, loo)(), validator(model, plain)()
    assert set(res_loo) == set(VALID_METRICS) == set(MONITORS)
    scores = model.score([[1, 1, 1]])[0]
    others = scores.clone()
    others[1] = -torch.inf
    rank_loo = int((others >= scores[2]).sum())
    assert res_loo["ndcg@10"] == pytest.approx(1 / np.log2(1 + rank_loo) if rank_loo <= 10 else 0)
    rank_plain = int((scores >= scores[2]).sum())
    assert res_plain["recall@20"] == float(rank_plain <= 20)


def test_monitor_is_validated_and_watched() -> None:
    with pytest.raises(ConfigError, match="monitor"):
        SASRec(monitor="auc")
    log = _log([[1, 2, 3, 4], [2, 3, 4, 1], [3, 4, 1, 2]] * 4)
    valid = Samples(_log([[1, 2], [2, 3]]), np.array([3, 4]), exclude_history=True)
    model = SASRec(hidden=8, n_blocks=1, n_epochs=3, batch_size=4, monitor="ndcg@10", patience=5)
    model.fit(log, valid)
    assert model.training_keys["monitor"] == "ndcg@10"
    assert all("ndcg@10" in h for h in model.meta_["history"])
    # each epoch's training and validation seconds are kept (time to the best epoch)
    assert all(h["seconds"] > 0 and h["valid_seconds"] > 0 for h in model.meta_["history"])
