"""What ``matmul_precision`` means on the device a task trains on.

* ``"float32"`` (the default): every product in float32;
* ``"bfloat16"``: the products a configuration can run in bfloat16 (GRU4Rec's fast
  step; the sequences family's full cross-entropy) do, on any device (slower than
  float32 on CPUs that emulate bfloat16);
* ``"auto"``: bfloat16 where the configuration can use it **and** the device computes it
  natively (a CUDA device that supports bfloat16; a CPU with AVX512-BF16 or AMX-BF16,
  read from the Linux CPU flags), float32 otherwise. A configuration without bfloat16
  products (a sampled loss, the autograd step) is float32 under ``"auto"``, where
  ``"bfloat16"`` is a configuration error.

Measured against float32 on an AMD EPYC with AVX512-BF16, 2 threads (README.md "Speed",
benchmarks/README.md): NARM / STAMP / SR-GNN epochs 1.3-1.8x faster (full
cross-entropy), GRU4Rec [512] 1.7x the events/s.
"""

from __future__ import annotations

import functools
import logging

import torch

__all__ = ["PRECISIONS", "cpu_has_native_bf16", "native_bf16", "resolve_matmul_dtype"]

PRECISIONS = ("float32", "bfloat16", "auto")
NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
log = logging.getLogger("seqrec.training.precision")


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU advertises AVX512-BF16 or AMX-BF16 (False where the flags cannot
    be read, e.g. outside Linux)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return any(f in flags for f in NATIVE_CPU_FLAGS)
    except OSError:
        pass
    return False


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_has_native_bf16()


def resolve_matmul_dtype(
    precision: str, device: torch.device | str, applicable: bool
) -> torch.dtype | None:
    """The dtype of a task's big products (None: float32) for ``matmul_precision`` =
    ``precision``; ``applicable``: the configuration has bfloat16 products. Raises
    nothing: callers reject ``"bfloat16"`` where it is not applicable."""
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "auto":
        chosen = applicable and native_bf16(device)
        why = (
            "no bfloat16 products in this configuration"
            if not applicable
            else f"{'native' if chosen else 'no native'} bfloat16 on {torch.device(device)}"
        )
        log.info("matmul_precision auto: %s (%s)", "bfloat16" if chosen else "float32", why)
        return torch.bfloat16 if chosen else None
    return None
