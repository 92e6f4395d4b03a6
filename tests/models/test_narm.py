"""NARM: attention weights (softmax: sum to one over the real positions; raw: the paper's
unnormalised scores; zero on PAD), left-padding invariance, the encoders against a naive
per-sample loop written from the paper's equations, causality of the GRU states, the
bilinear decoder, empty histories, save / load, config errors, and learning a chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models import load_model
from seqrec.models.narm import NARM, NARMConfig, NARMNet
from seqrec.nn.padding import PAD

N = 20


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: one thread is fastest on a busy box
    yield
    torch.set_num_threads(previous)


def net(attention: str = "softmax", n_items: int = N, D: int = 6, H: int = 5) -> NARMNet:
    cfg = NARMConfig(embedding=D, hidden=H, attention=attention)
    return NARMNet(n_items, cfg, seed=3).eval()


def chain(n_sessions: int = 300) -> SessionLog:
    """Item k is always followed by k + 1 (mod N)."""
    rng = np.random.default_rng(0)
    seqs = [
        list((s + np.arange(n)) % N)
        for s, n in zip(rng.integers(0, N, n_sessions), rng.integers(3, 9, n_sessions), strict=True)
    ]
    return SessionLog.from_sequences(seqs)


def padded_states(m: NARMNet, seqs: torch.Tensor) -> torch.Tensor:
    """(B, T, H) GRU states at the right-aligned columns of ``seqs``, zero at PAD."""
    enc = m.encode(seqs)
    return enc.padded(enc.states, seqs.shape[1])


BATCH = torch.tensor(
    [
        [PAD, PAD, PAD, 7],
        [PAD, 3, 1, 4],
        [9, 2, 6, 5],
        [PAD, PAD, 11, 11],
    ]
)


def test_softmax_attention_sums_to_one_over_the_real_positions_and_is_zero_on_pad() -> None:
    m = net("softmax")
    valid = BATCH >= 0
    with torch.no_grad():
        enc = m.encode(BATCH)
        alpha = enc.padded(m.attention(enc), BATCH.shape[1])  # (B, T)
    assert alpha.shape == BATCH.shape
    torch.testing.assert_close(alpha.sum(1), torch.ones(4))
    assert torch.all(alpha[~valid] == 0) and torch.all(alpha[valid] > 0)
    assert alpha[0, 3] == 1.0  # a one-item session puts all its weight on that item


def test_raw_attention_is_the_papers_unnormalised_score_and_zero_on_pad() -> None:
    m = net("raw")
    valid = BATCH >= 0
    with torch.no_grad():
        enc = m.encode(BATCH)
        alpha = enc.padded(m.attention(enc), 4)  # (B, T)
        states, last = enc.padded(enc.states, 4), enc.last
        # e_tj = v^T sigmoid(A1 h_t + A2 h_j), by hand for row 1, column 2
        want = m.v @ torch.sigmoid(m.A1.weight @ last[1] + m.A2.weight @ states[1, 2])
    assert torch.all(alpha[~valid] == 0)
    torch.testing.assert_close(alpha[1, 2], want)
    assert not torch.allclose(alpha.sum(1), torch.ones(4))  # not normalised


def test_only_real_items_are_packed_and_the_last_state_is_the_last_columns() -> None:
    m = net()
    with torch.no_grad():
        enc = m.encode(BATCH)
        states = enc.padded(enc.states, 4)  # (B, T, H)
    assert enc.states.shape == (10, 5) and bool(enc.real.all())  # 1 + 3 + 4 + 2 items
    places = sorted(zip(enc.rows.tolist(), enc.cols.tolist(), strict=True))
    assert places == [
        (0, 3),
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 0),
        (2, 1),
        (2, 2),
        (2, 3),
        (3, 2),
        (3, 3),
    ]
    assert torch.all(states[BATCH < 0] == 0)
    torch.testing.assert_close(enc.last, states[:, -1], rtol=0, atol=0)  # h_t: the last item's


@pytest.mark.parametrize("attention", ["softmax", "raw"])
def test_more_left_padding_scores_the_same(attention: str) -> None:
    """The same session at widths 3, 5 and 9, in batches with other rows: equal states
    (up to the PAD columns), contexts and scores."""
    m = net(attention)
    session = [3, 1, 4]
    outs = []
    for width in (3, 5, 9):
        pad = [PAD] * (width - 3)
        other = [8] * width  # a full-width row, so the batch is not trimmed
        seqs = torch.tensor([pad + session, other, [PAD] * (width - 1) + [2]])
        with torch.no_grad():
            states = padded_states(m, seqs)[0, -3:]
            outs.append((states, m.context(seqs)[0], m.item_scores(m(seqs)[:, 0])[0]))
    for got in outs[1:]:
        for a, b in zip(outs[0], got, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def _gru_by_hand(gru: torch.nn.GRU, xs: torch.Tensor) -> torch.Tensor:
    """(L, D) inputs -> (L, H) states of a one-layer GRU from h_0 = 0 (the GRU equations
    with torch's gate order r, z, n)."""
    w_ih, w_hh, b_ih, b_hh = gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0
    H = w_hh.shape[1]
    h = xs.new_zeros(H)
    out = []
    for x in xs:
        gi, gh = w_ih @ x + b_ih, w_hh @ h + b_hh
        r = torch.sigmoid(gi[:H] + gh[:H])
        z = torch.sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
        n = torch.tanh(gi[2 * H :] + r * gh[2 * H :])
        h = (1 - z) * n + z * h
        out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("attention", ["softmax", "raw"])
def test_encoders_and_decoder_equal_a_naive_per_sample_loop(attention: str) -> None:
    """Each session alone, real items only: h_j by the GRU equations, c_g = h_t,
    e_j = v^T sigmoid(A1 h_t + A2 h_j), alpha = softmax(e) (or e), c_l = sum alpha_j h_j,
    q = B [c_g; c_l], S_i = E_i . q; the values and the gradients of every parameter
    (float64, so the packed batch and the loop agree to rounding)."""
    m = net(attention, n_items=12, D=3, H=4).double()
    sessions = [[7], [3, 1, 4], [9, 2, 6, 5], [11, 11]]
    target = torch.tensor([1, 0, 11, 5])
    ctx, query = m.context(BATCH), m(BATCH)[:, 0]
    scores = m.item_scores(query)
    loss = torch.nn.functional.cross_entropy(scores, target)
    grads = torch.autograd.grad(loss, list(m.parameters()))
    naive = []
    for b, items in enumerate(sessions):
        h = _gru_by_hand(m.gru, m.item_emb[torch.tensor(items)])  # (L, H)
        c_g = h[-1]
        e = torch.stack([m.v @ torch.sigmoid(m.A1.weight @ c_g + m.A2.weight @ hj)
                         for hj in h])  # fmt: skip
        alpha = torch.softmax(e, 0) if attention == "softmax" else e
        c_l = sum(a * hj for a, hj in zip(alpha, h, strict=True))
        c = torch.cat([c_g, c_l])
        q = m.decoder.weight @ c  # B: (D x 2H)
        torch.testing.assert_close(ctx[b], c)
        torch.testing.assert_close(query[b], q)
        naive.append(m.item_emb[:12] @ q)
    torch.testing.assert_close(scores, torch.stack(naive))
    want = torch.nn.functional.cross_entropy(torch.stack(naive), target)
    for (name, p), g in zip(m.named_parameters(), grads, strict=True):
        torch.testing.assert_close(g, torch.autograd.grad(want, p, retain_graph=True)[0], msg=name)


def test_no_state_sees_a_later_item() -> None:
    """The GRU states of a prefix do not change when the session goes on; the query does."""
    m = net()
    a = torch.tensor([[PAD, 3, 1, 4, 1]])
    b = torch.tensor([[PAD, 3, 1, 4, 9]])
    with torch.no_grad():
        sa, sb = padded_states(m, a), padded_states(m, b)
        prefix = padded_states(m, torch.tensor([[PAD, PAD, 3, 1, 4]]))
    torch.testing.assert_close(sa[:, :4], sb[:, :4], rtol=0, atol=0)
    torch.testing.assert_close(sa[:, 1:4], prefix[:, 2:], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(m(a), m(b))


def test_item_scores_share_the_input_table_for_every_candidate_form() -> None:
    m = net()
    q = torch.randn(3, 6)
    full = m.item_scores(q)
    assert full.shape == (3, N)
    torch.testing.assert_close(full, q @ m.item_emb[:N].t())
    shared = torch.tensor([4, 0, 19])
    torch.testing.assert_close(m.item_scores(q, shared), full[:, shared])
    rows = torch.tensor([[1, 2], [3, 3], [0, 19]])
    torch.testing.assert_close(m.item_scores(q, rows), full.gather(1, rows))


def test_an_empty_history_scores_zero_and_dropout_acts_only_in_training() -> None:
    m = net()
    seqs = torch.tensor([[PAD, PAD, PAD], [PAD, 3, 1]])
    with torch.no_grad():
        q = m(seqs)[:, 0]
        assert torch.all(q[0] == 0) and torch.all(torch.isfinite(q))
        torch.testing.assert_close(m(seqs), m(seqs), rtol=0, atol=0)  # eval: deterministic
        m.train()
        torch.manual_seed(0)
        assert not torch.allclose(m(seqs)[1], q[1])


def test_an_empty_batch_scores_nothing() -> None:
    m = net()
    with torch.no_grad():
        assert m(torch.zeros((0, 3), dtype=torch.long)).shape == (0, 1, 6)
    model = NARM(embedding=4, hidden=4, n_epochs=1).fit(chain(10))
    assert model.score([]).shape == (0, N)


def test_training_gradients_are_finite_with_a_full_width_batch() -> None:
    m = net().train()
    torch.manual_seed(0)
    loss = m.item_scores(m(BATCH)[:, 0]).logsumexp(1).sum()
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.all(torch.isfinite(p.grad)), name


def test_bad_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="attention"):
        NARM(attention="dot")
    with pytest.raises(ConfigError, match="dropout_embed"):
        NARM(dropout_embed=1.0)
    with pytest.raises(ConfigError, match="hidden"):
        NARM(hidden=0)


def test_defaults_are_the_papers() -> None:
    model = NARM()
    cfg, keys = model.config, model.training_keys
    assert (cfg.embedding, cfg.hidden, cfg.dropout_embed, cfg.dropout_context) == (
        50,
        100,
        0.25,
        0.5,
    )
    assert keys["layout"] == "last" and keys["loss"] == "cross-entropy"
    assert keys["negatives"] == "full" and keys["optimizer"] == "adam"
    assert (keys["learning_rate"], keys["batch_size"]) == (0.001, 512)


@pytest.mark.parametrize("attention", ["softmax", "raw"])
def test_learns_a_deterministic_chain(attention: str, tmp_path) -> None:
    base = {"embedding": 16, "hidden": 16, "max_len": 8, "n_epochs": 10,
            "learning_rate": 0.01, "batch_size": 32, "dropout_context": 0.1}  # fmt: skip
    model = NARM({**base, "attention": attention}).fit(chain())
    prefixes = [[k, (k + 1) % N] for k in range(N)] + [[k] for k in range(N)]
    want = torch.tensor([(p[-1] + 1) % N for p in prefixes])
    scores = model.score(prefixes)
    assert scores.shape == (len(prefixes), N)
    accuracy = float((scores.argmax(1) == want).float().mean())
    assert accuracy >= 0.9, accuracy
    history = model.meta_["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    loaded = load_model(model.save(tmp_path / "m"))
    torch.testing.assert_close(loaded.score(prefixes), scores, rtol=0, atol=0)


def test_long_histories_keep_their_most_recent_items() -> None:
    model = NARM(embedding=8, hidden=8, max_len=4, n_epochs=1).fit(chain(30))
    long = list(range(12))
    torch.testing.assert_close(model.score([long]), model.score([long[-4:]]), rtol=0, atol=0)
