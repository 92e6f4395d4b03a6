"""User ids at scoring time: evaluation passes a ``uses_users`` model the user id of every
query, in query order, batch by batch (leave-one-out samples of user histories keep
them); any other model is called exactly as before."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from seqrec.data.loading import load_test_data, load_training_data
from seqrec.data.preprocess import leave_one_out
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.evaluation import evaluate


class Recorder:
    """Scores item (last item + 1) highest; records every call."""

    n_items_ = 10

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[str] | None]] = []

    def _scores(self, histories) -> torch.Tensor:
        s = torch.zeros(len(histories), self.n_items_)
        for b, h in enumerate(histories):
            if len(h):
                s[b, (int(h[-1]) + 1) % self.n_items_] = 1.0
        return s


class UserStub(Recorder):
    uses_users = True

    def score(self, histories, users=None) -> torch.Tensor:
        self.calls.append((len(histories), None if users is None else list(users)))
        return self._scores(histories)


class PlainStub(Recorder):
    def score(self, histories) -> torch.Tensor:  # no users parameter: a call with one fails
        self.calls.append((len(histories), None))
        return self._scores(histories)


def _histories() -> SessionLog:
    log = SessionLog.from_sequences([[1, 2, 3, 4], [5, 6], [7, 8, 9], [0, 1, 2, 3, 4]])
    return dataclasses.replace(log, session_ids=np.array(["ann", "bob", "cy", "dee"], dtype=object))


def test_leave_one_out_samples_keep_the_user_ids():
    train, valid, test, _ = leave_one_out(_histories())
    assert list(train.session_ids) == ["ann", "bob", "cy", "dee"]  # every history trains
    assert list(test.prefixes.session_ids) == ["ann", "cy", "dee"]  # bob is too short
    assert list(valid.prefixes.session_ids) == ["ann", "cy", "dee"]
    assert test.prefixes.to_sequences()[2].tolist() == [0, 1, 2, 3]


def test_last_item_passes_the_ids_in_query_order_batch_by_batch():
    _, _, test, _ = leave_one_out(_histories())
    model = UserStub()
    res = evaluate(model, test, protocol="last-item", ks=(1,), batch_size=2)
    assert model.calls == [(2, ["ann", "cy"]), (1, ["dee"])]
    assert res["n_queries"] == 3 and res["recall@1"] == 1.0  # 3 -> 4, 8 -> 9, 3 -> 4


def test_unknown_labels_drop_their_ids_with_them():
    test = Samples(
        dataclasses.replace(
            SessionLog.from_sequences([[1], [2], [3]]),
            session_ids=np.array(["a", "b", "c"], dtype=object),
        ),
        np.array([2, -1, 4]),
    )
    model = UserStub()
    evaluate(model, test, protocol="samples", ks=(1,))
    assert model.calls == [(2, ["a", "c"])]


def test_next_item_passes_each_querys_session_id():
    log = _histories()
    model = UserStub()
    evaluate(model, log, protocol="next-item", ks=(1,), batch_size=4)
    per_query = ["ann"] * 3 + ["bob"] + ["cy"] * 2 + ["dee"] * 4
    assert model.calls == [(4, per_query[:4]), (4, per_query[4:8]), (2, per_query[8:])]
    samples = UserStub()  # the samples of every position keep their session's id
    evaluate(samples, Samples.from_sessions(log), protocol="samples", ks=(1,), batch_size=10)
    assert samples.calls == [(10, per_query)]


def test_data_without_ids_gives_users_none_and_other_models_are_unchanged():
    log = SessionLog.from_sequences([[1, 2, 3], [4, 5]])
    model = UserStub()
    evaluate(model, log, protocol="next-item", ks=(1,))
    assert model.calls == [(3, None)]
    plain = PlainStub()
    for data, protocol in (
        (_histories(), "next-item"),
        (leave_one_out(_histories())[2], "last-item"),
    ):
        res = evaluate(plain, data, protocol=protocol, ks=(1,))
        assert res["recall@1"] == 1.0
    assert [n for n, _ in plain.calls] == [10, 3]


def test_a_user_history_file_gives_test_samples_with_user_ids(tmp_path):
    f = tmp_path / "Tiny.txt"  # S3-Rec format: user, then the user's items in order
    f.write_text("1 10 11 12 13\n2 20 21\n3 30 31 32\n")
    data = load_training_data(f)
    assert data.format == "s3rec" and list(data.train.session_ids) == ["1", "2", "3"]
    assert list(data.valid.prefixes.session_ids) == ["1", "3"]
    test, _ = load_test_data(f, "auto", data.item_index, "last-item")
    assert list(test.prefixes.session_ids) == ["1", "3"]
