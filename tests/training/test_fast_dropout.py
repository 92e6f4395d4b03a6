"""fast_dropout: nn.Dropout modules draw the compiled counter-based noise during training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqrec.training import kernels as fused
from seqrec.training.dropout import fast_dropout

needs_kernels = pytest.mark.skipif(fused.kernels() is None, reason="compiled kernels unavailable")


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Sequential(nn.Dropout(0.25)))


@needs_kernels
def test_patched_inside_and_restored_after() -> None:
    net = _net().train()
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    with fast_dropout(net):
        assert all("forward" in m.__dict__ for m in drops)
    assert all("forward" not in m.__dict__ for m in drops)


@needs_kernels
def test_noise_values_rate_and_gradient() -> None:
    drop = nn.Dropout(0.25).train()
    x = torch.ones(200, 500, requires_grad=True)
    with fast_dropout(drop):
        y = drop(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.tensor(1 / 0.75))  # kept elements scaled by 1 / keep
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * noise)/dx = noise


@needs_kernels
def test_deterministic_under_the_default_generator_and_identity_in_eval() -> None:
    drop = nn.Dropout(0.5)
    x = torch.randn(64, 32)
    with fast_dropout(drop):
        torch.manual_seed(7)
        a = drop.train()(x)
        torch.manual_seed(7)
        b = drop(x)
        c = drop(x)
        assert torch.equal(drop.eval()(x), x)
    assert torch.equal(a, b) and not torch.equal(b, c)


def test_other_modules_untouched() -> None:
    net = nn.Sequential(nn.Dropout(0.0), nn.Dropout(1.0), nn.AlphaDropout(0.5))
    with fast_dropout(net):
        assert all("forward" not in m.__dict__ for m in net.modules())
