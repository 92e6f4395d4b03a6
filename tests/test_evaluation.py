"""Evaluation: metrics, tie policies, protocols, unknown items, streaming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import SeqrecError
from seqrec.evaluation import (
    _ranks_from_top,
    coverage_at_k,
    evaluate,
    mrr_at_k,
    ndcg_at_k,
    popularity_at_k,
    recall_at_k,
    target_ranks,
)
from seqrec.models.pop import Pop, SessionPop

# ------------------------------------------------------------------ fake models


class DecayScorer:
    """score = sum over the history of 0.5 ** (age) * one_hot(item): exact in floats,
    history-dependent, and full of ties (every unseen item scores 0)."""

    def __init__(self, n_items: int = 5) -> None:
        self.n_items_ = n_items

    def score(self, histories):
        out = torch.zeros(len(histories), self.n_items_, dtype=torch.float64)
        for b, h in enumerate(histories):
            for i in h:
                out[b] *= 0.5
                out[b, int(i)] += 1.0
        return out


class DecayRecurrent(DecayScorer):
    """The same model, with a state: state = 0.5 * state + one_hot(item)."""

    def __init__(self, n_items: int = 5) -> None:
        super().__init__(n_items)
        self.rows_stepped = 0

    def init_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(1, batch_size, self.n_items_, dtype=torch.float64)

    def step(self, state, items):
        self.rows_stepped += len(items)
        new = 0.5 * state[0]
        new[torch.arange(len(items)), items] += 1.0
        return new.unsqueeze(0), new.clone()


class TinyGRU:
    """A random recurrent model: h' = tanh(h W + E[item]), scores = h O^T."""

    def __init__(self, n_items: int = 30, d: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.n_items_ = n_items
        self.E = torch.randn(n_items, d, generator=g, dtype=torch.float64)
        self.W = 0.5 * torch.randn(d, d, generator=g, dtype=torch.float64)
        self.O = torch.randn(n_items, d, generator=g, dtype=torch.float64)

    def init_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(1, batch_size, self.E.shape[1], dtype=torch.float64)

    def step(self, state, items):
        h = torch.tanh(state[0] @ self.W + self.E[items])
        return h.unsqueeze(0), h @ self.O.T

    def score(self, histories):
        h = torch.zeros(len(histories), self.E.shape[1], dtype=torch.float64)
        for b, hist in enumerate(histories):
            for i in hist:
                h[b] = torch.tanh(h[b] @ self.W + self.E[int(i)])
        return h @ self.O.T


class ScoreOnly:
    """Hides a model's step, so evaluation must use score."""

    def __init__(self, model) -> None:
        self.model = model
        self.n_items_ = model.n_items_

    def score(self, histories):
        return self.model.score(histories)


class Constant:
    def __init__(self, n_items: int) -> None:
        self.n_items_ = n_items

    def score(self, histories):
        return torch.ones(len(histories), self.n_items_)


class NaNModel(Constant):
    def score(self, histories):
        s = torch.zeros(len(histories), self.n_items_)
        s[:, 1] = math.nan
        return s


# The literal test log: sessions [0, 1, 0, 2] and [3, 4] over 5 items.
# next-item queries with DecayScorer (hist -> target: scores; rank per tie policy):
#   [0]       -> 1 : [1, 0, 0, 0, 0]       opt 2, cons 5, avg 3.5
#   [0, 1]    -> 0 : [.5, 1, 0, 0, 0]      opt 2, cons 2, avg 2
#   [0, 1, 0] -> 2 : [1.25, .5, 0, 0, 0]   opt 3, cons 5, avg 4
#   [3]       -> 4 : [0, 0, 0, 1, 0]       opt 2, cons 5, avg 3.5
SESSIONS = [[0, 1, 0, 2], [3, 4]]
RANKS = {
    "optimistic": [2, 2, 3, 2],
    "conservative": [5, 2, 5, 5],
    "average": [3.5, 2, 4, 3.5],
}
# With history items excluded (set to -inf):
#   [0] -> 1: [-inf, 0, 0, 0, 0]: opt 1, cons 4
#   [0, 1] -> 0: target excluded: opt 1 + 3 finite = 4, cons 5 (everything >= -inf)
#   [0, 1, 0] -> 2: [-inf, -inf, 0, 0, 0]: opt 1, cons 3
#   [3] -> 4: [0, 0, 0, -inf, 0]: opt 1, cons 4
RANKS_EXCL = {"optimistic": [1, 4, 1, 1], "conservative": [4, 5, 3, 4]}


def expected(ranks, ks=(1, 2, 5)) -> dict[str, float]:
    out = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(ranks, k)
        out[f"mrr@{k}"] = mrr_at_k(ranks, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranks, k)
    return out


def check(result: dict, ranks, ks=(1, 2, 5)) -> None:
    for key, value in expected(ranks, ks).items():
        assert result[key] == pytest.approx(value, abs=1e-12), key
    assert result["n_queries"] == len(ranks)


# ---------------------------------------------------------------------- metrics


def test_metrics_hand_computed():
    ranks = [1, 2, 3.5, 11, math.inf]
    assert recall_at_k(ranks, 10) == pytest.approx(3 / 5)
    assert mrr_at_k(ranks, 10) == pytest.approx((1 + 1 / 2 + 1 / 3.5) / 5)
    assert ndcg_at_k(ranks, 10) == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(4.5)) / 5)
    assert recall_at_k(ranks, 1) == mrr_at_k(ranks, 1) == ndcg_at_k(ranks, 1) == pytest.approx(0.2)
    assert recall_at_k(ranks, 11) == pytest.approx(0.8)
    assert mrr_at_k(ranks, 11) == pytest.approx((1 + 1 / 2 + 1 / 3.5 + 1 / 11) / 5)
    assert ndcg_at_k(np.array([3.0]), 3) == pytest.approx(0.5)  # 1 / log2(4)
    assert recall_at_k(torch.tensor([1.0, 30.0]), 20) == pytest.approx(0.5)
    assert math.isnan(recall_at_k([], 5))


