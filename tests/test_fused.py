"""The compiled Adagrad kernels (seqrec.training.kernels) against the torch formulation.

The kernels reproduce the torch update operation by operation; the one rounding
difference is ``sqrt`` (torch's CPU sqrt goes through MKL's vector math, not always
correctly rounded; the kernels' is IEEE), so parameters and velocities agree to
~1 ulp of the step (asserted with rtol 1e-6), accumulators and untouched rows exactly.
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from seqrec.training import kernels as fused
from seqrec.training.optim import AdagradM

NO = torch.empty(0, dtype=torch.bfloat16)  # the kernels' "no shadow"
BF = torch.bfloat16


@pytest.fixture
def ext():
    mod = fused.kernels()
    if mod is None:
        pytest.skip("fused kernels unavailable here (switched off or no compiler)")
    return mod


@pytest.fixture
def torch_only(monkeypatch):
    monkeypatch.setenv(fused.ENV_SWITCH, "0")
    fused._reset()
    yield
    fused._reset()


def test_kernels_build_where_a_compiler_is_available():
    if fused._switched_off():
        pytest.skip(f"{fused.ENV_SWITCH}=0")
    if not (shutil.which("c++") or shutil.which("g++")) or not shutil.which("ninja"):
        pytest.skip("no C++ compiler or ninja: the pure-torch path is used")
    assert fused.kernels() is not None


def _ref_rows(p, acc, vel, rows, g, lr, eps, mom):
    """seqrec's torch row update (AdagradM before the kernels), on copies."""
    p, acc, vel = p.clone(), acc.clone(), vel.clone()
    a = acc.index_select(0, rows).addcmul_(g, g)
    acc.index_copy_(0, rows, a)
    u = g / (a + eps).sqrt_()
    if mom > 0:
        v = vel.index_select(0, rows).mul_(mom).add_(u, alpha=lr)
        vel.index_copy_(0, rows, v)
        p.index_add_(0, rows, v, alpha=-1.0)
    else:
        p.index_add_(0, rows, u, alpha=-lr)
    return p, acc, vel


