"""The padded-sequence id convention: right-aligned, left-truncated, PAD/MASK ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.nn.padding import MASK, PAD, embedding_ids, pad_histories


def test_pad_histories_right_aligned_left_truncated() -> None:
    out = pad_histories([[1, 2, 3, 4], [5], [], np.array([7, 8, 9])], 3)
    want = [[2, 3, 4], [PAD, PAD, 5], [PAD, PAD, PAD], [7, 8, 9]]
    assert out.dtype == np.int64 and out.tolist() == want


def test_pad_histories_with_a_mask_to_predict_at_the_end() -> None:
    out = pad_histories([[1, 2, 3, 4], [5], []], 3, append_mask=True)
    assert out.tolist() == [[3, 4, MASK], [PAD, 5, MASK], [PAD, PAD, MASK]]
    assert pad_histories([[1, 2]], 1, append_mask=True).tolist() == [[MASK]]
    with pytest.raises(ValueError, match="max_len"):
        pad_histories([[1]], 0)


def test_embedding_ids_map_pad_and_mask_after_the_items() -> None:
    seqs = torch.tensor([[PAD, 0, 3], [MASK, 2, PAD]])
    assert embedding_ids(seqs, 4).tolist() == [[4, 0, 3], [5, 2, 4]]
