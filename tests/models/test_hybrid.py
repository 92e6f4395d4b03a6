"""Hybrids: normalised weighted sums and switching computed by hand on literal toy
sessions, weight tuning, persistence of the parts, catalogue and config errors."""

import json
import math

import pytest
import torch

from seqrec.data.idmap import ItemIndex
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, ModelFileError
from seqrec.evaluation import target_ranks
from seqrec.models import load_model
from seqrec.models.hybrid import (
    GRU4RecVSKNN,
    Hybrid,
    conservative_ranks,
    normalise_rows,
    simplex_grid,
)
from seqrec.models.pop import Pop, SessionPop
from seqrec.models.rules import Markov

INDEX = ItemIndex(["a", "b", "c", "d"])
# item counts: a 3, b 1, c 1, d 0
LOG = SessionLog.from_sequences([[0, 1, 0], [0, 2]])


@pytest.fixture
def parts():
    """pop scores [3, 1, 1, 0] for every history; session-pop scores
    pop / (max + 1) = [.75, .25, .25, 0] plus each item's count in the history."""
    return [Pop().fit(LOG, item_index=INDEX), SessionPop().fit(LOG, item_index=INDEX)]


def close(a, b):
    torch.testing.assert_close(a, torch.tensor(b, dtype=torch.float32), rtol=1e-6, atol=1e-6)


def test_normalisers_by_hand():
    rows = torch.tensor([[2.0, 4.0, 0.0, 1.0], [5.0, 5.0, 5.0, 5.0]])
    close(normalise_rows(rows, "minmax"), [[0.5, 1.0, 0.0, 0.25], [0, 0, 0, 0]])
    e = [math.exp(x) for x in (2, 4, 0, 1)]
    close(normalise_rows(rows, "softmax")[0], [x / sum(e) for x in e])
    close(normalise_rows(rows, "softmax")[1], [0.25] * 4)
    close(normalise_rows(rows, "none"), rows.tolist())


def test_weighted_minmax_sum_by_hand(parts):
    hybrid = Hybrid.combine(parts, weights=[0.25, 0.75])
    # pop minmax [1, 1/3, 1/3, 0]; session-pop after [d, d]: [.75, .25, .25, 2], minus
    # its min .25, over its span 1.75: [2/7, 0, 0, 1]; 0.25 * pop + 0.75 * session-pop:
    close(hybrid.score([[3, 3]])[0], [0.25 + 0.75 * 2 / 7, 0.25 / 3, 0.25 / 3, 0.75])
    # empty history: session-pop is [.75, .25, .25, 0] -> [1, 1/3, 1/3, 0], like pop
    close(hybrid.score([[]])[0], [1.0, 1 / 3, 1 / 3, 0.0])
    ids, _ = hybrid.recommend([[3, 3]], k=2)
    assert ids.tolist() == [[3, 0]]


def test_weighted_none_and_softmax_by_hand(parts):
    raw = Hybrid.combine(parts, weights=[0.25, 0.75], normalise="none")
    close(raw.score([[3, 3]])[0], [1.3125, 0.4375, 0.4375, 1.5])
    soft = Hybrid.combine(parts, weights=[0.5, 0.5], normalise="softmax")
    p = [math.exp(x) for x in (3, 1, 1, 0)]
    q = [math.exp(x) for x in (0.75, 0.25, 0.25, 2)]
    want = [0.5 * a / sum(p) + 0.5 * b / sum(q) for a, b in zip(p, q)]
    close(soft.score([[3, 3]])[0], want)


def test_a_zero_weight_part_is_not_scored(parts):
    hybrid = Hybrid.combine(parts, weights=[0.0, 1.0])
    close(hybrid.score([[3, 3]])[0], [2 / 7, 0.0, 0.0, 1.0])


