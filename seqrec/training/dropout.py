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

    CPU: ``x * noise`` with noise 0 or ``1 / (1 - p)`` from a counter-based generator
    (:func:`seqrec.training.kernels.dropout_noise`: the compiled kernel, or its torch twin
    that draws the same noise bit for bit) and one 64-bit seed drawn from ``generator``
    per call (a training task owns one, seeded with its ``seed`` and saved in its
    checkpoints; None: torch's default generator).
    CUDA: ``torch.native_dropout`` (what ``F.dropout`` calls there; boolean mask) without
    a generator, else ``bernoulli_`` noise from it.
    """
    if x.device.type == "cuda":
        if generator is None:
            return torch.native_dropout(x, p, True)  # (output, bool mask)
        noise = torch.empty_like(x).bernoulli_(1 - p, generator=generator).div_(1 - p)
        return x * noise, noise
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64, generator=generator))
    noise = fused.dropout_noise(torch.empty_like(x), seed, 1 - p)
    return x * noise, noise
