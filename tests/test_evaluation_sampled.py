"""Sampled ranking, only when asked and always labelled: ranks by hand on a literal
score table, the negatives the evaluation uses, determinism, every path agreeing,
labels in the result, the table and the JSON of the command line, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seqrec.cli import main
from seqrec.data.negatives import QueryNegatives
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import SeqrecError
from seqrec.evaluation import evaluate, sampled_ranks

# -------------------------------------------------------------- ranks by hand
SCORES = torch.tensor(
    [
        [0.5, 0.9, 0.5, 0.1, 0.7, 0.5],
        [0.2, 0.2, 0.8, 0.3, 0.2, 0.0],
    ],
    dtype=torch.float64,
)


def test_sampled_rank_by_hand_under_each_tie_policy() -> None:
    # row 0: target 0 (0.5) among negatives 1 (0.9), 2 (0.5), 3 (0.1): one above, one tie
    # row 1: target 4 (0.2) among negatives 0 (0.2), 1 (0.2), 5 (0.0): two ties
    targets = torch.tensor([0, 4])
    negatives = torch.tensor([[1, 2, 3], [0, 1, 5]])
    want = {"optimistic": [2.0, 1.0], "conservative": [3.0, 3.0], "average": [2.5, 2.0]}
    for ties, ranks in want.items():
        got = sampled_ranks(SCORES, targets, negatives, ties)
        assert got.dtype == torch.float64 and got.tolist() == ranks
    # item 4 (0.7) of row 0 is not a candidate: it does not count
    assert sampled_ranks(SCORES, torch.tensor([0]), torch.tensor([[3, 5]]), "optimistic")[0] == 1
    bad = SCORES.clone()
    bad[0, 3] = float("nan")
    with pytest.raises(SeqrecError, match="NaN"):
        sampled_ranks(bad, targets, negatives, "conservative")


class TableScorer:
    """Scores = a literal table row chosen by the last history item (ties included)."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table
        self.n_items_ = table.shape[1]

    def score(self, histories):
        return torch.stack([self.table[int(h[-1])] for h in histories])


TABLE = torch.tensor(
    [  # 8 items; row = last history item
        [0.0, 0.9, 0.1, 0.4, 0.4, 0.2, 0.8, 0.3],
        [0.5, 0.0, 0.5, 0.5, 0.1, 0.9, 0.2, 0.6],
        [0.3, 0.3, 0.0, 0.7, 0.3, 0.1, 0.3, 0.2],
        [0.1, 0.2, 0.3, 0.0, 0.4, 0.5, 0.6, 0.7],
        [0.6, 0.6, 0.6, 0.6, 0.0, 0.6, 0.6, 0.6],
        [0.9, 0.1, 0.4, 0.4, 0.2, 0.0, 0.1, 0.5],
        [0.2, 0.3, 0.2, 0.8, 0.2, 0.4, 0.0, 0.1],
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.6, 0.7, 0.0],
    ],
    dtype=torch.float64,
)
PREFIXES = [[0], [1, 2], [3], [4, 5, 6], [7], [2, 2], [6, 0], [5]]
LABELS = [3, 3, 5, 2, 6, 3, 4, 0]


def _samples() -> Samples:
    return Samples(SessionLog.from_sequences(PREFIXES), np.array(LABELS))


