# ruff: noqa  (throw-away measurement script, kept as the record of PROFILE.md section 8)
"""oneDNN fp32_precision modes (default | ieee | bf16) on the step's shapes: micro_onednn.py MODE"""

import torch, time, sys

torch.set_num_threads(2)
mode = sys.argv[1]
if mode != "default":
    torch.backends.mkldnn.matmul.fp32_precision = mode
print(mode, torch.backends.mkldnn.matmul.fp32_precision)


def t(fn):
    for _ in range(5):
        fn()
    s = time.perf_counter()
    for _ in range(100):
        fn()
    return (time.perf_counter() - s) / 100 * 1e3


g = torch.Generator().manual_seed(0)
for m, k, n, ta in [
    (128, 512, 1536, False),
    (128, 512, 2176, False),
    (2176, 128, 512, True),
    (128, 2176, 512, False),
    (512, 128, 1536, True),
]:
    a = torch.randn(k, m, generator=g).t() if ta else torch.randn(m, k, generator=g)
    b = torch.randn(k, n, generator=g)
    ref = a.double() @ b.double()
    ms = t(lambda: a @ b)
    print(
        (m, k, n, ta),
        "%.3f ms %.0f GF/s relerr %.1e"
        % (
            ms,
            2 * m * k * n / ms / 1e6,
            ((a @ b).double() - ref).abs().max().item() / ref.abs().max().item(),
        ),
    )
