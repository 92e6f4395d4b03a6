// seqrec's CPU training kernels: fused Adagrad(+momentum) row and dense updates, BPR-max
// and softmax cross-entropy in closed form, row gathers with prefetching, counter-based
// dropout noise. Built at run time by seqrec/fused.py (torch.utils.cpp_extension.load)
// into torch's extension cache, once per machine (`seqrec build-kernels`); every function
// has a torch formulation the tests compare it with. Design notes and measurements:
// benchmarks/PROFILE.md ("Fused CPU kernels").

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// elements per parallel chunk: below ~2 chunks of this the kernels run on one thread
constexpr int64_t kGrain = 16384;

// bfloat16 <-> float32 as torch's CPU conversion does it: round to nearest even, NaN to
// 0xFFFF, denormals kept
inline uint16_t to_bf16(float f) {
  const uint32_t u = __builtin_bit_cast(uint32_t, f);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7FFFFFFFu) > 0x7F800000u ? uint16_t{0xFFFF} : static_cast<uint16_t>(rounded);
}
inline float from_bf16(uint16_t h) { return __builtin_bit_cast(float, uint32_t{h} << 16); }
inline float load(const float* g, int64_t j) { return g[j]; }
inline float load(const uint16_t* g, int64_t j) { return from_bf16(g[j]); }

// The three parameter updates. G: float (gradient) or uint16_t (bfloat16 gradient); SH:
// whether sh (a bfloat16 copy of p) receives the new values, in the same pass.
// acc = fma(g, g, acc); p = fma(g / sqrt(acc + eps), -lr, p)
template <bool SH, typename G>
void adagrad_fused_step(float* __restrict p, float* __restrict a, const G* __restrict g,
                        uint16_t* __restrict sh, int64_t n, float lr, float eps) {
  for (int64_t j = 0; j < n; ++j) {
    const float gj = load(g, j);
    const float acc = std::fma(gj, gj, a[j]);
    a[j] = acc;
    const float pj = std::fma(gj / std::sqrt(acc + eps), -lr, p[j]);
    p[j] = pj;
    if constexpr (SH) sh[j] = to_bf16(pj);
  }
}

// as above, but the parameter step is rounded twice: p = p + (u * -lr)
template <bool SH, typename G>
void adagrad_mul_add_step(float* __restrict p, float* __restrict a, const G* __restrict g,
                          uint16_t* __restrict sh, int64_t n, float lr, float eps) {
  for (int64_t j = 0; j < n; ++j) {
    const float gj = load(g, j);
    const float acc = std::fma(gj, gj, a[j]);
    a[j] = acc;
    const float u = gj / std::sqrt(acc + eps);
    const float pj = p[j] + u * (-lr);
    p[j] = pj;
    if constexpr (SH) sh[j] = to_bf16(pj);
  }
}

// heavy-ball momentum: v = fma(u, lr, v * mom); p = p - v
template <bool SH, typename G>
void adagrad_momentum_step(float* __restrict p, float* __restrict a, float* __restrict v,
                           const G* __restrict g, uint16_t* __restrict sh, int64_t n, float lr,
                           float eps, float mom) {
  for (int64_t j = 0; j < n; ++j) {
    const float gj = load(g, j);
    const float acc = std::fma(gj, gj, a[j]);
    a[j] = acc;
    const float vel = std::fma(gj / std::sqrt(acc + eps), lr, v[j] * mom);
    v[j] = vel;
    const float pj = p[j] - vel;
    p[j] = pj;
    if constexpr (SH) sh[j] = to_bf16(pj);
  }
}

// dispatch on the shadow's presence: kind 0 fused, 1 mul-add, 2 momentum
template <typename G>
void adagrad_step(int kind, float* p, float* a, float* v, const G* g, uint16_t* sh, int64_t n,
                  float lr, float eps, float mom) {
  if (sh != nullptr) {
    if (kind == 2) adagrad_momentum_step<true>(p, a, v, g, sh, n, lr, eps, mom);
    else if (kind == 1) adagrad_mul_add_step<true>(p, a, g, sh, n, lr, eps);
    else adagrad_fused_step<true>(p, a, g, sh, n, lr, eps);
  } else {
    if (kind == 2) adagrad_momentum_step<false>(p, a, v, g, sh, n, lr, eps, mom);
    else if (kind == 1) adagrad_mul_add_step<false>(p, a, g, sh, n, lr, eps);
    else adagrad_fused_step<false>(p, a, g, sh, n, lr, eps);
  }
}

