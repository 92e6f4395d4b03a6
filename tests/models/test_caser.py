"""Caser: the convolutions' shapes and values by hand, the window samples with their
users, user vectors for known users and zero for unknown ones, save / load of the user
index, config errors, and learning a deterministic chain."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, ModelFileError
from seqrec.models import load_model
from seqrec.models.caser import Caser, CaserConfig, CaserNet
from seqrec.nn.padding import PAD
from seqrec.training import build_task

N = 20


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: one thread is fastest on a busy box
    yield
    torch.set_num_threads(previous)


def chain(n_sessions: int = 300, users: int | None = None) -> SessionLog:
    """Item k is always followed by k + 1 (mod N); ``users``: session s belongs to user
    ``u{s % users}`` (its session id)."""
    rng = np.random.default_rng(0)
    seqs = [
        list((s + np.arange(n)) % N)
        for s, n in zip(rng.integers(0, N, n_sessions), rng.integers(3, 9, n_sessions), strict=True)
    ]
    log = SessionLog.from_sequences(seqs)
    if users is None:
        return log
    ids = np.array([f"u{s % users}" for s in range(n_sessions)], dtype=object)
    return replace(log, session_ids=ids)


def test_shapes_of_every_filter_the_fc_input_and_the_query() -> None:
    L, d, n_h, n_v, B = 5, 6, 3, 2, 4
    net = CaserNet(N, 7, CaserConfig(hidden=d, L=L, n_h=n_h, n_v=n_v), seed=0).eval()
    e = torch.randn(B, L, d)
    for h, conv in enumerate(net.horizontal, 1):  # before pooling: L - h + 1 positions
        assert conv.weight.shape == (n_h, 1, h, d)
        assert conv(e.unsqueeze(1)).shape == (B, n_h, L - h + 1, 1)
    o_h, o_v = net.conv_features(e)
    assert [tuple(o.shape) for o in o_h] == [(B, n_h)] * L  # max-pooled: one value per filter
    assert o_v is not None and o_v.shape == (B, n_v * d)
    assert net.fc_in == n_h * L + n_v * d == net.fc.in_features == 27
    seqs = torch.tensor([[1, 2, 3, 4, 5]] * B)
    assert net(seqs, torch.tensor([0, 1, -1, 6])).shape == (B, 1, 2 * d)  # [z; P_u]
    assert net.out_emb.shape == (N, 2 * d) and net.out_bias.shape == (N,)
    no_users = CaserNet(N, None, CaserConfig(hidden=d, L=L, n_h=n_h, n_v=0), seed=0)
    assert not hasattr(no_users, "user_emb") and no_users.vertical is None
    assert no_users.fc_in == n_h * L and no_users(seqs).shape == (B, 1, d)
    assert no_users.out_emb.shape == (N, d)


def test_convolutions_by_hand() -> None:
    """L = 3, d = 2, one filter of each kind, all-ones horizontal filters (bias 0) and a
    vertical filter (1, 2, 3) (bias 0.5), on the image of history [PAD, 4, 7]."""
    net = CaserNet(10, None, CaserConfig(hidden=2, L=3, n_h=1, n_v=1), seed=0).eval()
    with torch.no_grad():
        net.item_emb[4] = torch.tensor([1.0, -2.0])
        net.item_emb[7] = torch.tensor([3.0, 0.5])
        for conv in net.horizontal:
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        assert net.vertical is not None
        net.vertical.weight.copy_(torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 3, 1))
        net.vertical.bias.fill_(0.5)
        e = net.image(torch.tensor([[4, 7]]))  # shorter than L: left-padded
        o_h, o_v = net.conv_features(e)
    torch.testing.assert_close(e[0], torch.tensor([[0.0, 0.0], [1.0, -2.0], [3.0, 0.5]]))
    # row sums 0, -1, 3.5: h = 1 max(relu) = 3.5; h = 2 windows -1, 2.5; h = 3 the sum 2.5
    assert [float(o[0, 0]) for o in o_h] == [3.5, 2.5, 2.5]
    # vertical: 1 * row0 + 2 * row1 + 3 * row2 + 0.5 = (2 + 9 + .5, -4 + 1.5 + .5)
    torch.testing.assert_close(o_v[0], torch.tensor([11.5, -2.0]))
    with torch.no_grad():  # eval: no dropout; z = relu(fc([o_h; o_v]))
        z = net(torch.tensor([[4, 7]]))[0, 0]
        want = torch.relu(net.fc(torch.tensor([3.5, 2.5, 2.5, 11.5, -2.0])))
    torch.testing.assert_close(z, want)


def test_long_histories_keep_their_last_L_items() -> None:
    model = Caser(hidden=8, L=3, max_len=3, n_h=2, n_epochs=1).fit(chain(30))
    long = list(range(12))
    torch.testing.assert_close(model.score([long]), model.score([long[-3:]]), rtol=0, atol=0)


def test_item_scores_are_the_output_table_plus_bias() -> None:
    net = CaserNet(N, 3, CaserConfig(hidden=4), seed=1)
    with torch.no_grad():
        net.out_bias.copy_(torch.arange(N, dtype=torch.float32))
    h = torch.randn(3, 8)
    full = net.item_scores(h)
    torch.testing.assert_close(full, h @ net.out_emb.t() + torch.arange(N))
    torch.testing.assert_close(net.item_scores(h, torch.tensor([4, 7])), full[:, [4, 7]])
    per_row = torch.tensor([[1, 2], [3, 4], [5, 6]])
    torch.testing.assert_close(net.item_scores(h, per_row), full.gather(1, per_row))


def test_training_samples_are_windows_with_the_next_T_items_and_their_user() -> None:
    log = SessionLog.from_sequences([[1, 2, 3, 4], [7], [10, 11], [5, 6]])
    log = replace(log, session_ids=np.array(["ann", "bob", "cid", "ann"], dtype=object))
    model = Caser(hidden=4, L=3, max_len=3, n_targets=2, shuffle=False, batch_size=100)
    task = build_task(model, log)
    assert model.user_index_.external_ids == ["ann", "bob", "cid"]
    inputs, targets, users = (t.tolist() for t in next(iter(task.batches(0))))
    assert inputs == [[PAD, PAD, 1], [PAD, 1, 2], [1, 2, 3], [PAD, PAD, 10], [PAD, PAD, 5]]
    assert targets == [[2, 3], [3, 4], [4, PAD], [11, PAD], [6, PAD]]
    assert users == [0, 0, 0, 2, 0]  # "ann" twice: one user
    assert task.n_events(0) == 7  # target positions
    plain = build_task(Caser(hidden=4, L=3, user_embedding=False, shuffle=False), log)
    assert len(next(iter(plain.batches(0)))) == 2  # no user array for a net without users


def test_known_users_get_their_vector_and_unknown_ones_zero() -> None:
    model = Caser(hidden=8, n_h=2, n_epochs=1).fit(chain(60, users=5))
    d = 8
    hist = [[1, 2, 3]] * 4
    q = model.query(hist, users=["u3", "nobody", None, "u0"])
    p = model.net_.user_emb.detach()
    rows = model.user_index_.encode(["u3", "u0"])
    torch.testing.assert_close(q[0, d:], p[rows[0]], rtol=0, atol=0)
    torch.testing.assert_close(q[3, d:], p[rows[1]], rtol=0, atol=0)
    assert torch.count_nonzero(q[0, d:]) > 0
    torch.testing.assert_close(q[1:3, d:], torch.zeros(2, d), rtol=0, atol=0)
    torch.testing.assert_close(q[:, :d], q[:1, :d].expand(4, d))  # the same z
    none = model.score(hist)
    scores = model.score(hist, users=["u3", "nobody", None, "u0"])
    torch.testing.assert_close(scores[1:3], none[1:3], rtol=0, atol=0)  # [z; 0]
    assert not torch.allclose(scores[0], none[0])
    with pytest.raises(ConfigError, match="2 user ids for 4 histories"):
        model.score(hist, users=["u1", "u2"])


def test_without_session_ids_or_user_embedding_users_change_nothing() -> None:
    model = Caser(hidden=8, n_h=2, n_epochs=1).fit(chain(40))  # no session_ids
    assert len(model.user_index_) == 0 and model.net_.user_emb.shape == (1, 8)
    hist = [[1, 2], [3]]
    torch.testing.assert_close(model.score(hist, users=["u1", "u2"]), model.score(hist))
    plain = Caser(hidden=8, n_h=2, n_epochs=1, user_embedding=False).fit(chain(40, users=4))
    assert len(plain.user_index_) == 0 and plain.net_.query_size == 8
    torch.testing.assert_close(plain.score(hist, users=["u1", "u2"]), plain.score(hist))


def test_save_load_is_exact_with_the_user_index(tmp_path) -> None:
    log = chain(50, users=6)
    ids = np.array(["ümlaut", "用户 7", "", "a\tb", "x", "\u00e9"], dtype=object)
    log = replace(log, session_ids=ids[np.arange(50) % 6])
    model = Caser(hidden=8, n_h=2, n_epochs=1).fit(log)
    assert model.user_index_.external_ids == list(ids)
    loaded = load_model(model.save(tmp_path / "m"))
    assert isinstance(loaded, Caser) and loaded.user_index_ == model.user_index_
    hist, users = [[1, 2, 3], [4], []], ["用户 7", "", "nobody"]
    torch.testing.assert_close(
        loaded.score(hist, users=users), model.score(hist, users=users), rtol=0, atol=0
    )


def test_the_user_index_is_saved_beside_the_weights(tmp_path) -> None:
    path = Caser(hidden=8, n_h=2, n_epochs=1).fit(chain(30, users=3)).save(tmp_path / "m")
    assert (path / "users.json").is_file()
    (path / "users.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(ModelFileError, match="user index"):
        load_model(path)
    (path / "users.json").unlink()
    with pytest.raises(ModelFileError, match="user index"):
        load_model(path)


def test_bad_configs_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="layout"):
        Caser(layout="causal")
    with pytest.raises(ConfigError, match=r"max_len \(4\) must be >= L \(5\)"):
        Caser(max_len=4)
    with pytest.raises(ConfigError, match="n_targets"):
        Caser(layout="last")  # the default n_targets = 3 needs the window layout
    assert Caser(layout="last", n_targets=1).training_keys["layout"] == "last"
    with pytest.raises(ConfigError, match="not both 0"):
        Caser(n_h=0, n_v=0)


@pytest.mark.parametrize(
    ("keys", "top"),
    [
        ({"n_targets": 1}, 1),  # the paper's BCE with 3 negatives, next item only
        ({}, 3),  # the paper: T = 3 targets, BCE with 3 negatives per target
        ({"loss": "cross-entropy", "negatives": "full", "n_targets": 1}, 1),
        ({"layout": "last", "n_targets": 1}, 1),
    ],
)
def test_learns_a_deterministic_chain(keys: dict, top: int, tmp_path) -> None:
    """After items ..., k the next ``top`` items are k + 1 .. k + top: the model's top
    ``top`` are exactly those."""
    base = {"hidden": 16, "dropout": 0.1, "n_epochs": 15, "learning_rate": 0.01,
            "batch_size": 64}  # fmt: skip
    model = Caser({**base, **keys}).fit(chain(users=30))
    prefixes = [[k, (k + 1) % N] for k in range(N)] + [[k] for k in range(N)]
    scores = model.score(prefixes)
    got = [set(r) for r in scores.topk(top, dim=1).indices.tolist()]
    want = [{(p[-1] + j) % N for j in range(1, top + 1)} for p in prefixes]
    accuracy = np.mean([g == w for g, w in zip(got, want, strict=True)])
    assert accuracy >= 0.9, accuracy
    history = model.meta_["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    users = [f"u{k}" for k in range(len(prefixes))]
    loaded = load_model(model.save(tmp_path / "m"))
    torch.testing.assert_close(loaded.score(prefixes, users=users), model.score(prefixes, users))