def test_switching_picks_the_part_by_length_boundary_included(parts):
    hybrid = Hybrid.combine(parts, kind="switching", threshold=2)
    pop = [1.0, 1 / 3, 1 / 3, 0.0]
    rows = hybrid.score([[], [3], [3, 3], [3, 3, 1]])
    close(rows[0], pop)  # length 0 < 2: part 0 (pop)
    close(rows[1], pop)  # length 1 < 2: part 0
    close(rows[2], [2 / 7, 0.0, 0.0, 1.0])  # length 2 == threshold: part 1
    close(rows[3], [2 / 7, 4 / 7, 0.0, 1.0])  # [.75, 1.25, .25, 2]: (x - .25) / 1.75
    assert Hybrid.combine(parts, kind="switching", threshold=0).score([[]])[0][0] == 1.0


# Item i is followed by i + 1 (markov gets every next item right); item 9, a session of
# its own repeated, is by far the most popular (pop is misleading).
CHAINS = [[9, 9]] * 10 + [[i, i + 1] for i in range(9)]
CHAIN_INDEX = ItemIndex([f"i{k}" for k in range(10)])
VALID = SessionLog.from_sequences([[0, 1, 2, 3]])  # queries [0] -> 1, [0, 1] -> 2, [0, 1, 2] -> 3


def test_tuning_gives_the_clearly_better_part_the_larger_weight():
    """By hand: pop counts are 1 (item 0), 2 (items 1..8), 21 (item 9), so minmax pop is
    (2 - 1) / 20 = 0.05 for every target and 1 for item 9; minmax markov is 1 for the
    target, 0 elsewhere. The target ranks first iff w_m + 0.05 w_p > w_p, i.e. for pop
    weights 0.5 .. 0 (MRR 1); otherwise item 9 is above it (MRR 1/2), and pop alone
    ranks it 9th (items 1..9 score >= it: MRR 1/9). The 6 tied points' mean pop weight
    is 0.25: 0.3 and 0.2 are as near, the first (0.3) is kept."""
    log = SessionLog.from_sequences(CHAINS)
    hybrid = Hybrid(parts=["pop", "markov"]).fit(log, VALID, item_index=CHAIN_INDEX)
    assert hybrid.weights_ == (0.3, 0.7)
    tuning = hybrid.meta_["tuning"]
    assert tuning["queries"] == 3 and tuning["best"] == 1.0
    assert [g["weights"][0] for g in tuning["grid"]] == [
        1.0,
        0.9,
        0.8,
        0.7,
        0.6,
        0.5,
        0.4,
        0.3,
        0.2,
        0.1,
        0.0,
    ]
    values = [g["value"] for g in tuning["grid"]]
    assert values == pytest.approx([1 / 9] + [0.5] * 4 + [1.0] * 6)
    assert tuning["parts_alone"] == pytest.approx({"pop": 1 / 9, "markov": 1.0})


def test_tuning_on_a_split_carved_from_the_training_data():
    log = SessionLog.from_sequences([*CHAINS, [0, 1, 2, 3]])  # the last session: validation
    hybrid = Hybrid(parts=["pop", "markov"], valid_fraction=0.05).fit(log, item_index=CHAIN_INDEX)
    assert hybrid.weights_ == (0.3, 0.7)
    assert hybrid.meta_["tuning"]["validation"] == "carved from the training data"
    assert hybrid.meta_["tuning"]["queries"] == 3
    assert hybrid.meta_["parts_trained_on"] == "all training data"  # refit
    assert hybrid.parts_[0].popularity_.sum() == log.n_events
    assert set(hybrid.meta_["seconds"]) == {"fit_parts_on_carved", "tune", "refit_parts"}
    assert all(p.meta_["train_seconds"] >= 0 for p in hybrid.parts_)
    kept = Hybrid(parts=["pop", "markov"], valid_fraction=0.05, refit=False)
    kept.fit(log, item_index=CHAIN_INDEX)
    assert kept.parts_[0].popularity_.sum() == log.n_events - 4


