"""SKNN, V-SKNN and VMIS-kNN on literal toy sessions, neighbours and scores by hand."""

from math import log, log2, sqrt

import numpy as np
import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.registry import load_model
from seqrec.models.sknn import SKNN, VMISKNN, VSKNN, position_weights

# No times: the log order is the recency order (S4 is the most recent session).
SESSIONS = [
    [1, 2, 3],  # S0
    [2, 4],  # S1
    [1, 2],  # S2
    [5, 6],  # S3
    [3, 4, 5],  # S4
]
LOG = SessionLog.from_sequences(SESSIONS)  # 7 items: item 0 occurs in no session
R6 = sqrt(6)


def row(model, history) -> list[float]:
    return model.score([np.array(history, dtype=np.int64)])[0].tolist()


def expect(values: dict[int, float], n: int = 7) -> list[float]:
    return [values.get(i, 0.0) for i in range(n)]


def test_sknn_cosine_neighbours_and_summed_scores():
    # query {2, 3}: candidates S0, S1, S2 (contain 2) and S4 (contains 3)
    # cosine = |q & n| / sqrt(|q| |n|): S0 2/sqrt(2*3), S1 1/sqrt(2*2), S2 1/2, S4 1/sqrt(6)
    m = SKNN(k=100, sample_size=100).fit(LOG)
    nb, sim = m.neighbours([2, 3])
    assert nb.tolist() == [0, 2, 1, 4]  # by similarity; the tie S1 = S2 -> more recent S2
    assert sim == pytest.approx([2 / R6, 0.5, 0.5, 1 / R6])
    # score(i) = sum of the similarities of the neighbours containing i
    want = {1: 2 / R6 + 0.5, 2: 2 / R6 + 0.5 + 0.5, 3: 2 / R6 + 1 / R6, 4: 0.5 + 1 / R6, 5: 1 / R6}
    assert row(m, [2, 3]) == pytest.approx(expect(want))
    assert row(m, [3, 2, 3]) == pytest.approx(expect(want))  # a set: order and repeats ignored


def test_sknn_k_keeps_the_most_similar_then_most_recent():
    m = SKNN(k=2, sample_size=100).fit(LOG)
    assert m.neighbours([2, 3])[0].tolist() == [0, 2]  # S0 (0.816); S2 beats S1 on recency
    want = {1: 2 / R6 + 0.5, 2: 2 / R6 + 0.5, 3: 2 / R6}
    assert row(m, [2, 3]) == pytest.approx(expect(want))


def test_sknn_sample_size_keeps_the_most_recent_candidates():
    # candidates S0, S1, S2, S4; the 2 most recent in log order are S2 and S4
    m = SKNN(k=100, sample_size=2).fit(LOG)
    nb, sim = m.neighbours([2, 3])
    assert nb.tolist() == [2, 4] and sim == pytest.approx([0.5, 1 / R6])
    assert row(m, [2, 3]) == pytest.approx(
        expect({1: 0.5, 2: 0.5, 3: 1 / R6, 4: 1 / R6, 5: 1 / R6})
    )


def test_recency_is_the_last_timestamp_when_the_log_has_times():
    # last times: S0 50, S1 10, S2 20, S3 30, S4 40 -> recency order S1 S2 S3 S4 S0
    times = [[1, 5, 50], [9, 10], [15, 20], [25, 30], [35, 38, 40]]
    m = SKNN(k=100, sample_size=2).fit(SessionLog.from_sequences(SESSIONS, times=times))
    # the 2 most recent candidates are S0 (2/sqrt 6) and S4 (1/sqrt 6)
    nb, sim = m.neighbours([2, 3])
    assert sim == pytest.approx([2 / R6, 1 / R6])
    assert nb.tolist() == [4, 3]  # their recency ids: S0 is now id 4, S4 id 3
    want = {1: 2 / R6, 2: 2 / R6, 3: 3 / R6, 4: 1 / R6, 5: 1 / R6}
    assert row(m, [2, 3]) == pytest.approx(expect(want))


def test_position_weights_by_hand():
    # n = 3, positions p = 1, 2, 3, steps back d = 2, 1, 0
    assert position_weights(3, "linear") == pytest.approx([1 / 3, 2 / 3, 1])
    assert position_weights(3, "quadratic") == pytest.approx([1 / 9, 4 / 9, 1])
    assert position_weights(3, "log") == pytest.approx([1 / log2(4), 1 / log2(3), 1])
    assert position_weights(3, "harmonic") == pytest.approx([1 / 3, 1 / 2, 1])