def test_coverage_and_popularity_functions():
    top = np.array([[1, 2, 0], [1, 3, -1]])
    assert coverage_at_k(top, 1, 10) == pytest.approx(0.1)
    assert coverage_at_k(top, 2, 10) == pytest.approx(0.3)
    assert coverage_at_k(top, 3, 10) == pytest.approx(0.4)  # -1 ignored
    counts = np.array([1, 4, 2, 3])  # 10 training events
    assert popularity_at_k(top, 1, counts) == pytest.approx(0.4)
    assert popularity_at_k(top, 2, counts) == pytest.approx((0.4 + 0.2 + 0.4 + 0.3) / 4)
    assert popularity_at_k(top, 3, counts) == pytest.approx((0.4 + 0.2 + 0.1 + 0.4 + 0.3) / 5)


@pytest.mark.parametrize(
    ("target", "opt", "cons", "avg"),
    [(0, 1, 3, 2), (2, 1, 3, 2), (3, 4, 4, 4), (1, 5, 5, 5)],
)
def test_target_ranks_tie_policies(target, opt, cons, avg):
    scores = torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0]])
    t = torch.tensor([target])
    assert target_ranks(scores, t, "optimistic").tolist() == [opt]
    assert target_ranks(scores, t, "conservative").tolist() == [cons]
    assert target_ranks(scores, t, "average").tolist() == [avg]
    assert target_ranks(scores, t).tolist() == [cons]  # conservative is the default


def test_target_ranks_excluded_target_is_below_finite_items():
    scores = torch.tensor([[-math.inf, 1.0, -math.inf, 0.0]])
    t = torch.tensor([0])
    assert target_ranks(scores, t, "optimistic").tolist() == [3]
    assert target_ranks(scores, t, "conservative").tolist() == [4]


@pytest.mark.parametrize("ties", ["optimistic", "conservative", "average"])
def test_streamed_ranks_agree_with_exact_ranks_up_to_k(ties):
    # integer scores: many ties, also at the K-th position; some excluded (-inf) items
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (300, 40), generator=g).double()
    scores[torch.rand(300, 40, generator=g) < 0.1] = -math.inf
    targets = torch.randint(0, 40, (300,), generator=g)
    exact = target_ranks(scores, targets, ties)
    t = scores.gather(1, targets[:, None])[:, 0].numpy()
    exact = exact.numpy()
    for k in (1, 3, 10, 40):
        top = torch.topk(scores, k, dim=1).values.numpy()
        fast, full_rows = _ranks_from_top(top, t, ties)
        fast[full_rows] = exact[full_rows]
        inside = exact <= k
        assert np.array_equal(fast[inside], exact[inside])
        assert (fast[~inside] > k).all()
        assert len(full_rows) < len(t)


