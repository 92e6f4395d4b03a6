"""SASRec: causal attention (no position sees the future), PAD invariance, the two
position schemes, save / load, and learning a deterministic chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models import load_model
from seqrec.models.sasrec import SASRec, SASRecConfig, SASRecNet
from seqrec.nn.padding import PAD

N = 20


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: one thread is fastest on a busy box
    yield
    torch.set_num_threads(previous)


def net(positions: str = "absolute", max_len: int = 8) -> SASRecNet:
    cfg = SASRecConfig(hidden=16, n_blocks=2, n_heads=2, positions=positions)
    return SASRecNet(N, max_len, cfg, seed=3).eval()


def chain(n_sessions: int = 300) -> SessionLog:
    """Item k is always followed by k + 1 (mod N)."""
    rng = np.random.default_rng(0)
    seqs = [
        list((s + np.arange(n)) % N)
        for s, n in zip(rng.integers(0, N, n_sessions), rng.integers(3, 9, n_sessions), strict=True)
    ]
    return SessionLog.from_sequences(seqs)


@pytest.mark.parametrize("positions", ["absolute", "recent"])
def test_no_position_sees_the_future(positions: str) -> None:
    m = net(positions)
    a = torch.tensor([[PAD, PAD, 3, 4, 5, 6, 7, 8]])
    b = a.clone()
    b[0, 5] = 12  # change the item at column 5 (not its presence)
    with torch.no_grad():
        ha, hb = m(a), m(b)
    torch.testing.assert_close(ha[:, :5], hb[:, :5], rtol=0, atol=0)
    assert not torch.allclose(ha[:, 5:], hb[:, 5:])  # column 5 and later do change
    sa, sb = m.item_scores(ha[0, :5]), m.item_scores(hb[0, :5])
    torch.testing.assert_close(sa, sb, rtol=0, atol=0)


@pytest.mark.parametrize("positions", ["absolute", "recent"])
def test_more_left_padding_scores_the_same(positions: str) -> None:
    m = net(positions)
    short = torch.tensor([[PAD, 3, 1, 4]])
    long = torch.tensor([[PAD, PAD, PAD, PAD, PAD, 3, 1, 4]])
    with torch.no_grad():
        hs, hl = m(short), m(long)
    torch.testing.assert_close(hs[:, 1:], hl[:, 5:], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.item_scores(hs[:, -1]), m.item_scores(hl[:, -1]))
    assert torch.isfinite(hl).all()  # PAD queries attend themselves: no NaN


def test_position_indices_by_hand() -> None:
    valid = torch.tensor([[False, False, True, True], [True, True, True, True]])
    torch.testing.assert_close(
        net("absolute").positions(valid)[:, 2:], torch.tensor([[0, 1], [2, 3]])
    )
    torch.testing.assert_close(net("absolute").positions(valid)[1], torch.tensor([0, 1, 2, 3]))
    torch.testing.assert_close(net("recent").positions(valid), torch.tensor([[3, 2, 1, 0]] * 2))


def test_recent_positions_keep_the_last_items_embedding() -> None:
    """Histories [5] and [1, 2, 3, 5]: with "recent" positions the last item (5) has the
    same input (item + position 0) in both; with "absolute" it has position 0 vs 3."""
    seqs = torch.tensor([[PAD, PAD, PAD, 5], [1, 2, 3, 5]])
    for positions, expect in (("recent", [0, 0]), ("absolute", [0, 3])):
        m = net(positions)
        assert m.positions(seqs >= 0)[:, -1].tolist() == expect
    m = net("recent")
    pos = m.pos_emb[m.positions(seqs >= 0)]
    torch.testing.assert_close(pos[0, -1], pos[1, -1], rtol=0, atol=0)
    torch.testing.assert_close(pos[1, -2], m.pos_emb[1], rtol=0, atol=0)


def test_item_scores_share_the_input_table() -> None:
    m = net()
    h = torch.randn(3, 16)
    full = m.item_scores(h)
    assert full.shape == (3, N)
    torch.testing.assert_close(full, h @ m.item_emb[:N].t())
    torch.testing.assert_close(m.item_scores(h, torch.tensor([4, 7])), full[:, [4, 7]])
    per_row = torch.tensor([[1, 2], [3, 4], [5, 6]])
    torch.testing.assert_close(m.item_scores(h, per_row), full.gather(1, per_row))


def test_bad_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="divisible"):
        SASRec(hidden=10, n_heads=3)
    with pytest.raises(ConfigError, match="positions"):
        SASRec(positions="relative")


@pytest.mark.parametrize(
    "keys",
    [
        {},  # full cross-entropy, absolute positions
        {"positions": "recent"},
        {"loss": "bce", "negatives": "uniform", "n_sample": 1, "learning_rate": 0.01},  # paper
    ],
)
def test_learns_a_deterministic_chain(keys: dict, tmp_path) -> None:
    base = {"hidden": 16, "n_blocks": 1, "dropout": 0.1, "max_len": 8, "n_epochs": 12,
            "learning_rate": 0.01, "batch_size": 32}  # fmt: skip
    model = SASRec({**base, **keys}).fit(chain())
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
    model = SASRec(hidden=8, n_blocks=1, max_len=4, n_epochs=1).fit(chain(30))
    long = list(range(12))
    torch.testing.assert_close(model.score([long]), model.score([long[-4:]]), rtol=0, atol=0)
    assert model.net_.pos_emb.shape == (4, 8)


def test_without_blocks_the_state_is_the_normalised_input_by_hand() -> None:
    """n_blocks = 0: state = LayerNorm(sqrt(d) * E[item] + P[position]) at eval."""
    m = SASRecNet(N, 4, SASRecConfig(hidden=4, n_blocks=0, positions="recent"), seed=0).eval()
    with torch.no_grad():
        h = m(torch.tensor([[PAD, 7, 2]]))
    e, p = m.item_emb.detach(), m.pos_emb.detach()
    for col, item, pos in ((1, 7, 1), (2, 2, 0)):
        x = 2.0 * e[item] + p[pos]  # sqrt(4) = 2
        want = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-5)
        torch.testing.assert_close(h[0, col], want)
    torch.testing.assert_close(h[0, 0], torch.zeros(4))  # PAD: zero input, LayerNorm of 0
