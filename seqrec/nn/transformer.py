"""Self-attention pieces shared by the transformer models (SASRec, BERT4Rec).

All work on right-aligned padded batches (:mod:`seqrec.nn.padding`): ``valid`` is the
``(B, T)`` bool mask of the real (non-PAD) columns.

* :func:`attention_mask`: which key each query may attend. Keys at PAD columns are never
  attended; ``causal`` adds "not after the query" (SASRec), without it every real column
  sees every real column (BERT4Rec). A PAD query attends itself alone, so its softmax
  is defined (no NaN) and no real column ever reads it.
* :func:`position_ids`: the learned-position index of every column, counted from the
  oldest item of the window (``"absolute"``) or back from the most recent column
  (``"recent"``); either way independent of how much left padding a row has.
* :class:`TransformerBlock`: multi-head self-attention then a position-wise FFN, each
  sub-layer in a residual connection, either pre-LN (SASRec's
  ``x + Dropout(f(LN(x)))``) or post-LN (the original Transformer / BERT's
  ``LN(x + Dropout(f(x)))``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["POSITIONS", "TransformerBlock", "attention_mask", "position_ids"]

POSITIONS = ("absolute", "recent")

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def attention_mask(valid: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, T) bool real columns -> (B, 1, T, T) bool: query ``t`` may attend key ``s``
    iff both are real (and ``s <= t`` when ``causal``), or ``s == t``."""
    t = valid.shape[1]
    pairs = valid.unsqueeze(2) & valid.unsqueeze(1)  # (B, T, T): real query, real key
    if causal:
        pairs = pairs & torch.ones(t, t, dtype=torch.bool, device=valid.device).tril()
    eye = torch.eye(t, dtype=torch.bool, device=valid.device)
    return (pairs | eye).unsqueeze(1)  # (B, 1, T, T)


def position_ids(valid: torch.Tensor, max_len: int, recent: bool) -> torch.Tensor:
    """(B, T) position index of every column, in ``0..max_len-1`` (PAD columns clamped:
    they are never attended).

    ``recent``: ``T - 1 - column`` (0 = the most recent column); else ``column - first``
    with ``first`` the row's oldest real column (0 = the oldest item kept)."""
    t = valid.shape[1]
    col = torch.arange(t, device=valid.device).expand_as(valid)
    if recent:
        return (t - 1 - col).clamp(max=max_len - 1)
    first = t - valid.sum(1, keepdim=True)  # right-aligned: the oldest item's column
    return (col - first).clamp(0, max_len - 1)


class TransformerBlock(nn.Module):
    """Multi-head self-attention, then the position-wise FFN
    ``ff2(act(ff1(x)))`` of inner size ``inner`` (default ``d``).

    ``post_norm`` False (pre-LN, SASRec)::

        x <- x + Dropout(Attn(LN1(x)));  x <- x + Dropout(FFN(LN2(x)))

    ``post_norm`` True (post-LN, BERT)::

        x <- LN1(x + Dropout(Attn(x)));  x <- LN2(x + Dropout(FFN(x)))

    ``inner_dropout`` also drops the FFN's hidden activations (SASRec's block does;
    BERT's does not). The attention weights are dropped with rate ``dropout`` while
    training. Parameter names (``qkv``, ``out``, ``ff1``, ``ff2``, ``ln1``, ``ln2``) are
    those of saved models: do not rename.
    """

    def __init__(
        self,
        d: int,
        n_heads: int,
        dropout: float,
        *,
        inner: int | None = None,
        activation: Literal["relu", "gelu"] = "relu",
        post_norm: bool = False,
        inner_dropout: bool = True,
    ) -> None:
        super().__init__()
        inner = inner or d
        self.n_heads, self.p, self.post_norm = n_heads, dropout, post_norm
        self.act = _ACTIVATIONS[activation]
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff1, self.ff2 = nn.Linear(d, inner), nn.Linear(inner, d)
        self.drop = nn.Dropout(dropout)
        self.inner_drop = nn.Dropout(dropout) if inner_dropout else nn.Identity()

    def attend(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> (B, T, d): the heads' outputs, concatenated and projected."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.p if self.training else 0.0
        )  # (B, heads, T, d / heads)
        return self.out(a.transpose(1, 2).reshape(b, t, d))

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff2(self.inner_drop(self.act(self.ff1(x))))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x (B, T, d); allowed (B, 1, T, T) bool: query t may attend key s."""
        if self.post_norm:
            x = self.ln1(x + self.drop(self.attend(x, allowed)))
            return self.ln2(x + self.drop(self.ffn(x)))
        x = x + self.drop(self.attend(self.ln1(x), allowed))
        return x + self.drop(self.ffn(self.ln2(x)))
