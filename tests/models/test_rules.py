"""Markov, sequential rules and association rules on literal sessions, scores by hand.

LOG = [[0, 1, 2], [1, 2, 3], [0, 2]], 4 items. The paper's normaliser of item i is
the sum over its occurrences of (session length - 1):
  item 0: s1 (3-1) + s3 (2-1) = 3;  item 1: s1 2 + s2 2 = 4;
  item 2: s1 2 + s2 2 + s3 1 = 5;   item 3: s2 2 = 2.
"""

import numpy as np
import pytest
import torch

from seqrec.data.pairs import ItemMatrix
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.registry import load_model
from seqrec.models.rules import AR, SR, Markov

LOG = SessionLog.from_sequences([[0, 1, 2], [1, 2, 3], [0, 2]])
# no evidence (no known last item, or no rule from it): training counts / (max + 1);
# counts 0: 2, 1: 2, 2: 3, 3: 1
POP = [2 / 4, 2 / 4, 3 / 4, 1 / 4]


def rows_of(scores):
    return [[round(v, 6) for v in r] for r in scores.tolist()]


def rows(model, items):
    return rows_of(model.score([[i] for i in items]))


def test_markov_transition_probabilities():
    # consecutive pairs: 0->1, 1->2 | 1->2, 2->3 | 0->2
    # out-counts: 0: 2, 1: 2, 2: 1, 3: 0
    m = Markov().fit(LOG)
    assert rows(m, [0, 1, 2, 3]) == [
        [0, 1 / 2, 1 / 2, 0],  # 0->1 once, 0->2 once, out of 2
        [0, 0, 2 / 2, 0],  # 1->2 twice out of 2
        [0, 0, 0, 1 / 1],  # 2->3
        POP,  # 3 is never followed: no rule -> the popularity fallback
    ]
    counts = Markov({"normalise": "count"}).fit(LOG)
    assert rows(counts, [1]) == [[0, 0, 2, 0]]


def test_sequential_rules_div_weighting_normalised():
    # pairs (gap, weight 1/gap): s1: 0->1 (1, 1), 1->2 (1, 1), 0->2 (2, 1/2)
    #                            s2: 1->2 (1, 1), 2->3 (1, 1), 1->3 (2, 1/2)
    #                            s3: 0->2 (1, 1)
    m = SR().fit(LOG)
    assert rows(m, [0, 1, 2, 3]) == [
        [0, round(1 / 3, 6), round((1 / 2 + 1) / 3, 6), 0],  # 0->1: 1/3, 0->2: 1.5/3
        [0, 0, (1 + 1) / 4, (1 / 2) / 4],  # 1->2: 2/4, 1->3: 0.5/4
        [0, 0, 0, 1 / 5],  # 2->3: 1/5
        POP,  # no rule from 3: the popularity fallback
    ]


def test_sequential_rules_steps_weighting_and_raw_weights():
    one = SR({"steps": 1}).fit(LOG)  # only gap-1 pairs: 0->1 and 0->2 once each
    assert rows(one, [0]) == [[0, round(1 / 3, 6), round(1 / 3, 6), 0]]
    quad = SR({"weighting": "quadratic"}).fit(LOG)  # 0->2: (1/2^2 + 1) / 3 = 5/12
    assert rows(quad, [0]) == [[0, round(1 / 3, 6), round(5 / 12, 6), 0]]
    raw = SR({"normalise": False}).fit(LOG)  # 0->1: 1, 0->2: 1/2 + 1
    assert rows(raw, [0]) == [[0, 1.0, 1.5, 0]]
    lin = SR({"steps": 4, "weighting": "linear", "normalise": False}).fit(LOG)
    assert rows(lin, [1]) == [[0, 0, 2.0, 1 - (2 - 1) / 4]]  # 1->3 at gap 2: 0.75


def test_association_rules_both_orders_normalised():
    # unordered pairs: s1 {0,1} {1,2} {0,2}; s2 {1,2} {2,3} {1,3}; s3 {0,2}
    m = AR().fit(LOG)
    got = rows(m, [0, 1, 2, 3])
    assert got == [
        [0, round(1 / 3, 6), round(2 / 3, 6), 0],  # 0-1 once, 0-2 twice; / 3
        [1 / 4, 0, 2 / 4, 1 / 4],  # 1-0, 1-2 twice, 1-3; / 4
        [2 / 5, 2 / 5, 0, 1 / 5],  # 2-0 twice, 2-1 twice, 2-3; / 5
        [0, 1 / 2, 1 / 2, 0],  # 3-1, 3-2; / 2
    ]
    # every rule of i counted once per pair it is in: normalised rows sum to one
    assert np.allclose(np.array(got).sum(1), 1.0)


