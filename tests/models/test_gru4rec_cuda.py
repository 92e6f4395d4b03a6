"""GRU4Rec on CUDA: every option trains there, and a CUDA model scores like its CPU copy.

Skipped (with the reason) on machines without a CUDA device; run on a lent GPU with
``python -m pytest tests/models/test_gru4rec_cuda.py``.
"""

import pytest
import torch

from seqrec.evaluation import evaluate
from seqrec.models import load_model
from seqrec.models.gru4rec import GRU4Rec
from tests.models.test_gru4rec import LOG, OPTIONS, SMALL

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("cfg", OPTIONS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_every_option_trains_on_cuda_and_steps_match_scores(cfg):
    model = GRU4Rec({**SMALL, **cfg, "device": "cuda"}).fit(LOG)
    assert model.device_.type == "cuda"
    hist = [int(i) for i in LOG.session(3)]
    state = model.init_state(1)
    for item in hist:
        state, scores = model.step(state, torch.tensor([item], device=model.device_))
    assert scores.device.type == "cuda"
    assert torch.allclose(scores.cpu(), model.score([hist]).cpu(), atol=1e-4)


def test_cuda_model_saved_and_loaded_on_cpu_scores_the_same(tmp_path):
    model = GRU4Rec({**SMALL, "device": "cuda", "n_epochs": 2}).fit(LOG)
    model.save(tmp_path / "m")
    cpu = load_model(tmp_path / "m", device="cpu")
    hists = [[int(i) for i in LOG.session(s)] for s in range(5)]
    assert torch.allclose(model.score(hists).cpu(), cpu.score(hists), atol=1e-4)
    got = evaluate(model, LOG, protocol="next-item", ks=(5,))
    ref = evaluate(cpu, LOG, protocol="next-item", ks=(5,))
    assert got["recall@5"] == pytest.approx(ref["recall@5"], abs=0.01)
