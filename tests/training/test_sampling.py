"""PopularitySampler: distribution, cache refresh, determinism and exact resumability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.errors import ConfigError
from seqrec.training.sampling import PopularitySampler

COUNTS = np.array([0, 1, 2, 5, 10, 0, 30, 3, 50, 7], dtype=np.int64)


def _expected(alpha: float) -> np.ndarray:
    w = COUNTS.astype(np.float64) ** alpha  # 0 ** 0 == 1
    return w / w.sum()


def _draws(sampler: PopularitySampler, n_calls: int) -> np.ndarray:
    out = [sampler.sample() for _ in range(n_calls)]
    return torch.cat(out).numpy() if out else np.empty(0, dtype=np.int64)


def _chi2(draws: np.ndarray, p: np.ndarray) -> float:
    observed = np.bincount(draws, minlength=p.size)
    expected = p * draws.size
    nz = expected > 0
    return float(((observed[nz] - expected[nz]) ** 2 / expected[nz]).sum())


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_distribution_matches_counts_pow_alpha(alpha: float) -> None:
    sampler = PopularitySampler(COUNTS, alpha, n_sample=1000, cache_size=50_000, seed=1)
    draws = _draws(sampler, 200)  # 200k draws over 4 caches
    p = _expected(alpha)
    # chi-square with <= 9 dof: 99.99th percentile is about 33
    assert _chi2(draws, p) < 35.0
    assert sampler.refreshes == 4
    if alpha > 0:
        assert not np.isin(draws, np.flatnonzero(COUNTS == 0)).any()
    else:
        assert set(np.unique(draws)) == set(range(COUNTS.size))


def test_prob_and_log_prob() -> None:
    sampler = PopularitySampler(COUNTS, 0.75, n_sample=4)
    p = _expected(0.75)
    assert sampler.prob.shape == (10,) and sampler.log_prob.shape == (10,)
    np.testing.assert_allclose(sampler.prob.numpy(), p, rtol=1e-6)
    log_p = sampler.log_prob.numpy()
    assert np.isneginf(log_p[COUNTS == 0]).all()
    np.testing.assert_allclose(log_p[COUNTS > 0], np.log(p[COUNTS > 0]), rtol=1e-6)
    uniform = PopularitySampler(COUNTS, 0.0, n_sample=4)
    np.testing.assert_allclose(uniform.prob.numpy(), np.full(10, 0.1), rtol=1e-6)


def test_output_shape_dtype_and_cache_rounding() -> None:
    sampler = PopularitySampler(COUNTS, 1.0, n_sample=7, cache_size=50)
    assert sampler.cache_len == 49
    out = sampler.sample()
    assert out.shape == (7,) and out.dtype == torch.long
    assert PopularitySampler(COUNTS, 1.0, n_sample=7, cache_size=3).cache_len == 7


def test_cache_refresh_draws_new_values() -> None:
    sampler = PopularitySampler(COUNTS, 0.0, n_sample=5, cache_size=20, seed=3)
    first_cache = _draws(sampler, 4)
    assert sampler.refreshes == 1
    second_cache = _draws(sampler, 4)
    assert sampler.refreshes == 2
    assert not np.array_equal(first_cache, second_cache)


def test_same_seed_same_draws_other_seed_differs() -> None:
    a = _draws(PopularitySampler(COUNTS, 0.5, n_sample=8, cache_size=32, seed=7), 10)
    b = _draws(PopularitySampler(COUNTS, 0.5, n_sample=8, cache_size=32, seed=7), 10)
    c = _draws(PopularitySampler(COUNTS, 0.5, n_sample=8, cache_size=32, seed=8), 10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("n_before", [0, 1, 3, 4, 5, 9])
def test_state_dict_round_trip(n_before: int) -> None:
    """Restored mid-cache, at a cache boundary or before any draw: identical continuation."""
    make = lambda: PopularitySampler(COUNTS, 0.5, n_sample=6, cache_size=24, seed=11)  # noqa: E731
    original = make()
    _draws(original, n_before)
    state = original.state_dict()
    for value in state.values():
        assert isinstance(value, torch.Tensor | int) and not isinstance(value, bool)
    assert all(v.numel() < 10_000 for v in state.values() if isinstance(v, torch.Tensor))
    expected = _draws(original, 10)  # crosses at least two refresh boundaries

    restored = make()
    _draws(restored, 2)  # its own progress is overwritten by the load
    restored.load_state_dict(state)
    assert restored.refreshes == state["refreshes"]
    np.testing.assert_array_equal(_draws(restored, 10), expected)
    assert restored.refreshes == original.refreshes


def test_state_dict_survives_serialisation_as_plain_values() -> None:
    original = PopularitySampler(COUNTS, 1.0, n_sample=3, cache_size=9, seed=5)
    _draws(original, 2)
    state = {
        k: (v.numpy().copy() if isinstance(v, torch.Tensor) else int(v))
        for k, v in original.state_dict().items()
    }
    state = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in state.items()}
    expected = _draws(original, 5)
    restored = PopularitySampler(COUNTS, 1.0, n_sample=3, cache_size=9, seed=0)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(_draws(restored, 5), expected)


def test_state_dict_mismatch_rejected() -> None:
    state = PopularitySampler(COUNTS, 1.0, n_sample=3, cache_size=9).state_dict()
    with pytest.raises(ConfigError):
        PopularitySampler(COUNTS, 1.0, n_sample=3, cache_size=12).load_state_dict(state)


def test_n_sample_zero() -> None:
    sampler = PopularitySampler(COUNTS, 1.0, n_sample=0)
    out = sampler.sample()
    assert out.shape == (0,) and out.dtype == torch.long
    assert sampler.refreshes == 0
    state = sampler.state_dict()
    PopularitySampler(COUNTS, 1.0, n_sample=0).load_state_dict(state)


def test_invalid_arguments() -> None:
    with pytest.raises(ConfigError):
        PopularitySampler(COUNTS, -0.5, n_sample=3)
    with pytest.raises(ConfigError):
        PopularitySampler(COUNTS, 1.0, n_sample=-1)
    with pytest.raises(ValueError):
        PopularitySampler(np.zeros(5), 1.0, n_sample=3)
    with pytest.raises(ValueError):
        PopularitySampler(np.array([1.0, -1.0]), 1.0, n_sample=3)


@pytest.mark.parametrize("chunk", [2**20, 777])  # one chunk; many, the last one short
def test_cpu_inverse_cdf_draws_are_torch_multinomials_draws(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """The CPU path is a faster way to the same draws (results unchanged by the switch)."""
    monkeypatch.setattr("seqrec.training.sampling.DRAW_CHUNK", chunk)
    sampler = PopularitySampler(COUNTS, 0.5, n_sample=50, cache_size=5_000, seed=7)
    assert sampler._cdf is not None
    gen = torch.Generator().manual_seed(7)
    ref = torch.multinomial(sampler._weights, sampler.cache_len, replacement=True, generator=gen)
    assert torch.equal(sampler._draw(), ref)


def test_inverse_cdf_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inverse-CDF search (the CPU path, and CUDA's above 2**24 items) draws the right
    distribution and never a zero-probability item."""
    monkeypatch.setattr("seqrec.training.sampling._MULTINOMIAL_MAX_CATEGORIES", 5)
    assert PopularitySampler(COUNTS, 1.0, n_sample=10)._cdf is not None  # CPU: always
    sampler = PopularitySampler(COUNTS, 1.0, n_sample=1000, cache_size=100_000, seed=2)
    draws = _draws(sampler, 100)
    assert _chi2(draws, _expected(1.0)) < 35.0
    assert not np.isin(draws, np.flatnonzero(COUNTS == 0)).any()
    counts = COUNTS.copy()
    counts[-3:] = 0  # trailing zero-probability items are never returned
    tail = PopularitySampler(counts, 1.0, n_sample=1000, cache_size=100_000, seed=2)
    assert _draws(tail, 100).max() < 7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_round_trip() -> None:
    make = lambda: PopularitySampler(COUNTS, 0.5, n_sample=6, cache_size=24, seed=1, device="cuda")  # noqa: E731
    original = make()
    out = original.sample()
    assert out.device.type == "cuda" and original.log_prob.device.type == "cuda"
    _draws_cuda = lambda s, n: torch.cat([s.sample() for _ in range(n)]).cpu().numpy()  # noqa: E731
    _draws_cuda(original, 3)
    state = original.state_dict()
    expected = _draws_cuda(original, 10)
    restored = make()
    restored.load_state_dict(state)
    np.testing.assert_array_equal(_draws_cuda(restored, 10), expected)


