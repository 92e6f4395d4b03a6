"""Samples.from_sessions (vectorised) equals the plain per-position definition."""

import numpy as np

from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog


def test_from_sessions_matches_the_definition():
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(0, 50, int(n))) for n in rng.integers(1, 9, 200)]
    got = Samples.from_sessions(SessionLog.from_sequences(seqs))
    want_p = [s[:t] for s in seqs for t in range(1, len(s))]
    want_l = [s[t] for s in seqs for t in range(1, len(s))]
    assert got.labels.tolist() == want_l
    assert [got.prefixes.session(q).tolist() for q in range(len(got))] == want_p
    empty = Samples.from_sessions(SessionLog.from_sequences([[1]]))
    assert len(empty) == 0 and empty.prefixes.n_events == 0
