"""BPR-MF: known users scored by their trained vector, others folded in (the closed-form
ridge regression, checked against a plain least-squares solve), blind to the order of a
history, deterministic, better than no evidence on a toy; exact save/load with the user
index."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ModelFileError
from seqrec.models import load_model
from seqrec.models.bprmf import BPRMF

# two groups of 10 items; user k reads 6 items of group k % 2
RNG = np.random.default_rng(5)
GROUPS = [list(range(10)), list(range(10, 20))]
HISTORY = [list(RNG.choice(GROUPS[u % 2], 6, replace=False)) for u in range(40)]
IDS = [f"user{u}" for u in range(40)]


def _log() -> SessionLog:
    log = SessionLog.from_sequences(HISTORY)
    return dataclasses.replace(log, session_ids=np.array(IDS, dtype=object))


@pytest.fixture(scope="module")
def model() -> BPRMF:
    cfg = {"factors": 8, "n_epochs": 40, "batch_size": 32, "learning_rate": 0.05, "reg": 0.01}
    return BPRMF(cfg).fit(_log())


def test_known_users_get_their_trained_vector_and_their_history_is_not_read(model):
    row = model.user_index_.encode(["user3"])[0]
    net = model.net_
    want = net.P[row] @ net.Q.T + net.b[:, 0]
    for history in ([1, 2], [], [15, 16, 17]):
        got = model.score([history], users=["user3"])[0]
        torch.testing.assert_close(got, want.detach())
    # an unknown id is folded in like users=None, row by row in a mixed batch
    mixed = model.score([[1, 2], [1, 2], [3]], users=["user3", "stranger", "user4"])
    torch.testing.assert_close(mixed[1], model.score([[1, 2]])[0])
    torch.testing.assert_close(mixed[0], want.detach())


def test_fold_in_is_the_ridge_regression_of_the_history_on_the_item_features(model):
    f = torch.cat([model.net_.Q, model.net_.b], dim=1).detach().double().numpy()  # (20, 9)
    n, d = f.shape
    history = [3, 7, 7, 12]
    y = np.zeros(n)
    y[[3, 7, 12]] = 1.0  # the distinct items of the history
    fc = f - f.mean(0)
    lam = model.config.fold_in_reg * np.trace(fc.T @ fc) / d
    # min |y - c - F w|^2 + lam |w|^2, the intercept c not penalised: plain least squares
    a = np.vstack(
        [np.hstack([f, np.ones((n, 1))]), np.hstack([np.sqrt(lam) * np.eye(d), 0 * f[:d, :1]])]
    )
    sol = np.linalg.lstsq(a, np.concatenate([y, np.zeros(d)]), rcond=None)[0]
    w = model.fold_in([history])[0].double().numpy()
    np.testing.assert_allclose(w, sol[:d], rtol=1e-4, atol=1e-6)
    scores = model.score([history])[0].double().numpy()
    np.testing.assert_allclose(scores, f @ sol[:d], rtol=1e-4, atol=1e-6)


def test_the_order_and_repeats_of_a_history_do_not_matter(model):
    history = [2, 5, 11, 7, 0]
    base = model.score([history])
    for other in ([0, 7, 11, 5, 2], [11, 2, 0, 5, 7], [2, 2, 5, 11, 7, 0, 0]):
        assert torch.equal(model.score([other]), base)  # exact: distinct (row, item) sums
    assert torch.equal(model.score([history]), base)  # deterministic
    assert torch.equal(model.score([[]])[0], torch.zeros(20))  # no evidence: w = 0


def test_fold_in_ranks_the_held_out_items_of_a_history_first(model):
    rng = np.random.default_rng(9)
    bias_only = model.net_.b[:, 0].detach()  # what the model knows without a history
    for group in GROUPS * 3:
        seen = list(rng.choice(group, 3, replace=False))
        held_out = sorted(set(group) - set(seen))
        scores = model.score([seen])[0].clone()
        scores[seen] = -torch.inf
        top = scores.topk(len(held_out)).indices.tolist()
        assert sorted(top) == held_out  # all 7 unseen items of the group come first

        def mean_rank(s: torch.Tensor, held_out=held_out, seen=seen) -> float:
            s = s.clone()
            s[seen] = -torch.inf
            ranks = (s[None, :] >= s[held_out][:, None]).sum(1)  # conservative ties
            return float(ranks.float().mean())

        assert mean_rank(scores) == 4.0 < mean_rank(bias_only)


def test_save_load_is_exact_with_the_user_index(model, tmp_path):
    path = model.save(tmp_path / "m")
    assert json.loads((path / "users.json").read_text()) == IDS
    loaded = load_model(path)
    assert loaded.user_index_ == model.user_index_ and loaded.n_users_ == 40
    for k, v in model.net_.state_dict().items():
        assert torch.equal(loaded.net_.state_dict()[k], v)
    histories, users = [[1, 2], [15], []], ["user7", "stranger", "user0"]
    assert torch.equal(loaded.score(histories, users=users), model.score(histories, users=users))


def test_a_broken_user_index_is_a_model_file_error(model, tmp_path):
    path = model.save(tmp_path / "m")
    (path / "users.json").write_text(json.dumps(IDS[:5]))
    with pytest.raises(ModelFileError, match="user index holds 5 users, the weights 40"):
        load_model(path)
    (path / "users.json").write_text("{")
    with pytest.raises(ModelFileError, match="corrupt user index"):
        load_model(path)
    (path / "users.json").unlink()
    with pytest.raises(ModelFileError, match="missing user index"):
        load_model(path)


def test_without_session_ids_every_session_is_an_anonymous_user(tmp_path):
    m = BPRMF(BPRMF.small_config).fit(SessionLog.from_sequences(HISTORY))
    assert m.n_users_ == 40 and len(m.user_index_) == 0
    torch.testing.assert_close(m.score([[1]], users=["0"]), m.score([[1]]))  # nobody known
    loaded = load_model(m.save(tmp_path / "m"))
    assert torch.equal(loaded.score([[1, 4]]), m.score([[1, 4]]))