def test_repeated_items_make_self_rules():
    m = SR({"normalise": False}).fit(SessionLog.from_sequences([[0, 0, 1]]))
    # 0->0 at gap 1 (weight 1); 0->1 from position 1 (gap 1) and position 0 (gap 2, 1/2)
    assert rows(m, [0]) == [[1.0, 1 + 1 / 2]]


def test_association_rules_count_ordered_position_pairs_of_a_repeat():
    # [0, 0, 1]: ordered pairs x != y: 0->0 twice, 0->1 twice, 1->0 twice
    # N(0) = 2 occurrences * (3 - 1) = 4, N(1) = 2
    m = AR().fit(SessionLog.from_sequences([[0, 0, 1]]))
    assert rows(m, [0, 1]) == [[2 / 4, 2 / 4], [2 / 2, 0]]


def test_sequential_rules_unbounded_steps_are_the_papers_sum():
    # steps >= longest gap: every earlier position makes a rule, weighted 1/gap
    log = SessionLog.from_sequences([[0, 1, 2, 3]])
    m = SR({"steps": 3, "normalise": False}).fit(log)
    assert rows(m, [0]) == [[0, 1, 1 / 2, round(1 / 3, 6)]]
    assert rows(SR({"steps": 50, "normalise": False}).fit(log), [0]) == rows(m, [0])
    # normalised: N(0) = 1 occurrence * (4 - 1) = 3
    assert rows(SR({"steps": 3}).fit(log), [0]) == [
        [0, round(1 / 3, 6), round(1 / 6, 6), round(1 / 9, 6)]
    ]


@pytest.mark.parametrize("cls", [Markov, SR, AR])
def test_empty_and_unknown_histories_fall_back_to_popularity(cls):
    m = cls().fit(LOG)
    got = m.score([[], [-1], [2, -1], [7]])  # [2, -1]: the last item is unknown
    assert rows_of(got) == [POP] * 4
    assert m.score([]).shape == (0, 4)


@pytest.mark.parametrize("cls", [Markov, SR])
def test_a_last_item_without_rules_falls_back_to_popularity(cls):
    m = cls().fit(LOG)  # item 3 ends its only session: no rule starts from it
    assert rows(m, [3, 1]) == [POP, rows(m, [1])[0]]
    assert max(POP) < 1.0  # below any probability-1 rule


def test_no_fallback_without_a_saved_item_support(tmp_path):
    m = SR().fit(LOG)
    m.item_support_ = None  # as a model file written without it
    assert rows(m, [3]) == [[0, 0, 0, 0]]


@pytest.mark.parametrize("cls", [Markov, SR, AR])
def test_scores_use_the_last_item_and_batches_agree(cls, tmp_path):
    m = cls().fit(LOG)
    hs = [[0, 1], [2], [3, 2, 0], [1]]
    batch = m.score(hs)
    for i, h in enumerate(hs):
        assert torch.equal(batch[i], m.score([h])[0])
        assert torch.equal(batch[i], m.score([[h[-1]]])[0])
    loaded = load_model(m.save(tmp_path / "m"))
    assert torch.equal(loaded.score(hs), batch)
    assert np.array_equal(loaded.matrix_.indices, m.matrix_.indices)


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError):
        SR({"steps": 0})
    with pytest.raises(ConfigError):
        SR({"weighting": "cubic"})


def test_item_matrix_sums_pairs_gathers_rows_and_rejects_bad_arrays():
    # pairs (0,1) 1 + 2, (0,2) 4, (2,0) 5 in a 3x3 matrix
    m = ItemMatrix.from_pairs(
        np.array([0, 2, 0, 0]), np.array([1, 0, 2, 1]), np.array([1.0, 5.0, 4.0, 2.0]), 3
    )
    assert m.indptr.tolist() == [0, 2, 2, 3]
    assert m.dense_rows(np.array([2, -1, 0, 1, 0])).tolist() == [
        [5, 0, 0],
        [0, 0, 0],
        [0, 3, 4],
        [0, 0, 0],
        [0, 3, 4],
    ]
    with pytest.raises(ValueError, match="row pointer"):
        ItemMatrix.checked(np.array([0, 2, 1, 3]), m.indices, m.values, n=3)
    with pytest.raises(ValueError, match="out of range"):
        ItemMatrix.checked(m.indptr, np.array([1, 2, 3]), m.values, n=3)
    with pytest.raises(ValueError, match="do not match"):
        ItemMatrix.checked(m.indptr, m.indices, m.values, n=4)
