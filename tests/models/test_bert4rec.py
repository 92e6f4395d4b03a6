"""BERT4Rec: cloze masking rate, bidirectional attention (unlike SASRec), PAD
invariance, the appended MASK and truncation at inference, the output layer by hand,
sampled softmax on the masked layout against a naive reference, save / load, and
learning a deterministic chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models import MODELS, load_model
from seqrec.models.bert4rec import BERT4Rec, BERT4RecConfig, BERT4RecNet
from seqrec.models.sasrec import SASRec, SASRecConfig, SASRecNet
from seqrec.nn.padding import MASK, PAD
from seqrec.training import build_task

N = 20


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: one thread is fastest on a busy box
    yield
    torch.set_num_threads(previous)


def net(max_len: int = 8, **kw) -> BERT4RecNet:
    cfg = BERT4RecConfig(**{"hidden": 16, "n_blocks": 2, "n_heads": 2, **kw})
    return BERT4RecNet(N, max_len, cfg, seed=3).eval()


def chain(n_sessions: int = 300, lengths: tuple[int, int] = (2, 9)) -> SessionLog:
    """Item k is always followed by k + 1 (mod N)."""
    rng = np.random.default_rng(0)
    starts, sizes = rng.integers(0, N, n_sessions), rng.integers(*lengths, n_sessions)
    return SessionLog.from_sequences(
        [list((s + np.arange(n)) % N) for s, n in zip(starts, sizes, strict=True)]
    )


def test_registered_with_the_cloze_defaults() -> None:
    assert MODELS["bert4rec"] is BERT4Rec
    keys = BERT4Rec().training_keys
    assert keys["layout"] == "masked" and keys["mask_prob"] == 0.2 and keys["max_len"] == 50
    assert keys["loss"] == "cross-entropy" and keys["negatives"] == "full"
    cfg = BERT4Rec().config
    assert (cfg.hidden, cfg.n_blocks, cfg.n_heads, cfg.dropout) == (64, 2, 2, 0.1)
    assert (cfg.ffn_factor, cfg.activation, cfg.head, cfg.output_bias) == (
        4,
        "gelu",
        "gelu-ln",
        True,
    )


@pytest.mark.parametrize("mask_prob", [0.2, 0.6])
def test_cloze_masking_rate_targets_and_one_mask_per_row(mask_prob: float) -> None:
    """2,000 sessions of 5 items, window 5: each item is masked with probability p and a
    row without any gets its last item masked, so the expected masked fraction is
    (5 p + (1 - p)^5) / 5 (p = 0.2: 0.2655; p = 0.6: 0.6020)."""
    sessions = [list(range(k % 15, k % 15 + 5)) for k in range(2000)]
    model = BERT4Rec(hidden=8, n_blocks=1, max_len=5, mask_prob=mask_prob, batch_size=500)
    task = build_task(model, SessionLog.from_sequences(sessions))
    inputs, targets = (torch.cat(t).numpy() for t in zip(*task.batches(0), strict=True))
    assert inputs.shape == (2000, 5)
    order = task.plan(0).order
    original = np.asarray(sessions)[order]  # the batches' rows, in the epoch's order
    hit = inputs == MASK
    assert hit.any(axis=1).all()  # every row has something to predict
    np.testing.assert_array_equal(targets[hit], original[hit])  # the masked items
    assert (targets[~hit] == PAD).all()  # targets only at masked positions
    np.testing.assert_array_equal(inputs[~hit], original[~hit])  # the rest untouched
    expected = (5 * mask_prob + (1 - mask_prob) ** 5) / 5
    assert abs(hit.mean() - expected) < 0.015, (hit.mean(), expected)
    assert task.n_events(0) == int(hit.sum())  # the epoch trains on the masked positions


def test_rows_without_a_drawn_mask_get_their_last_item_masked() -> None:
    model = BERT4Rec(hidden=8, n_blocks=1, max_len=4, mask_prob=1e-9)
    task = build_task(model, SessionLog.from_sequences([[1, 2, 3, 4, 5]] * 20))
    inputs, targets = next(iter(task.batches(0)))
    assert inputs.tolist() == [[2, 3, 4, MASK]] * 20  # the last max_len items, last masked
    assert targets.tolist() == [[PAD, PAD, PAD, 5]] * 20


def test_a_later_item_changes_an_earlier_state_unlike_sasrec() -> None:
    a = torch.tensor([[PAD, PAD, 3, 4, 5, 6, 7, MASK]])
    b = a.clone()
    b[0, 5] = 12  # change the item at column 5
    bert = net()
    with torch.no_grad():
        ha, hb = bert(a), bert(b)
    for col in (2, 3, 4, 6, 7):  # before and after column 5
        assert not torch.allclose(ha[0, col], hb[0, col]), col
    sas = SASRecNet(N, 8, SASRecConfig(hidden=16, n_blocks=2, n_heads=2), seed=3).eval()
    with torch.no_grad():
        sa, sb = sas(a.clamp(min=PAD)), sas(b.clamp(min=PAD))
    torch.testing.assert_close(sa[0, :5], sb[0, :5], rtol=0, atol=0)  # causal: unchanged


@pytest.mark.parametrize("positions", ["absolute", "recent"])
def test_left_padding_leaves_the_real_positions_alone(positions: str) -> None:
    m = net(positions=positions)
    short = torch.tensor([[PAD, 3, 1, MASK]])
    long = torch.tensor([[PAD, PAD, PAD, PAD, PAD, 3, 1, MASK]])
    with torch.no_grad():
        hs, hl = m(short), m(long)
        torch.testing.assert_close(hs[:, 1:], hl[:, 5:], rtol=1e-5, atol=1e-6)
        m.item_emb[N] += 5.0  # the PAD row: never attended by a real position
        torch.testing.assert_close(m(long)[:, 5:], hl[:, 5:], rtol=0, atol=0)
    assert torch.isfinite(hl).all()  # PAD queries attend themselves: no NaN


def test_without_blocks_the_state_is_the_normalised_input_by_hand() -> None:
    """n_blocks = 0, head none: state = LayerNorm(E[item] + P[position]) at eval."""
    m = net(max_len=4, n_blocks=0, head="none")
    with torch.no_grad():
        h = m(torch.tensor([[PAD, 7, MASK]]))
    e, p = m.item_emb.detach(), m.pos_emb.detach()
    for col, row, pos in ((1, 7, 0), (2, N + 1, 1)):  # MASK embeds as row N + 1
        x = e[row] + p[pos]
        want = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-5)
        torch.testing.assert_close(h[0, col], want)


@pytest.mark.parametrize("head", ["gelu-ln", "gelu", "none"])
def test_output_head_and_shared_table_with_bias_by_hand(head: str) -> None:
    m = net(head=head)
    with torch.no_grad():
        m.out_bias.copy_(torch.linspace(-1, 1, N))
        seqs = torch.tensor([[PAD, 3, 4, MASK], [1, 2, MASK, 9]])
        states, out = m.encode(seqs), m(seqs)
        if head == "none":
            want = states
        else:
            want = F.gelu(states @ m.head_dense.weight.t() + m.head_dense.bias)
            if head == "gelu-ln":
                want = F.layer_norm(want, (16,), m.head_ln.weight, m.head_ln.bias)
        torch.testing.assert_close(out, want)
        h = out[:, -1]  # (2, d)
        full = m.item_scores(h)
        torch.testing.assert_close(full, h @ m.item_emb[:N].t() + m.out_bias)
        torch.testing.assert_close(m.item_scores(h, torch.tensor([4, 7])), full[:, [4, 7]])
        per_row = torch.tensor([[1, 2], [3, 4]])
        torch.testing.assert_close(m.item_scores(h, per_row), full.gather(1, per_row))
    assert (m.head_dense is None) == (head == "none")
    assert (m.head_ln is None) == (head != "gelu-ln")
    assert net(output_bias=False).out_bias is None


def test_ffn_inner_size_and_post_norm_blocks() -> None:
    m = net(ffn_factor=4)
    blk = m.blocks[0]
    assert blk.post_norm and blk.ff1.weight.shape == (64, 16) and blk.ff2.weight.shape == (16, 64)
    assert blk.act is F.gelu
    assert net(ffn_factor=1, activation="relu").blocks[0].act is F.relu


def test_initial_weights_are_truncated_normal_from_the_seed() -> None:
    state = torch.get_rng_state()
    a, b = net(), net()
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is untouched
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    w = torch.cat([a.item_emb.detach().flatten(), a.blocks[0].qkv.weight.detach().flatten()])
    assert float(w.abs().max()) <= 0.04 and 0.012 < float(w.std()) < 0.02
    assert torch.equal(a.blocks[0].qkv.bias, torch.zeros(48))


def _fitted(max_len: int = 5) -> BERT4Rec:
    return BERT4Rec(hidden=8, n_blocks=1, max_len=max_len, n_epochs=1).fit(chain(40))


def test_inference_appends_a_mask_and_scores_its_state() -> None:
    model = _fitted()
    seqs = torch.tensor([[PAD, PAD, 3, 4, MASK], [PAD, PAD, PAD, PAD, MASK]])
    with torch.no_grad():
        want = model.net_.item_scores(model.net_(seqs)[:, -1])
    torch.testing.assert_close(model.score([[3, 4], []]), want, rtol=0, atol=0)
    # scoring the last item's own state instead gives other scores
    with torch.no_grad():
        last = model.net_.item_scores(model.net_(torch.tensor([[PAD, PAD, PAD, 3, 4]]))[:, -1])
    assert not torch.allclose(model.score([[3, 4]]), last)


def test_long_histories_keep_their_most_recent_max_len_minus_one_items() -> None:
    model = _fitted(max_len=5)
    long = list(range(12))
    torch.testing.assert_close(model.score([long]), model.score([long[-4:]]), rtol=0, atol=0)
    older = [*long[:-5], 19, *long[-4:]]  # the 5th most recent item changed: dropped
    torch.testing.assert_close(model.score([older]), model.score([long]), rtol=0, atol=0)
    kept = [*long[:-4], 19, *long[-3:]]  # the 4th most recent changed: kept
    assert not torch.allclose(model.score([kept]), model.score([long]))
    assert model.net_.pos_emb.shape == (5, 8)


def test_sampled_softmax_on_the_masked_layout_equals_a_naive_reference() -> None:
    """One step with 6 shared popularity negatives and logQ: the loss is the mean over
    the masked positions of -log softmax over (positive, negatives), each score minus
    its log Q, negatives equal to the positive dropped."""
    model = BERT4Rec(
        hidden=8, n_blocks=1, max_len=6, dropout=0.0, negatives="popularity", n_sample=6,
        logq=1.0, mask_false_negatives=True, mask_prob=0.4, sample_cache=60,
    )  # fmt: skip
    task = build_task(model, chain(50))
    inputs, targets = next(iter(task.batches(0)))
    state = {
        k: v.clone() if torch.is_tensor(v) else v for k, v in task.sampler.state_dict().items()
    }
    neg = task.sampler.sample()  # the draw the step will make
    task.sampler.load_state_dict(state)
    with torch.no_grad():
        sel = targets >= 0
        h = model.net_(inputs)[sel]  # (M, d): the masked positions only
        pos = targets[sel]  # (M,)
        log_q = task.log_q
    per_row = []
    for i in range(len(pos)):
        cand = [int(pos[i])] + [int(j) for j in neg if int(j) != int(pos[i])]
        s = model.net_.item_scores(h[i : i + 1], torch.tensor(cand))[0] - log_q[cand]
        per_row.append(torch.logsumexp(s, 0) - s[0])
    loss, n = task.train_step((inputs, targets))
    assert n == int(sel.sum()) == int((inputs == MASK).sum())
    torch.testing.assert_close(loss, torch.stack(per_row).mean(), rtol=1e-5, atol=1e-6)


def test_training_keys_that_cannot_work_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="cloze"):
        BERT4Rec(layout="causal")
    with pytest.raises(ConfigError, match="max_len"):
        BERT4Rec(max_len=1)
    with pytest.raises(ConfigError, match="divisible"):
        BERT4Rec(hidden=10, n_heads=3)
    for key, value in (("head", "mlp"), ("positions", "relative"), ("activation", "tanh")):
        with pytest.raises(ConfigError, match=key):
            BERT4Rec({key: value})
    with pytest.raises(ConfigError, match="mask_prob"):
        BERT4Rec(mask_prob=0.0)
    with pytest.raises(ConfigError, match="mask_last_prob"):
        BERT4Rec(mask_last_prob=-0.1)
    with pytest.raises(ConfigError, match="mask_last_prob applies to the masked layout"):
        SASRec(mask_last_prob=0.1)
    assert BERT4Rec(mask_last_prob=0.1).training_keys["mask_last_prob"] == 0.1


CHAIN = {"hidden": 32, "n_heads": 2, "n_blocks": 1, "max_len": 8, "dropout": 0.0,
         "learning_rate": 0.003, "batch_size": 32, "n_epochs": 50}  # fmt: skip


def _next_item_hits(model: BERT4Rec, k: int) -> float:
    """Share of the prefixes [j], [j, j+1], [j, j+1, j+2] whose next item is in the top k."""
    prefixes = [[(j + i) % N for i in range(n)] for n in (1, 2, 3) for j in range(N)]
    want = torch.tensor([(p[-1] + 1) % N for p in prefixes])
    top = model.score(prefixes).topk(k, dim=1).indices
    return float((top == want[:, None]).any(1).float().mean())


def test_learns_a_deterministic_chain_and_saves_it_exactly(tmp_path) -> None:
    model = BERT4Rec(CHAIN).fit(chain())
    assert _next_item_hits(model, 1) >= 0.9
    history = model.meta_["history"]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    loaded = load_model(model.save(tmp_path / "m"))
    assert isinstance(loaded, BERT4Rec)
    hist = [[1, 2, 3], [5], list(range(15))]
    torch.testing.assert_close(loaded.score(hist), model.score(hist), rtol=0, atol=0)


def test_learns_the_chain_with_sampled_softmax() -> None:
    keys = {"negatives": "popularity", "n_sample": 16, "logq": 1.0, "mask_false_negatives": True}
    model = BERT4Rec({**CHAIN, **keys}).fit(chain())
    assert _next_item_hits(model, 3) >= 0.9
    history = model.meta_["history"]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_full_cross_entropy_reads_the_output_table_with_its_bias() -> None:
    """The task's chunked full softmax (float32 and bfloat16 products) equals the loss
    of the net's own scores over the masked positions."""
    b = net(max_len=6)
    table, bias = b.output_table()
    h = b(torch.tensor([[PAD, 3, 7, MASK], [1, 2, 5, MASK]]))[:, -1]
    torch.testing.assert_close(b.item_scores(h), h @ table.t() + bias)
    for precision, tol in (("float32", 1e-5), ("bfloat16", 2e-2)):
        model = BERT4Rec(
            hidden=8, n_blocks=1, max_len=6, dropout=0.0, mask_prob=0.4,
            matmul_precision=precision,
        )  # fmt: skip
        task = build_task(model, chain(50))
        assert task.chunked_xent
        inputs, targets = next(iter(task.batches(0)))
        with torch.no_grad():
            sel = targets >= 0
            ref = F.cross_entropy(model.net_.item_scores(model.net_(inputs)[sel]), targets[sel])
        loss, n = task.train_step((inputs, targets))
        assert n == int(sel.sum())
        torch.testing.assert_close(loss, ref, rtol=tol, atol=tol)
