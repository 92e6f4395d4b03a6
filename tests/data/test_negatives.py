"""Negatives of sampled evaluation: never the history nor the target, distinct, seeded
per query, uniform or in proportion to the counts (exact inclusion probabilities of
successive sampling, both the rejection and the dense method), clear errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from seqrec.data.negatives import QueryNegatives
from seqrec.errors import SeqrecError


def _random_queries(n_queries: int, n_items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    histories = [rng.integers(0, n_items, rng.integers(0, 12)) for _ in range(n_queries)]
    targets = rng.integers(0, n_items, n_queries)
    return np.arange(n_queries) * 3 + 5, targets, histories


@pytest.mark.parametrize("sampler", ["uniform", "popularity"])
@pytest.mark.parametrize("n", [1, 5, 20])  # 20 of <= 39 eligible: the dense method
def test_negatives_are_distinct_and_never_history_or_target(sampler: str, n: int) -> None:
    n_items = 40
    counts = np.arange(n_items) % 7 + 1.0  # every item seen
    qn = QueryNegatives(n_items, n, sampler, seed=1, counts=counts)
    qids, targets, histories = _random_queries(300, n_items)
    neg = qn.sample(qids, targets, histories)
    assert neg.shape == (300, n) and neg.dtype == np.int64
    for row, t, h in zip(neg, targets, histories, strict=True):
        assert len(set(row.tolist())) == n
        assert t not in row and not set(row.tolist()) & set(h.tolist())
        assert ((row >= 0) & (row < n_items)).all()


def test_a_query_s_negatives_depend_only_on_seed_and_query() -> None:
    qids, targets, histories = _random_queries(50, 100)
    a = QueryNegatives(100, 9, seed=7).sample(qids, targets, histories)
    b = QueryNegatives(100, 9, seed=7).sample(qids, targets, histories)
    assert np.array_equal(a, b)
    # in another order, or alone: the same negatives
    order = np.arange(50)[::-1]
    c = QueryNegatives(100, 9, seed=7).sample(
        qids[order], targets[order], [histories[i] for i in order]
    )
    assert np.array_equal(c, a[order])
    alone = QueryNegatives(100, 9, seed=7).sample(qids[3:4], targets[3:4], histories[3:4])
    assert np.array_equal(alone[0], a[3])
    other = QueryNegatives(100, 9, seed=8).sample(qids, targets, histories)
    assert (other != a).any(axis=1).mean() > 0.9  # another seed: other negatives
    # two queries with the same history and target but different ids differ
    d = QueryNegatives(100, 9, seed=7).sample([1, 2], [5, 5], [np.array([1]), np.array([1])])
    assert not np.array_equal(d[0], d[1])


def _inclusion(weights: dict[int, float], n: int) -> dict[int, float]:
    """Exact P(item among the n) of successive sampling in proportion to weights: the
    sum over ordered draws of the product of conditional probabilities."""
    items = list(weights)
    out = dict.fromkeys(items, 0.0)
    for seq in itertools.permutations(items, n):
        p, left = 1.0, sum(weights.values())
        for i in seq:
            p *= weights[i] / left
            left -= weights[i]
        for i in seq:
            out[i] += p
    return out


@pytest.mark.parametrize("n", [1, 2, 3])  # 1, 2: rejection; 3 of 5 eligible: dense
def test_popularity_sampler_follows_the_counts(n: int) -> None:
    # item 0 is never seen in training, item 6 is every query's target, item 1 is in
    # every history: the eligible items 2..5 and 7 with counts 1, 2, 3, 4, 10
    counts = np.array([0.0, 50.0, 1.0, 2.0, 3.0, 4.0, 30.0, 10.0])
    weights = {2: 1.0, 3: 2.0, 4: 3.0, 5: 4.0, 7: 10.0}
    qn = QueryNegatives(8, n, "popularity", seed=11, counts=counts)
    q = 20000
    neg = qn.sample(np.arange(q), np.full(q, 6), [np.array([1, 1])] * q)
    assert not np.isin(neg, [0, 1, 6]).any()
    freq = np.bincount(neg.reshape(-1), minlength=8) / q  # P(item among the n)
    want = _inclusion(weights, n)
    for item, p in want.items():
        sd = np.sqrt(p * (1 - p) / q)
        assert abs(freq[item] - p) < 5 * sd, (item, freq[item], p)
    if n == 1:  # one draw: exactly proportional to the counts
        assert want[7] == pytest.approx(10 / 20)


def test_uniform_sampler_is_uniform_over_the_eligible_items() -> None:
    q = 20000
    qn = QueryNegatives(10, 2, "uniform", seed=5)
    neg = qn.sample(np.arange(q), np.full(q, 0), [np.array([9, 9, 4])] * q)
    freq = np.bincount(neg.reshape(-1), minlength=10) / q
    assert freq[0] == freq[4] == freq[9] == 0
    p = 2 / 7  # each of the 7 eligible items is among the 2 with probability 2/7
    sd = np.sqrt(p * (1 - p) / q)
    assert np.all(np.abs(freq[[1, 2, 3, 5, 6, 7, 8]] - p) < 5 * sd)


def test_too_many_negatives_is_a_clear_error() -> None:
    with pytest.raises(SeqrecError, match="catalogue has 10"):
        QueryNegatives(10, 10)
    counts = np.array([0, 0, 3, 1, 1, 2.0])
    with pytest.raises(SeqrecError, match="4 items seen in training"):
        QueryNegatives(6, 4, "popularity", counts=counts)
    # enough in the catalogue, not for this query: 10 items - target - 3 history = 6
    qn = QueryNegatives(10, 7, seed=0)
    assert qn.sample([0], [1], [np.array([2, 3])]).shape == (1, 7)  # 7 left: fits
    with pytest.raises(SeqrecError, match=r"query 4: 7 sampled negatives.*only 6"):
        qn.sample([3, 4], [1, 1], [np.array([2, 3]), np.array([2, 3, 4, 4])])
    with pytest.raises(SeqrecError, match="needs the training item counts"):
        QueryNegatives(10, 2, "popularity")
    with pytest.raises(SeqrecError, match="unknown sampler"):
        QueryNegatives(10, 2, "zipf")
    with pytest.raises(SeqrecError, match="positive integer"):
        QueryNegatives(10, 0)
    with pytest.raises(SeqrecError, match="seed"):
        QueryNegatives(10, 2, seed=-1)


def test_label() -> None:
    assert QueryNegatives(200, 99, seed=42).label() == "sampled: 99 uniform negatives, seed 42"
    pop = QueryNegatives(5, 2, "popularity", seed=0, counts=[1, 1, 1, 1, 1])
    assert pop.label() == "sampled: 2 popularity negatives, seed 0"
