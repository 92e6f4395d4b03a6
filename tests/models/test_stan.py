"""STAN on literal toy sessions: neighbours, sim1, w2, w3 and scores computed by hand."""

from math import exp, sqrt

import numpy as np
import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.registry import load_model
from seqrec.models.stan import STAN

# No times: the log order is the recency order (S4 is the most recent session) and a
# session's time is its rank (S0 = 0 ... S4 = 4), so lambda_2 counts sessions.
SESSIONS = [
    [1, 2, 3],  # S0
    [2, 4, 2],  # S1: 2 repeated, its most recent position is 3; length 3
    [5, 1, 2],  # S2
    [6, 7],  # S3
    [3, 4, 5, 4],  # S4: 4 repeated, most recent position 4; length 4
]
LOG = SessionLog.from_sequences(SESSIONS)  # 8 items: item 0 occurs in no session
E = exp(1.0)
R6, R8 = sqrt(2 * 3), sqrt(2 * 4)  # sqrt(l(s) * l(n)) for l(s) = 2


def row(model, history) -> list[float]:
    return model.score([np.array(history, dtype=np.int64)])[0].tolist()


def expect(values: dict[int, float], n: int = 8) -> list[float]:
    return [values.get(i, 0.0) for i in range(n)]


def test_all_three_factors_by_hand():
    # query s = [1, 2], l(s) = 2; lambda_1 = lambda_2 = lambda_3 = 1
    # w1: item 1 (position 1) exp((1 - 2) / 1) = 1/e, item 2 (position 2) 1
    # candidates (share 1 or 2): S0, S1, S2
    # sim1: S0 {1,2,3} (1/e + 1)/sqrt(2*3); S1 {2,4} 1/sqrt(2*3); S2 {5,1,2} (1/e + 1)/sqrt(6)
    # w2 relative to the most recent candidate S2 (time 2): S0 e^-2, S1 e^-1, S2 1
    m = STAN(k=10, sample_size=10, lambda_1=1.0, lambda_2=1.0, lambda_3=1.0).fit(LOG)
    s0, s1, s2 = (1 / E + 1) / R6 / E**2, 1 / R6 / E, (1 / E + 1) / R6
    nb, sim = m.neighbours([1, 2])
    assert nb.tolist() == [2, 1, 0]  # 0.558, 0.150, 0.0755
    assert sim == pytest.approx([s2, s1, s0])
    # w3: r = 2 (the most recent item of s) in all three; p(r, n): S0 2, S1 3 (its last
    # occurrence), S2 3. S0: 1 -> e^-1, 2 -> 1, 3 -> e^-1; S1: 4 (pos 2) -> e^-1, 2 -> 1;
    # S2: 5 (pos 1) -> e^-2, 1 (pos 2) -> e^-1, 2 -> 1
    want = {1: s0 / E + s2 / E, 2: s0 + s1 + s2, 3: s0 / E, 4: s1 / E, 5: s2 / E**2}
    assert row(m, [1, 2]) == pytest.approx(expect(want))
    # a repeated item keeps its most recent position: [2, 1, 2] weighs 2 at position 3,
    # 1 at position 2 (w1 = e^-1 again) but l(s) = 3
    scale = sqrt(2) / sqrt(3)
    assert row(m, [2, 1, 2]) == pytest.approx([v * scale for v in expect(want)])