// exp(x) for the BPR-max kernel: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, a
// degree-7 Taylor polynomial, 2^n from the exponent bits; x clamped to [-87, 88] (the
// results there, ~1e-38 and ~1.7e38, act as 0 and as huge in the sums they enter).
// Max relative error ~1e-7 (2 ulp); branch-free so that loops over it vectorise.
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round
  float r = x - n * 0.693359375f;  // ln2 split in two: the first product is exact
  r = r - n * -2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * __builtin_bit_cast(float, bits);
}

void elu_row(const float* __restrict s, float* __restrict r, int64_t n, float alpha) {
  for (int64_t j = 0; j < n; ++j) {
    const float neg = alpha * (exp_approx(s[j]) - 1.0f);
    r[j] = s[j] > 0.0f ? s[j] : neg;
  }
}

float max_row(const float* __restrict x, int64_t n) {
  float acc[16];
  for (int k = 0; k < 16; ++k) acc[k] = -INFINITY;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    for (int k = 0; k < 16; ++k) acc[k] = std::max(acc[k], x[j + k]);
  float m = -INFINITY;
  for (int k = 0; k < 16; ++k) m = std::max(m, acc[k]);
  for (; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

// e_j = exp(r_j - m), sig_j = sigmoid(ri - r_j)
void exp_sig_row(const float* __restrict r, float* __restrict e, float* __restrict sig,
                 int64_t n, float m, float ri) {
  for (int64_t j = 0; j < n; ++j) {
    e[j] = exp_approx(r[j] - m);
    sig[j] = 1.0f / (1.0f + exp_approx(r[j] - ri));
  }
}

// out = {sum e, sum e sig, sum e r^2, sum e sig^2}, 16 partial sums per quantity
void sums_row(const float* __restrict e, const float* __restrict sig, const float* __restrict r,
              int64_t n, double* out) {
  float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    for (int k = 0; k < 16; ++k) {
      const float ej = e[j + k], sj = sig[j + k], rj = r[j + k];
      const float es = ej * sj;
      a0[k] += ej;
      a1[k] += es;
      a2[k] += ej * (rj * rj);
      a3[k] += es * sj;
    }
  }
  double t0 = 0, t1 = 0, t2 = 0, t3 = 0;
  for (int k = 0; k < 16; ++k) {
    t0 += a0[k];
    t1 += a1[k];
    t2 += a2[k];
    t3 += a3[k];
  }
  for (; j < n; ++j) {
    const float es = e[j] * sig[j];
    t0 += e[j];
    t1 += es;
    t2 += e[j] * (r[j] * r[j]);
    t3 += es * sig[j];
  }
  out[0] = t0;
  out[1] = t1;
  out[2] = t2;
  out[3] = t3;
}

// g_j = s_j (bpreg r_j^2 + 2 bpreg r_j - w sig_j^2 + c0), s_j = e_j * inv_e; times the ELU
// derivative taken from the result (1 if r > 0 else r + alpha) when alpha > 0
void grad_row(const float* __restrict r, const float* __restrict e, const float* __restrict sig,
              float* __restrict g, int64_t n, float inv_e, float bpreg, float w, float c0,
              float alpha) {
  for (int64_t j = 0; j < n; ++j) {
    const float rj = r[j];
    const float inner = bpreg * (rj * rj) + (2.0f * bpreg) * rj - w * (sig[j] * sig[j]) + c0;
    float gj = (e[j] * inv_e) * inner;
    if (alpha > 0.0f) gj = gj * (rj > 0.0f ? 1.0f : rj + alpha);
    g[j] = gj;
  }
}

void dropout_noise_range(float* __restrict out, uint64_t s, float scale, uint64_t threshold,
                         int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    uint64_t z = s + static_cast<uint64_t>(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    out[i] = (z >> 40) < threshold ? scale : 0.0f;
  }
}

void check_float(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), what, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat, what, " must be float32");
  TORCH_CHECK(t.is_contiguous(), what, " must be contiguous");
}

