# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md section 8)
"""GFLOP/s of the [512] training step's matrix products in float32 and bfloat16 (2 threads)."""

import torch, time

torch.set_num_threads(2)


def bench(m, k, n, dt, tA=False):
    a = torch.randn(m, k, dtype=dt)
    b = torch.randn(k, n, dtype=dt)
    for _ in range(5):
        a @ b
    t = time.perf_counter()
    r = 50
    for _ in range(r):
        a @ b
    dt_ = (time.perf_counter() - t) / r
    return 2 * m * k * n / dt_ / 1e9


for shp in [
    (128, 512, 1536),
    (128, 512, 2176),
    (2176, 128, 512),
    (128, 2176, 512),
    (1536, 128, 512),
]:
    print(shp, "fp32 %.0f" % bench(*shp, torch.float32), "bf16 %.0f" % bench(*shp, torch.bfloat16))
