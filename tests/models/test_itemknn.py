"""Item-kNN on literal sessions, similarities by hand.

LOG = [[0, 1, 2], [1, 2, 3], [0, 2]], 4 items.
Sessions containing each item |S_i|: 0: 2 (s1, s3), 1: 2 (s1, s2), 2: 3, 3: 1 (s2).
Co-occurrences |S_i & S_j|: 0-1: 1, 0-2: 2, 1-2: 2, 1-3: 1, 2-3: 1, 0-3: 0.
"""

import math

import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.itemknn import ItemKNN
from seqrec.models.registry import load_model

LOG = SessionLog.from_sequences([[0, 1, 2], [1, 2, 3], [0, 2]])


def rows(model, items):
    return [[round(v, 5) for v in r] for r in model.score([[i] for i in items]).tolist()]


def r5(x):
    return round(x, 5)


def test_cosine_without_shrinkage():
    m = ItemKNN({"lambda_": 0.0}).fit(LOG)
    s01, s02, s12 = 1 / math.sqrt(2 * 2), 2 / math.sqrt(2 * 3), 2 / math.sqrt(2 * 3)
    s13, s23 = 1 / math.sqrt(2 * 1), 1 / math.sqrt(3 * 1)
    assert rows(m, [0, 1, 2, 3]) == [
        [0, r5(s01), r5(s02), 0],  # 0.5, 0.81650, 0-3 never together
        [r5(s01), 0, r5(s12), r5(s13)],  # 0.5, 0.81650, 0.70711
        [r5(s02), r5(s12), 0, r5(s23)],  # 0.81650, 0.81650, 0.57735
        [0, r5(s13), r5(s23), 0],
    ]


def test_shrinkage_divides_by_the_larger_denominator():
    m = ItemKNN({"lambda_": 2.0}).fit(LOG)
    # 0-2: 2 / (sqrt(6) + 2) = 0.44949; 0-1: 1 / (2 + 2) = 0.25
    assert rows(m, [0]) == [[0, 0.25, r5(2 / (math.sqrt(6) + 2)), 0]]


def test_only_the_k_nearest_neighbours_are_kept():
    m = ItemKNN({"k": 1, "lambda_": 0.0}).fit(LOG)
    # row 1: 2 (0.816) beats 3 (0.707) and 0 (0.5)
    # row 2: 0 and 1 tie at 0.816 -> the smaller id, 0, is kept
    assert rows(m, [1, 2]) == [[0, 0, r5(2 / math.sqrt(6)), 0], [r5(2 / math.sqrt(6)), 0, 0, 0]]
    assert len(m.matrix_.indices) == 4  # one neighbour per item


def test_repeats_count_once_and_no_self_similarity():
    m = ItemKNN({"lambda_": 0.0}).fit(SessionLog.from_sequences([[0, 0, 1], [1, 2]]))
    # |S_0| = 1, |S_1| = 2, |S_2| = 1; 0-1 together once: 1 / sqrt(1 * 2)
    assert rows(m, [0]) == [[0, r5(1 / math.sqrt(2)), 0]]


def test_empty_unknown_and_unrelated_histories_fall_back_to_popularity():
    # counts 0: 2, 1: 2, 2: 3, 3: 1 -> count / (max + 1)
    pop = [0.5, 0.5, 0.75, 0.25]
    m = ItemKNN().fit(LOG)
    assert rows(m, [0]) != [pop]
    got = m.score([[], [-1], [0, -1], [9]])
    assert [[r5(v) for v in r] for r in got.tolist()] == [pop] * 4
    # item 2 occurs only alone: no neighbour at all
    lone = ItemKNN().fit(SessionLog.from_sequences([[0, 1], [2], [0, 1, 0]]))
    assert rows(lone, [2]) == [[r5(3 / 4), r5(2 / 4), r5(1 / 4)]]


def test_last_item_batch_single_and_save_load(tmp_path):
    m = ItemKNN({"lambda_": 1.0}).fit(LOG)
    hs = [[0, 1], [2], [3, 2, 0], [1]]
    batch = m.score(hs)
    for i, h in enumerate(hs):
        assert torch.equal(batch[i], m.score([h])[0])
        assert torch.equal(batch[i], m.score([[h[-1]]])[0])
    loaded = load_model(m.save(tmp_path / "m"))
    assert loaded.config == m.config
    assert torch.equal(loaded.score(hs), batch)


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError):
        ItemKNN({"k": 0})
    with pytest.raises(ConfigError):
        ItemKNN({"lambda_": -1.0})