// Row indices into a table of N rows: a contiguous 1-D int64 CPU tensor, each in [0, N).
// Returns the indices; *increasing tells whether they are strictly increasing.
const int64_t* checked_rows(const torch::Tensor& rows, int64_t N, bool* increasing) {
  TORCH_CHECK(rows.device().is_cpu() && rows.scalar_type() == at::kLong && rows.dim() == 1 &&
              rows.is_contiguous(), "rows must be a contiguous 1-D int64 CPU tensor");
  const int64_t* idx = rows.data_ptr<int64_t>();
  bool inc = true;
  for (int64_t i = 0; i < rows.size(0); ++i) {
    TORCH_CHECK(idx[i] >= 0 && idx[i] < N, "row index out of range");
    inc = inc && (i == 0 || idx[i] > idx[i - 1]);
  }
  *increasing = inc;
  return idx;
}

// Rows idx[b..e) are scattered over a table larger than the caches: the loops prefetch
// the row kPrefetch (small rows: kPrefetchSmall) places ahead, one request per cache
// line (~25% faster on cold rows of 100 floats, ~40% for the gather).
constexpr int64_t kPrefetch = 4;
constexpr int64_t kPrefetchSmall = 16;  // rows below one cache line (1-D tables)
constexpr int64_t kLine = 64;

template <int RW>
inline void prefetch_bytes(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t k = 0; k < bytes; k += kLine) __builtin_prefetch(c + k, RW, 3);
}

inline int64_t prefetch_distance(int64_t row_bytes) {
  return row_bytes < kLine ? kPrefetchSmall : kPrefetch;
}

// rows idx[b..e) of P (row width D) with the gradient rows G[b..e); a plain function with
// by-value arguments: as a by-reference lambda the loop cost ~70 ns more per cold row
void rows_update(int kind, float* P, float* A, float* V, const float* G, uint16_t* S,
                 const int64_t* idx, int64_t b, int64_t e, int64_t D, float lr, float eps,
                 float mom) {
  const int64_t pf = prefetch_distance(D * 4);
  for (int64_t i = b; i < e; ++i) {
    if (i + pf < e) {
      const int64_t q = idx[i + pf] * D;
      prefetch_bytes<1>(P + q, D * 4);
      prefetch_bytes<1>(A + q, D * 4);
      if (V != nullptr) prefetch_bytes<1>(V + q, D * 4);
      if (S != nullptr) prefetch_bytes<1>(S + q, D * 2);
    }
    const int64_t o = idx[i] * D;
    adagrad_step(kind, P + o, A + o, V == nullptr ? nullptr : V + o, G + i * D,
                 S == nullptr ? nullptr : S + o, D, lr, eps, mom);
  }
}

// shadow: an empty tensor (none), or a contiguous bfloat16 CPU tensor with n elements
uint16_t* shadow_ptr(const torch::Tensor& sh, int64_t n) {
  if (sh.numel() == 0) return nullptr;
  TORCH_CHECK(sh.device().is_cpu() && sh.scalar_type() == at::kBFloat16 && sh.is_contiguous(),
              "shadow must be a contiguous bfloat16 CPU tensor");
  TORCH_CHECK(sh.numel() == n, "shadow must have the shape of p");
  return reinterpret_cast<uint16_t*>(sh.data_ptr<at::BFloat16>());
}

}  // namespace

// Rows `rows` (int64) of p (N, D) or (N,), of its accumulator and (momentum > 0) velocity,
// updated in place with the summed row gradients g (R, D) or (R,); the same rows of the
// bfloat16 copy `shadow` (or an empty tensor) receive the new values. Strictly increasing
// rows (torch.unique's) are split over the threads; other orders run on one thread, in
// order (a repeated row is updated twice).
void adagrad_rows_(torch::Tensor p, torch::Tensor acc, torch::Tensor vel, torch::Tensor rows,
                   torch::Tensor g, double lr, double eps, double momentum,
                   torch::Tensor shadow) {
  check_float(p, "p");
  check_float(acc, "acc");
  check_float(g, "g");
  TORCH_CHECK(p.dim() == 1 || p.dim() == 2, "p must be 1-D or 2-D");
  TORCH_CHECK(acc.sizes() == p.sizes(), "acc must have the shape of p");
  const bool two_d = p.dim() == 2;
  const int64_t N = p.size(0);
  const int64_t D = two_d ? p.size(1) : 1;
  bool increasing;
  const int64_t* idx = checked_rows(rows, N, &increasing);
  const int64_t R = rows.size(0);
  TORCH_CHECK(g.dim() == p.dim() && g.size(0) == R && (!two_d || g.size(1) == D),
              "g must have one row per index, of the width of p");
  const bool use_v = momentum > 0;
  if (use_v) {
    check_float(vel, "vel");
    TORCH_CHECK(vel.sizes() == p.sizes(), "vel must have the shape of p");
  }
  uint16_t* S = shadow_ptr(shadow, p.numel());
  float* P = p.data_ptr<float>();
  float* A = acc.data_ptr<float>();
  float* V = use_v ? vel.data_ptr<float>() : nullptr;
  const float* G = g.data_ptr<float>();
  const float flr = static_cast<float>(lr);
  const float feps = static_cast<float>(eps);
  const float fmom = static_cast<float>(momentum);
  const int kind = use_v ? 2 : (two_d ? 0 : 1);
  if (increasing && at::get_num_threads() > 1 && R * D > 2 * kGrain) {
    // distinct rows: chunks touch disjoint memory
    at::parallel_for(0, R, std::max<int64_t>(1, kGrain / D), [=](int64_t b, int64_t e) {
      rows_update(kind, P, A, V, G, S, idx, b, e, D, flr, feps, fmom);
    });
  } else {
    rows_update(kind, P, A, V, G, S, idx, 0, R, D, flr, feps, fmom);
  }
}