@pytest.mark.parametrize("width", [0, 1, 7, 100])  # 0: a 1-D table (By)
@pytest.mark.parametrize("mom", [0.0, 0.4])
def test_row_kernel_matches_torch_update(ext, width, mom):
    torch.manual_seed(width)
    N, R = 500, 177
    shape = (N, width) if width else (N,)
    p, acc = torch.randn(shape), torch.rand(shape)
    vel = torch.randn(shape) * 0.01
    rows = torch.randperm(N)[:R]  # unique, unsorted
    g = torch.randn((R, width) if width else (R,))
    g[:5] = 0.0  # zero gradients: momentum still moves the row
    ref = _ref_rows(p, acc, vel, rows, g, 0.07, 1e-6, mom)
    ext.adagrad_rows_(p, acc, vel, rows, g, 0.07, 1e-6, mom, NO)
    torch.testing.assert_close(acc, ref[1], rtol=1e-7, atol=0)
    torch.testing.assert_close(p, ref[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(vel, ref[2], rtol=1e-6, atol=1e-8)
    untouched = torch.ones(N, dtype=torch.bool)
    untouched[rows] = False
    assert torch.equal(p[untouched], ref[0][untouched])
    assert torch.equal(acc[untouched], ref[1][untouched])


@pytest.mark.parametrize("mom", [0.0, 0.4])
def test_dense_kernel_matches_torch_update(ext, mom):
    torch.manual_seed(1)
    shapes = [(30, 24), (8, 24), (24,)]
    ps = [torch.randn(s) for s in shapes]
    accs = [torch.rand(s) for s in shapes]
    vels = [torch.randn(s) * 0.01 for s in shapes]
    gs = [torch.randn(s) for s in shapes]
    refs = []
    for p, a, v, g in zip(ps, accs, vels, gs, strict=True):
        p, a, v = p.clone(), a.clone(), v.clone()
        a.addcmul_(g, g)
        u = g / (a + 1e-6).sqrt_()
        if mom > 0:
            v.mul_(mom).add_(u, alpha=0.05)
            p.sub_(v)
        else:
            p.sub_(u, alpha=0.05)
        refs.append((p, a, v))
    ext.adagrad_dense_(ps, accs, vels, gs, [], 0.05, 1e-6, mom)
    for (rp, ra, rv), p, a, v in zip(refs, ps, accs, vels, strict=True):
        torch.testing.assert_close(a, ra, rtol=1e-7, atol=0)
        torch.testing.assert_close(p, rp, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(v, rv, rtol=1e-6, atol=1e-8)


def test_row_kernel_rejects_bad_arguments(ext):
    p, acc, vel = torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4, 3)
    g = torch.ones(2, 3)
    with pytest.raises(RuntimeError, match="out of range"):
        ext.adagrad_rows_(p, acc, vel, torch.tensor([0, 4]), g, 0.1, 1e-6, 0.0, NO)
    with pytest.raises(RuntimeError, match="float32"):
        ext.adagrad_rows_(p.double(), acc, vel, torch.tensor([0, 1]), g, 0.1, 1e-6, 0.0, NO)
    with pytest.raises(RuntimeError, match="one row per index"):
        ext.adagrad_rows_(p, acc, vel, torch.tensor([0]), g, 0.1, 1e-6, 0.0, NO)
    with pytest.raises(RuntimeError, match="contiguous"):
        ext.adagrad_rows_(p, acc, vel, torch.tensor([0, 1]), torch.ones(3, 2).t(), 0.1, 1e-6, 0, NO)


@pytest.mark.parametrize("mom", [0.0, 0.4])
def test_row_kernel_threads_and_shadow(ext, mom):
    """Sorted unique rows are split over the threads (here 500 rows of 100 floats: several
    chunks): the same result as one thread in any order, and the bfloat16 shadow of the
    updated rows is exactly p.to(bfloat16); other rows of the shadow are left alone."""
    torch.manual_seed(3)
    N, D = 2000, 100
    p, acc, vel = torch.randn(N, D), torch.rand(N, D), torch.randn(N, D) * 0.01
    rows = torch.randperm(N)[:500]
    g = torch.randn(500, D)
    srt, order = rows.sort()
    shadow = torch.full((N, D), 7.0, dtype=BF)
    a = [t.clone() for t in (p, acc, vel)]
    ext.adagrad_rows_(*a, srt, g[order], 0.07, 1e-6, mom, shadow)
    b = [t.clone() for t in (p, acc, vel)]
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ext.adagrad_rows_(*b, rows, g, 0.07, 1e-6, mom, NO)  # unsorted: one thread
    finally:
        torch.set_num_threads(prev)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert torch.equal(shadow[srt].view(torch.int16), a[0][srt].to(BF).view(torch.int16))
    untouched = torch.ones(N, dtype=torch.bool)
    untouched[rows] = False
    assert (shadow[untouched] == 7.0).all()


def test_row_kernel_repeated_rows_are_updated_in_turn(ext):
    p, acc, vel = torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2)
    g = torch.ones(2, 2)
    ext.adagrad_rows_(p, acc, vel, torch.tensor([1, 1]), g, 0.1, 0.0, 0.0, NO)
    assert torch.equal(acc[1], torch.full((2,), 2.0))  # both gradients accumulated
    expected = -0.1 * (1.0 + 1.0 / 2.0**0.5)
    torch.testing.assert_close(p[1], torch.full((2,), expected))


@pytest.mark.parametrize("mom", [0.0, 0.4])
def test_dense_kernel_bfloat16_gradients_and_shadows(ext, mom):
    """bfloat16 gradients are read as their float32 values; shadows receive
    p.to(bfloat16) bit for bit; tensors large enough to be split over the threads."""
    torch.manual_seed(2)
    shapes = [(300, 200), (64,)]
    ps = [torch.randn(s) for s in shapes]
    accs = [torch.rand(s) for s in shapes]
    vels = [torch.randn(s) * 0.01 for s in shapes]
    g16 = [torch.randn(s).to(BF) for s in shapes]
    a = [[t.clone() for t in ts] for ts in (ps, accs, vels)]
    ext.adagrad_dense_(*a, [g.float() for g in g16], [], 0.05, 1e-6, mom)
    b = [[t.clone() for t in ts] for ts in (ps, accs, vels)]
    shadows = [torch.zeros(shapes[0], dtype=BF), NO]
    ext.adagrad_dense_(*b, g16, shadows, 0.05, 1e-6, mom)
    for xs, ys in zip(a, b, strict=True):
        for x, y in zip(xs, ys, strict=True):
            assert torch.equal(x, y)
    assert torch.equal(shadows[0].view(torch.int16), b[0][0].to(BF).view(torch.int16))


def test_kernel_bfloat16_conversion_is_torchs(ext):
    """Round to nearest even, ties, denormals, infinities and NaN as torch converts them
    (a zero step leaves p as it is, so the shadow is the conversion of p)."""
    special = [1e-39, -1e-39, 1e-45, 3e-38, float("inf"), -float("inf"), float("nan")]
    ties = [1.00390625, 1.01171875, -1.00390625, 3.4e38]  # exact halves; near max
    p = torch.cat([torch.tensor(special + ties), torch.randn(40000)])
    acc, vel, g = torch.ones_like(p), torch.zeros_like(p), torch.zeros_like(p)
    sh = torch.zeros(p.shape, dtype=BF)
    ext.adagrad_dense_([p], [acc], [vel], [g], [sh], 0.0, 1e-6, 0.0)
    assert torch.equal(sh.view(torch.int16), p.to(BF).view(torch.int16))


@pytest.mark.parametrize("kernels", [True, False])
def test_optimizer_shadows_follow_every_update(kernels, monkeypatch):
    """keep_shadow: after row, dense and dense-many updates (kernels or torch path) the
    shadows equal the parameters in bfloat16; refresh_shadows picks up direct changes."""
    if not kernels:
        monkeypatch.setenv(fused.ENV_SWITCH, "0")
    fused._reset()
    try:
        if kernels and fused.kernels() is None:
            pytest.skip("fused kernels unavailable here")
        torch.manual_seed(5)
        W = torch.nn.Parameter(torch.randn(50, 6))
        b = torch.nn.Parameter(torch.randn(50))
        D = torch.nn.Parameter(torch.randn(6, 9))
        E = torch.nn.Parameter(torch.randn(4, 3))
        opt = AdagradM({"W": W, "b": b, "D": D, "E": E}, lr=0.1, momentum=0.3)
        sh = {n: opt.keep_shadow(n) for n in ("W", "b", "D", "E")}
        for _ in range(3):
            rows = torch.randperm(50)[:12].sort().values
            opt.tick()
            opt.step_rows("W", rows, torch.randn(12, 6))
            opt.step_rows("b", rows, torch.randn(12))
            opt.step_dense_many(["D"], [torch.randn(6, 9).to(BF)])
            E.grad = torch.randn(4, 3)
            opt.step_dense("E")
        for n, p in (("W", W), ("b", b), ("D", D), ("E", E)):
            assert torch.equal(sh[n], p.data.to(BF)), n
        W.data.mul_(2.0)
        opt.refresh_shadows()
        assert torch.equal(sh["W"], W.data.to(BF))
    finally:
        fused._reset()


def _opt_run(mom: float, use_old: bool, dtype=torch.float32):
    torch.manual_seed(7)
    W = torch.nn.Parameter(torch.randn(50, 6, dtype=dtype))
    b = torch.nn.Parameter(torch.randn(50, dtype=dtype))
    D = torch.nn.Parameter(torch.randn(6, 9, dtype=dtype))
    opt = AdagradM({"W": W, "b": b, "D": D}, lr=0.1, momentum=mom)
    for step in range(6):
        rows = torch.randperm(50)[: 10 + step].sort().values
        gw, gb = torch.randn(len(rows), 6, dtype=dtype), torch.randn(len(rows), dtype=dtype)
        opt.tick()
        opt.step_rows("W", rows, gw, old=W.data[rows] if use_old else None)
        opt.step_rows("b", rows, gb, old=b.data[rows] if use_old else None)
        opt.step_dense_many(["D"], [torch.randn(6, 9, dtype=dtype)])
    return W.data, b.data, D.data, opt.state_dict()


@pytest.mark.parametrize("mom", [0.0, 0.3])
def test_torch_row_update_with_old_rows_is_bit_exact(torch_only, mom):
    """index_copy_ of old - step (given the gathered rows) == index_add_ of -step."""
    a, b = _opt_run(mom, use_old=False), _opt_run(mom, use_old=True)
    for x, y in zip(a[:3], b[:3], strict=True):
        assert torch.equal(x, y)
    for k in a[3]:
        assert torch.equal(a[3][k], b[3][k]), k


@pytest.mark.parametrize("mom", [0.0, 0.3])
def test_optimizer_with_kernels_matches_pure_torch(ext, monkeypatch, mom):
    got = _opt_run(mom, use_old=True)
    monkeypatch.setenv(fused.ENV_SWITCH, "0")
    fused._reset()
    try:
        ref = _opt_run(mom, use_old=True)
    finally:
        fused._reset()
    for x, y in zip(got[:3], ref[:3], strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_non_float32_tensors_take_the_torch_path(ext):
    W, _, D, _ = _opt_run(0.3, use_old=True, dtype=torch.float64)
    assert W.dtype == torch.float64 and torch.isfinite(W).all() and torch.isfinite(D).all()


def test_switched_off_means_no_kernels(torch_only):
    assert fused.kernels() is None


@pytest.mark.parametrize("elu", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("scale", [0.5, 3.0, 8.0])
@pytest.mark.parametrize("shape", [(1, 2), (5, 5), (12, 37), (20, 300)])
def test_bpr_max_kernel_matches_the_loss_and_autograd(ext, elu, scale, shape):
    from seqrec.training.losses import bpr_max

    B, C = shape
    s = torch.randn(B, C, generator=torch.Generator().manual_seed(C)) * scale
    leaf = s.clone().requires_grad_()
    r = torch.nn.functional.elu(leaf, alpha=elu) if elu > 0 else leaf
    ref = bpr_max(r, bpreg=1.95)
    ref.backward()
    g, per_row = torch.empty_like(s), torch.empty(B)
    ext.bpr_max_(s, g, per_row, 1.95, elu)
    # the kernel's exp is a polynomial (max relative error ~1e-7) and its sums run in a
    # different order: agreement to float rounding, relative to the largest gradient
    gmax = max(leaf.grad.abs().max().item(), 1e-3)
    torch.testing.assert_close(per_row.mean(), ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g / B, leaf.grad, rtol=1e-4, atol=3e-6 * gmax)
    in_place = s.clone()
    ext.bpr_max_(in_place, in_place, per_row, 1.95, elu)  # gradient written over the scores
    assert torch.equal(in_place, g)


def test_bpr_max_kernel_extreme_scores(ext):
    """Scores far apart (exp over/underflow ranges) stay finite and match the torch form."""
    from seqrec.training.gru4rec_fast import bpr_max_and_grad

    s = torch.tensor([[60.0, -80.0, 0.0, 95.0], [-100.0, 3.0, -3.0, 1e-4], [0.0, 0.0, 0.0, 0.0]])
    g, per_row = torch.empty_like(s), torch.empty(3)
    ext.bpr_max_(s, g, per_row, 1.0, 0.5)
    loss, g_ref = bpr_max_and_grad(s, 1.0, 0.5)
    assert torch.isfinite(g).all() and torch.isfinite(per_row).all()
    torch.testing.assert_close(per_row.mean(), loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)


def test_bpr_max_kernel_rejects_bad_shapes(ext):
    with pytest.raises(RuntimeError, match="C >= 2"):
        ext.bpr_max_(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), 1.0, 0.0)
    with pytest.raises(RuntimeError, match=r"\(B,\)"):
        ext.bpr_max_(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3), 1.0, 0.0)


@pytest.mark.parametrize("scale", [0.5, 3.0, 20.0])
@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (5, 5), (12, 37), (128, 2176)])
@pytest.mark.parametrize("threads", [1, 2])
def test_cross_entropy_kernel_matches_the_torch_form_and_autograd(ext, scale, shape, threads):
    from seqrec.training.gru4rec_fast import cross_entropy_and_grad

    B, C = shape
    s = torch.randn(B, C, generator=torch.Generator().manual_seed(C)) * scale
    leaf = s.clone().requires_grad_()
    ref = torch.nn.functional.cross_entropy(leaf, torch.arange(B))
    ref.backward()
    loss_t, g_t = cross_entropy_and_grad(s)
    g, per_row = s.clone(), torch.empty(B)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ext.cross_entropy_(g, per_row)
    finally:
        torch.set_num_threads(previous)
    # a polynomial exp (<= 2 ulp) and another summation order: float rounding
    torch.testing.assert_close(per_row.mean(), ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(per_row.mean(), loss_t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g / B, leaf.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(g, g_t, rtol=1e-4, atol=1e-6)


def test_cross_entropy_kernel_results_do_not_depend_on_threads(ext):
    s = torch.randn(256, 3000, generator=torch.Generator().manual_seed(1)) * 4
    results = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            g, per_row = s.clone(), torch.empty(256)
            ext.cross_entropy_(g, per_row)
            results.append((g, per_row))
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_cross_entropy_kernel_extreme_scores(ext):
    """Far-apart logits (exp underflow, a dominant target, -inf columns) stay finite."""
    s = torch.tensor(
        [
            [95.0, -80.0, 0.0, 60.0],
            [-100.0, 300.0, -3.0, 1e-4],
            [0.0, 0.0, 0.0, 0.0],
            [-1e4, 2.0, -float("inf"), 1e4],
        ]
    )
    leaf = s.clone().requires_grad_()
    ref = torch.nn.functional.cross_entropy(leaf, torch.arange(4), reduction="none")
    ref.sum().backward()
    g, per_row = s.clone(), torch.empty(4)
    ext.cross_entropy_(g, per_row)
    assert torch.isfinite(g).all() and torch.isfinite(per_row).all()
    torch.testing.assert_close(per_row, ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, leaf.grad, rtol=1e-4, atol=1e-6)


def test_cross_entropy_kernel_rejects_bad_shapes(ext):
    with pytest.raises(RuntimeError, match="B <= C"):
        ext.cross_entropy_(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(RuntimeError, match=r"\(B,\)"):
        ext.cross_entropy_(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(RuntimeError, match="float32"):
        ext.cross_entropy_(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64])
@pytest.mark.parametrize("shape", [(5000,), (5000, 1), (5000, 7), (5000, 100), (300, 512)])
@pytest.mark.parametrize("threads", [1, 2])
def test_gather_rows_is_index_select(ext, dtype, shape, threads):
    gen = torch.Generator().manual_seed(shape[-1])
    table = (torch.randn(*shape, generator=gen) * 1000).to(dtype)
    for rows in (
        torch.randint(0, shape[0], (4000,), generator=gen),  # any order, repeats
        torch.randperm(shape[0], generator=gen)[:250].sort().values,
        torch.empty(0, dtype=torch.long),
    ):
        out = torch.empty((rows.shape[0], *shape[1:]), dtype=dtype)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            ext.gather_rows_(out, table, rows)
        finally:
            torch.set_num_threads(previous)
        assert torch.equal(out, table.index_select(0, rows))


def test_gather_rows_rejects_bad_arguments(ext):
    table = torch.zeros(10, 3)
    with pytest.raises(RuntimeError, match="out of range"):
        ext.gather_rows_(torch.empty(1, 3), table, torch.tensor([10]))
    with pytest.raises(RuntimeError, match="out of range"):
        ext.gather_rows_(torch.empty(1, 3), table, torch.tensor([-1]))
    with pytest.raises(RuntimeError, match="dtype"):
        ext.gather_rows_(torch.empty(1, 3, dtype=torch.float64), table, torch.tensor([1]))
    with pytest.raises(RuntimeError, match=r"\(R, D\)"):
        ext.gather_rows_(torch.empty(2, 3), table, torch.tensor([1]))
    with pytest.raises(RuntimeError, match="int64"):
        ext.gather_rows_(torch.empty(1, 3), table, torch.tensor([1], dtype=torch.int32))


def test_build_without_openmp_when_the_openmp_build_fails(monkeypatch):
    calls = []

    def fake_load(openmp: bool = True):
        calls.append(openmp)
        if openmp:
            raise RuntimeError("unsupported option '-fopenmp'")
        return "single-threaded module"

    monkeypatch.delenv(fused.ENV_SWITCH, raising=False)
    monkeypatch.setattr(fused, "_load", fake_load)
    fused._reset()
    try:
        assert fused.kernels() == "single-threaded module"
        assert calls == [True, False]
        assert fused._ext_name(True) != fused._ext_name(False)  # separate caches
    finally:
        fused._reset()


@pytest.mark.parametrize("keep", [0.5, 0.8, 0.95])
def test_dropout_noise_rate_and_values(ext, keep):
    n = 1_000_000
    noise = torch.empty(n)
    ext.dropout_noise_(noise, 12345, keep)
    kept = noise != 0
    assert torch.equal(noise[kept], torch.full((int(kept.sum()),), 1.0 / torch.tensor(keep)))
    sigma = (keep * (1 - keep) / n) ** 0.5
    assert abs(kept.float().mean().item() - keep) < 5 * sigma
    # neighbours are independent: P(both kept) = keep^2
    both = (kept[1:] & kept[:-1]).float().mean().item()
    assert abs(both - keep * keep) < 5 * (keep * keep * (1 - keep * keep) / n) ** 0.5


def test_dropout_noise_is_reproducible_and_thread_independent(ext):
    a, b, c = torch.empty(100_000), torch.empty(100_000), torch.empty(100_000)
    ext.dropout_noise_(a, 7, 0.7)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ext.dropout_noise_(b, 7, 0.7)
    finally:
        torch.set_num_threads(prev)
    ext.dropout_noise_(c, 8, 0.7)
    assert torch.equal(a, b)
    same = (a == c).float().mean().item()  # another seed: agreement by chance only
    assert abs(same - (0.7**2 + 0.3**2)) < 0.01
    with pytest.raises(RuntimeError, match="keep"):
        ext.dropout_noise_(a, 1, 0.0)


def _fake_build(monkeypatch, tmp_path, calls):
    """Points the build at ``tmp_path`` and replaces the compiler with a recorder that,
    like torch's ``cpp_extension.load``, appends its link flags to the lists it is given
    and would wait forever on a leftover ``lock`` file."""
    import os

    import torch.utils.cpp_extension as cpp

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))

    def fake_load(name, sources, build_directory, extra_cflags, extra_ldflags, **kwargs):
        assert not os.path.exists(os.path.join(build_directory, "lock")), "would hang"
        assert all(os.path.isfile(s) for s in sources)
        extra_ldflags += ["-L/torch/lib", "-lc10", "-ltorch"]  # what torch does, in place
        extra_cflags.append("-DTORCH_EXTENSION_NAME=" + name)
        calls.append(name)
        return f"module {name}"

    monkeypatch.setattr(cpp, "load", fake_load)
    name = fused._ext_name(True)
    return name, tmp_path / name


def test_build_removes_the_lock_file_an_interrupted_build_left(monkeypatch, tmp_path):
    calls: list[str] = []
    name, directory = _fake_build(monkeypatch, tmp_path, calls)
    directory.mkdir()
    (directory / "lock").write_text("")  # a build killed mid-way leaves this behind
    assert fused._load(True) == f"module {name}"
    assert calls == [name]
    assert (directory / "seqrec-ready").read_text().strip() == name
    assert not (directory / "lock").exists()


def test_build_waits_for_another_process_building(monkeypatch, tmp_path):
    import fcntl
    import os
    import threading
    import time

    calls: list[str] = []
    name, directory = _fake_build(monkeypatch, tmp_path, calls)
    directory.mkdir()
    holder = os.open(directory / "seqrec-build.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another builder (a separate open file: it conflicts)
    (directory / "lock").write_text("")  # ... whose torch lock is live, not stale
    result = []
    t = threading.Thread(target=lambda: result.append(fused._load(True)))
    t.start()
    time.sleep(0.5)
    assert t.is_alive() and calls == [] and (directory / "lock").exists()
    (directory / "lock").unlink()  # the other build finishes (without a usable library)
    os.close(holder)
    t.join(timeout=10)
    assert not t.is_alive()
    assert result == [f"module {name}"] and calls == [name]


def test_a_build_does_not_change_the_cache_name(monkeypatch, tmp_path):
    """Regression (issue 15): torch appends its link flags to the list it is given; when
    that was a module-level list, the cache name changed after the first build and every
    later load in the process compiled the kernels again (20+ builds in one test run)."""
    calls: list[str] = []
    name, directory = _fake_build(monkeypatch, tmp_path, calls)
    flags = (fused._cflags(True), fused._ldflags(True))
    assert fused._load(True) == f"module {name}"
    assert (fused._cflags(True), fused._ldflags(True)) == flags
    assert fused._ext_name(True) == name
    (directory / f"{name}.so").write_text("")  # the fake build's library
    monkeypatch.setattr(fused, "_import", lambda n, path: f"imported {n}")
    assert fused._load(True) == f"imported {name}"  # the second load finds the build
    assert calls == [name]


def test_the_real_kernels_are_compiled_at_most_once_per_process():
    """Loads after resets (what the tests switching paths do) and after the fake-compiler
    tests find the library built earlier: at most one real build in this test process."""
    if fused._switched_off() or fused.kernels() is None:
        pytest.skip("fused kernels unavailable here (switched off or no compiler)")
    name = fused._ext_name(True)
    for _ in range(2):
        fused._reset()
        assert fused.kernels() is not None
    assert fused._ext_name(True) == name
    here = fused._build_dir(name)
    assert fused._builds.count(here) <= 1, fused._builds
    root = os.path.dirname(here)
    assert sum(os.path.dirname(d) == root for d in fused._builds) <= 1, fused._builds


def test_build_reports_a_missing_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-seqrec")
    with pytest.raises(fused.KernelBuildError, match="no C\\+\\+ compiler"):
        fused.build()


def test_build_finds_or_makes_the_library(ext, monkeypatch):
    info = fused.build()
    assert os.path.isfile(info.library) and info.seconds >= 0
    assert fused.build().compiled is False  # in the cache now
    assert fused.kernels() is not None
    monkeypatch.setenv(fused.ENV_SWITCH, "0")  # build() builds anyway, the switch holds
    fused._reset()
    try:
        assert fused.build().compiled is False and fused.kernels() is None
    finally:
        fused._reset()


# -- dropout noise: the torch twin draws the kernel's noise bit for bit


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**61 + 77, 2**62 - 1])
@pytest.mark.parametrize("shape", [(1,), (7,), (64, 33), (3, 50, 700)])
@pytest.mark.parametrize("keep", [0.05, 0.5, 0.7, 0.95, 1.0])
def test_torch_dropout_noise_is_the_kernels_bit_for_bit(ext, seed, shape, keep):
    a = torch.empty(shape)
    ext.dropout_noise_(a, seed, keep)
    b = torch.full(shape, float("nan"))
    fused._dropout_noise_torch(b, seed, keep)
    assert torch.equal(a.view(torch.int32), b.view(torch.int32))