def test_vsknn_weighted_similarity_and_scores():
    # query [1, 4, 3], linear weights 1/3, 2/3, 1
    # S0 {1,2,3}: 1/3 + 1 = 4/3; S1 {2,4}: 2/3; S2 {1,2}: 1/3; S4 {3,4,5}: 2/3 + 1 = 5/3
    m = VSKNN(k=2, sample_size=100, weighting="linear").fit(LOG)
    nb, sim = m.neighbours([1, 4, 3])
    assert nb.tolist() == [4, 0] and sim == pytest.approx([5 / 3, 4 / 3])
    want = {1: 4 / 3, 2: 4 / 3, 3: 5 / 3 + 4 / 3, 4: 5 / 3, 5: 5 / 3}
    assert row(m, [1, 4, 3]) == pytest.approx(expect(want))
    # harmonic weights 1/3, 1/2, 1: S4 1/2 + 1 = 3/2, S0 1/3 + 1 = 4/3, S1 1/2, S2 1/3
    h = VSKNN(k=100, sample_size=100, weighting="harmonic").fit(LOG)
    nb, sim = h.neighbours([1, 4, 3])
    assert nb.tolist() == [4, 0, 1, 2] and sim == pytest.approx([3 / 2, 4 / 3, 1 / 2, 1 / 3])


def test_vsknn_repeated_and_unknown_items():
    m = VSKNN(k=100, sample_size=100, weighting="linear").fit(LOG)
    # [3, 1, 3]: item 3 keeps its most recent weight 1, item 1 has 2/3
    # S0 {1,3}: 5/3, S2 {1}: 2/3, S4 {3}: 1
    nb, sim = m.neighbours([3, 1, 3])
    assert nb.tolist() == [0, 4, 2] and sim == pytest.approx([5 / 3, 1, 2 / 3])
    # unknown items are dropped first: [3, -1, 1] is [3, 1] -> weights 1/2, 1
    nb, sim = m.neighbours([3, -1, 1])
    assert nb.tolist() == [0, 2, 4] and sim == pytest.approx([3 / 2, 1, 1 / 2])


def test_vsknn_idf_weighting():
    # df (sessions containing i): 1: 2, 2: 3, 3: 2, 4: 2, 5: 2, 6: 1; idf = log(5 / df)
    m = VSKNN(k=2, sample_size=100, weighting="linear", idf_weighting=True).fit(LOG)
    want = {
        1: 4 / 3 * log(5 / 2),
        2: 4 / 3 * log(5 / 3),
        3: 3 * log(5 / 2),
        4: 5 / 3 * log(5 / 2),
        5: 5 / 3 * log(5 / 2),
    }
    assert row(m, [1, 4, 3]) == pytest.approx(expect(want), rel=1e-6)


def test_vsknn_normalise_is_the_cosine_of_the_weighted_vector():
    # query [1, 4, 3], linear weights 1/3, 2/3, 1; ||w|| = sqrt(1/9 + 4/9 + 1) = sqrt(14)/3
    # sim = dot / (||w|| * sqrt(|n|)): S4 (5/3) / (sqrt(14)/3 * sqrt(3)) = 5 / sqrt(42),
    # S0 4 / sqrt(42), S1 (2/3) / (sqrt(14)/3 * sqrt(2)) = 2 / sqrt(28), S2 1 / sqrt(28)
    r42, r28 = sqrt(42), sqrt(28)
    m = VSKNN(k=100, sample_size=100, weighting="linear", normalise=True).fit(LOG)
    nb, sim = m.neighbours([1, 4, 3])
    assert nb.tolist() == [4, 0, 1, 2]
    assert sim == pytest.approx([5 / r42, 4 / r42, 2 / r28, 1 / r28])
    top2 = VSKNN(k=2, sample_size=100, weighting="linear", normalise=True).fit(LOG)
    want = {1: 4 / r42, 2: 4 / r42, 3: 9 / r42, 4: 5 / r42, 5: 5 / r42}
    assert row(top2, [1, 4, 3]) == pytest.approx(expect(want))
    # with every weight 1 (one item) the cosine of V-SKNN is SKNN's
    one = VSKNN(k=100, sample_size=100, normalise=True).fit(LOG)
    assert row(one, [2]) == pytest.approx(row(SKNN(k=100, sample_size=100).fit(LOG), [2]))


def test_vsknn_match_weighting_by_the_most_recent_shared_item():
    # query [1, 4, 3] (linear): S0 (sim 4/3) and S4 (5/3) contain the last item 3: x = 1;
    # S1 (2/3) shares 4 at most: x = 2; S2 (1/3) shares 1 only: x = 3
    m = VSKNN(k=100, sample_size=100, weighting="linear", match_weighting="harmonic").fit(LOG)
    nb, sim = m.neighbours([1, 4, 3])  # neighbours are chosen by similarity alone
    assert nb.tolist() == [4, 0, 1, 2] and sim == pytest.approx([5 / 3, 4 / 3, 2 / 3, 1 / 3])
    # contributions sim / x: S0 4/3, S1 1/3, S2 1/9, S4 5/3
    want = {
        1: 4 / 3 + 1 / 9,
        2: 4 / 3 + 1 / 3 + 1 / 9,
        3: 4 / 3 + 5 / 3,
        4: 1 / 3 + 5 / 3,
        5: 5 / 3,
    }
    assert row(m, [1, 4, 3]) == pytest.approx(expect(want))
    # an unknown item does not count as a step; a repeat counts its most recent position
    assert row(m, [1, -1, 4, 3]) == pytest.approx(expect(want))
    q = VSKNN(k=100, sample_size=100, weighting="linear", match_weighting="quadratic").fit(LOG)
    assert row(q, [1, 4, 3])[2] == pytest.approx(4 / 3 + 2 / 3 / 4 + 1 / 3 / 9)  # item 2
    lg = VSKNN(k=100, sample_size=100, weighting="linear", match_weighting="log").fit(LOG)
    assert row(lg, [1, 4, 3])[4] == pytest.approx(2 / 3 / log2(3) + 5 / 3)  # item 4