// BPR-max with optional ELU(alpha) on the scores, no mask (row i's negatives: every column
// j != i; C >= 2). Writes the per-row loss to loss (B,) and B * dloss/dscores to g (B, C),
// which may be scores itself (each row is read before it is written). Formulas: see
// seqrec.models.gru4rec_step.bpr_max_and_grad.
void bpr_max_(torch::Tensor scores, torch::Tensor g, torch::Tensor loss, double bpreg,
              double alpha) {
  check_float(scores, "scores");
  check_float(g, "g");
  check_float(loss, "loss");
  TORCH_CHECK(scores.dim() == 2 && g.sizes() == scores.sizes(), "scores and g: same (B, C)");
  const int64_t B = scores.size(0), C = scores.size(1);
  TORCH_CHECK(C >= 2 && B <= C, "bpr_max_ needs C >= 2 and B <= C");
  TORCH_CHECK(loss.dim() == 1 && loss.size(0) == B, "loss must be (B,)");
  const float fb = static_cast<float>(bpreg), fa = static_cast<float>(alpha);
  const float* S = scores.data_ptr<float>();
  float* G = g.data_ptr<float>();
  float* L = loss.data_ptr<float>();
  // rows are independent (each reads its own row of scores before writing it in g)
  at::parallel_for(0, B, std::max<int64_t>(1, kGrain / (8 * C)), [=](int64_t begin, int64_t end) {
  std::vector<float> buf(3 * C);
  float* R = buf.data();
  float* E = R + C;
  float* SIG = E + C;
  for (int64_t i = begin; i < end; ++i) {
    const float* s = S + i * C;
    if (fa > 0.0f) {
      elu_row(s, R, C, fa);
    } else {
      std::copy(s, s + C, R);
    }
    const float ri = R[i];
    R[i] = -INFINITY;  // the positive is not a negative of its own row
    const float m = max_row(R, C);
    R[i] = ri;
    exp_sig_row(R, E, SIG, C, m, ri);
    E[i] = 0.0f;
    double t[4];
    sums_row(E, SIG, R, C, t);
    const double A = t[1] / t[0], Q = t[2] / t[0], T = t[3] / t[0];
    const double Ae = A + 1e-24, W = 1.0 / Ae;
    L[i] = static_cast<float>(bpreg * Q - std::log(Ae));
    grad_row(R, E, SIG, G + i * C, C, static_cast<float>(1.0 / t[0]), fb,
             static_cast<float>(W), static_cast<float>(A * W - bpreg * Q), fa);
    float gi = static_cast<float>((T - A) * W);
    if (fa > 0.0f) gi = gi * (ri > 0.0f ? 1.0f : ri + fa);
    G[i * C + i] = gi;
  }
  });
}

// out[i] = T[idx[i]] for rows [b, e), rows of `bytes` bytes, prefetching ahead
void gather_range(char* __restrict O, const char* __restrict T, const int64_t* idx, int64_t b,
                  int64_t e, int64_t bytes) {
  const int64_t pf = prefetch_distance(bytes);
  for (int64_t i = b; i < e; ++i) {
    if (i + pf < e) prefetch_bytes<0>(T + idx[i + pf] * bytes, bytes);
    std::memcpy(O + i * bytes, T + idx[i] * bytes, bytes);
  }
}