def test_torch_dropout_noise_without_the_kernels(torch_only):
    """Same rate and values as the kernel's test above, computed with torch ops only;
    non-contiguous tensors are filled in row-major order."""
    keep, n = 0.8, 200_000
    noise = fused.dropout_noise(torch.empty(n), 99, keep)
    kept = noise != 0
    assert torch.equal(noise[kept], torch.full((int(kept.sum()),), 1.0 / torch.tensor(keep)))
    assert abs(kept.float().mean().item() - keep) < 5 * (keep * (1 - keep) / n) ** 0.5
    t = fused.dropout_noise(torch.empty(30, 20).t(), 5, keep)
    assert torch.equal(t, fused.dropout_noise(torch.empty(20, 30), 5, keep))
    with pytest.raises(ValueError, match="keep"):
        fused.dropout_noise(torch.empty(3), 1, 0.0)


def test_train_dropout_is_the_same_with_and_without_kernels(ext, monkeypatch):
    from seqrec.training.dropout import train_dropout

    x = torch.randn(64, 32)
    torch.manual_seed(1)
    out, noise = train_dropout(x, 0.3)
    after = torch.randint(0, 2**62, (), dtype=torch.int64)
    monkeypatch.setenv(fused.ENV_SWITCH, "0")
    fused._reset()
    try:
        torch.manual_seed(1)
        out_t, noise_t = train_dropout(x, 0.3)
        assert torch.equal(noise, noise_t) and torch.equal(out, out_t)
        assert torch.equal(after, torch.randint(0, 2**62, (), dtype=torch.int64))
    finally:
        fused._reset()