def test_nan_scores_raise():
    with pytest.raises(SeqrecError, match="model returned NaN scores"):
        target_ranks(torch.tensor([[0.0, math.nan]]), torch.tensor([0]))
    log = SessionLog.from_sequences([[0, 2, 3]])
    with pytest.raises(SeqrecError, match="NaN"):
        evaluate(NaNModel(5), log)

    class OneNaN(Constant):  # a single NaN, far from the top and from the target
        def score(self, histories):
            s = torch.arange(self.n_items_, dtype=torch.float32).repeat(len(histories), 1)
            s[-1, 3] = math.nan
            return s

    with pytest.raises(SeqrecError, match="model returned NaN scores"):
        evaluate(OneNaN(1000), SessionLog.from_sequences([[0, 2, 3, 999, 5]]), ks=(1,))


def test_constant_model_conservative_vs_optimistic():
    rng = np.random.default_rng(0)
    log = SessionLog.from_sequences([rng.integers(0, 100, 6) for _ in range(20)])
    cons = evaluate(Constant(100), log, ks=(20,))
    assert cons["recall@20"] <= 20 / 100
    assert cons["recall@20"] == 0.0 and cons["mrr@20"] == 0.0 and cons["ndcg@20"] == 0.0
    opt = evaluate(Constant(100), log, ks=(20,), ties="optimistic")
    assert opt["recall@20"] == opt["mrr@20"] == opt["ndcg@20"] == 1.0
    avg = evaluate(Constant(100), log, ks=(20,), ties="average")  # rank 50.5
    assert avg["recall@20"] == 0.0
    assert cons["n_queries"] == opt["n_queries"] == 100
    assert cons["ties"] == "conservative" and opt["ties"] == "optimistic"


# -------------------------------------------------------------------- protocols


@pytest.mark.parametrize("ties", ["optimistic", "conservative", "average"])
@pytest.mark.parametrize("model", [DecayScorer(), DecayRecurrent()], ids=["score", "step"])
def test_next_item_literal(model, ties):
    res = evaluate(model, SessionLog.from_sequences(SESSIONS), ks=(1, 2, 5), ties=ties)
    check(res, RANKS[ties])
    assert res["protocol"] == "next-item" and res["exclude_history"] is False
    assert res["n_unknown_targets"] == 0 and res["n_unknown_history_items"] == 0
    assert res["eval_seconds"] >= 0


def test_next_item_conservative_values():
    res = evaluate(DecayScorer(), SessionLog.from_sequences(SESSIONS), ks=(2, 5))
    assert res["recall@2"] == pytest.approx(0.25)
    assert res["mrr@5"] == pytest.approx((1 / 5 + 1 / 2 + 1 / 5 + 1 / 5) / 4)
    assert res["recall@5"] == 1.0
    big = evaluate(DecayScorer(), SessionLog.from_sequences(SESSIONS), ks=(50,))  # K > n_items
    assert big["recall@50"] == 1.0 and big["coverage@50"] == 1.0
    assert big["mrr@50"] == pytest.approx(res["mrr@5"])


def test_next_item_steps_once_per_event():
    model = DecayRecurrent()
    log = SessionLog.from_sequences([[0, 1, 0, 2], [3, 4], [1], [2, 2, 2, 2, 2, 2]])
    res = evaluate(model, log, batch_size=2)
    assert res["n_queries"] == 3 + 1 + 5
    assert model.rows_stepped == 9  # every event but each session's last, fed once


@pytest.mark.parametrize("ties", ["optimistic", "conservative"])
@pytest.mark.parametrize("model", [DecayScorer(), DecayRecurrent()], ids=["score", "step"])
def test_next_item_exclude_history(model, ties):
    log = SessionLog.from_sequences(SESSIONS)
    res = evaluate(model, log, ks=(1, 2, 5), ties=ties, exclude_history=True)
    check(res, RANKS_EXCL[ties])
    assert res["exclude_history"] is True


@pytest.mark.parametrize("model", [DecayScorer(), DecayRecurrent()], ids=["score", "recurrent"])
def test_samples_literal(model):
    samples = Samples.from_lists([[0], [0, 1], [0, 1, 0], [3]], [1, 0, 2, 4])
    for ties in ("optimistic", "conservative", "average"):
        res = evaluate(model, samples, protocol="samples", ks=(1, 2, 5), ties=ties)
        check(res, RANKS[ties])
        assert res["protocol"] == "samples" and res["exclude_history"] is False
    res = evaluate(model, samples, protocol="samples", ks=(1, 2, 5), exclude_history=True)
    check(res, RANKS_EXCL["conservative"])


def test_samples_from_sessions_equals_next_item():
    model = TinyGRU()
    rng = np.random.default_rng(1)
    log = SessionLog.from_sequences([rng.integers(0, 30, rng.integers(1, 8)) for _ in range(25)])
    a = evaluate(model, log, ks=(1, 5, 10))
    b = evaluate(model, Samples.from_sessions(log), protocol="samples", ks=(1, 5, 10))
    for key in a:
        if key not in ("protocol", "eval_seconds"):
            assert a[key] == pytest.approx(b[key], abs=1e-12), key


