"""GRU4Rec's training-step thread count (config ``threads``): which count is chosen,
that it applies to the steps only and is restored, and that it changes nothing but
float rounding."""

import pytest
import torch

from seqrec.models.gru4rec import GRU4Rec, GRU4RecConfig, _Task, train_threads
from tests.models.test_gru4rec import LOG, SMALL


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        ({"batch_size": 32, "layers": [100]}, 1),  # small step: one thread
        ({"batch_size": 8, "layers": [16]}, 1),
        ({"batch_size": 128, "layers": [100]}, 0),  # leave torch's setting
        ({"batch_size": 32, "layers": [512]}, 0),
        ({"batch_size": 32, "layers": [100], "threads": 2}, 2),  # explicit wins
        ({"batch_size": 128, "layers": [100], "threads": 1}, 1),
    ],
)
def test_train_threads_choice(cfg, expected):
    assert train_threads(GRU4RecConfig(**{**GRU4RecConfig().__dict__, **cfg})) == expected


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_steps_run_with_the_chosen_threads_and_the_setting_is_restored(two_threads, monkeypatch):
    seen: list[int] = []
    original = _Task.train_step

    def spy(self, batch):
        seen.append(torch.get_num_threads())
        return original(self, batch)

    monkeypatch.setattr(_Task, "train_step", spy)
    GRU4Rec({**SMALL, "n_epochs": 2}).fit(LOG, valid=LOG, progress=False)  # auto: 1
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2
    seen.clear()
    GRU4Rec({**SMALL, "threads": 2}).fit(LOG, progress=False)
    assert set(seen) == {2} and torch.get_num_threads() == 2


def test_one_or_two_threads_train_the_same_model(two_threads):
    """Thread count is a speed setting: same seed, same weights up to float rounding."""
    cfg = {**SMALL, "layers": [32], "batch_size": 16, "n_epochs": 2}
    a = GRU4Rec({**cfg, "threads": 1}).fit(LOG, progress=False)
    b = GRU4Rec({**cfg, "threads": 2}).fit(LOG, progress=False)
    for (name, pa), (_, pb) in zip(
        a.net_.state_dict().items(), b.net_.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5, msg=name)


def test_background_sampler_only_when_a_core_is_left(two_threads, monkeypatch):
    import seqrec.training.sampling as sampling

    monkeypatch.setattr(sampling.os, "sched_getaffinity", lambda _pid: {0, 1})
    model = GRU4Rec({**SMALL, "threads": 1})
    model._begin_fit(LOG, None)
    model._build(model.n_items_)
    assert _Task(model, LOG, None).sampler.background  # 1 thread on 2 cores
    model = GRU4Rec({**SMALL, "threads": 2})
    model._begin_fit(LOG, None)
    model._build(model.n_items_)
    assert not _Task(model, LOG, None).sampler.background