def test_switching_threshold_is_tuned():
    """Markov (part 0) ranks every target first, pop 9th; validation histories have 1,
    2 and 3 items: thresholds 0, 1 send all to pop, 2 one, 3 two, 4 and more none."""
    log = SessionLog.from_sequences(CHAINS)
    hybrid = Hybrid(parts=["markov", "pop"], kind="switching").fit(
        log, VALID, item_index=CHAIN_INDEX
    )
    assert hybrid.threshold_ == 4  # the smallest of the best
    values = [g["value"] for g in hybrid.meta_["tuning"]["grid"]]
    want = [1 / 9, 1 / 9, (1 + 2 / 9) / 3, (2 + 1 / 9) / 3] + [1.0] * 7
    assert values == pytest.approx(want)


def test_tuning_on_samples():
    log = SessionLog.from_sequences(CHAINS)
    valid = Samples.from_lists([[0], [0, 1], [5, -1]], [1, 2, 6])  # -1 is dropped
    hybrid = Hybrid(parts=["pop", "markov"]).fit(log, valid, item_index=CHAIN_INDEX)
    assert hybrid.meta_["tuning"]["queries"] == 3 and hybrid.weights_ == (0.3, 0.7)


def test_simplex_grid_by_hand():
    got = simplex_grid(3, 0.5).tolist()
    assert got == [[1, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1]]
    assert len(simplex_grid(2, 0.1)) == 11