def test_same_seed_trains_the_same_model_with_or_without_kernels(ext, monkeypatch):
    """A short GRU4Rec fit with dropout and momentum: kernels against SEQREC_FUSED=0.
    The random streams are identical; only rounding differs (sqrt, the losses' exp)."""
    from seqrec.data.sessions import SessionLog
    from seqrec.models.gru4rec import GRU4Rec

    gen = torch.Generator().manual_seed(0)
    sessions = [
        torch.randint(0, 40, (int(n),), generator=gen).tolist()
        for n in torch.randint(2, 9, (60,), generator=gen)
    ]
    log = SessionLog.from_sequences(sessions)
    cfg = {
        "layers": [16],
        "batch_size": 8,
        "n_sample": 12,
        "n_epochs": 2,
        "seed": 4,
        "dropout_p_embed": 0.3,
        "dropout_p_hidden": 0.4,
        "momentum": 0.2,
        "learning_rate": 0.05,
        "loss": "bpr-max",
        "elu_param": 0.5,
    }
    a = GRU4Rec(cfg).fit(log)
    monkeypatch.setenv(fused.ENV_SWITCH, "0")
    fused._reset()
    try:
        b = GRU4Rec(cfg).fit(log)
    finally:
        fused._reset()
    assert a.meta_["kernels"] == fused.FUSED_CPU and b.meta_["kernels"] == fused.TORCH_FALLBACK
    for (name, wa), wb in zip(
        a.net_.state_dict().items(), b.net_.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(wa, wb, rtol=1e-5, atol=1e-6, msg=name)


def test_compute_path_names_the_implementation(torch_only):
    assert fused.compute_path("cpu") == fused.TORCH_FALLBACK
    assert fused.compute_path(torch.device("cuda", 0)) == fused.CUDA


def test_the_sources_are_shipped_as_package_data():
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(fused.__file__).resolve().parents[2]
    cfg = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = cfg["tool"]["setuptools"]["package-data"]["seqrec"]
    for src in (root / "seqrec" / "csrc").iterdir():
        rel = src.relative_to(root / "seqrec").as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel
    assert all(p.is_file() for p in fused.SOURCES)


def test_the_ninja_package_is_put_on_path_for_the_build(monkeypatch):
    """torch runs ``ninja`` from PATH; the declared ``ninja`` package's binary is not on
    PATH when Python runs by its full path: the build adds it, and restores PATH."""
    ninja = pytest.importorskip("ninja")
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda cmd, *a, **k: None if cmd == "ninja" else real_which(cmd)
    )
    before = os.environ.get("PATH")
    with fused._ninja_on_path():
        assert os.environ["PATH"].split(os.pathsep)[0] == str(ninja.BIN_DIR)
        assert os.path.isfile(os.path.join(str(ninja.BIN_DIR), "ninja"))
    assert os.environ.get("PATH") == before
