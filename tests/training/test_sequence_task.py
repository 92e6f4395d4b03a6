"""The padded-sequence task with a tiny fake network: it learns, resumes exactly, is
deterministic and leaves the process's random stream alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.nn.padding import embedding_ids
from seqrec.training.loop import LoopOptions, run_training
from seqrec.training.sequence_task import SequenceOptions, SequenceTask

N_ITEMS = 12


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny steps: one intra-op thread (2 threads on a busy 2-core box are ~10x slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class FakeNet(nn.Module):
    """Embedding of the item at each position (+ dropout) -> linear read-out."""

    def __init__(self, n_items: int, d: int = 16, dropout: float = 0.0, rows: bool = False) -> None:
        super().__init__()
        self.n_items = n_items
        self.sparse = rows
        self.row_params = ["out"] if rows else []  # the read-out table: row-sparse updates
        self.emb = nn.Embedding(n_items + 2, d)  # + PAD and MASK rows
        self.drop = nn.Dropout(dropout)
        self.out = nn.Parameter(torch.randn(n_items, d) * 0.1)  # (n_items, d)

    def forward(self, seqs: Tensor) -> Tensor:
        return self.drop(self.emb(embedding_ids(seqs, self.n_items)))  # (B, T, d)

    def item_scores(self, hidden: Tensor, items: Tensor | None = None) -> Tensor:
        if items is None:
            return hidden @ self.out.t()  # (N, n_items)
        w = torch.nn.functional.embedding(items, self.out, sparse=self.sparse)
        if items.dim() == 1:
            return hidden @ w.t()  # (N, C)
        return torch.einsum("nd,nkd->nk", hidden, w)  # (N, K)


def _net(seed: int = 0, dropout: float = 0.0, rows: bool = False) -> FakeNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FakeNet(N_ITEMS, dropout=dropout, rows=rows)


def chain_log(n_sessions: int = 120, seed: int = 0) -> SessionLog:
    """Sessions of a deterministic chain: item k is always followed by k + 1 (mod n)."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, N_ITEMS, n_sessions)
    lengths = rng.integers(2, 9, n_sessions)
    pairs = zip(starts, lengths, strict=True)
    items = np.concatenate([(s + np.arange(n)) % N_ITEMS for s, n in pairs])
    return SessionLog(offsets=np.concatenate([[0], np.cumsum(lengths)]), items=items)


def next_item_accuracy(net: FakeNet) -> float:
    with torch.no_grad():
        h = net(torch.arange(N_ITEMS)[:, None])[:, -1]  # (n_items, d)
        top = net.item_scores(h).argmax(dim=1)
    return float((top == (torch.arange(N_ITEMS) + 1) % N_ITEMS).float().mean())


CASES = [
    ("causal", "full", "cross-entropy", {}),
    ("last", "full", "bpr-max", {}),
    ("causal", "uniform", "bpr", {"n_neg": 1}),
    ("causal", "uniform", "bce", {"n_neg": 2, "exclude_history": True}),
    ("causal", "uniform", "gbce", {"n_neg": 3, "gbce_t": 0.75}),
    ("last", "popularity", "cross-entropy", {"n_neg": 8, "logq": 1.0}),
    ("causal", "in-batch", "cross-entropy", {"n_neg": 0, "logq": 0.5}),
    ("last", "in-batch", "top1-max", {"n_neg": 4}),
    ("masked", "full", "cross-entropy", {"mask_prob": 0.5}),
]


@pytest.mark.parametrize(("layout", "negatives", "loss", "extra"), CASES)
def test_learns_the_chain(layout: str, negatives: str, loss: str, extra: dict) -> None:
    net = _net()
    opts = SequenceOptions(
        layout=layout, negatives=negatives, loss=loss, max_len=4, batch_size=16,
        learning_rate=0.05, seed=3, **extra,
    )  # fmt: skip
    task = SequenceTask(net, chain_log(), N_ITEMS, opts)
    hist = run_training(task, LoopOptions(n_epochs=8, progress=False))
    assert hist[-1].loss < hist[0].loss  # (TOP1-max's score regulariser keeps it >= 0.5)
    assert all(h.events == task.n_events(h.epoch) for h in hist)
    if layout != "masked":  # the fake net sees only MASK at a masked position
        assert next_item_accuracy(net) >= 0.9


