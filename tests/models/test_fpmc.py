"""FPMC: learns a deterministic Markov chain with BPR and with cross-entropy; the
windowed previous basket is the mean over the last items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.fpmc import FPMC, FPMCConfig, FPMCNet
from seqrec.nn.padding import PAD

N = 20


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: one thread is fastest on a busy box
    yield
    torch.set_num_threads(previous)


def chain(n_sessions: int = 300) -> SessionLog:
    """Item k is always followed by k + 1 (mod N)."""
    rng = np.random.default_rng(0)
    seqs = [
        list((s + np.arange(n)) % N)
        for s, n in zip(rng.integers(0, N, n_sessions), rng.integers(2, 8, n_sessions), strict=True)
    ]
    return SessionLog.from_sequences(seqs)


def top1_accuracy(model: FPMC) -> float:
    top = model.score([[k] for k in range(N)]).argmax(dim=1)
    return float((top == (torch.arange(N) + 1) % N).float().mean())


@pytest.mark.parametrize(
    "keys",
    [
        {},  # the paper: BPR, one uniform negative per pair
        {"loss": "cross-entropy", "negatives": "full"},
        {"loss": "cross-entropy", "negatives": "popularity", "n_sample": 8, "logq": 1.0},
    ],
)
def test_learns_a_deterministic_chain(keys: dict) -> None:
    model = FPMC(factors=16, n_epochs=15, learning_rate=0.05, batch_size=64, **keys)
    model.fit(chain())
    assert top1_accuracy(model) == 1.0
    history = model.meta_["history"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_window_is_the_mean_of_the_last_items() -> None:
    net = FPMCNet(10, FPMCConfig(factors=4, window=2), seed=1)
    seqs = torch.tensor([[PAD, PAD, 3], [PAD, 4, 5], [1, 2, 6]])
    h = net(seqs)  # (B, T, k)
    v = net.V_LI.detach()
    torch.testing.assert_close(h[0, -1], v[3])
    torch.testing.assert_close(h[1, -1], (v[4] + v[5]) / 2)
    torch.testing.assert_close(h[2, -1], (v[2] + v[6]) / 2)
    torch.testing.assert_close(h[2, 1], (v[1] + v[2]) / 2)
    assert torch.all(h[0, 0] == 0)  # no item yet


def test_window_needs_a_long_enough_batch_window() -> None:
    with pytest.raises(ConfigError, match="max_len"):
        FPMC(window=3)
    model = FPMC(window=3, max_len=3, factors=4, n_epochs=1).fit(chain(20))
    assert model.score([[1, 2, 3, 4]]).shape == (1, N)