def test_last_item_excludes_history_by_default():
    log = SessionLog.from_sequences([*SESSIONS, [2]])  # too short: no query
    # queries: [0, 1, 0] -> 2 and [3] -> 4
    res = evaluate(DecayScorer(), Samples.last_item(log), protocol="last-item", ks=(1, 3, 5))
    assert res["exclude_history"] is True
    check(res, [3, 4], ks=(1, 3, 5))
    off = evaluate(DecayScorer(), log, protocol="last-item", ks=(1, 3, 5), exclude_history=False)
    check(off, [5, 5], ks=(1, 3, 5))
    same = evaluate(DecayRecurrent(), log, protocol="last-item", ks=(1, 3, 5))  # a SessionLog
    check(same, [3, 4], ks=(1, 3, 5))


def test_exclude_history_does_not_touch_model_tensors():
    pop = Pop().fit(SessionLog.from_sequences([[0, 1, 1], [1, 2]]))
    before = pop.popularity_.clone()
    evaluate(pop, Samples.from_lists([[1], [0, 2]], [2, 1]), protocol="last-item")
    assert torch.equal(pop.popularity_, before)


# ---------------------------------------------------------------- unknown items


@pytest.mark.parametrize("model", [DecayScorer(), DecayRecurrent()], ids=["score", "step"])
def test_next_item_unknown_items(model):
    # unknowns removed -> the literal log; [0, -1, ...]: -1 is a target (known before)
    # and a history item (known after); [-1, 3, ...]: history only; [..., 4, -1]: target only
    log = SessionLog.from_sequences([[0, -1, 1, 0, 2], [-1, 3, 4, -1], [-1, -1]])
    res = evaluate(model, log, ks=(1, 2, 5))
    check(res, RANKS["conservative"])
    assert res["n_unknown_targets"] == 2
    assert res["n_unknown_history_items"] == 2
    miss = evaluate(model, log, ks=(1, 2, 5), unknown="miss")
    check(miss, [*RANKS["conservative"], math.inf, math.inf])
    assert miss["n_queries"] == 6 and miss["recall@5"] == pytest.approx(4 / 6)
    assert miss["n_unknown_targets"] == 2


def test_samples_unknown_items():
    samples = Samples.from_lists(
        [[0, -1], [-1, 0, 1], [5, 5], [0, 1, -1, 0], [3]], [1, 0, -1, 2, 4]
    )
    res = evaluate(DecayScorer(6), samples, protocol="samples", ks=(1, 2, 6))
    # the literal queries, with n_items 6 (one more zero-scored item -> +1 conservative)
    check(res, [6, 2, 6, 6], ks=(1, 2, 6))
    assert res["n_unknown_targets"] == 1
    assert res["n_unknown_history_items"] == 3  # counted in the queries that are scored
    miss = evaluate(DecayScorer(6), samples, protocol="samples", ks=(1, 2, 6), unknown="miss")
    check(miss, [6, 2, 6, 6, math.inf], ks=(1, 2, 6))


def test_out_of_range_item_is_an_error():
    with pytest.raises(SeqrecError, match="outside the model's catalogue"):
        evaluate(DecayScorer(5), SessionLog.from_sequences([[0, 7]]))


# -------------------------------------------------------------------- streaming


def test_batch_size_and_path_independence():
    model = TinyGRU(n_items=30)
    rng = np.random.default_rng(2)
    log = SessionLog.from_sequences([rng.integers(0, 30, rng.integers(1, 12)) for _ in range(40)])
    pop = np.bincount(rng.integers(0, 30, 500), minlength=30)
    kw = dict(ks=(1, 5, 10), item_popularity=pop, ties="average")
    ref = evaluate(model, log, batch_size=1000, use_step=False, **kw)
    runs = [evaluate(model, log, batch_size=b, **kw) for b in (1, 3, 1000)]  # step path
    runs += [evaluate(ScoreOnly(model), log, batch_size=b, **kw) for b in (1, 7)]
    runs += [evaluate(model, log, batch_size=b, exclude_history=False, **kw) for b in (2, None)]
    for res in runs:
        for key, value in ref.items():
            if key != "eval_seconds":
                assert res[key] == pytest.approx(value, abs=1e-12), key
    samples = Samples.from_sessions(log)
    s1 = evaluate(model, samples, protocol="samples", batch_size=4, **kw)
    s2 = evaluate(model, samples, protocol="samples", batch_size=500, **kw)
    for key in ("recall@5", "mrr@10", "ndcg@10", "coverage@5", "popularity@10", "n_queries"):
        assert s1[key] == pytest.approx(s2[key]) == pytest.approx(ref[key]), key


