"""SR-GNN: the session graph of literal sessions with repeated items by hand (nodes,
alias, in/out adjacency with repeated edges counted or not, self-loops), the batched
forward equal to a plain per-session loop of the paper's equations, left-padding
invariance, shapes and determinism, config errors, and learning a task that needs the
click before the last."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.srgnn import SRGNN, SRGNNConfig, SRGNNNet, adjacency, session_graphs
from seqrec.nn.padding import PAD
from seqrec.training import build_task


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: one thread is fastest on a busy box
    yield
    torch.set_num_threads(previous)


def _graph(*rows: list[int], mode: str = "count"):
    T = max(len(r) for r in rows)
    seqs = torch.tensor([[PAD] * (T - len(r)) + r for r in rows])
    nodes, alias, n_nodes = session_graphs(seqs)
    a_in, a_out = adjacency(alias, nodes.shape[1], mode)
    return nodes, alias, n_nodes, a_in, a_out


def test_nodes_and_alias_of_a_session_with_repeated_items() -> None:
    nodes, alias, n_nodes, _, _ = _graph([5, 6, 5, 7, 6], [9, 9], [3])
    # row 0: distinct items 5, 6, 7 (in increasing order) are nodes 0, 1, 2
    assert nodes.tolist() == [[5, 6, 7], [9, PAD, PAD], [3, PAD, PAD]]
    assert alias.tolist() == [[0, 1, 0, 2, 1], [PAD] * 3 + [0, 0], [PAD] * 4 + [0]]
    assert n_nodes.tolist() == [3, 1, 1]
    # every real position's node holds its item
    real = alias >= 0
    seqs = torch.tensor([[5, 6, 5, 7, 6], [PAD] * 3 + [9, 9], [PAD] * 4 + [3]])
    assert torch.equal(nodes.gather(1, alias.clamp(min=0))[real], seqs[real])


def test_adjacency_by_hand_5_6_5_7_6() -> None:
    # edges 5->6, 6->5, 5->7, 7->6, each once; nodes 5, 6, 7
    # out-degrees: 5: 2 (to 6, 7), 6: 1 (to 5), 7: 1 (to 6)
    # in-degrees:  5: 1 (from 6), 6: 2 (from 5, 7), 7: 1 (from 5)
    want_out = [[0, 1 / 2, 1 / 2], [1, 0, 0], [0, 1, 0]]
    want_in = [[0, 1, 0], [1 / 2, 0, 1 / 2], [1, 0, 0]]
    for mode in ("count", "once"):  # no edge repeats: the same either way
        _, _, _, a_in, a_out = _graph([5, 6, 5, 7, 6], mode=mode)
        torch.testing.assert_close(a_out[0], torch.tensor(want_out))
        torch.testing.assert_close(a_in[0], torch.tensor(want_in))


def test_repeated_edges_are_counted_as_the_paper_says_or_once() -> None:
    # [5, 6, 5, 6, 5, 7]: 5->6 twice, 6->5 twice, 5->7 once (the module's worked example)
    _, _, _, a_in, a_out = _graph([5, 6, 5, 6, 5, 7], mode="count")
    torch.testing.assert_close(a_out[0], torch.tensor([[0, 2 / 3, 1 / 3], [1, 0, 0], [0, 0, 0]]))
    torch.testing.assert_close(a_in[0], torch.tensor([[0.0, 1, 0], [1, 0, 0], [1, 0, 0]]))
    _, _, _, a_in, a_out = _graph([5, 6, 5, 6, 5, 7], mode="once")
    torch.testing.assert_close(a_out[0], torch.tensor([[0, 1 / 2, 1 / 2], [1, 0, 0], [0, 0, 0]]))
    torch.testing.assert_close(a_in[0], torch.tensor([[0.0, 1, 0], [1, 0, 0], [1, 0, 0]]))


def test_self_loops_and_sessions_without_edges() -> None:
    # [5, 5, 6]: 5->5 and 5->6; row 1 a single click: no edge at all
    _, _, _, a_in, a_out = _graph([5, 5, 6], [4])
    torch.testing.assert_close(a_out[0], torch.tensor([[1 / 2, 1 / 2], [0, 0]]))
    torch.testing.assert_close(a_in[0], torch.tensor([[1.0, 0], [1, 0]]))
    assert a_in.shape == a_out.shape == (2, 2, 2)
    assert not a_in[1].any() and not a_out[1].any()
    # rows of nodes with edges sum to one
    _, _, _, a_in, a_out = _graph([1, 2, 1, 1, 3, 2, 2, 1])
    torch.testing.assert_close(a_out[0].sum(1), torch.ones(3))
    torch.testing.assert_close(a_in[0].sum(1), torch.ones(3))


def _naive(net: SRGNNNet, session: list[int], mode: str) -> torch.Tensor:
    """s_h of one session, straight from the paper's equations with Python loops."""
    d = net.d
    items = sorted(set(session))
    node = {x: k for k, x in enumerate(items)}
    n = len(items)
    cnt = [[0.0] * n for _ in range(n)]
    for a, b in itertools.pairwise(session):
        cnt[node[a]][node[b]] = 1.0 if mode == "once" else cnt[node[a]][node[b]] + 1.0
    a_out = torch.zeros(n, n)
    a_in = torch.zeros(n, n)
    for i in range(n):
        out_deg = sum(cnt[i])
        in_deg = sum(cnt[j][i] for j in range(n))
        for j in range(n):
            a_out[i, j] = cnt[i][j] / out_deg if out_deg else 0.0
            a_in[i, j] = cnt[j][i] / in_deg if in_deg else 0.0
    v = net.item_emb[items]  # (n, d)
    W_z, W_r, W_o = net.gate_a.weight.split(d)
    b_z, b_r, b_o = net.gate_a.bias.split(d)
    U_z, U_r = net.gate_v.weight.split(d)
    U_o = net.cand_v.weight
    for _ in range(net.steps):
        new = []
        for i in range(n):
            m_in = sum(a_in[i, j] * v[j] for j in range(n))
            m_out = sum(a_out[i, j] * v[j] for j in range(n))
            a = torch.cat(
                [net.w_in.weight @ m_in + net.w_in.bias, net.w_out.weight @ m_out + net.w_out.bias]
            )
            z = torch.sigmoid(W_z @ a + U_z @ v[i] + b_z)
            r = torch.sigmoid(W_r @ a + U_r @ v[i] + b_r)
            cand = torch.tanh(W_o @ a + U_o @ (r * v[i]) + b_o)
            new.append((1 - z) * v[i] + z * cand)
        v = torch.stack(new)
    h = [v[node[x]] for x in session]  # every click, repeats included
    s_l = h[-1]
    s_g = torch.zeros(d)
    for h_i in h:
        e = torch.sigmoid(net.w1.weight @ s_l + net.w2.weight @ h_i + net.w2.bias)
        s_g = s_g + (net.q.weight[0] @ e) * h_i
    return net.w3.weight @ torch.cat([s_l, s_g])


