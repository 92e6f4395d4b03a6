"""Negatives of the padded-sequence task: per-position uniform (never the positive,
optionally never the row's history) and in-batch; fixed seeds and distribution checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.training.sampling import in_batch_candidates, uniform_negatives


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_uniform_negatives_never_the_positive_and_uniform_over_the_rest() -> None:
    n_items = 10
    pos = torch.arange(n_items).repeat(400)  # every item as a positive, 400 times
    neg = uniform_negatives(pos, n_items, 50, _gen(0))  # (4000, 50)
    assert neg.shape == (4000, 50) and neg.dtype == torch.int64
    assert not torch.any(neg == pos[:, None])
    assert int(neg.min()) >= 0 and int(neg.max()) < n_items
    # for positive 3: the other 9 items equally likely (chi-square, 8 dof, p ~ 1e-4)
    draws = neg[pos == 3].flatten().numpy()
    counts = np.bincount(draws, minlength=n_items)
    assert counts[3] == 0
    expected = draws.size / (n_items - 1)
    chi2 = (((counts[np.arange(n_items) != 3] - expected) ** 2) / expected).sum()
    assert chi2 < 30.0


def test_uniform_negatives_are_deterministic_per_seed() -> None:
    pos = torch.tensor([0, 5, 9, 2])
    a = uniform_negatives(pos, 20, 6, _gen(7))
    b = uniform_negatives(pos, 20, 6, _gen(7))
    c = uniform_negatives(pos, 20, 6, _gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_uniform_negatives_exclude_the_history() -> None:
    n_items = 12
    pos = torch.tensor([0, 1, 2, 3])
    history = torch.tensor(
        [[4, 5, 6, 7, 8, 9, 10, -1], [-1, -1, 2, 3, 4, 5, 6, 7], [0, 1, 3, 4, 5, 6, 7, 8], [-1] * 8]
    )
    neg = uniform_negatives(pos, n_items, 300, _gen(1), history=history)
    for r in range(4):
        banned = {int(pos[r]), *[int(h) for h in history[r] if h >= 0]}
        seen = set(neg[r].tolist())
        assert not seen & banned
        assert seen == set(range(n_items)) - banned  # every allowed item shows up
    # with history the allowed items stay equally likely (row 1: 12 - 7 banned = 5 items)
    rows = pos[1:2].repeat(2000)
    draws = uniform_negatives(rows, n_items, 5, _gen(2), history[1:2].repeat(2000, 1))
    counts = np.bincount(draws.flatten().numpy(), minlength=n_items)
    allowed = counts[[0, 8, 9, 10, 11]]
    assert counts.sum() == allowed.sum() and allowed.min() > 0.9 * allowed.mean()


def test_uniform_negatives_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_items"):
        uniform_negatives(torch.tensor([0]), 1, 3, _gen(0))
    with pytest.raises(ValueError, match="rows"):
        uniform_negatives(torch.tensor([0, 1]), 5, 3, _gen(0), history=torch.zeros(3, 2))


def test_in_batch_candidates_are_the_distinct_targets() -> None:
    targets = torch.tensor([7, 3, 7, 1, 3])
    cand, col = in_batch_candidates(targets)
    assert cand.tolist() == [1, 3, 7]
    assert torch.equal(cand[col], targets)  # each row's own target column
    cand, col = in_batch_candidates(targets, extra=torch.tensor([9, 3, 0]))
    assert cand.tolist() == [0, 1, 3, 7, 9] and torch.equal(cand[col], targets)
