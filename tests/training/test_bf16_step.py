"""``matmul_precision = "bfloat16"``: the fast step with bfloat16 matrix products.

Operands are rounded to bfloat16 (8 significant bits), so results differ from the
float32 step by more than rounding noise but must stay close: losses per step within
~1% and weights after two short epochs within a few learning-rate steps. Weights,
optimiser state, loss and evaluation stay float32.
"""

from __future__ import annotations

import pytest
import torch

from seqrec.errors import ConfigError
from seqrec.models.gru4rec import GRU4Rec
from tests.training.test_fast_step import BASE, CASES, LOG, train

BF16 = {"matmul_precision": "bfloat16"}


@pytest.mark.parametrize("case", list(CASES))
def test_bfloat16_step_stays_close_to_the_float32_step(case):
    cfg = CASES[case]
    ref = train(cfg, "fast")
    got = train({**cfg, **BF16}, "fast")
    assert got[4] == ref[4]  # the same events
    # measured: loss per step within 1e-2 relative, weights within 7e-2 (lr 0.1, 26 steps)
    torch.testing.assert_close(torch.tensor(got[0]), torch.tensor(ref[0]), rtol=3e-2, atol=1e-3)
    changed = False
    for name, w in ref[1].items():
        assert got[1][name].dtype == torch.float32, name
        torch.testing.assert_close(got[1][name], w, rtol=0.0, atol=0.2, msg=name)
        changed |= not torch.equal(got[1][name], w)
    assert changed  # the products did run in bfloat16
    for name, s in ref[2].items():
        if s.is_floating_point():
            assert got[2][name].dtype == torch.float32, name
    torch.testing.assert_close(got[3], ref[3], rtol=0.0, atol=0.1)


@pytest.mark.parametrize("case", list(CASES))
def test_shadow_operands_change_nothing(case):
    """The bfloat16 operands read from the optimiser's shadows (updated in the optimiser's
    pass) and the bfloat16 weight gradients give bit for bit the results of converting
    the float32 weights and rows every step."""
    cfg = {**CASES[case], **BF16}
    ref = train(cfg, "no-shadows")
    got = train(cfg, "fast")
    assert got[0] == ref[0]
    for part in (1, 2):
        for name, w in ref[part].items():
            assert torch.equal(got[part][name], w), name
    assert torch.equal(got[3], ref[3])


def test_bfloat16_fit_learns_like_float32_and_scores_in_float32():
    a = GRU4Rec({**BASE, "n_epochs": 4}).fit(LOG)
    b = GRU4Rec({**BASE, "n_epochs": 4, **BF16}).fit(LOG)
    for h1, h2 in zip(a.history_, b.history_, strict=True):
        assert h2.loss == pytest.approx(h1.loss, rel=3e-2)
    assert b.history_[-1].loss < b.history_[0].loss
    scores = b.score([[0, 1, 2], [5]])
    assert scores.dtype == torch.float32
    # rankings: the float32 model's top item is in the bfloat16 model's top 3
    top_a = a.score([[0, 1, 2], [5]]).argmax(dim=1)
    top3_b = scores.topk(3, dim=1).indices
    assert all(t in row for t, row in zip(top_a.tolist(), top3_b.tolist(), strict=True))


def test_matmul_precision_is_validated():
    assert GRU4Rec({}).training_keys["matmul_precision"] == "float32"
    with pytest.raises(ConfigError, match="matmul_precision"):
        GRU4Rec({"matmul_precision": "float16"})
    with pytest.raises(ConfigError, match="fast step"):
        GRU4Rec({**BF16, "fast_step": False})
    with pytest.raises(ConfigError, match="fast step"):
        GRU4Rec({**BF16, "cell": "lstm"})


def test_bfloat16_model_saves_and_loads(tmp_path):
    m = GRU4Rec({**BASE, "n_epochs": 1, **BF16}).fit(LOG)
    m.save(tmp_path / "m")
    back = type(m).load(tmp_path / "m")
    assert back.training_keys["matmul_precision"] == "bfloat16"
    torch.testing.assert_close(back.score([[1, 2]]), m.score([[1, 2]]), rtol=0, atol=0)
