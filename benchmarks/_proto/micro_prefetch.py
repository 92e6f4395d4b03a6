# ruff: noqa  (measurement script, the record of PROFILE.md section 10)
"""Cold-row gather / Adagrad row update with and without software prefetch.

python benchmarks/_proto/micro_prefetch.py update 1 100   # or: gather 2 512
(MODE THREADS WIDTH; rows re-drawn every call, 64 MB written between every other call)
"""

import statistics
import sys
import tempfile
import time

import torch
from torch.utils.cpp_extension import load_inline

MODE, THREADS, D = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(THREADS)
N, R = 60000, 2080

SRC = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
void upd(float* __restrict p, float* __restrict a, const float* __restrict g, int64_t n, float lr, float eps){
  for (int64_t j=0;j<n;++j){ const float gj=g[j]; const float acc=std::fma(gj,gj,a[j]); a[j]=acc; p[j]=std::fma(gj/std::sqrt(acc+eps),-lr,p[j]); }
}
void rows_loop(float* P, float* A, const float* G, const int64_t* idx, int64_t b, int64_t e, int64_t D, int64_t pf){
  for (int64_t i=b;i<e;++i){
    if (pf>0 && i+pf<e){ const int64_t q=idx[i+pf]*D; for (int64_t c=0;c<D;c+=16){ __builtin_prefetch(P+q+c,1,3); __builtin_prefetch(A+q+c,1,3);} }
    const int64_t o=idx[i]*D; upd(P+o,A+o,G+i*D,D,0.07f,1e-6f);
  }
}
void gloop(float* __restrict O, const float* __restrict T, const int64_t* idx, int64_t b, int64_t e, int64_t D, int64_t pf){
  for (int64_t i=b;i<e;++i){
    if (pf>0 && i+pf<e){ const float* q=T+idx[i+pf]*D; for (int64_t c=0;c<D;c+=16) __builtin_prefetch(q+c,0,3); }
    std::memcpy(O+i*D, T+idx[i]*D, D*sizeof(float));
  }
}
void rows_(torch::Tensor p, torch::Tensor a, torch::Tensor rows, torch::Tensor g, int64_t pf){
  float* P=p.data_ptr<float>(); float* A=a.data_ptr<float>(); const float* G=g.data_ptr<float>(); const int64_t* idx=rows.data_ptr<int64_t>();
  int64_t R=rows.size(0), D=p.size(1);
  if (at::get_num_threads()>1 && R*D>32768) at::parallel_for(0,R,std::max<int64_t>(1,16384/D),[=](int64_t b,int64_t e){rows_loop(P,A,G,idx,b,e,D,pf);});
  else rows_loop(P,A,G,idx,0,R,D,pf);
}
void gather_(torch::Tensor out, torch::Tensor t, torch::Tensor rows, int64_t pf){
  float* O=out.data_ptr<float>(); const float* T=t.data_ptr<float>(); const int64_t* idx=rows.data_ptr<int64_t>();
  int64_t R=rows.size(0), D=t.size(1);
  if (at::get_num_threads()>1 && R*D>32768) at::parallel_for(0,R,std::max<int64_t>(1,16384/D),[=](int64_t b,int64_t e){gloop(O,T,idx,b,e,D,pf);});
  else gloop(O,T,idx,0,R,D,pf);
}
"""
m = load_inline(
    "micro_prefetch",
    cpp_sources=SRC,
    functions=["rows_", "gather_"],
    extra_cflags=["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fopenmp"],
    extra_ldflags=["-fopenmp"],
    build_directory=tempfile.mkdtemp(),
    verbose=False,
)

W = torch.randn(N, D)
A = torch.rand(N, D)
G = torch.randn(R, D)
out = torch.empty(R, D)
junk = torch.randn(16_000_000)  # 64 MB: evicts between calls
gen = torch.Generator().manual_seed(0)
sets = [torch.randperm(N, generator=gen)[:R].sort().values for _ in range(64)]

if MODE == "update":
    fns = {f"pf{pf}": (lambda r, pf=pf: m.rows_(W, A, r, G, pf)) for pf in (0, 2, 4, 8)}
else:
    fns = {"index_select": lambda r: W.index_select(0, r)}
    fns.update({f"pf{pf}": (lambda r, pf=pf: m.gather_(out, W, r, pf)) for pf in (0, 4, 8)})

res = {k: [] for k in fns}
for rep in range(15):
    for k, f in fns.items():
        tt = 0.0
        for j in range(8):
            if j % 2 == 0:
                junk.add_(1.0)
            r = sets[(rep * 8 + j) % 64]
            t = time.perf_counter()
            f(r)
            tt += time.perf_counter() - t
        res[k].append(tt / 8 * 1e6)
for k, v in res.items():
    print(f"{MODE} D={D} thr={THREADS} {k}: median {statistics.median(v):.1f} us  min {min(v):.1f}")