# -- background refresh -----------------------------------------------------------------


def _pair(**kw) -> tuple[PopularitySampler, PopularitySampler]:
    args = {"counts": COUNTS, "alpha": 0.5, "n_sample": 6, "cache_size": 24, "seed": 11, **kw}
    return PopularitySampler(**args), PopularitySampler(**args, background=True)


@pytest.mark.parametrize("large", [False, True])
def test_background_refresh_draws_what_the_synchronous_sampler_draws(
    large: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if large:  # the inverse-CDF path draws from the generator too
        monkeypatch.setattr("seqrec.training.sampling._MULTINOMIAL_MAX_CATEGORIES", 5)
    sync, bg = _pair()
    for _ in range(7):  # 7 x 4 calls: 7 refreshes, each one prefetched in a thread
        np.testing.assert_array_equal(_draws(bg, 4), _draws(sync, 4))
        assert bg.refreshes == sync.refreshes
    assert bg.refreshes == 7
    assert bg._next is not None  # the 8th cache is on its way


@pytest.mark.parametrize("n_before", [0, 1, 3, 4, 5, 9])
def test_background_state_dict_and_resume_are_exact(n_before: int) -> None:
    sync, bg = _pair()
    _draws(sync, n_before)
    _draws(bg, n_before)
    state_bg, state_sync = bg.state_dict(), sync.state_dict()
    assert state_bg.keys() == state_sync.keys()
    for k, v in state_sync.items():
        assert torch.equal(torch.as_tensor(state_bg[k]), torch.as_tensor(v)), k
    expected = _draws(sync, 10)
    np.testing.assert_array_equal(_draws(bg, 10), expected)
    for target in _pair():  # a synchronous and a background sampler resume the same
        _draws(target, 5)  # its own progress (and pending prefetch) is overwritten
        target.load_state_dict(state_bg)
        np.testing.assert_array_equal(_draws(target, 10), expected)


def test_background_draw_errors_reach_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    _, bg = _pair()
    _draws(bg, 4)  # first cache drawn, the second one prefetching
    bg._next.wait()
    bg._next._error = RuntimeError("draw failed")
    with pytest.raises(RuntimeError, match="draw failed"):
        _draws(bg, 1)
