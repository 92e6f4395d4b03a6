# ruff: noqa  (measurement script, the record of PROFILE.md section 9)
"""Wall-clock per-section timing of FastStep: patches section markers with timers."""

import re, sys, time, types

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import torch

torch.set_num_threads(2)
from seqrec.sysmem import keep_freed_memory

keep_freed_memory()
import seqrec.models.gru4rec_step as gs

src = open(gs.__file__).read()
lines = src.split("\n")
out = []
in_call = False
for ln in lines:
    m = re.match(r"^(\s+)# ---- (.*)$", ln)
    if "def __call__" in ln:
        in_call = True
    if in_call and m:
        ind, name = m.groups()
        out.append(f"{ind}_T.append(({name!r}, __import__('time').perf_counter()))")
    if in_call and ln.strip().startswith("return loss, n"):
        ind = ln[: len(ln) - len(ln.lstrip())]
        out.append(f"{ind}_T.append(('end', __import__('time').perf_counter()))")
    out.append(ln)
src2 = "\n".join(out).replace(
    "inp, tgt, reset, full = batch",
    "inp, tgt, reset, full = batch\n        _T.append(('start', __import__('time').perf_counter()))",
)
_T = []
mod = types.ModuleType("gs2")
mod.__dict__["_T"] = _T
mod.__file__ = gs.__file__
exec(compile(src2, gs.__file__, "exec"), mod.__dict__)
gs.FastStep.__call__ = mod.FastStep.__call__
from compare import make

model, task = make(sys.argv[1], 0, 200_000, matmul_precision=sys.argv[2])
it = iter(task.batches(0))
for _ in range(30):
    task.train_step(next(it))
from collections import defaultdict

for rep in range(2):
    _T.clear()
    acc = defaultdict(float)
    N = 100
    t0 = time.perf_counter()
    for _ in range(N):
        task.train_step(next(it))
    wall = (time.perf_counter() - t0) / N * 1e3
    # pair consecutive marks
    for (a, ta), (b, tb) in zip(_T, _T[1:]):
        if a != "end":
            acc[a] += tb - ta
    tot = sum(acc.values())
    print(f"wall/step {wall:.2f} ms, inside step {tot / N * 1e3:.2f} ms")
    for k, v in acc.items():
        print(f"  {v / N * 1e3:6.2f} ms  {k}")
