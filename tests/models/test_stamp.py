"""STAMP / STMP / STMO: STMO scores from the last click alone; STMP's mean and STAMP's
attention by hand on literal inputs; attention weights zero at PAD; left padding and
batching change nothing; shapes; seeded weights; every variant fits, saves, loads and
scores; STAMP and STMP use the session beyond its last click where STMO cannot; config
errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec.data.idmap import ItemIndex
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models import load_model
from seqrec.models.stamp import STAMP, VARIANTS, STAMPConfig, STAMPNet
from seqrec.nn.padding import PAD
from seqrec.training import build_task

# The contract suite (tests/models/test_contract.py) runs the registered default,
# variant = "stamp"; these of its tests run here again for STMP and STMO, with this
# module's ``fitted`` fixture (the recurrent / read-out protocol tests do not apply).
from .test_contract import (  # noqa: F401  (collected by pytest from this module)
    log,
    test_a_newer_format_version_is_a_one_line_error,
    test_batch_and_single_calls_agree,
    test_corrupt_model_files_give_clear_errors,
    test_every_model_is_a_scorer_with_the_one_fit_signature,
    test_fit_returns_self_and_learns_catalogue,
    test_format_version_1_directories_still_load,
    test_neural_training_is_seeded_and_recorded,
    test_no_pickle_in_model_files,
    test_recommend_exclude_allow_deny,
    test_recommend_top_k_sorted_and_consistent_with_score,
    test_save_load_identical_scores,
    test_score_shape_and_finite,
    test_unknown_config_key_is_an_error,
    test_unknown_key_error_lists_the_keys_of_every_owner,
    test_user_ids_reach_only_models_that_use_them,
)

N = 20
SMALL = {**STAMP.small_config, "n_epochs": 1}


@pytest.fixture(scope="module", params=["stmp", "stmo"])
def fitted(request):
    """The contract's fitted model for a non-default variant (on the contract's ``log``);
    its ``small_config`` (read by the contract's retraining tests) names the variant."""
    config = {**STAMP.small_config, "variant": request.param}
    model = STAMP(config)
    model.small_config = config
    index = ItemIndex([f"i{k}" for k in range(30)])
    assert model.fit(request.getfixturevalue("log"), item_index=index) is model
    return model


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


def net_of(variant: str, d: int = 6, n_items: int = N, seed: int = 0) -> STAMPNet:
    """A net with non-trivial weights (the paper's init is tiny: scale them up)."""
    net = STAMPNet(n_items, STAMPConfig(hidden=d, variant=variant), seed).eval()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return net


def set_weights(net: STAMPNet, **values: list) -> None:
    """Set parameters by name (``mlp_s.weight``, ``b_a``, ...) to literal values."""
    params = dict(net.named_parameters())
    with torch.no_grad():
        for name, value in values.items():
            params[name.replace("__", ".")].copy_(torch.tensor(value, dtype=torch.float32))


EYE = [[1.0, 0.0], [0.0, 1.0]]
ZERO = [[0.0, 0.0], [0.0, 0.0]]
TABLE = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]  # 3 items


# -- STMO: the last click alone ---------------------------------------------------


def test_stmo_scores_the_last_click_alone() -> None:
    net = net_of("stmo")
    sessions = torch.tensor([[PAD, PAD, 3, 7, 2], [4, 9, 1, 1, 5], [PAD, PAD, PAD, PAD, 8]])
    whole = net.item_scores(net(sessions)[:, 0])
    last = net.item_scores(net(sessions[:, -1:])[:, 0])  # fed the last item only
    assert torch.equal(whole, last)
    # and literally <tanh(W_t x_t + b_t), x_i>
    x_t = net.item_emb[sessions[:, -1]]
    h_t = torch.tanh(x_t @ net.mlp_t.weight.t() + net.mlp_t.bias)
    torch.testing.assert_close(whole, h_t @ net.item_emb.t())
    # another session with the same last click: the same scores
    other = torch.tensor([[11, 12, 13, 14, 2]])
    assert torch.equal(net(other), net(sessions[:1]))


def test_stmo_model_scores_a_whole_history_as_its_last_click() -> None:
    model = STAMP(SMALL, variant="stmo").fit(chain(60))
    histories = [[3, 4, 5, 6], [1, 9, 9, 2], [7]]
    assert torch.equal(model.score(histories), model.score([[h[-1]] for h in histories]))
    assert not torch.equal(model.score([[3]]), model.score([[4]]))


