"""How models learn: the loop, batching, losses, samplers, optimisers and kernels."""