@pytest.mark.parametrize("mode", ["count", "once"])
@pytest.mark.parametrize("steps", [1, 2])
def test_batched_forward_equals_a_per_session_loop(mode: str, steps: int) -> None:
    cfg = SRGNNConfig(hidden=6, gnn_steps=steps, repeated_edges=mode)
    net = SRGNNNet(12, cfg, seed=3).eval()
    sessions = [[5, 6, 5, 6, 5, 7], [1, 1, 2], [11], [3, 4, 3, 10, 4, 3, 0, 9], [2, 8]]
    T = max(map(len, sessions))
    seqs = torch.tensor([[PAD] * (T - len(s)) + s for s in sessions])
    with torch.no_grad():
        got = net(seqs)[:, 0]  # (B, d)
        want = torch.stack([_naive(net, s, mode) for s in sessions])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_left_padding_and_batch_neighbours_change_nothing() -> None:
    net = SRGNNNet(30, SRGNNConfig(hidden=8, gnn_steps=2), seed=0).eval()
    rows = [[4, 7, 4, 9], [2]]
    with torch.no_grad():
        alone = [net(torch.tensor([r]))[0, 0] for r in rows]
        padded = net(torch.tensor([[PAD] * 6 + rows[0], [PAD] * 9 + rows[1]]))[:, 0]
        # a neighbour with many more nodes widens N for the whole batch
        wide = net(torch.tensor([[PAD] * 6 + rows[0], list(range(10, 20)), [PAD] * 9 + [2]]))
    for k in range(2):
        torch.testing.assert_close(padded[k], alone[k], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(wide[0, 0], alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(wide[2, 0], alone[1], rtol=1e-5, atol=1e-6)


def test_shapes_candidates_and_an_empty_history() -> None:
    net = SRGNNNet(15, SRGNNConfig(hidden=8), seed=1).eval()
    seqs = torch.tensor([[PAD, 1, 2, 1], [PAD, PAD, PAD, PAD], [3, 3, 3, 3]])
    with torch.no_grad():
        h = net(seqs)
        assert h.shape == (3, 1, 8)
        hid = h[:, 0]
        full = net.item_scores(hid)
        assert full.shape == (3, 15) and torch.isfinite(full).all()
        torch.testing.assert_close(full, hid @ net.item_emb.t())  # the item embeddings
        cand = torch.tensor([4, 0, 9])
        torch.testing.assert_close(net.item_scores(hid, cand), full[:, cand])
        per_row = torch.tensor([[1, 2], [3, 4], [5, 6]])
        torch.testing.assert_close(net.item_scores(hid, per_row), full.gather(1, per_row))
    assert not hid[1].any()  # no click: a zero session vector, zero scores


def test_weights_come_from_the_seed_and_leave_the_global_stream_alone() -> None:
    state = torch.random.get_rng_state()
    a = SRGNNNet(10, SRGNNConfig(hidden=4), seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = SRGNNNet(10, SRGNNConfig(hidden=4), seed=5)
    c = SRGNNNet(10, SRGNNConfig(hidden=4), seed=6)
    for (name, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(p, q), name
        assert not torch.equal(p, r), name
        assert p.abs().max() <= 1 / 2  # U(-1/sqrt(d), 1/sqrt(d)), d = 4
    normal = SRGNNNet(200, SRGNNConfig(hidden=50, init="normal"), seed=0).item_emb
    assert abs(float(normal.detach().std()) - 0.1) < 0.005


@pytest.mark.parametrize(
    ("keys", "msg"),
    [
        ({"repeated_edges": "twice"}, "repeated_edges"),
        ({"init": "xavier"}, "init"),
        ({"gnn_steps": -1}, "gnn_steps"),
        ({"layout": "causal"}, "layout must be 'last'"),
        ({"lr_decay": 0.0}, "lr_decay"),
    ],
)
def test_config_errors(keys: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        SRGNN(**keys)


def test_the_papers_training_setup_is_the_default() -> None:
    model = SRGNN()
    k = model.training_keys
    assert (model.config.hidden, model.config.gnn_steps) == (100, 1)
    assert (k["layout"], k["loss"], k["negatives"]) == ("last", "cross-entropy", "full")
    assert (k["batch_size"], k["learning_rate"], k["weight_decay"]) == (100, 0.001, 1e-5)
    assert (k["lr_decay_step"], k["lr_decay"]) == (3, 0.1)
    task = build_task(SRGNN(hidden=4, max_len=5), SessionLog.from_sequences([[0, 1, 2], [2, 1]]))
    assert [task.learning_rate(e) for e in (0, 2, 3, 6)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])


def test_learns_what_the_click_before_the_last_decides() -> None:
    """Sessions ``[a, r, 20 + a]``: the next item after ``[a, r]`` is fixed by ``a``,
    the click before the last, whatever the noise click ``r``."""
    sessions = [[a, 10 + r, 20 + a] for a in range(10) for r in range(10)]
    model = SRGNN(hidden=16, n_epochs=25, batch_size=32, learning_rate=0.01, lr_decay_step=0)
    model.fit(SessionLog.from_sequences(sessions))
    top = model.score([[a, 10 + r] for a in range(10) for r in range(10)]).argmax(dim=1)
    want = torch.tensor([20 + a for a in range(10) for _ in range(10)])
    assert float((top == want).float().mean()) == 1.0
    history = model.meta_["history"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_scores_equal_the_net_on_padded_histories() -> None:
    rng = np.random.default_rng(0)
    sessions = [rng.integers(0, 15, rng.integers(2, 7)).tolist() for _ in range(40)]
    model = SRGNN(hidden=8, max_len=6, n_epochs=1, batch_size=8).fit(
        SessionLog.from_sequences(sessions)
    )
    hist = [[1, 2, 1], [4], list(range(10))]  # the last one is cut to its last 6 items
    with torch.no_grad():
        want = [model.net_(torch.tensor([h[-6:]]))[0, 0] @ model.net_.item_emb.t() for h in hist]
    torch.testing.assert_close(model.score(hist), torch.stack(want), rtol=1e-5, atol=1e-6)
