"""seqrec.training.fit: flat keys routed to their owners, training keys per call, and a
library fit that leaves the process alone (global RNG, threads, malloc)."""

from __future__ import annotations

import pytest
import torch

from seqrec.errors import ConfigError
from seqrec.models.gru4rec import GRU4Rec
from seqrec.models.pop import Pop
from seqrec.pipeline import PROCESS_TUNING, with_process_tuning
from seqrec.training import fit, sysmem
from tests.models.test_gru4rec import LOG, SMALL


def test_flat_keyword_arguments_are_routed_to_their_owners():
    model = GRU4Rec(layers=[8], loss="bpr-max", n_epochs=3, n_sample=16)
    assert model.config.layers == (8,)
    keys = model.training_keys
    assert (keys["loss"], keys["n_epochs"], keys["n_sample"]) == ("bpr-max", 3, 16)
    assert keys["learning_rate"] == GRU4Rec.training_defaults["learning_rate"]
    with pytest.raises(ConfigError, match="did you mean 'n_sample'"):
        GRU4Rec(n_samples=3)


def test_keys_given_to_fit_override_and_are_recorded():
    model = fit(GRU4Rec(SMALL), LOG, progress=False, n_epochs=2, learning_rate=0.2)
    assert len(model.history_) == 2
    assert model.training_keys["learning_rate"] == 0.2
    with pytest.raises(ConfigError, match="unknown config key 'layers'"):
        fit(GRU4Rec(SMALL), LOG, layers=[4])  # a model key is not a training key


def test_non_neural_models_fit_themselves_and_take_no_training_keys():
    assert fit(Pop(), LOG).n_items_ == 20
    with pytest.raises(ConfigError, match="takes no training keys"):
        fit(Pop(), LOG, n_epochs=2)
    with pytest.raises(ConfigError, match="unknown config key 'n_epochs'"):
        Pop(n_epochs=2)


def test_a_library_fit_leaves_the_process_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(sysmem, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr("seqrec.training.trainer.keep_freed_memory", sysmem.keep_freed_memory)
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    GRU4Rec({**SMALL, "dropout_p_hidden": 0.3}).fit(LOG)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_num_threads() == threads
    assert calls == []
    GRU4Rec({**SMALL, "malloc_tuning": True}).fit(LOG)  # opted in
    assert calls == [1]


def test_same_seed_same_model_whatever_the_global_rng():
    torch.manual_seed(1)
    a = GRU4Rec({**SMALL, "dropout_p_hidden": 0.3, "dropout_p_embed": 0.2}).fit(LOG)
    torch.manual_seed(2)
    b = GRU4Rec({**SMALL, "dropout_p_hidden": 0.3, "dropout_p_embed": 0.2}).fit(LOG)
    assert torch.equal(a.net_.Wy, b.net_.Wy)


def test_the_command_line_opts_neural_models_into_process_tuning():
    assert with_process_tuning(GRU4Rec, {"layers": [8]}) == {**PROCESS_TUNING, "layers": [8]}
    assert with_process_tuning(GRU4Rec, {"threads": 2})["threads"] == 2  # the config wins
    assert with_process_tuning(Pop, {}) == {}
    GRU4Rec(with_process_tuning(GRU4Rec, {}))  # valid keys
