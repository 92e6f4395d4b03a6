"""Prototype C++ kernels (torch.utils.cpp_extension.load_inline, JIT-compiled and cached
under ~/.cache/torch_extensions) for the Adagrad(+momentum) updates of GRU4Rec.

* ``adagrad_rows_``: updates rows ``rows`` (unique) of ``p`` (N, D) / (N,) and its
  accumulator (and velocity) in place, in one pass over the touched rows, reading the
  summed row gradients ``g`` (R, D) / (R,). No gather/scatter copies.
* ``adagrad_dense_``: the same over whole contiguous buffers.

Rounding is chosen to reproduce seqrec.optim.AdagradM bit for bit on this torch build:
fma(g, g, acc) (like addcmul_), g / sqrt(acc + eps), and the parameter step
as a fused multiply-add for 2-D tables and the dense buffers (like add_(alpha)) but as
mul-then-add for 1-D tables (like the 1-D index_add_ loop). Compiled with
-ffp-contract=off so the compiler adds no FMA of its own.
"""

from __future__ import annotations

import torch
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>

// Row kernel: mode-specific branch-free inner loops over D (vectorised by the compiler;
// -fno-math-errno lets sqrt vectorise, -ffp-contract=off keeps the rounding explicit).
static inline void row_plain(float* __restrict p, float* __restrict a, const float* __restrict g,
                             int64_t D, float lr, float eps, bool fused) {
  if (fused) {
    for (int64_t j = 0; j < D; ++j) {
      float acc = std::fma(g[j], g[j], a[j]);  // addcmul_ is fused
      a[j] = acc;
      p[j] = std::fma(g[j] / std::sqrt(acc + eps), -lr, p[j]);  // add_(alpha) is fused
    }
  } else {
    for (int64_t j = 0; j < D; ++j) {
      float acc = std::fma(g[j], g[j], a[j]);
      a[j] = acc;
      p[j] = p[j] + (g[j] / std::sqrt(acc + eps)) * (-lr);  // 1-D index_add_: mul, add
    }
  }
}

static inline void row_mom(float* __restrict p, float* __restrict a, float* __restrict v,
                           const float* __restrict g, int64_t D, float lr, float eps, float mom) {
  for (int64_t j = 0; j < D; ++j) {
    float acc = std::fma(g[j], g[j], a[j]);
    a[j] = acc;
    float vel = std::fma(g[j] / std::sqrt(acc + eps), lr, v[j] * mom);
    v[j] = vel;
    p[j] = p[j] - vel;
  }
}

void adagrad_rows_(torch::Tensor p, torch::Tensor acc, torch::Tensor vel, torch::Tensor rows,
                   torch::Tensor g, double lr, double eps, double mom) {
  TORCH_CHECK(p.is_contiguous() && acc.is_contiguous() && g.is_contiguous() &&
              rows.is_contiguous());
  TORCH_CHECK(p.scalar_type() == at::kFloat && rows.scalar_type() == at::kLong);
  const bool use_v = mom > 0;
  const int64_t R = rows.size(0);
  const bool two_d = p.dim() > 1;
  const int64_t D = two_d ? p.size(1) : 1;
  float* P = p.data_ptr<float>();
  float* A = acc.data_ptr<float>();
  float* V = use_v ? vel.data_ptr<float>() : nullptr;
  const float* G = g.data_ptr<float>();
  const int64_t* idx = rows.data_ptr<int64_t>();
  const float flr = (float)lr, feps = (float)eps, fmom = (float)mom;
  at::parallel_for(0, R, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t r = idx[i];
      if (use_v)
        row_mom(P + r * D, A + r * D, V + r * D, G + i * D, D, flr, feps, fmom);
      else
        row_plain(P + r * D, A + r * D, G + i * D, D, flr, feps, two_d);
    }
  });
}

