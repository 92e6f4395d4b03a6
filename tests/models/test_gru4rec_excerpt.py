"""Every GRU4Rec option trains for one epoch on the shipped real excerpt (issue 4) and
gives finite metrics on its test file."""

import math

import pytest

from seqrec.data.loading import load_test_data, load_training_data
from seqrec.evaluation import evaluate
from seqrec.models.gru4rec import GRU4Rec
from tests.models.test_gru4rec import OPTIONS

BASE = {"layers": [16], "batch_size": 32, "n_sample": 64, "sample_cache": 5000, "n_epochs": 1}


@pytest.fixture(scope="module")
def excerpt_data(excerpt):
    train = load_training_data(excerpt / "train.tsv")
    test, _ = load_test_data(excerpt / "test.tsv", "auto", train.item_index, "next-item")
    return train, test


@pytest.mark.parametrize("cfg", OPTIONS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_every_option_trains_one_epoch_on_the_excerpt(excerpt_data, cfg):
    train, test = excerpt_data
    model = GRU4Rec({**BASE, **cfg}).fit(train.train, item_index=train.item_index)
    assert len(model.history_) == 1 and math.isfinite(model.history_[0].loss)
    res = evaluate(model, test, protocol="next-item", ks=(20,))
    assert res["n_queries"] > 500
    assert 0.0 <= res["recall@20"] <= 1.0 and math.isfinite(res["mrr@20"])
