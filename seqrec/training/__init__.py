"""How models learn: the one loop, batching families, losses, samplers, optimisers,
GRU4Rec's fast step and the compiled kernels.

:func:`fit` trains any registered model; ``Recommender.fit`` of a neural model calls it.
"""

from seqrec.training.trainer import build_task, fit

__all__ = ["build_task", "fit"]