def test_stmo_has_no_long_term_parameters() -> None:
    names = {n for n, _ in STAMPNet(N, STAMPConfig(variant="stmo"), 0).named_parameters()}
    assert names == {"item_emb", "mlp_t.weight", "mlp_t.bias"}


# -- STMP: the session mean by hand ------------------------------------------------


def test_stmp_is_the_mean_formula_by_hand() -> None:
    net = STAMPNet(3, STAMPConfig(hidden=2, variant="stmp"), 0)
    set_weights(
        net, item_emb=TABLE, mlp_s__weight=EYE, mlp_s__bias=[0.0, 0.0],
        mlp_t__weight=[[2.0, 0.0], [0.0, 1.0]], mlp_t__bias=[0.0, 0.5],
    )  # fmt: skip
    # session [0, 2]: m_s = ([1, 0] + [1, 1]) / 2 = [1, 0.5]; m_t = x_2 = [1, 1]
    # h_s = tanh([1, 0.5]); h_t = tanh([2 * 1, 1 + 0.5]) = tanh([2, 1.5])
    q = [math.tanh(1.0) * math.tanh(2.0), math.tanh(0.5) * math.tanh(1.5)]
    expected = torch.tensor([[q[0], q[1], q[0] + q[1]]])  # <q, x_i> for x = [1,0], [0,1], [1,1]
    for seqs in ([[0, 2]], [[PAD, PAD, PAD, 0, 2]]):  # the mean is over the real items only
        scores = net.item_scores(net(torch.tensor(seqs))[:, 0])
        torch.testing.assert_close(scores, expected)
    # a single item: m_s = m_t = [0, 1] -> h_s = tanh([0, 1]), h_t = tanh([0, 1.5])
    scores = net.item_scores(net(torch.tensor([[PAD, 1]]))[:, 0])
    q1 = math.tanh(1.0) * math.tanh(1.5)
    torch.testing.assert_close(scores, torch.tensor([[0.0, q1, q1]]))


# -- STAMP: attention by hand --------------------------------------------------------


def test_stamp_attention_and_query_by_hand() -> None:
    net = STAMPNet(3, STAMPConfig(hidden=2, variant="stamp"), 0)
    set_weights(
        net, item_emb=TABLE, W1__weight=EYE, W2__weight=ZERO, W3__weight=[[0.0, 0.0], [0.0, 2.0]],
        b_a=[0.0, -1.0], W0__weight=[[1.0, 1.0]], mlp_s__weight=EYE, mlp_s__bias=[0.0, 0.0],
        mlp_t__weight=EYE, mlp_t__bias=[0.5, 0.0],
    )  # fmt: skip
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    # session [1, 0, 1]: m_s = [1/3, 2/3]; W3 m_s + b_a = [0, 4/3 - 1] = [0, 1/3]
    # alpha_i = sigmoid(x_i1 + 0) + sigmoid(x_i2 + 1/3)
    a_1 = sig(0.0) + sig(1.0 + 1 / 3)  # x = [0, 1]
    a_0 = sig(1.0) + sig(1 / 3)  # x = [1, 0]
    seqs = torch.tensor([[PAD, 1, 0, 1]])
    alpha = net.attention_weights(seqs)
    torch.testing.assert_close(alpha, torch.tensor([[0.0, a_1, a_0, a_1]]))
    # m_a = a_1 [0, 1] + a_0 [1, 0] + a_1 [0, 1] = [a_0, 2 a_1]; m_t = x_1 = [0, 1]
    # h_s = tanh([a_0, 2 a_1]); h_t = tanh([0 + 0.5, 1 + 0])
    q = [math.tanh(a_0) * math.tanh(0.5), math.tanh(2 * a_1) * math.tanh(1.0)]
    torch.testing.assert_close(net(seqs)[0, 0], torch.tensor(q))
    scores = net.item_scores(net(seqs)[:, 0])
    torch.testing.assert_close(scores, torch.tensor([[q[0], q[1], q[0] + q[1]]]))