def test_streaming_coverage_popularity_match_pure_functions():
    model = TinyGRU(n_items=30, seed=3)
    rng = np.random.default_rng(3)
    samples = Samples.from_lists(
        [list(rng.integers(0, 30, 4)) for _ in range(50)], list(rng.integers(0, 30, 50))
    )
    pop = rng.integers(0, 20, 30)
    res = evaluate(
        model, samples, protocol="samples", ks=(3, 10), item_popularity=pop, batch_size=7
    )
    hist = [samples.prefixes.session(q) for q in range(len(samples))]
    top = torch.topk(model.score(hist), 10, dim=1).indices.numpy()
    for k in (3, 10):
        assert res[f"coverage@{k}"] == pytest.approx(coverage_at_k(top, k, 30))
        assert res[f"popularity@{k}"] == pytest.approx(popularity_at_k(top, k, pop))


# ------------------------------------------------------------- real pop models

TRAIN = [[0, 1, 1], [1, 2], [2, 1, 3]]  # counts 0:1, 1:4, 2:2, 3:1 (8 events)


def test_pop_coverage_and_popularity():
    pop = Pop().fit(SessionLog.from_sequences(TRAIN))
    counts = SessionLog.from_sequences(TRAIN).item_counts(4)
    res = evaluate(
        pop,
        SessionLog.from_sequences([[3, 0, 3]]),
        ks=(1, 2, 3),
        item_popularity=counts,
        ties="average",
    )
    # pop scores [1, 4, 2, 1]: target 0 and 3 (score 1) tie: opt 3, cons 4 -> 3.5
    check(res, [3.5, 3.5], ks=(1, 2, 3))
    assert res["coverage@1"] == pytest.approx(1 / 4)
    assert res["coverage@2"] == pytest.approx(2 / 4)
    assert res["popularity@1"] == pytest.approx(4 / 8)
    assert res["popularity@2"] == pytest.approx((4 / 8 + 2 / 8) / 2)
    assert evaluate(pop, SessionLog.from_sequences([[3, 0]]))["popularity@5"] is None


def test_session_pop_hand_checked():
    model = SessionPop().fit(SessionLog.from_sequences(TRAIN))
    # base = pop / (max + 1) = [.2, .8, .4, .2]
    # [3] -> 0: [.2, .8, .4, 1.2]: target 0 alone at .2 -> rank 4 under every policy
    # [3, 0] -> 3: [1.2, .8, .4, 1.2]: target 3 ties item 0 -> opt 1, cons 2, avg 1.5
    log = SessionLog.from_sequences([[3, 0, 3]])
    for ties, ranks in (("optimistic", [4, 1]), ("conservative", [4, 2]), ("average", [4, 1.5])):
        check(evaluate(model, log, ks=(1, 2, 4), ties=ties), ranks, ks=(1, 2, 4))


# ----------------------------------------------------------------------- errors


def test_bad_names_and_arguments():
    log = SessionLog.from_sequences(SESSIONS)
    m = DecayScorer()
    with pytest.raises(SeqrecError, match=r"unknown protocol 'nope'; valid: next-item, samples"):
        evaluate(m, log, protocol="nope")
    with pytest.raises(SeqrecError, match=r"unknown ties 'median'; valid: optimistic, conserv"):
        evaluate(m, log, ties="median")
    with pytest.raises(SeqrecError, match="drop, miss"):
        evaluate(m, log, unknown="skip")
    for ks in ((0,), (5, -1), (2.5,), (), (True,)):
        with pytest.raises(SeqrecError, match="ks must be positive integers"):
            evaluate(m, log, ks=ks)
    with pytest.raises(SeqrecError, match="batch_size"):
        evaluate(m, log, batch_size=0)
    with pytest.raises(SeqrecError, match="needs a Samples"):
        evaluate(m, log, protocol="samples")
    with pytest.raises(SeqrecError, match="needs a SessionLog"):
        evaluate(m, Samples.from_sessions(log))
    with pytest.raises(SeqrecError, match="no init_state/step"):
        evaluate(m, log, use_step=True)
    with pytest.raises(SeqrecError, match="item_popularity"):
        evaluate(m, log, item_popularity=np.ones(3))


def test_progress_bar_runs(capsys):
    res = evaluate(DecayRecurrent(), SessionLog.from_sequences(SESSIONS), progress=True)
    assert res["n_queries"] == 4
    assert "evaluate next-item" in capsys.readouterr().err
