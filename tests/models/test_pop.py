"""Popularity baselines on hand-checked literal data."""

import numpy as np
import torch

from seqrec.data.sessions import SessionLog
from seqrec.models.pop import Pop, SessionPop

LOG = SessionLog.from_sequences([[0, 1, 2], [2, 2], [3, 2], [1]])


def test_pop_counts_events():
    m = Pop().fit(LOG)
    assert m.score([[0]])[0].tolist() == [1.0, 2.0, 4.0, 1.0]
    ids, _ = m.recommend([[]], k=2)
    assert ids[0].tolist() == [2, 1]


def test_pop_targets_support_skips_first_clicks():
    m = Pop({"support": "targets"}).fit(LOG)
    assert m.score([[0]])[0].tolist() == [0.0, 1.0, 3.0, 0.0]


def test_session_pop_prefers_session_items_then_popularity():
    m = SessionPop().fit(LOG)
    ids, _ = m.recommend([np.array([3, 0, 3])], k=4)
    assert ids[0].tolist() == [3, 0, 2, 1]  # 3 twice, 0 once, then by popularity
    s = m.score([np.array([1])])
    assert torch.argmax(s[0]).item() == 1


def test_session_pop_scores_a_batch_exactly():
    """Counts per history (repeats add up, unknown -1 ignored) + popularity / (max + 1)."""
    m = SessionPop().fit(LOG)
    base = torch.tensor([1.0, 2.0, 4.0, 1.0]) / 5.0
    got = m.score([np.array([3, 0, 3]), np.array([], dtype=np.int64), np.array([-1, 2])])
    want = torch.stack(
        [base + torch.tensor([1.0, 0, 0, 2]), base, base + torch.tensor([0, 0, 1.0, 0])]
    )
    assert torch.equal(got, want)
    assert m.score([]).shape == (0, 4)