// Softmax cross-entropy of the diagonal, rows [begin, end) of S (B, C): row i becomes
// softmax(s_i) - onehot(i) (B * dloss/dscores) and L[i] = log sum_j exp(s_ij) - s_ii.
// Three passes over the row (max; exp and sum; scale), 16 partial sums.
void ce_rows(float* __restrict S, float* __restrict L, int64_t begin, int64_t end, int64_t C) {
  for (int64_t i = begin; i < end; ++i) {
    float* __restrict s = S + i * C;
    const float m = max_row(s, C);
    const float si = s[i];
    float acc[16] = {0};
    int64_t j = 0;
    for (; j + 16 <= C; j += 16)
      for (int k = 0; k < 16; ++k) {
        const float e = exp_approx(s[j + k] - m);
        s[j + k] = e;
        acc[k] += e;
      }
    double sum = 0.0;
    for (; j < C; ++j) {
      const float e = exp_approx(s[j] - m);
      s[j] = e;
      sum += e;
    }
    for (int k = 0; k < 16; ++k) sum += acc[k];
    const float inv = static_cast<float>(1.0 / sum);
    for (j = 0; j < C; ++j) s[j] *= inv;
    s[i] -= 1.0f;
    L[i] = static_cast<float>(std::log(sum) + (static_cast<double>(m) - si));
  }
}

// gather_rows_(out, table, rows): out[i] = table[rows[i]] (index_select along dim 0) for
// a contiguous 1-D or 2-D CPU table of any dtype; out contiguous, same dtype, (R,) or
// (R, D). Any order, repeats allowed.
void gather_rows_(torch::Tensor out, torch::Tensor table, torch::Tensor rows) {
  TORCH_CHECK(table.device().is_cpu() && out.device().is_cpu(), "CPU tensors only");
  TORCH_CHECK(table.is_contiguous() && out.is_contiguous(), "contiguous tensors only");
  TORCH_CHECK(table.dim() == 1 || table.dim() == 2, "table must be 1-D or 2-D");
  TORCH_CHECK(out.scalar_type() == table.scalar_type(), "out must have the table's dtype");
  bool increasing;  // any order is fine here
  const int64_t* idx = checked_rows(rows, table.size(0), &increasing);
  const int64_t R = rows.size(0);
  const int64_t D = table.dim() == 2 ? table.size(1) : 1;
  TORCH_CHECK(out.dim() == table.dim() && out.size(0) == R &&
              (table.dim() == 1 || out.size(1) == D), "out must be (R,) or (R, D)");
  const int64_t bytes = D * static_cast<int64_t>(table.element_size());
  char* O = static_cast<char*>(out.data_ptr());
  const char* T = static_cast<const char*>(table.data_ptr());
  if (at::get_num_threads() > 1 && R * bytes > 8 * kGrain) {
    at::parallel_for(0, R, std::max<int64_t>(1, 4 * kGrain / bytes),
                     [=](int64_t b, int64_t e) { gather_range(O, T, idx, b, e, bytes); });
  } else {
    gather_range(O, T, idx, 0, R, bytes);
  }
}

// cross_entropy_(scores, loss): scores (B, C), B <= C, replaced by B * dloss/dscores of
// the mean softmax cross-entropy of its diagonal; loss (B,) receives each row's loss.
// See seqrec.models.gru4rec_step.cross_entropy_and_grad (the torch formulation).
void cross_entropy_(torch::Tensor scores, torch::Tensor loss) {
  check_float(scores, "scores");
  check_float(loss, "loss");
  TORCH_CHECK(scores.dim() == 2, "scores must be (B, C)");
  const int64_t B = scores.size(0), C = scores.size(1);
  TORCH_CHECK(B >= 1 && B <= C, "cross_entropy_ needs 1 <= B <= C");
  TORCH_CHECK(loss.dim() == 1 && loss.size(0) == B, "loss must be (B,)");
  float* S = scores.data_ptr<float>();
  float* L = loss.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, kGrain / (4 * C));
  if (B >= 2 * grain && at::get_num_threads() > 1) {
    at::parallel_for(0, B, grain, [=](int64_t b, int64_t e) { ce_rows(S, L, b, e, C); });
  } else {
    ce_rows(S, L, 0, B, C);
  }
}