def _train(
    tmp: Path | None, epochs: int, resume: bool = False, rows: bool = False, **kw
) -> SequenceTask:
    opts = SequenceOptions(max_len=5, batch_size=8, learning_rate=0.02, seed=7, **kw)
    task = SequenceTask(_net(dropout=0.3, rows=rows), chain_log(), N_ITEMS, opts)
    loop = LoopOptions(n_epochs=epochs, checkpoint_dir=tmp, resume=resume, progress=False)
    run_training(task, loop)
    return task


@pytest.mark.parametrize(
    "kw",
    [
        {"negatives": "uniform", "n_neg": 2, "loss": "bpr", "optimizer": "adam"},
        {"negatives": "popularity", "n_neg": 3, "sample_cache": 30, "layout": "masked"},
        {"negatives": "in-batch", "n_neg": 2, "loss": "bpr-max", "optimizer": "adagrad"},
        {"negatives": "uniform", "n_neg": 2, "rows": True},  # RowAdam on the read-out
        {"negatives": "full", "rows": True, "optimizer": "adagrad", "weight_decay": 0.01},
    ],
)
def test_resume_is_exact(tmp_path: Path, kw: dict) -> None:
    full = _train(None, 3, **kw)
    _train(tmp_path, 1, **kw)  # stops after epoch 1 with a checkpoint
    resumed = _train(tmp_path, 3, resume=True, **kw)
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_deterministic_and_leaves_the_global_stream_alone() -> None:
    before = torch.get_rng_state()
    a = _train(None, 2, negatives="uniform", n_neg=2)
    assert torch.equal(torch.get_rng_state(), before)
    b = _train(None, 2, negatives="uniform", n_neg=2)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    c = SequenceTask(_net(dropout=0.3), chain_log(), N_ITEMS, SequenceOptions(seed=8, max_len=5))
    run_training(c, LoopOptions(n_epochs=2, progress=False))
    assert not torch.equal(c.net.out, a.net.out)  # another seed, another model


def test_validation_sees_eval_mode_after_every_epoch() -> None:
    calls: list[int] = []

    def validate() -> dict[str, float]:
        calls.append(1)
        assert not task.net.training  # the epoch's batches left the net in eval mode
        return {"recall@20": 0.5}

    task = SequenceTask(_net(), chain_log(), N_ITEMS, SequenceOptions())
    hist = run_training(task, LoopOptions(n_epochs=2, progress=False, validate=validate))
    assert len(calls) == 2 and hist[-1].metrics == {"recall@20": 0.5}
    assert not task.net.training  # left in eval mode after each epoch


class OneStateNet(FakeNet):
    """One state per sample, ``(B, 1, d)``: the embedding of the last column; with
    ``uses_users`` it takes (and records) the samples' user codes."""

    def __init__(self, n_items: int, uses_users: bool = False) -> None:
        super().__init__(n_items)
        self.uses_users = uses_users
        self.seen: list[Tensor] = []

    def forward(self, seqs: Tensor, users: Tensor | None = None) -> Tensor:
        assert (users is not None) == self.uses_users
        if users is not None:
            self.seen.append(users.clone())
        return super().forward(seqs[:, -1:])  # (B, 1, d)