def test_ranks_are_evaluations_conservative_ranks():
    scores = torch.tensor([[0.5, 0.2, 0.5, 0.1], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    targets = torch.tensor([0, 3, 1])
    assert conservative_ranks(scores, targets).tolist() == [2, 4, 3]
    assert conservative_ranks(scores, targets).tolist() == target_ranks(scores, targets).tolist()


def test_save_load_exact_with_parts_inside(parts, tmp_path):
    hybrid = Hybrid.combine(parts, weights=[0.3, 0.7])
    path = hybrid.save(tmp_path / "h")
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "items.json",
        "part-0",
        "part-1",
        "weights.safetensors",
    ]
    info = json.loads((path / "config.json").read_text())
    assert info["hybrid"]["weights"] == [0.3, 0.7] and info["hybrid"]["kind"] == "weighted"
    assert [p["model"] for p in info["hybrid"]["parts"]] == ["pop", "session-pop"]
    assert load_model(path / "part-1").name == "session-pop"  # a normal model dir
    loaded = load_model(path)
    assert isinstance(loaded, Hybrid) and loaded.weights_ == (0.3, 0.7)
    histories = [[3, 3], [], [0, 1, 2]]
    assert torch.equal(loaded.score(histories), hybrid.score(histories))
    switching = Hybrid.combine(parts, kind="switching", threshold=1).save(tmp_path / "s")
    assert load_model(switching).threshold_ == 1
    # a smaller hybrid replaces a bigger one (its part dirs are seqrec's own)
    three = Hybrid.combine([*parts, parts[0]], weights=[1, 1, 1])
    three.save(tmp_path / "h")
    assert (tmp_path / "h" / "part-2").is_dir()
    hybrid.save(tmp_path / "h")
    assert not (tmp_path / "h" / "part-2").exists()


def test_parts_with_different_catalogues_are_refused(parts, tmp_path):
    other = Pop().fit(LOG, item_index=ItemIndex(["a", "b", "x", "d"]))
    with pytest.raises(ConfigError, match=r"share one catalogue.*item 2 is 'c' in one and 'x'"):
        Hybrid.combine([parts[0], other], weights=[0.5, 0.5])
    bigger = Pop().fit(LOG, item_index=ItemIndex(["a", "b", "c", "d", "e"]))
    with pytest.raises(ConfigError, match="4 items vs 5"):
        Hybrid.combine([parts[0], bigger], names=["A", "B"], weights=[0.5, 0.5])
    # a saved part swapped for one of another catalogue
    path = Hybrid.combine(parts, weights=[0.5, 0.5]).save(tmp_path / "h")
    other.save(tmp_path / "h" / "part-0")
    with pytest.raises(ModelFileError, match="catalogue differs"):
        load_model(path)


@pytest.mark.parametrize(
    "keys, needle",
    [
        ({"weights": [-1.0, 2.0]}, "weights must be >= 0"),
        ({"weights": [float("nan"), 1.0]}, "finite"),
        ({"weights": [float("inf"), 1.0]}, "finite"),
        ({"weights": [1.0]}, "1 values for 2 parts"),
        ({"weights": [0.0, 0.0]}, "not all be 0"),
        ({"weights": "heavy"}, "expected a list"),
        ({"weights": [True, 1.0]}, "expected a number"),
        ({"kind": "switching", "weights": [0.5, 0.5]}, "weights apply to kind 'weighted'"),
        ({"threshold": 2}, "threshold applies to kind 'switching'"),
        ({"kind": "switching", "threshold": -1}, "threshold must be >= 0"),
        ({"normalise": "zscore"}, "is not one of"),
        ({"metric": "ndcg@20"}, "metric must look like"),
        ({"weight_step": 0.3}, "weight_step must be 1/N"),
        ({"parts": ["pop"]}, "at least 2 parts"),
        ({"parts": ["pop", "nope"]}, "part 1 \\(nope\\): unknown model 'nope'"),
        ({"sknn": {"kk": 1}}, "part 1 \\(sknn\\): unknown config key 'kk'"),
        ({"sknn.kk": 1}, "part 1 \\(sknn\\): unknown config key 'kk'"),
        ({"gru4rec": {"layers": [8]}}, "table \\[gru4rec\\] names no part"),
        ({"part_configs": [{}]}, "1 tables for 2 parts"),
        ({"no_such_key": 1}, "unknown config key 'no_such_key'"),
    ],
)
def test_bad_keys_are_config_errors(keys, needle):
    with pytest.raises(ConfigError, match=needle):
        Hybrid({"parts": ["pop", "sknn"], **keys})


def test_part_tables_and_dotted_keys():
    h = Hybrid({"parts": ["pop", "sknn"], "sknn": {"k": 7, "sample_size": 9}, "sknn.k": 8})
    assert h.part_configs() == [{}, {"k": 8, "sample_size": 9}]
    g = GRU4RecVSKNN({"gru4rec.n_epochs": 1, "v-sknn": {"k": 3}})
    assert g.config.parts == ("gru4rec", "v-sknn")
    assert g.part_configs() == [{"n_epochs": 1}, {"k": 3}]
    with pytest.raises(ConfigError, match="more than one part; give its keys in part_configs"):
        Hybrid({"parts": ["sknn", "sknn"], "sknn": {"k": 3}})
    two = Hybrid({"parts": ["sknn", "sknn"], "part_configs": [{"k": 3}, {"k": 4}]})
    assert two.part_configs() == [{"k": 3}, {"k": 4}]


def test_neural_parts_get_the_run_defaults():
    cfg = GRU4RecVSKNN.with_run_defaults({"gru4rec": {"threads": 1}}, {"threads": "auto", "x": 1})
    assert cfg["part_configs"] == [{"threads": 1, "x": 1}, {}]  # v-sknn is not neural


def test_unfitted_or_untuned_hybrid_is_a_clear_error(parts):
    with pytest.raises(ConfigError, match="not fitted"):
        Hybrid(parts=["pop", "sknn"]).score([[1]])
    with pytest.raises(ConfigError, match="not tuned yet"):
        Hybrid.combine(parts).score([[1]])
    with pytest.raises(ConfigError, match="not fitted"):
        Hybrid.combine([parts[0], Pop()])


def test_fixed_weights_train_the_parts_once_without_validation():
    log = SessionLog.from_sequences(CHAINS)
    hybrid = Hybrid(parts=["pop", "markov"], weights=[0.2, 0.8]).fit(log)
    assert hybrid.weights_ == (0.2, 0.8) and "tuning" not in hybrid.meta_
    markov = Markov().fit(log)
    assert torch.equal(hybrid.parts_[1].score([[3]]), markov.score([[3]]))
    # 0.2 * pop minmax (item 4: 0.05, item 9: 1) + 0.8 * markov minmax (item 4: 1)
    close(hybrid.score([[3]])[0, [4, 9]], [0.2 * 0.05 + 0.8, 0.2])