void adagrad_dense_(torch::Tensor p, torch::Tensor acc, torch::Tensor vel, torch::Tensor g,
                    double lr, double eps, double mom) {
  TORCH_CHECK(p.is_contiguous() && acc.is_contiguous() && g.is_contiguous());
  const bool use_v = mom > 0;
  const int64_t N = p.numel();
  float* P = p.data_ptr<float>();
  float* A = acc.data_ptr<float>();
  float* V = use_v ? vel.data_ptr<float>() : nullptr;
  const float* G = g.data_ptr<float>();
  const float flr = (float)lr, feps = (float)eps, fmom = (float)mom;
  at::parallel_for(0, N, 16384, [&](int64_t b, int64_t e) {
    if (use_v)
      row_mom(P + b, A + b, V + b, G + b, e - b, flr, feps, fmom);
    else
      row_plain(P + b, A + b, G + b, e - b, flr, feps, true);
  });
}
"""

_mod = None


def ext():
    global _mod
    if _mod is None:
        _mod = load_inline(
            name="seqrec_proto_fused_adagrad",
            cpp_sources=CPP,
            functions=["adagrad_rows_", "adagrad_dense_"],
            extra_cflags=["-O3", "-ffp-contract=off", "-fno-math-errno", "-march=native"],
            verbose=False,
        )
    return _mod


if __name__ == "__main__":
    import time

    t = time.perf_counter()
    m = ext()
    print(f"compiled/loaded in {time.perf_counter() - t:.1f}s")
    # against the torch formulation in seqrec.optim.AdagradM: acc and vel (without momentum)
    # match bit for bit; p (and vel with momentum) differ by torch.sqrt's (MKL VML)
    # rounding only -- against a correctly rounded sqrt they are bit-exact (PROFILE.md 5.1)
    torch.manual_seed(0)
    for D, mom in [(100, 0.0), (100, 0.4), (1, 0.0), (1, 0.4), (512, 0.0)]:
        N, R = 5000, 1777
        shape = (N, D) if D > 1 else (N,)
        p = torch.randn(shape)
        acc = torch.rand(shape)
        vel = torch.randn(shape) * 0.01
        rows = torch.randperm(N)[:R].sort().values
        g = torch.randn((R, D) if D > 1 else (R,))
        ref_p, ref_a, ref_v = p.clone(), acc.clone(), vel.clone()
        a = ref_a.index_select(0, rows).addcmul_(g, g)
        ref_a.index_copy_(0, rows, a)
        u = g / (a + 1e-6).sqrt_()
        if mom > 0:
            v = ref_v.index_select(0, rows).mul_(mom).add_(u, alpha=0.07)
            ref_v.index_copy_(0, rows, v)
            ref_p.index_add_(0, rows, v, alpha=-1.0)
        else:
            ref_p.index_add_(0, rows, u, alpha=-0.07)
        m.adagrad_rows_(p, acc, vel, rows, g, 0.07, 1e-6, mom)
        print(
            f"rows D={D} mom={mom}: p {torch.equal(p, ref_p)} acc {torch.equal(acc, ref_a)} "
            f"vel {torch.equal(vel, ref_v)} max|dp| {(p - ref_p).abs().max().item():.3g}"
        )
    for mom in (0.0, 0.4):
        p = torch.randn(60300)
        acc = torch.rand(60300)
        vel = torch.randn(60300) * 0.01
        g = torch.randn(60300)
        rp, ra, rv = p.clone(), acc.clone(), vel.clone()
        ra.addcmul_(g, g)
        u = g / (ra + 1e-6).sqrt_()
        if mom > 0:
            rv.mul_(mom).add_(u, alpha=0.07)
            rp.sub_(rv)
        else:
            rp.sub_(u, alpha=0.07)
        m.adagrad_dense_(p, acc, vel, g, 0.07, 1e-6, mom)
        print(
            f"dense mom={mom}: p {torch.equal(p, rp)} acc {torch.equal(acc, ra)} "
            f"vel {torch.equal(vel, rv)}"
        )