@pytest.mark.parametrize(("layout", "n_targets"), [("window", 1), ("last", 1), ("window", 3)])
def test_one_state_per_sample_is_scored_against_every_target(layout: str, n_targets: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = OneStateNet(N_ITEMS)
    opts = SequenceOptions(layout=layout, n_targets=n_targets, max_len=3, batch_size=16,
                           learning_rate=0.05, seed=3)  # fmt: skip
    task = SequenceTask(net, chain_log(), N_ITEMS, opts)
    hist = run_training(task, LoopOptions(n_epochs=6, progress=False))
    assert hist[-1].loss < hist[0].loss
    assert all(h.events == task.n_events(h.epoch) for h in hist)
    if n_targets == 1:
        assert next_item_accuracy(net) >= 0.9


def test_a_net_that_uses_users_gets_each_samples_user() -> None:
    log = chain_log(40)
    net = OneStateNet(N_ITEMS, uses_users=True)
    opts = SequenceOptions(layout="window", n_targets=2, max_len=3, batch_size=8, shuffle=False)
    users = np.arange(40) * 10  # session s: user 10 s
    task = SequenceTask(net, log, N_ITEMS, opts, users=users)
    run_training(task, LoopOptions(n_epochs=1, progress=False))
    seen = torch.cat(net.seen).numpy()
    np.testing.assert_array_equal(seen, np.repeat(users, log.lengths - 1))  # one per sample
    net.seen.clear()
    run_training(SequenceTask(net, log, N_ITEMS, opts), LoopOptions(n_epochs=1, progress=False))
    assert torch.cat(net.seen).eq(-1).all()  # no users given: every sample unknown


def test_a_state_count_that_fits_no_target_layout_is_an_error() -> None:
    opts = SequenceOptions(layout="window", n_targets=2, max_len=4)
    task = SequenceTask(_net(), chain_log(), N_ITEMS, opts)  # FakeNet: 4 states per row
    with pytest.raises(ValueError, match="4 states per row for 2 target columns"):
        task.train_step(next(iter(task.batches(0))))


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"layout": "last", "n_targets": 2}, "n_targets"),
        ({"layout": "window", "n_targets": 0}, "n_targets"),
        ({"loss": "nope"}, "unknown loss"),
        ({"negatives": "hard"}, "negatives"),
        ({"negatives": "uniform", "n_neg": 0}, "n_neg"),
        ({"layout": "random"}, "layout"),
        ({"gbce_t": 2.0}, "gbce_t"),
        ({"optimizer": "lion"}, "optimizer"),
    ],
)
def test_bad_options(kw: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        SequenceOptions(**kw)


@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_row_sparse_tables_update_only_the_touched_rows(optimizer: str) -> None:
    net = _net(rows=True)
    opts = SequenceOptions(negatives="uniform", n_neg=1, optimizer=optimizer, max_len=3, seed=1)
    task = SequenceTask(net, chain_log(), N_ITEMS, opts)
    assert task.row_names == ["out"] and task.row_opt is not None
    before = net.out.detach().clone()
    inputs = torch.tensor([[-1, 0, 1]])
    targets = torch.tensor([[-1, 1, 2]])
    task.train_step((inputs, targets))
    changed = (net.out.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert {1, 2} <= set(changed) and len(changed) <= 4  # the targets and two negatives
    assert net.out.grad is None  # consumed by the row update
    # the same net learns the chain with row-sparse updates
    hist = run_training(task, LoopOptions(n_epochs=8, progress=False))
    assert hist[-1].loss < hist[0].loss


def test_family_keys_belong_to_the_sequences_family_only() -> None:
    from seqrec.models.fpmc import FPMC
    from seqrec.models.gru4rec import GRU4Rec

    model = FPMC(max_len=7, negatives="in-batch", loss="gbce", gbce_t=0.5)
    assert model.training_keys["max_len"] == 7 and model.training_keys["gbce_t"] == 0.5
    with pytest.raises(ConfigError, match="unknown config key 'max_len'"):
        GRU4Rec(max_len=7)  # a session-parallel model has no window
    with pytest.raises(ConfigError, match="negatives"):
        FPMC(negatives="hard")


class TableNet(FakeNet):
    """FakeNet declaring its read-out table: ``item_scores(h) == h @ out.T``."""

    def output_table(self) -> tuple[Tensor, None]:
        return self.out, None


@pytest.mark.parametrize("layout", ["last", "causal"])
def test_full_cross_entropy_from_the_output_table_trains_as_from_the_score_matrix(
    layout: str,
) -> None:
    """A net with ``output_table`` gets the chunked full softmax: the same losses and
    weights as the (N, n_items) score matrix, up to float rounding."""
    opts = SequenceOptions(layout=layout, max_len=4, batch_size=16, learning_rate=0.05, seed=3)
    tasks = []
    for cls in (FakeNet, TableNet):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = cls(N_ITEMS, dropout=0.2)
        tasks.append(SequenceTask(net, chain_log(), N_ITEMS, opts))
    plain, chunked = tasks
    assert chunked.chunked_xent and not plain.chunked_xent
    hist = [run_training(t, LoopOptions(n_epochs=3, progress=False)) for t in tasks]
    for a, b in zip(*hist, strict=True):
        assert b.loss == pytest.approx(a.loss, rel=1e-4, abs=1e-6)
    for (name, p), q in zip(plain.net.named_parameters(), chunked.net.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize(
    "kw",
    [
        {"loss": "bpr-max"},
        {"elu_param": 0.5},
        {"negatives": "uniform", "n_neg": 2},
        {"negatives": "popularity", "n_neg": 3, "logq": 1.0},
    ],
)
def test_the_chunked_full_softmax_is_used_only_for_plain_full_cross_entropy(kw: dict) -> None:
    with torch.random.fork_rng(devices=[]):
        net = TableNet(N_ITEMS)
    task = SequenceTask(net, chain_log(), N_ITEMS, SequenceOptions(layout="last", **kw))
    assert not task.chunked_xent


def test_bfloat16_products_train_like_float32() -> None:
    """matmul_precision = "bfloat16": the chunked full softmax with bfloat16 operands;
    the losses follow float32's within the rounding and the weights stay float32."""
    hist = {}
    for precision in ("float32", "bfloat16"):
        opts = SequenceOptions(
            layout="last",
            max_len=4,
            batch_size=16,
            learning_rate=0.05,
            seed=3,
            matmul_precision=precision,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            task = SequenceTask(TableNet(N_ITEMS), chain_log(), N_ITEMS, opts)
        assert task.matmul_dtype == (torch.bfloat16 if precision == "bfloat16" else None)
        hist[precision] = run_training(task, LoopOptions(n_epochs=3, progress=False))
        assert all(p.dtype == torch.float32 for p in task.net.parameters())
    # the first epoch (loss ~1) agrees to the rounding; near zero loss the rounding of
    # the scores dominates, so later epochs only have to be as learned as float32's
    assert hist["bfloat16"][0].loss == pytest.approx(hist["float32"][0].loss, rel=3e-2)
    assert hist["bfloat16"][-1].loss < 0.01 * hist["bfloat16"][0].loss  # it learns


@pytest.mark.parametrize(
    "kw",
    [{"loss": "bpr-max"}, {"negatives": "uniform", "n_neg": 2}, {"elu_param": 0.5}],
)
def test_bfloat16_without_the_full_cross_entropy_is_a_config_error(kw: dict) -> None:
    with torch.random.fork_rng(devices=[]):
        net = TableNet(N_ITEMS)
    opts = SequenceOptions(layout="last", matmul_precision="bfloat16", **kw)
    with pytest.raises(ConfigError, match="bfloat16"):
        SequenceTask(net, chain_log(), N_ITEMS, opts)
    with pytest.raises(ConfigError, match="bfloat16"):  # nor a net without output_table
        SequenceTask(
            FakeNet(N_ITEMS), chain_log(), N_ITEMS, SequenceOptions(matmul_precision="bfloat16")
        )


def test_a_bad_matmul_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="matmul_precision"):
        SequenceOptions(matmul_precision="float16")  # type: ignore[arg-type]