def test_empty_unknown_and_unseen_histories():
    # no known item, or no neighbour -> popularity / (max + 1); counts 0, 2, 3, 2, 2, 2, 1
    pop = [0, 2 / 4, 3 / 4, 2 / 4, 2 / 4, 2 / 4, 1 / 4]
    for cls in (SKNN, VSKNN, VMISKNN):
        m = cls().fit(LOG)
        assert row(m, []) == pytest.approx(pop)
        assert row(m, [-1, -1]) == pytest.approx(pop)
        # a known item in no training session has no neighbours: the same fallback
        assert row(m, [0]) == pytest.approx(pop)
        assert row(m, [0, -1]) == pytest.approx(pop)


def test_vmis_equals_vsknn_when_m_is_large():
    rng = np.random.default_rng(3)
    seqs = [list(rng.integers(0, 40, size=rng.integers(1, 8))) for _ in range(300)]
    times = [sorted(rng.uniform(0, 1000, size=len(s))) for s in seqs]
    train = SessionLog.from_sequences(seqs, times=times)
    hs = [rng.integers(0, 40, size=rng.integers(1, 6)) for _ in range(30)]
    options = [{"weighting": w} for w in ("linear", "log", "quadratic", "harmonic")]
    options += [{"normalise": True}, {"match_weighting": "harmonic", "normalise": True}]
    for extra in options:
        keys = {"k": 20, "sample_size": 50, "idf_weighting": True, **extra}
        v = VSKNN(keys).fit(train).score(hs)
        assert torch.equal(VMISKNN(keys, m=50).fit(train).score(hs), v)
        assert torch.equal(VMISKNN(keys, m=1000).fit(train).score(hs), v)


def test_vmis_small_m_reads_only_the_m_most_recent_sessions_per_item():
    # m = 1: item 2 -> [S2], item 3 -> [S4]; linear weights of [2, 3]: 1/2, 1
    m = VMISKNN(k=100, sample_size=100, m=1).fit(LOG)
    nb, sim = m.neighbours([2, 3])
    assert nb.tolist() == [4, 2] and sim == pytest.approx([1, 1 / 2])
    assert int(m.index_["item_offsets"][-1]) == 6  # one session for each of items 1..6


def test_save_load_exact_and_batch_equals_single(tmp_path):
    hs = [np.array([2, 3]), np.array([], dtype=np.int64), np.array([1, 4, 3]), np.array([6])]
    vs_options = {"normalise": True, "match_weighting": "harmonic"}
    for cls, extra in ((SKNN, {}), (VSKNN, {}), (VMISKNN, {}), (VMISKNN, vs_options)):
        m = cls(k=2, sample_size=3, **extra).fit(LOG)
        batch = m.score(hs)
        single = torch.cat([m.score([h]) for h in hs])
        assert torch.equal(batch, single)
        back = load_model(m.save(tmp_path / f"{cls.name}{len(extra)}"))
        assert type(back) is cls and back.config == m.config
        assert torch.equal(back.score(hs), batch)
        for key, arr in m.index_.items():
            assert np.array_equal(back.index_[key], arr)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="k must be >= 1"):
        SKNN(k=0)
    with pytest.raises(ConfigError, match="m must be >= 1"):
        VMISKNN(m=0)
    with pytest.raises(ConfigError, match="weighting"):
        VSKNN(weighting="cubic")
    with pytest.raises(ConfigError, match="match_weighting"):
        VMISKNN(match_weighting="cubic")


def test_fit_records_the_index_size_and_build_time():
    m = VMISKNN(m=1).fit(LOG)
    nbytes = sum(a.nbytes for a in m.index_.values())
    # int64 offsets / ids, float64 idf: (5+1) + 12 items (3+2+2+2+3) + (7+1) + 6 ids + 7 idf
    assert nbytes == 8 * (6 + 12 + 8 + 6 + 7)
    assert m.meta_["index_mib"] == round(nbytes / 2**20, 3)
    assert m.meta_["index_build_seconds"] >= 0