@pytest.mark.parametrize("ties", ["conservative", "optimistic", "average"])
@pytest.mark.parametrize("sampler", ["uniform", "popularity"])
def test_evaluate_ranks_each_target_among_its_own_negatives(ties: str, sampler: str) -> None:
    """The metrics of evaluate(sampled_negatives=3) equal ranks counted by hand over
    the target and the negatives QueryNegatives gives each sample (its index)."""
    counts = np.array([5.0, 1.0, 2.0, 8.0, 1.0, 3.0, 2.0, 4.0])
    res = evaluate(
        TableScorer(TABLE), _samples(), protocol="samples", ks=(1, 2, 3), ties=ties,
        item_popularity=counts, sampled_negatives=3, sampler=sampler, seed=9, batch_size=3,
    )  # fmt: skip
    qn = QueryNegatives(8, 3, sampler, seed=9, counts=counts)
    neg = qn.sample(np.arange(8), LABELS, [np.array(p) for p in PREFIXES])
    ranks = []
    for q, (prefix, t) in enumerate(zip(PREFIXES, LABELS, strict=True)):
        assert t not in neg[q] and not set(neg[q]) & set(prefix)
        row = TABLE[prefix[-1]].tolist()
        above = sum(1 for j in neg[q] if row[j] > row[t])
        tied = sum(1 for j in neg[q] if row[j] == row[t])
        ranks.append(
            {"optimistic": 1 + above, "conservative": 1 + above + tied,
             "average": 1 + above + tied / 2}[ties]
        )  # fmt: skip
    ranks = np.array(ranks, dtype=float)
    for k in (1, 2, 3):
        assert res[f"recall@{k}"] == pytest.approx(np.mean(ranks <= k))
        assert res[f"mrr@{k}"] == pytest.approx(np.mean(np.where(ranks <= k, 1 / ranks, 0)))
        ndcg = np.where(ranks <= k, 1 / np.log2(ranks + 1), 0)
        assert res[f"ndcg@{k}"] == pytest.approx(np.mean(ndcg))
    assert res["ranking"] == f"sampled: 3 {sampler} negatives, seed 9"
    assert (res["sampled_negatives"], res["sampler"], res["seed"]) == (3, sampler, 9)
    # coverage still reads the full-catalogue top-K lists
    full = evaluate(TableScorer(TABLE), _samples(), protocol="samples", ks=(1, 2, 3), ties=ties)
    assert res["coverage@3"] == full["coverage@3"]
    assert full["ranking"] == "full" and "sampled_negatives" not in full


class TinyGRU:
    """A random recurrent model (float64): h' = tanh(h W + E[item]), scores = h O^T."""

    def __init__(self, n_items: int = 40, d: int = 6) -> None:
        g = torch.Generator().manual_seed(0)
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


def _sessions(n: int = 40, n_items: int = 40) -> SessionLog:
    rng = np.random.default_rng(3)
    return SessionLog.from_sequences(
        [list(rng.integers(0, n_items, rng.integers(2, 9))) for _ in range(n)]
    )


def test_same_seed_same_figures_whatever_the_batch_or_path() -> None:
    model, log = TinyGRU(), _sessions()
    kw = {"sampled_negatives": 10, "seed": 4, "ks": (1, 5)}
    step = evaluate(model, log, batch_size=7, **kw)  # recurrent: one step per event
    again = evaluate(model, log, batch_size=7, **kw)
    score = evaluate(model, log, batch_size=3, use_step=False, **kw)  # prefixes, other order
    for key in ("recall@1", "recall@5", "mrr@5", "ndcg@5"):
        assert step[key] == again[key]
        assert step[key] == pytest.approx(score[key], rel=1e-12)
    other = evaluate(model, log, batch_size=7, sampled_negatives=10, seed=5, ks=(1, 5))
    assert (other["mrr@5"], other["ndcg@5"]) != (step["mrr@5"], step["ndcg@5"])
    # fewer candidates: a sampled rank is never worse than the full rank
    full = evaluate(model, log, ks=(1, 5))
    assert step["recall@1"] >= full["recall@1"] and step["mrr@5"] >= full["mrr@5"]


def test_the_negatives_used_are_outside_the_history() -> None:
    """A model that gives every history item the top score: with negatives outside the
    history, each target ranks as if those items did not exist."""

    class LovesHistory:
        n_items_ = 12

        def score(self, histories):
            out = torch.zeros(len(histories), 12, dtype=torch.float64)
            for b, h in enumerate(histories):
                out[b, torch.as_tensor(h, dtype=torch.long)] = 10.0
                out[b, (int(h[-1]) + 1) % 12] = 5.0  # the next item, below the history
            return out

    prefixes = [[3, 4, 5, 6, 7, 8], [9, 10, 11, 1, 2], [2, 3, 4, 5]]
    labels = [9, 3, 6]  # the next item, never in the history
    samples = Samples(SessionLog.from_sequences(prefixes), np.array(labels))
    res = evaluate(LovesHistory(), samples, protocol="samples", ks=(1,), sampled_negatives=5)
    assert res["recall@1"] == 1.0  # no history item among the candidates
    full = evaluate(LovesHistory(), samples, protocol="samples", ks=(1,))
    assert full["recall@1"] == 0.0