// Whole tensors: ps[k], accs[k], vels[k] (momentum > 0) updated in place with gs[k]
// (float32, or bfloat16); shadows[k] (an empty tensor: none) receives p's new values in
// bfloat16.
void adagrad_dense_(std::vector<torch::Tensor> ps, std::vector<torch::Tensor> accs,
                    std::vector<torch::Tensor> vels, std::vector<torch::Tensor> gs,
                    std::vector<torch::Tensor> shadows, double lr, double eps,
                    double momentum) {
  const bool use_v = momentum > 0;
  TORCH_CHECK(accs.size() == ps.size() && gs.size() == ps.size() &&
              (!use_v || vels.size() == ps.size()) &&
              (shadows.empty() || shadows.size() == ps.size()),
              "tensor lists must have equal lengths");
  const float flr = static_cast<float>(lr);
  const float feps = static_cast<float>(eps);
  const float fmom = static_cast<float>(momentum);
  for (size_t k = 0; k < ps.size(); ++k) {
    check_float(ps[k], "p");
    check_float(accs[k], "acc");
    const bool g16 = gs[k].scalar_type() == at::kBFloat16;
    if (g16) {
      TORCH_CHECK(gs[k].device().is_cpu() && gs[k].is_contiguous(),
                  "g must be a contiguous CPU tensor");
    } else {
      check_float(gs[k], "g");
    }
    const int64_t n = ps[k].numel();
    TORCH_CHECK(accs[k].numel() == n && gs[k].numel() == n, "acc and g must match p");
    if (use_v) {
      check_float(vels[k], "vel");
      TORCH_CHECK(vels[k].numel() == n, "vel must match p");
    }
    uint16_t* S = shadows.empty() ? nullptr : shadow_ptr(shadows[k], n);
    float* P = ps[k].data_ptr<float>();
    float* A = accs[k].data_ptr<float>();
    float* V = use_v ? vels[k].data_ptr<float>() : nullptr;
    const float* G = g16 ? nullptr : gs[k].data_ptr<float>();
    const uint16_t* G16 =
        g16 ? reinterpret_cast<const uint16_t*>(gs[k].data_ptr<at::BFloat16>()) : nullptr;
    const int kind = use_v ? 2 : 0;
    at::parallel_for(0, n, kGrain, [=](int64_t b, int64_t e) {
      uint16_t* sh = S == nullptr ? nullptr : S + b;
      float* vb = use_v ? V + b : nullptr;
      if (g16) {
        adagrad_step(kind, P + b, A + b, vb, G16 + b, sh, e - b, flr, feps, fmom);
      } else {
        adagrad_step(kind, P + b, A + b, vb, G + b, sh, e - b, flr, feps, fmom);
      }
    });
  }
}

// Dropout noise: noise[i] = 1/keep if u_i < keep else 0, with u_i the top 24 bits of a
// splitmix64 hash of (seed, i): a counter-based generator, so any split over threads
// gives the same noise, and one 64-bit seed per call reproduces it.
void dropout_noise_(torch::Tensor noise, int64_t seed, double keep) {
  check_float(noise, "noise");
  TORCH_CHECK(keep > 0.0 && keep <= 1.0, "keep must be in (0, 1]");
  float* out = noise.data_ptr<float>();
  const int64_t n = noise.numel();
  const float scale = 1.0f / static_cast<float>(keep);
  const uint64_t threshold = static_cast<uint64_t>(keep * 16777216.0 + 0.5);  // keep * 2^24
  const uint64_t s = static_cast<uint64_t>(seed);
  at::parallel_for(0, n, kGrain, [out, s, scale, threshold](int64_t b, int64_t e) {
    dropout_noise_range(out, s, scale, threshold, b, e);
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("adagrad_rows_", torch::wrap_pybind_function(adagrad_rows_), "adagrad_rows_");
  m.def("adagrad_dense_", torch::wrap_pybind_function(adagrad_dense_), "adagrad_dense_");
  m.def("bpr_max_", torch::wrap_pybind_function(bpr_max_), "bpr_max_");
  m.def("cross_entropy_", torch::wrap_pybind_function(cross_entropy_), "cross_entropy_");
  m.def("dropout_noise_", torch::wrap_pybind_function(dropout_noise_), "dropout_noise_");
  m.def("gather_rows_", torch::wrap_pybind_function(gather_rows_), "gather_rows_");
}