def test_r_is_the_most_recent_shared_item_and_repeats_in_n_take_their_last_position():
    # query s = [4, 1]: w1(4) = 1/e, w1(1) = 1 (lambda_1 = 1); no session recency
    # S0 [1,2,3]: sim 1/sqrt6, r = 1 at 1     S1 [2,4,2]: sim e^-1/sqrt6, r = 4 at 2
    # S2 [5,1,2]: sim 1/sqrt6, r = 1 at 2     S4 [3,4,5,4]: sim e^-1/sqrt8, r = 4 at 4
    m = STAN(k=10, sample_size=10, lambda_1=1.0, lambda_3=2.0, session_recency=False).fit(LOG)
    nb, sim = m.neighbours([4, 1])
    assert nb.tolist() == [2, 0, 1, 4]  # S2 and S0 tie: the more recent S2 first
    assert sim == pytest.approx([1 / R6, 1 / R6, 1 / E / R6, 1 / E / R8])
    h = exp(-0.5)  # w3 at distance 1 with lambda_3 = 2
    want = {
        1: 1 / R6 + 1 / R6,  # r itself in S0 and S2
        2: h / R6 + h / E / R6 + h / R6,  # S0 (2 - 1), S1 (3 - 2), S2 (3 - 2)
        3: exp(-1) / R6 + exp(-1.5) / E / R8,  # S0 (3 - 1), S4 (|1 - 4|)
        4: 1 / E / R6 + 1 / E / R8,  # r itself in S1 and S4
        5: h / R6 + h / E / R8,  # S2 (|1 - 2|), S4 (|3 - 4|)
    }
    assert row(m, [4, 1]) == pytest.approx(expect(want))


def test_k_and_sample_size():
    cfg = {"lambda_1": 1.0, "lambda_3": 2.0, "session_recency": False}
    # k = 2 keeps S2 and S0 (1/sqrt6 each)
    m = STAN(k=2, sample_size=10, **cfg).fit(LOG)
    h = exp(-0.5)
    want = {1: 2 / R6, 2: 2 * h / R6, 3: exp(-1) / R6, 5: h / R6}
    assert row(m, [4, 1]) == pytest.approx(expect(want))
    # sample_size = 2: the two most recent candidates, S4 and S2
    m = STAN(k=10, sample_size=2, **cfg).fit(LOG)
    assert m.neighbours([4, 1])[0].tolist() == [2, 4]
    want = {1: 1 / R6, 2: h / R6, 3: exp(-1.5) / E / R8, 4: 1 / E / R8, 5: h / R6 + h / E / R8}
    assert row(m, [4, 1]) == pytest.approx(expect(want))


def test_query_time_changes_no_ranking():
    # last times: S0 50, S1 10, S2 20, S3 30, S4 40 (T = 50, the most recent time)
    times = [[1, 5, 50], [9, 10, 10], [15, 18, 20], [25, 30], [35, 38, 39, 40]]
    log = SessionLog.from_sequences(SESSIONS, times=times)
    m = STAN(k=10, sample_size=10, lambda_1=1.0, lambda_2=10.0, lambda_3=1.0).fit(log)
    hist = [1, 2]  # candidates S0, S1, S2 as in the first test, same sim1 and w3
    sim1 = {"S0": (1 / E + 1) / R6, "S1": 1 / R6, "S2": (1 / E + 1) / R6}
    t_n = {"S0": 50.0, "S1": 10.0, "S2": 20.0}
    got = np.array(row(m, hist))
    for t_s in (50.0, 60.0, 1000.0):  # t(s) = T, and two later query times
        sim2 = {n: sim1[n] * exp(-(t_s - t_n[n]) / 10.0) for n in sim1}
        want = np.array(
            expect(
                {
                    1: sim2["S0"] / E + sim2["S2"] / E,
                    2: sim2["S0"] + sim2["S1"] + sim2["S2"],
                    3: sim2["S0"] / E,
                    4: sim2["S1"] / E,
                    5: sim2["S2"] / E**2,
                }
            )
        )
        # one factor per query: exp(-(t_s - t_ref) / lambda_2), t_ref = 50 here
        factor = exp(-(t_s - 50.0) / 10.0)
        assert got * factor == pytest.approx(want, rel=1e-5, abs=0)
        assert np.argsort(-want, kind="stable").tolist() == np.argsort(-got, kind="stable").tolist()
        assert sorted(sim2, key=sim2.get, reverse=True) == ["S0", "S2", "S1"]
    # shifting every training time by a constant changes nothing
    shifted = SessionLog.from_sequences(SESSIONS, times=[[t + 1e6 for t in s] for s in times])
    m2 = STAN(k=10, sample_size=10, lambda_1=1.0, lambda_2=10.0, lambda_3=1.0).fit(shifted)
    assert row(m2, hist) == pytest.approx(got.tolist())