def test_attention_weights_are_zero_at_pad_and_not_normalised() -> None:
    net = net_of("stamp")
    seqs = torch.tensor([[PAD, PAD, PAD, 3], [PAD, 5, 6, 7], [1, 2, 3, 4], [PAD] * 4])
    alpha = net.attention_weights(seqs)
    assert alpha.shape == (4, 4)
    assert torch.all(alpha[seqs < 0] == 0)
    assert torch.all(alpha[seqs >= 0] != 0)
    assert not torch.allclose(alpha[2].sum(), torch.tensor(1.0))  # no softmax (the paper)
    q = net(seqs)[:, 0]
    assert torch.isfinite(q).all()  # the empty history: m_s = m_t = m_a = 0
    # the empty row's query: tanh(b_s) * tanh(b_t)
    torch.testing.assert_close(q[3], torch.tanh(net.mlp_s.bias) * torch.tanh(net.mlp_t.bias))


def test_only_stamp_has_attention() -> None:
    with pytest.raises(ConfigError, match="no attention"):
        net_of("stmp").attention_weights(torch.tensor([[1, 2]]))


# -- padding, batching, shapes, seeds ------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_left_padding_and_batching_change_nothing(variant: str) -> None:
    net = net_of(variant)
    histories = [[3, 7, 2], [4, 9, 1, 1, 5, 6], [8]]
    wide = torch.full((3, 9), PAD)
    for b, h in enumerate(histories):
        wide[b, 9 - len(h) :] = torch.tensor(h)
    batch = net.item_scores(net(wide)[:, 0])
    for b, h in enumerate(histories):
        tight = net.item_scores(net(torch.tensor([h]))[:, 0])  # no padding at all
        torch.testing.assert_close(batch[b : b + 1], tight, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_for_any_width_and_candidates(variant: str) -> None:
    net = net_of(variant, d=5)
    for T in (1, 2, 7):
        seqs = torch.randint(0, N, (4, T))
        h = net(seqs)
        assert h.shape == (4, 1, 5)
    h = h[:, 0]
    full = net.item_scores(h)
    assert full.shape == (4, N)
    shared = torch.tensor([3, 0, 9])
    torch.testing.assert_close(net.item_scores(h, shared), full[:, shared])
    per_row = torch.randint(0, N, (4, 6))
    torch.testing.assert_close(net.item_scores(h, per_row), full.gather(1, per_row))


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_output_table_is_the_read_out_and_the_task_uses_it(variant: str) -> None:
    net = net_of(variant)
    table, bias = net.output_table()
    h = net(torch.tensor([[PAD, 3, 7], [1, 2, 5]]))[:, 0]
    assert table is net.item_emb and bias is None
    torch.testing.assert_close(net.item_scores(h), h @ table.t())
    model = STAMP(SMALL, variant=variant)
    assert build_task(model, chain(20)).chunked_xent  # full cross-entropy by default
    sampled = STAMP(SMALL, variant=variant, negatives="uniform", n_sample=4)
    assert not build_task(sampled, chain(20)).chunked_xent


class DenseLookup(STAMPNet):
    """The reference: inputs read with plain (dense-gradient) indexing."""

    def embed(self, seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        valid = seqs >= 0
        return self.item_emb[seqs.clamp(min=0)] * valid.unsqueeze(-1), valid


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_item_table_gets_one_exact_dense_gradient(variant: str) -> None:
    """Full-catalogue and candidate scores: the sparse input rows are added into the
    output's dense gradient (torch's Adam takes it), equal to plain indexing's."""
    net = net_of(variant)
    ref = DenseLookup(N, STAMPConfig(hidden=6, variant=variant), 0)
    ref.load_state_dict(net.state_dict())
    seqs = torch.tensor([[PAD, 3, 7, 3], [1, 2, 5, 6], [PAD, PAD, PAD, 9]])
    for items in (None, torch.tensor([4, 3, 9]), torch.tensor([[4, 0], [3, 1], [9, 9]])):
        grads = []
        for m in (net, ref):
            m.zero_grad(set_to_none=True)
            scores = m.item_scores(m(seqs)[:, 0], items)
            (scores.logsumexp(1) - scores[:, 0]).sum().backward()
            grads.append(m.item_emb.grad)
        assert grads[0].layout == torch.strided
        torch.testing.assert_close(grads[0], grads[1])
        assert grads[0][3].abs().sum() > 0  # an input-only row of the table


@pytest.mark.parametrize("variant", VARIANTS)
def test_weights_come_from_the_seed(variant: str) -> None:
    before = torch.get_rng_state()
    a = STAMPNet(N, STAMPConfig(variant=variant), seed=3).state_dict()
    b = STAMPNet(N, STAMPConfig(variant=variant), seed=3).state_dict()
    c = STAMPNet(N, STAMPConfig(variant=variant), seed=4).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["item_emb"], c["item_emb"])


def test_initialisation_follows_the_paper() -> None:
    net = STAMPNet(2000, STAMPConfig(hidden=100), seed=0)
    assert abs(net.item_emb.std().item() - 0.002) < 2e-4
    for layer in (net.W1, net.W2, net.W3, net.mlp_s, net.mlp_t):
        assert abs(layer.weight.std().item() - 0.05) < 5e-3
    assert torch.all(net.mlp_s.bias == 0) and torch.all(net.mlp_t.bias == 0)
    assert torch.all(net.b_a == 0)


# -- every variant through the model API ---------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_fits_saves_loads_and_scores(variant: str, tmp_path) -> None:
    model = STAMP(SMALL, variant=variant).fit(chain(60))
    histories = [np.array([1, 2, 3]), np.array([5]), np.array([], dtype=np.int64)]
    s = model.score(histories)
    assert s.shape == (3, N) and torch.isfinite(s).all()
    for b, h in enumerate(histories):
        torch.testing.assert_close(model.score([h])[0], s[b], rtol=1e-6, atol=1e-6)
    loaded = load_model(model.save(tmp_path / variant))
    assert loaded.config.variant == variant
    assert torch.equal(loaded.score(histories), s)
    ids, _ = model.recommend(histories, k=3, exclude_history=True)
    assert not set(ids[0].tolist()) & {1, 2, 3}


def test_histories_longer_than_max_len_keep_their_most_recent_items() -> None:
    model = STAMP(SMALL, max_len=3).fit(chain(60))
    torch.testing.assert_close(model.score([[9, 8, 1, 2, 3]]), model.score([[1, 2, 3]]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_learns_a_deterministic_chain(variant: str) -> None:
    model = STAMP(hidden=16, variant=variant, n_epochs=15, learning_rate=0.01, batch_size=64)
    model.fit(chain())
    top = model.score([[(k - 1) % N, k] for k in range(N)]).argmax(dim=1)
    assert float((top == (torch.arange(N) + 1) % N).float().mean()) == 1.0
    history = model.meta_["history"]
    assert history[-1]["loss"] < history[0]["loss"]


def context_log(n_sessions: int = 400) -> SessionLog:
    """Sessions [c, 10, 11, c + 2] with c in {0, 1}: after the clicks 10, 11 the next
    item is given by the session's first item alone."""
    rng = np.random.default_rng(1)
    return SessionLog.from_sequences([[c, 10, 11, c + 2] for c in rng.integers(0, 2, n_sessions)])


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_long_term_memory_reads_the_session_beyond_its_last_click(variant: str) -> None:
    # larger initial weights than the paper's: with the paper's tiny ones STAMP's
    # unnormalised attention weights grow to ~6 on this toy, tanh(W_s m_a) saturates
    # and the first click's share of m_a stops being learned (STMP learns either way)
    model = STAMP(
        hidden=16, variant=variant, n_epochs=15, learning_rate=0.01, batch_size=64,
        init_std=0.1, weight_std=0.3,
    )  # fmt: skip
    model.fit(context_log())
    s = model.score([[0, 10, 11], [1, 10, 11]])
    right = bool(s[0, 2] > s[0, 3] and s[1, 3] > s[1, 2])
    if variant == "stmo":  # the same last click: the same scores, whatever came before
        assert torch.equal(s[0], s[1]) and not right
    else:
        assert right


# -- config ---------------------------------------------------------------------------


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="variant"):
        STAMP(variant="stamped")
    with pytest.raises(ConfigError, match="layout"):
        STAMP(layout="causal")
    with pytest.raises(ConfigError, match="hidden"):
        STAMP(hidden=0)
    with pytest.raises(ConfigError, match="init_std"):
        STAMP(weight_std=0.0)


def test_training_defaults_follow_the_paper() -> None:
    keys = STAMP().training_keys
    assert keys["layout"] == "last" and keys["loss"] == "cross-entropy"
    assert keys["negatives"] == "full" and keys["optimizer"] == "adam"
    assert keys["learning_rate"] == 0.005 and keys["batch_size"] == 512
    assert STAMP().config.hidden == 100
