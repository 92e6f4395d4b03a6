# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md figures)
"""Micro-benchmarks of single building blocks (interleaved A/B, medians)."""

import statistics
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)


def bench(fns, reps=15, inner=50):
    res = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            res[k].append((time.perf_counter() - t) / inner * 1e6)
    for k, v in res.items():
        print(f"  {k:<40} {statistics.median(v):8.1f} us (min {min(v):.1f})")


g = torch.Generator().manual_seed(0)
N, H = 60000, 100
for B in (32, 128):
    C = B + 2048
    print(f"--- B={B} C={C}")
    W = torch.randn(N, H)
    acc = torch.rand(N, H)
    Bv = torch.randn(N)
    accb = torch.rand(N)
    cand = torch.randint(0, N, (C,), generator=g)
    inp = torch.randint(0, N, (B,), generator=g)
    allc = torch.cat([inp, cand])
    rows, inv = torch.unique(allc, return_inverse=True)
    R = rows.numel()
    G = torch.randn(R, H)
    gb = torch.randn(R)
    pos_map = torch.empty(N, dtype=torch.long)
    ar = torch.arange(allc.numel())

    def uniq_sort():
        torch.unique(allc, return_inverse=True)

    def uniq_map():
        pos_map.scatter_reduce_(0, allc, ar, reduce="amin", include_self=False)
        first = pos_map.index_select(0, allc)
        is_first = first == ar
        r = allc[is_first]
        rank = is_first.cumsum(0).sub_(1)
        iv = rank.index_select(0, first)
        return r, iv

    def uniq_map2():  # index_put_ last-wins (sequential on CPU)
        pos_map.index_put_((allc,), ar)
        first = pos_map.index_select(0, allc)
        is_first = first == ar
        r = allc[is_first]
        rank = is_first.cumsum(0).sub_(1)
        return r, rank.index_select(0, first)

    bench(
        {
            "torch.unique(return_inverse)": uniq_sort,
            "scatter_reduce amin map": uniq_map,
            "index_put map": uniq_map2,
        }
    )
    wy = W.index_select(0, rows)

    def gather_idxsel():
        W.index_select(0, rows)

    def gather_adv():
        W[rows]

    def gather_wc():
        wy.index_select(0, inv[B:])

    def gather_direct():
        W.index_select(0, cand)

    bench(
        {
            "W.index_select(rows)": gather_idxsel,
            "W[rows]": gather_adv,
            "wy.index_select(inv) (C rows)": gather_wc,
            "W.index_select(cand)": gather_direct,
        }
    )
    upd = torch.randn(R, H)

    def p_index_add():
        W.index_add_(0, rows, upd, alpha=-0.07)

    def p_index_copy():
        W.index_copy_(0, rows, upd)

    def p_index_put():
        W.index_put_((rows,), upd)

    def p_index_put_acc():
        W.index_put_((rows,), upd, accumulate=True)

    bench(
        {
            "index_add_": p_index_add,
            "index_copy_": p_index_copy,
            "index_put_": p_index_put,
            "index_put_ accumulate": p_index_put_acc,
        }
    )

    def adagrad_cur():
        a = acc.index_select(0, rows).addcmul_(G, G)
        acc.index_copy_(0, rows, a)
        u = G / (a + 1e-6).sqrt_()
        W.index_add_(0, rows, u, alpha=-0.07)
        a = accb.index_select(0, rows).addcmul_(gb, gb)
        accb.index_copy_(0, rows, a)
        u = gb / (a + 1e-6).sqrt_()
        Bv.index_add_(0, rows, u, alpha=-0.07)

    def adagrad_copy():
        a = acc.index_select(0, rows).addcmul_(G, G)
        acc.index_copy_(0, rows, a)
        u = a.add_(1e-6).sqrt_()
        torch.div(G, u, out=u)
        W.index_copy_(0, rows, wy.sub(u, alpha=0.07))
        a = accb.index_select(0, rows).addcmul_(gb, gb)
        accb.index_copy_(0, rows, a)
        u = a.add_(1e-6).sqrt_()
        torch.div(gb, u, out=u)
        Bv.index_copy_(0, rows, Bv.index_select(0, rows).sub_(u, alpha=0.07))

    bench(
        {"adagrad rows (current)": adagrad_cur, "adagrad rows (index_copy, inplace)": adagrad_copy}
    )
    out = torch.randn(B, H)
    wc = torch.randn(C, H)
    bc = torch.randn(C)
    lq = torch.randn(C)
    S = torch.addmm(bc, out, wc.t())
    dS = torch.randn(B, C)

    def mm_fwd():
        torch.addmm(bc, out, wc.t())

    def mm_dout():
        dS @ wc

    def mm_dw():
        dS.t() @ out

    def mm_dw2():
        torch.mm(out.t(), dS)

    bench(
        {"addmm scores": mm_fwd, "dS @ w_c": mm_dout, "dS.t() @ out": mm_dw, "out.t() @ dS": mm_dw2}
    )
    Sg = S.clone().requires_grad_()

    def ce_cur():
        logits = Sg - 1.0 * lq[None, :]
        l = (torch.logsumexp(logits, 1) - logits.diagonal()).mean()
        l.backward()
        Sg.grad = None

    tgt = torch.arange(B)

    def ce_f():
        logits = Sg - 1.0 * lq[None, :]
        l = torch.nn.functional.cross_entropy(logits, tgt)
        l.backward()
        Sg.grad = None

    def ce_manual():
        logits = S - lq
        ls = torch.log_softmax(logits, 1)
        l = -ls.diagonal().mean()
        d = ls.exp_()
        d.diagonal().sub_(1.0)
        return l, d

    def softmax_only():
        torch.softmax(S, 1)

    def exp_only():
        torch.exp(S)

    bench(
        {
            "CE current (autograd)": ce_cur,
            "F.cross_entropy (autograd)": ce_f,
            "CE manual log_softmax+grad": ce_manual,
            "softmax only": softmax_only,
            "exp only": exp_only,
        }
    )