def test_lambda_extremes():
    base = {"k": 10, "sample_size": 10, "lambda_1": 1.0, "lambda_2": 1.0, "lambda_3": 1.0}
    hist = [3, 1, 2]

    def scores(**kw):
        return row(STAN(**{**base, **kw}).fit(LOG), hist)

    # a very large lambda is the factor switched off (every weight ~1)
    assert scores(lambda_1=1e9) == pytest.approx(scores(item_recency=False))
    assert scores(lambda_2=1e9) == pytest.approx(scores(session_recency=False))
    assert scores(lambda_3=1e9) == pytest.approx(scores(neighbour_position=False))
    # all three off: SKNN-like summed sim1 = |s & n| / sqrt(l(s) l(n)) (l in events)
    off = {"item_recency": False, "session_recency": False, "neighbour_position": False}
    # candidates of [3, 1, 2]: S0 3/sqrt(9), S1 1/sqrt(9), S2 2/sqrt(9), S4 1/sqrt(12)
    a, b, c, d = 1.0, 1 / 3, 2 / 3, 1 / sqrt(12)
    want = {1: a + c, 2: a + b + c, 3: a + d, 4: b + d, 5: c + d}
    assert scores(**off) == pytest.approx(expect(want))
    # a tiny lambda_3 keeps only r itself: S0 r = 2, S1 r = 2, S2 r = 2, S4 r = 3
    m = STAN(**{**base, "lambda_3": 1e-3}).fit(LOG)
    nb, sim = m.neighbours(hist)
    by_id = dict(zip(nb.tolist(), sim.tolist(), strict=True))
    got = row(m, hist)
    assert got == pytest.approx(expect({2: by_id[0] + by_id[1] + by_id[2], 3: by_id[4]}))
    # a tiny lambda_1 keeps only the last item of s (2): S4 shares only 3, so sim1 = 0
    m = STAN(**{**base, "lambda_1": 1e-3}).fit(LOG)
    nb, sim = m.neighbours(hist)
    by_id = dict(zip(nb.tolist(), sim.tolist(), strict=True))
    # S1: sim1 = 1/sqrt(3*3), w2 = e^-3 (S1 is 3 sessions older than S4, the most recent)
    assert by_id[4] == 0.0 and by_id[1] == pytest.approx(1 / 3 / E**3)


def test_batch_equals_single_and_unknown_and_empty_histories():
    m = STAN(k=3, sample_size=4, lambda_1=1.5, lambda_2=2.0, lambda_3=0.5).fit(LOG)
    hists = [[1, 2], [], [-1, 4, -1, 1], [-1], [0], [2, 2, 5], [6]]
    batch = m.score([np.array(h, dtype=np.int64) for h in hists])
    for i, h in enumerate(hists):
        assert batch[i].tolist() == pytest.approx(row(m, h), abs=0)
    # unknown items are dropped: [-1, 4, -1, 1] scores as [4, 1]
    assert batch[2].tolist() == row(m, [4, 1])
    # no known item: popularity / (max + 1); event counts 0,2,4,2,3,2,1,1
    pop = [c / 5 for c in [0, 2, 4, 2, 3, 2, 1, 1]]
    assert batch[1].tolist() == pytest.approx(pop) and batch[3].tolist() == pytest.approx(pop)
    # a known item no session contains: no neighbour, popularity too (one policy)
    assert batch[4].tolist() == pytest.approx(pop)


def test_save_load_is_exact(tmp_path):
    m = STAN(k=3, sample_size=4, lambda_1=1.5, lambda_2=2.0, lambda_3=0.5).fit(LOG)
    hists = [np.array(h, dtype=np.int64) for h in ([1, 2], [4, 1], [3, 4, 5])]
    m.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert isinstance(back, STAN)
    assert torch.equal(back.score(hists), m.score(hists))


@pytest.mark.parametrize(
    "bad",
    [
        {"k": 0},
        {"sample_size": 0},
        {"lambda_1": 0.0},
        {"lambda_2": -1.0},
        {"lambda_3": 0},
        {"lambda_1": float("inf")},
        {"lambda_3": float("nan")},
    ],
)
def test_invalid_config_is_a_config_error(bad):
    with pytest.raises(ConfigError):
        STAN(**bad)