def test_a_target_in_its_excluded_history_ranks_last_among_the_candidates() -> None:
    samples = Samples(SessionLog.from_sequences([[1, 2, 3]]), np.array([2]))
    res = evaluate(
        TableScorer(TABLE), samples, protocol="last-item", ks=(4, 5), sampled_negatives=4
    )
    assert res["exclude_history"] and res["recall@4"] == 0.0 and res["recall@5"] == 1.0


def test_bad_requests_are_clear_errors() -> None:
    model = TableScorer(TABLE)
    with pytest.raises(SeqrecError, match="8 sampled negatives need more than 8 items"):
        evaluate(model, _samples(), protocol="samples", sampled_negatives=8)
    # 8 items - target - history {4, 5, 6}: 4 left for sample 3
    with pytest.raises(SeqrecError, match=r"query 3: 5 sampled negatives.*only 4"):
        evaluate(model, _samples(), protocol="samples", sampled_negatives=5)
    with pytest.raises(SeqrecError, match="needs the training item counts"):
        evaluate(model, _samples(), protocol="samples", sampled_negatives=2, sampler="popularity")
    with pytest.raises(SeqrecError, match="unknown sampler"):
        evaluate(model, _samples(), protocol="samples", sampler="zipf")


# -------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def pop_model(tmp_path_factory, excerpt):
    out = tmp_path_factory.mktemp("models") / "pop"
    argv = ["train", "--train", str(excerpt / "train.tsv"), "--model", "pop"]
    assert main([*argv, "--out", str(out), "-q"]) == 0
    return out


def _evaluate(capsys, model, excerpt, *extra):
    argv = ["evaluate", "--model", str(model), "--test", str(excerpt / "test.tsv"), "-q"]
    code = main([*argv, *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_labels_sampled_ranking_in_the_table_and_the_json(pop_model, excerpt, capsys):
    code, table, _ = _evaluate(capsys, pop_model, excerpt, "--sampled-negatives", "50")
    assert code == 0
    first = table.splitlines()[0]
    assert first.startswith("SAMPLED RANKING, NOT FULL RANKING")
    assert "sampled: 50 uniform negatives, seed 42" in first
    assert "over 51 candidates" in table
    extra = ["--sampled-negatives", "50", "--sampler", "popularity", "--seed", "3", "--json"]
    code, out, _ = _evaluate(capsys, pop_model, excerpt, *extra)
    res = json.loads(out)
    assert res["ranking"] == "sampled: 50 popularity negatives, seed 3"
    assert (res["sampled_negatives"], res["sampler"], res["seed"]) == (50, "popularity", 3)
    code, again, _ = _evaluate(capsys, pop_model, excerpt, *extra)
    assert json.loads(again)["mrr@20"] == res["mrr@20"]
    # full ranking stays the default, and says so
    code, out, _ = _evaluate(capsys, pop_model, excerpt, "--json")
    full = json.loads(out)
    assert full["ranking"] == "full" and "sampled_negatives" not in full
    assert full["recall@20"] < res["recall@20"]
    code, table, _ = _evaluate(capsys, pop_model, excerpt)
    assert "full ranking" in table.splitlines()[0] and "SAMPLED" not in table


def test_cli_sampler_or_seed_without_sampled_negatives_is_an_error(pop_model, excerpt, capsys):
    code, out, err = _evaluate(capsys, pop_model, excerpt, "--seed", "0")
    assert code == 2 and out == ""
    assert "--seed only applies to sampled ranking: add --sampled-negatives N" in err
    code, _, err = _evaluate(capsys, pop_model, excerpt, "--sampled-negatives", "10000000")
    assert code == 2 and "sampled negatives need more than" in err
