"""The user-item pairs task (BPR-MF's family): the loss on literal numbers, negatives
outside the user's history, exact resume, determinism, users shared by session id."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.base import user_rows
from seqrec.models.bprmf import BPRMFConfig, BPRMFNet
from seqrec.trainconfig import LossConfig, SamplerConfig, TrainConfig, UserItemConfig
from seqrec.training.loop import LoopOptions, run_training
from seqrec.training.user_item_task import UserItemTask, in_sorted


def _log(sequences: list[list[int]], ids: list[str] | None = None) -> SessionLog:
    log = SessionLog.from_sequences(sequences)
    if ids is None:
        return log
    return dataclasses.replace(log, session_ids=np.array(ids, dtype=object))


def _task(
    log: SessionLog,
    n_items: int,
    *,
    net: BPRMFNet | None = None,
    loss: str = "bpr",
    n_sample: int = 1,
    **family: object,
) -> UserItemTask:
    n_users = int(user_rows(log)[1].max()) + 1
    net = net or BPRMFNet(n_users, n_items, BPRMFConfig(factors=4), seed=3)
    cfg = TrainConfig(batch_size=4, shuffle=True, optimizer="adam", learning_rate=0.05, seed=11)
    return UserItemTask(
        net,
        log,
        n_items,
        cfg,
        LossConfig(loss=loss),
        SamplerConfig(n_sample=n_sample),
        UserItemConfig(**family),  # type: ignore[arg-type]
    )


def test_bpr_loss_and_l2_match_a_naive_reference_on_literal_numbers() -> None:
    log = _log([[0, 2], [2]])
    net = BPRMFNet(2, 3, BPRMFConfig(factors=2), seed=0)
    with torch.no_grad():
        net.P.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        net.Q.copy_(torch.tensor([[1.0, 1.0], [0.5, -1.0], [2.0, 0.0]]))
        net.b.copy_(torch.tensor([[0.1], [0.0], [-0.2]]))
    task = _task(log, 3, net=net, reg=0.1, exclude_history=False)
    # user 0: positive 0, negative 1; user 1: positive 2, negative 0
    task.negatives = lambda users, pos: torch.tensor([[1], [0]])  # type: ignore[method-assign]
    loss, n = task.train_step((torch.tensor([0, 1]), torch.tensor([0, 2])))
    x00, x01 = 1 * 1 + 0 * 1 + 0.1, 1 * 0.5 + 0 * -1 + 0.0  # 1.1, 0.5
    x12, x10 = 0 * 2 + 2 * 0 - 0.2, 0 * 1 + 2 * 1 + 0.1  # -0.2, 2.1
    bpr = [-math.log(1 / (1 + math.exp(-(x00 - x01)))), -math.log(1 / (1 + math.exp(-(x12 - x10))))]
    l2 = [
        (1 + 0) + (1 + 1 + 0.01) + (0.25 + 1 + 0),  # |p_0|^2 + |q_0|^2 + b_0^2 + |q_1|^2 + b_1^2
        (0 + 4) + (4 + 0 + 0.04) + (1 + 1 + 0.01),  # |p_1|^2 + |q_2|^2 + b_2^2 + |q_0|^2 + b_0^2
    ]
    expected = sum(bpr) / 2 + 0.1 * sum(l2) / 2
    assert n == 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)  # 1.41605 + 0.7155


def test_uniform_negatives_avoid_the_users_whole_history() -> None:
    # user "a" (two sessions) holds items 0..7 of 10; user "b" only item 9
    log = _log([[0, 1, 2, 3], [4, 5, 6, 7], [9]], ids=["a", "a", "b"])
    task = _task(log, 10, n_sample=50)
    assert task.keys.tolist() == sorted([0, 1, 2, 3, 4, 5, 6, 7, 19])  # user * 10 + item
    users = torch.tensor([0, 0, 1])
    neg = task.negatives(users, torch.tensor([0, 7, 9]))
    assert set(neg[:2].ravel().tolist()) <= {8, 9}  # outside a's history: 8 and 9 only
    assert 9 not in neg[2].tolist() and len(set(neg[2].tolist())) > 3
    off = _task(log, 10, n_sample=200, exclude_history=False)
    drawn = off.negatives(users, torch.tensor([0, 7, 9]))
    assert (drawn != torch.tensor([[0], [7], [9]])).all()  # never the positive
    assert set(drawn[0].tolist()) == set(range(1, 10))  # the history is allowed then


def test_in_sorted() -> None:
    keys = torch.tensor([2, 5, 9])
    got = in_sorted(torch.tensor([[9, 3], [2, 10]]), keys)
    assert got.tolist() == [[True, False], [True, False]]
    assert not in_sorted(torch.tensor([1]), torch.tensor([], dtype=torch.long)).any()


def test_sessions_with_one_id_share_a_user_row() -> None:
    log = _log([[0], [1], [2], [3]], ids=["x", "y", "x", "z"])
    index, rows = user_rows(log)
    assert rows.tolist() == [0, 1, 0, 2] and index.external_ids == ["x", "y", "z"]
    assert _task(log, 4).users.tolist() == [0, 1, 0, 2]  # one user per event
    anonymous, rows = user_rows(_log([[0], [1]]))
    assert len(anonymous) == 0 and rows.tolist() == [0, 1]


BLOCKS = [[u % 2 * 5 + (u + k) % 5 for k in range(3)] for u in range(12)]  # two item groups


def _run(tmp: Path | None, epochs: int, resume: bool = False, **kw: object) -> UserItemTask:
    task = _task(_log(BLOCKS), 10, **kw)  # type: ignore[arg-type]
    loop = LoopOptions(n_epochs=epochs, checkpoint_dir=tmp, resume=resume, progress=False)
    run_training(task, loop)
    return task


@pytest.mark.parametrize(
    "kw",
    [{"reg": 0.01}, {"negatives": "full", "loss": "cross-entropy"}, {"n_sample": 3, "loss": "bce"}],
)
def test_resume_is_exact_and_runs_are_deterministic(tmp_path: Path, kw: dict) -> None:
    before = torch.get_rng_state()
    full = _run(None, 3, **kw)
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is left alone
    _run(tmp_path, 1, **kw)
    resumed = _run(tmp_path, 3, resume=True, **kw)
    again = _run(None, 3, **kw)
    a, b, c = full.state_dict(), resumed.state_dict(), again.state_dict()
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]), k


def test_it_learns_every_users_items() -> None:
    task = _run(None, 100)
    net = task.net
    with torch.no_grad():
        scores = net.item_scores(net.user_vectors(torch.arange(12)))  # (12, 10)
    top = scores.topk(3, dim=1).indices
    for u in range(12):  # every user's own items rank first
        assert set(top[u].tolist()) == set(BLOCKS[u])


def test_bad_family_settings_are_config_errors() -> None:
    log = _log([[0, 1]])
    with pytest.raises(ConfigError, match="reg must be"):
        UserItemConfig(reg=-1.0).validate()
    with pytest.raises(ConfigError, match="logq"):
        n = _task(log, 3).net
        UserItemTask(
            n, log, 3, TrainConfig(), LossConfig(logq=1.0), SamplerConfig(), UserItemConfig()
        )
