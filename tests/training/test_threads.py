"""The training steps' thread count (training key ``threads``): which count is chosen
(0 = torch's setting, N, or the "auto" policy on the cores actually free), that it
applies to the steps only and is restored, and that it changes nothing but float
rounding."""

import pytest
import torch

from seqrec.models.gru4rec import GRU4Rec
from seqrec.training import build_task
from seqrec.training import threads as th
from seqrec.training.session_parallel import SessionParallelTask
from tests.models.test_gru4rec import LOG, SMALL


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("setting", "work", "free", "expected"),
    [
        (0, 128 * 100, 2, 0),  # library default: leave torch's setting
        (2, 32 * 100, 2, 2),  # explicit wins
        (1, 128 * 100, 2, 1),
        ("auto", 32 * 100, 2, 1),  # small step: one thread
        ("auto", 8 * 16, 2, 1),
        ("auto", 128 * 100, 2, 0),  # large step, both cores free: torch's setting
        ("auto", 32 * 512, 2, 0),
        ("auto", 128 * 100, 1, 1),  # another process keeps a core busy: one thread
    ],
)
def test_thread_choice(two_threads, monkeypatch, setting, work, free, expected):
    monkeypatch.setattr(th, "free_cores", lambda: free)
    assert th.resolve_threads(setting, work) == expected


def test_free_cores_subtracts_other_processes(monkeypatch):
    monkeypatch.setattr(th, "_allowed_cpus", lambda: {0, 1})
    monkeypatch.setattr(th, "busy_other_cores", lambda: 0.9)
    assert th.free_cores() == 1
    monkeypatch.setattr(th, "busy_other_cores", lambda: 0.3)
    assert th.free_cores() == 2
    monkeypatch.setattr(th, "busy_other_cores", lambda: 5.0)
    assert th.free_cores() == 1  # never below one
    monkeypatch.setattr(th, "busy_other_cores", lambda: None)  # no /proc/stat
    assert th.free_cores() == 2


def test_busy_other_cores_is_a_fraction_of_the_allowed_cores():
    busy = th.busy_other_cores(0.05)
    if busy is None:
        pytest.skip("no /proc/stat on this system")
    assert 0.0 <= busy <= len(th._allowed_cpus()) + 0.5


def test_steps_run_with_the_chosen_threads_and_the_setting_is_restored(two_threads, monkeypatch):
    seen: list[int] = []
    original = SessionParallelTask.train_step

    def spy(self, batch):
        seen.append(torch.get_num_threads())
        return original(self, batch)

    monkeypatch.setattr(SessionParallelTask, "train_step", spy)
    GRU4Rec({**SMALL, "n_epochs": 2, "threads": "auto"}).fit(LOG, valid=LOG)  # small: 1
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2
    seen.clear()
    GRU4Rec({**SMALL, "threads": 1}).fit(LOG)
    assert set(seen) == {1} and torch.get_num_threads() == 2
    seen.clear()
    GRU4Rec(SMALL).fit(LOG)  # the library default changes nothing
    assert set(seen) == {2} and torch.get_num_threads() == 2


def test_one_or_two_threads_train_the_same_model(two_threads):
    """Thread count is a speed setting: same seed, same weights up to float rounding."""
    cfg = {**SMALL, "layers": [32], "batch_size": 16, "n_epochs": 2}
    a = GRU4Rec({**cfg, "threads": 1}).fit(LOG)
    b = GRU4Rec({**cfg, "threads": 2}).fit(LOG)
    for (name, pa), (_, pb) in zip(
        a.net_.state_dict().items(), b.net_.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5, msg=name)


def test_background_sampler_only_when_a_core_is_left(two_threads, monkeypatch):
    import seqrec.training.sampling as sampling

    monkeypatch.setattr(sampling.os, "sched_getaffinity", lambda _pid: {0, 1})
    assert build_task(GRU4Rec({**SMALL, "threads": 1}), LOG).sampler.background
    assert not build_task(GRU4Rec({**SMALL, "threads": 2}), LOG).sampler.background
