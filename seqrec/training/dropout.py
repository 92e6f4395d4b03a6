"""Training-time dropout with the fused kernels' noise, drawn from the task's generator."""

from __future__ import annotations

import torch

from seqrec.training import kernels as fused

__all__ = ["train_dropout"]


def train_dropout(
    x: torch.Tensor, p: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training-time dropout of ``x`` with probability ``p``: (output, what its backward
    multiplies the gradient with), the same in the autograd and in the fast step.

    CPU: ``x * noise`` with noise 0 or ``1 / (1 - p)`` from the fused kernels' counter-based
    generator (one 64-bit seed drawn from ``generator`` per call - a training task owns
    one, seeded with its ``seed`` and saved in its checkpoints; None: torch's default
    generator; ~30x faster than ``bernoulli_``, which is what runs when the kernels are
    unavailable: what ``F.dropout`` does on CPU).
    CUDA: ``torch.native_dropout`` (what ``F.dropout`` calls there; boolean mask) without
    a generator, else ``bernoulli_`` noise from it.
    """
    if x.device.type == "cuda":
        if generator is None:
            return torch.native_dropout(x, p, True)  # (output, bool mask)
        noise = torch.empty_like(x).bernoulli_(1 - p, generator=generator).div_(1 - p)
        return x * noise, noise
    ext = fused.kernels() if fused.cpu_float_contiguous(x) else None
    noise = torch.empty_like(x)
    if ext is None:
        noise.bernoulli_(1 - p, generator=generator).div_(1 - p)
    else:
        seed = int(torch.randint(0, 2**62, (), dtype=torch.int64, generator=generator))
        ext.dropout_noise_(noise, seed, 1 - p)
    return x * noise, noise
