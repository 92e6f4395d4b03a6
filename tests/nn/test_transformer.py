"""The shared transformer pieces: attention masks and position ids on literal rows, and
the block (pre-LN and post-LN) against a naive per-head reference."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from seqrec.nn.transformer import TransformerBlock, attention_mask, position_ids

VALID = torch.tensor([[False, True, True, True], [True, True, True, True]])


def test_causal_mask_by_hand() -> None:
    m = attention_mask(VALID, causal=True)
    assert m.shape == (2, 1, 4, 4)
    assert m[0, 0].int().tolist() == [
        [1, 0, 0, 0],  # a PAD query attends itself alone
        [0, 1, 0, 0],  # never a PAD key, never a later key
        [0, 1, 1, 0],
        [0, 1, 1, 1],
    ]
    assert torch.equal(m[1, 0], torch.ones(4, 4, dtype=torch.bool).tril())


def test_bidirectional_mask_by_hand() -> None:
    m = attention_mask(VALID, causal=False)
    assert m[0, 0].int().tolist() == [[1, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1]]
    assert bool(m[1].all())


def test_position_ids_by_hand() -> None:
    assert position_ids(VALID, 4, recent=False).tolist() == [[0, 0, 1, 2], [0, 1, 2, 3]]
    assert position_ids(VALID, 4, recent=True).tolist() == [[3, 2, 1, 0]] * 2
    assert position_ids(VALID, 2, recent=True).tolist() == [[1, 1, 1, 0]] * 2  # clamped


def _naive(blk: TransformerBlock, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1]
    heads, dh = blk.n_heads, d // blk.n_heads

    def ln(z: torch.Tensor, m: torch.nn.LayerNorm) -> torch.Tensor:
        mu, var = z.mean(-1, keepdim=True), z.var(-1, unbiased=False, keepdim=True)
        return (z - mu) / torch.sqrt(var + m.eps) * m.weight + m.bias

    def attn(z: torch.Tensor) -> torch.Tensor:
        qkv = z @ blk.qkv.weight.t() + blk.qkv.bias  # (B, T, 3d): [q | k | v]
        q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
        out = torch.zeros_like(z)
        for h in range(heads):
            sl = slice(h * dh, (h + 1) * dh)
            s = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(dh)  # (B, T, T)
            s = s.masked_fill(~allowed[:, 0], -math.inf)
            out[..., sl] = torch.softmax(s, dim=-1) @ v[..., sl]
        return out @ blk.out.weight.t() + blk.out.bias

    def ffn(z: torch.Tensor) -> torch.Tensor:
        return blk.act(z @ blk.ff1.weight.t() + blk.ff1.bias) @ blk.ff2.weight.t() + blk.ff2.bias

    if blk.post_norm:
        x = ln(x + attn(x), blk.ln1)
        return ln(x + ffn(x), blk.ln2)
    x = x + attn(ln(x, blk.ln1))
    return x + ffn(ln(x, blk.ln2))


@pytest.mark.parametrize(
    "kw",
    [
        {},  # SASRec's: pre-LN, ReLU, inner size d
        {"post_norm": True, "activation": "gelu", "inner": 24, "inner_dropout": False},  # BERT's
    ],
)
@pytest.mark.parametrize("causal", [True, False])
def test_block_equals_a_naive_reference(kw: dict, causal: bool) -> None:
    torch.manual_seed(0)
    blk = TransformerBlock(6, 2, 0.3, **kw).eval()
    for p in blk.parameters():  # non-trivial LayerNorm parameters and biases
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, 4, 6)
    allowed = attention_mask(VALID, causal)
    with torch.no_grad():
        torch.testing.assert_close(blk(x, allowed), _naive(blk, x, allowed))
    assert blk.ff1.out_features == kw.get("inner", 6)
    assert blk.act is (F.gelu if kw else F.relu)


def test_dropout_only_while_training() -> None:
    torch.manual_seed(0)
    blk = TransformerBlock(8, 2, 0.5, post_norm=True)
    x, allowed = torch.randn(2, 4, 8), attention_mask(VALID, causal=False)
    blk.eval()
    torch.testing.assert_close(blk(x, allowed), blk(x, allowed), rtol=0, atol=0)
    blk.train()
    assert not torch.allclose(blk(x, allowed), blk(x, allowed))
