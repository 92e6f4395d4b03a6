"""The serving runtime: answers match the model, options, bad input, reload."""

import threading

import numpy as np
import pytest

from seqrec.models import load_model
from seqrec.serving.coalesce import Batcher, Job
from seqrec.serving.runtime import RequestError, Runtime, RuntimeOptions
from seqrec.serving.stores import MemoryStore

from .conftest import CORRUPTIONS, corrupt_copy

CLICKS = ["a", "c", "e", "c"]


def expected(model_dir, history, k=5, **kw):
    """(items, scores) of the model's own recommend() for an external-id history."""
    model = load_model(model_dir)
    ids, scores = model.recommend([model.item_index_.encode(history)], k, **kw)
    keep = ids[0] >= 0
    return model.item_index_.decode(ids[0][keep]), scores[0][keep]


@pytest.fixture(params=["gru4rec", "session-pop", "pop"])
def name(request):
    return request.param


@pytest.fixture
def rt(model_dirs, name):
    return Runtime(model_dirs[name])


def test_events_match_the_models_recommend(rt, model_dirs, name):
    for i, item in enumerate(CLICKS, 1):
        rec = rt.add_event("s", item, 5)
        items, scores = expected(model_dirs[name], CLICKS[:i])
        assert rec.session_length == i
        assert rec.items == items
        np.testing.assert_allclose(rec.scores, scores, rtol=1e-4, atol=1e-5)
    again = rt.session_recommendations("s", 5)
    assert again.items == items and again.session_length == len(CLICKS)
    stateless = rt.recommend_items(CLICKS, 5)
    assert stateless.items == items and stateless.session_length is None


def test_exclude_allow_deny(rt, model_dirs, name):
    for item in CLICKS:
        rt.add_event("s", item, 3)
    rec = rt.session_recommendations("s", 10, exclude_history=True)
    assert not set(rec.items) & set(CLICKS)
    assert rec.items == expected(model_dirs[name], CLICKS, 10, exclude_history=True)[0]
    rec = rt.session_recommendations("s", 10, allow=["b", "d", "nope"])
    assert sorted(rec.items) == ["b", "d"] and rec.unknown_filter_items == ["nope"]
    rec = rt.add_event("s", "a", 10, deny=["a", "b"])
    assert "a" not in rec.items and "b" not in rec.items and len(rec.items) == 8
    rec = rt.recommend_items(["a"], 10, exclude_history=True, allow=["a", "b"])
    assert rec.items == ["b"]


def test_unknown_items_are_reported_and_ignored(rt):
    rt.add_event("s", "a", 3)
    rec = rt.add_event("s", "zzz", 3)
    assert rec.unknown_items == ["zzz"] and rec.session_length == 1
    assert rec.items == rt.session_recommendations("s", 3).items
    rec = rt.recommend_items(["a", "zzz", "qq"], 3)
    assert rec.unknown_items == ["zzz", "qq"]
    assert rec.items == rt.recommend_items(["a"], 3).items


def test_strict_mode_rejects_unknown_items(model_dirs):
    rt = Runtime(model_dirs["gru4rec"], options=RuntimeOptions(strict=True))
    with pytest.raises(RequestError, match="'zzz'") as e:
        rt.add_event("s", "zzz")
    assert e.value.code == "unknown_item" and e.value.status == 422
    with pytest.raises(RequestError, match="allow"):
        rt.recommend_items(["a"], allow=["nope"])
    assert rt.session("s") is None  # nothing was stored
    # per-request override of the server default
    assert rt.add_event("s", "zzz", strict=False).unknown_items == ["zzz"]


@pytest.mark.parametrize(
    "call, code",
    [
        (lambda rt: rt.add_event("s", "a", 0), "invalid_k"),
        (lambda rt: rt.add_event("s", "a", -3), "invalid_k"),
        (lambda rt: rt.add_event("s", "a", 51), "k_too_large"),
        (lambda rt: rt.session_recommendations("s", True), "invalid_k"),
        (lambda rt: rt.add_event("x" * 17, "a"), "session_id_too_long"),
        (lambda rt: rt.add_event("", "a"), "invalid_session_id"),
        (lambda rt: rt.recommend_items(["a"] * 9), "too_many_items"),
        (lambda rt: rt.recommend_items(["a"], deny=["b"] * 21), "too_many_items"),
        (lambda rt: rt.add_event("s", "i" * 300), "item_id_too_long"),
    ],
)
def test_limits(model_dirs, call, code):
    limits = {"max_k": 50, "max_items": 8, "max_filter_items": 20, "max_session_id": 16}
    rt = Runtime(model_dirs["gru4rec"], options=RuntimeOptions(**limits))
    with pytest.raises(RequestError) as e:
        call(rt)
    assert e.value.code == code
    assert 400 <= e.value.status < 500


def test_k_above_catalogue_returns_every_item(rt):
    rec = rt.add_event("s", "a", 50)
    assert sorted(rec.items) == list("abcdefghij")


def test_forget(rt):
    rt.add_event("s", "a")
    assert rt.forget("s") is True
    assert rt.forget("s") is False
    assert rt.session_recommendations("s").session_length == 0
    assert rt.add_event("s", "b").session_length == 1


def test_history_is_capped_but_recurrent_state_is_not(model_dirs):
    rt = Runtime(model_dirs["gru4rec"], options=RuntimeOptions(max_history=3))
    clicks = ["a", "b", "c", "d", "e"]
    for item in clicks:
        rec = rt.add_event("s", item, 5)
    view = rt.session("s")
    assert view.n_events == 5 and view.history == ["c", "d", "e"]
    assert rec.items == expected(model_dirs["gru4rec"], clicks)[0]  # state saw all 5
    # exclusion covers the remembered clicks
    assert not {"c", "d", "e"} & set(rt.session_recommendations("s", 7, exclude_history=True).items)


def test_recurrent_state_equals_the_models_step(model_dirs):
    rt = Runtime(model_dirs["gru4rec"])
    for item in CLICKS:
        rt.add_event("s", item)
    model = load_model(model_dirs["gru4rec"])
    state = model.init_state(1)
    for d in model.item_index_.encode(CLICKS):
        state, _ = model.step(state, [int(d)])
    np.testing.assert_allclose(rt.session("s").hidden, state.reshape(-1).numpy(), atol=1e-6)
    assert len(rt.store.get("s")) == 28 + 4 * len(CLICKS) + 4 * 8  # header, history, state


def test_generic_recurrent_model_path(model_dirs, monkeypatch):
    """A recurrent model without GRU4Rec's fast paths: model.step per click, top-K of
    a stored session by rescoring its history, reload replays step by step."""
    serve_gru4rec_as(monkeypatch, scores_from_state=None)  # no read-out at all
    rt = Runtime(model_dirs["session-pop"])
    for item in CLICKS:
        rt.add_event("s", item)
    rt.reload(model_dirs["gru4rec"])
    assert rt.model.adapters.readout is None and rt.model.adapters.advance is None
    rec = rt.session_recommendations("s", 5)  # replayed, then rescored from history
    assert rec.items == expected(model_dirs["gru4rec"], CLICKS)[0]
    rec = rt.add_event("s", "b", 5)
    assert rec.items == expected(model_dirs["gru4rec"], [*CLICKS, "b"])[0]


def test_unreadable_state_restarts_the_session(model_dirs):
    store = MemoryStore()
    rt = Runtime(model_dirs["gru4rec"], store)
    store.update("s", lambda old: (b"garbage", None))
    rec = rt.add_event("s", "a")
    assert rec.restarted is True and rec.session_length == 1


# ----------------------------------------------------------------------- reload
def test_reload_same_catalogue_migrates_sessions(model_dirs):
    rt = Runtime(model_dirs["gru4rec"])
    for item in CLICKS:
        rt.add_event("s", item)
    old_version = rt.model.version
    info = rt.reload(model_dirs["gru4rec-b"])
    assert info["version"] != old_version and rt.reloads == 1
    rec = rt.session_recommendations("s", 5)  # history replayed through the new model
    assert rec.restarted is False and rec.session_length == len(CLICKS)
    assert rec.items == expected(model_dirs["gru4rec-b"], CLICKS)[0]
    rec = rt.add_event("s", "b", 5)
    assert rec.items == expected(model_dirs["gru4rec-b"], [*CLICKS, "b"])[0]
    assert rec.model_version == info["version"]


def test_reload_other_catalogue_restarts_sessions(model_dirs):
    rt = Runtime(model_dirs["gru4rec"])
    rt.add_event("s", "a")
    rt.reload(model_dirs["gru4rec-other"])
    rec = rt.session_recommendations("s", 3)
    assert rec.restarted is True and rec.session_length == 0
    rec = rt.add_event("s", "xa", 3)
    assert rec.restarted is True and rec.session_length == 1
    assert rt.add_event("s", "xb").restarted is False


def test_reload_session_pop_to_gru4rec_keeps_history(model_dirs):
    rt = Runtime(model_dirs["session-pop"])
    for item in CLICKS:
        rt.add_event("s", item)
    rt.reload(model_dirs["gru4rec"])
    rec = rt.session_recommendations("s", 5)
    assert rec.items == expected(model_dirs["gru4rec"], CLICKS)[0]


def test_failed_reload_keeps_the_current_model(model_dirs, tmp_path):
    from seqrec.errors import ModelFileError

    rt = Runtime(model_dirs["gru4rec"])
    version = rt.model.version
    with pytest.raises(ModelFileError):
        rt.reload(tmp_path / "missing")
    assert rt.model.version == version
    assert rt.add_event("s", "a").model_version == version


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_any_load_failure_is_a_model_file_error(model_dirs, tmp_path, case):
    """Whatever a corrupt file makes the loader raise (AttributeError, ValueError,
    UnicodeDecodeError, ...), loading and reloading fail with one ModelFileError line
    and the current model keeps serving."""
    from seqrec.errors import ModelFileError

    bad = corrupt_copy(model_dirs["gru4rec"], tmp_path / "bad", case)
    with pytest.raises(ModelFileError) as info:
        Runtime(bad)
    assert "\n" not in str(info.value) and "bad" in str(info.value)
    rt = Runtime(model_dirs["gru4rec"])
    version = rt.model.version
    with pytest.raises(ModelFileError):
        rt.reload(bad)
    assert rt.model.version == version and rt.add_event("s", "a").model_version == version


@pytest.mark.parametrize("bad", [True, False, 1.5, None, ["a"]])
def test_item_ids_are_strings_or_integers(rt, bad):
    with pytest.raises(RequestError) as info:
        rt.recommend_items(["a", bad])
    assert info.value.code == "invalid_request" and info.value.status == 422
    with pytest.raises(RequestError, match="item ids are strings or integers"):
        rt.add_event("s", bad)
    with pytest.raises(RequestError, match="allow"):
        rt.session_recommendations("s", allow=["a", bad])
    assert rt.recommend_items([3, "a"]).unknown_items == ["3"]  # an integer id is its text


def test_model_info_names_the_directory_not_its_path(rt, model_dirs, name):
    info = rt.model_info()
    assert info["directory"] == model_dirs[name].name
    assert str(model_dirs[name].parent) not in repr(info)


class GatedStore(MemoryStore):
    """Blocks reads of session 'slow' until released (to hold a request in flight)."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def get(self, session_id):
        if session_id == "slow":
            self.entered.set()
            assert self.release.wait(10)
        return super().get(session_id)


def test_requests_in_flight_finish_on_the_old_model(model_dirs):
    store = GatedStore()
    rt = Runtime(model_dirs["gru4rec"], store)
    old = rt.model.version
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("rec", rt.add_event("slow", "a")))
    t.start()
    assert store.entered.wait(10)
    rt.reload(model_dirs["gru4rec-b"])  # while the request is in flight
    store.release.set()
    t.join(10)
    assert out["rec"].model_version == old
    assert rt.add_event("other", "a").model_version == rt.model.version != old
    # the session written by the old model migrates on its next event
    rec = rt.add_event("slow", "b", 5)
    assert rec.session_length == 2 and rec.restarted is False
    assert rec.items == expected(model_dirs["gru4rec-b"], ["a", "b"])[0]


# ----------------------------------------------------------------------- batching
def test_batcher_coalesces_waiting_jobs():
    gate = threading.Event()
    sizes = []

    def compute(jobs):
        sizes.append(len(jobs))
        if len(sizes) == 1:
            assert gate.wait(10)
        for j in jobs:
            j.result = j.x * 2

    b = Batcher(compute, max_batch=3)
    jobs = [Job() for _ in range(6)]
    for i, j in enumerate(jobs):
        j.x = i
    threads = [threading.Thread(target=b.run, args=(j,)) for j in jobs]
    threads[0].start()
    while not sizes:  # the first job is being computed (and held)
        threading.Event().wait(0.001)
    for t in threads[1:]:
        t.start()
    while True:  # wait until the other five are queued behind it
        with b._cv:
            if len(b._queue) == 5:
                break
        threading.Event().wait(0.001)
    gate.set()
    for t in threads:
        t.join(10)
    assert sizes == [1, 3, 2]
    assert [j.result for j in jobs] == [0, 2, 4, 6, 8, 10]


def test_batcher_reports_errors_to_every_job_of_the_batch():
    def compute(jobs):
        raise ValueError("boom")

    b = Batcher(compute)
    with pytest.raises(ValueError, match="boom"):
        b.run(Job())
    b2 = Batcher(lambda jobs: None)
    assert b2.run(Job()).done  # the batcher is usable after a failure elsewhere


def serve_gru4rec_as(monkeypatch, **blocked):
    """Make the runtime load GRU4Rec directories as a subclass whose ``blocked``
    methods are None (a fresh class: protocol checks are cached per class)."""
    import seqrec.models
    from seqrec.models.gru4rec import GRU4Rec

    cls = type("PartialGRU4Rec", (GRU4Rec,), dict(blocked))
    load = seqrec.models.load_model

    def load_model(path, device=None):
        model = load(path, device=device)
        return cls.load(path, device=device) if isinstance(model, GRU4Rec) else model

    monkeypatch.setattr(seqrec.models, "load_model", load_model)


def test_fast_paths_are_chosen_by_protocol(model_dirs, monkeypatch):
    """Serving checks capabilities with isinstance against models.base's protocols
    (no probing by name): GRU4Rec declares all fast paths; a model without
    ``advance`` keeps its state read-out but no batched replay or ANN."""
    from seqrec.models.base import LinearReadout, StateAdvancer, StateReadout

    g4r = load_model(model_dirs["gru4rec"])
    assert isinstance(g4r, LinearReadout) and isinstance(g4r, StateAdvancer)
    assert not isinstance(load_model(model_dirs["pop"]), StateReadout)
    ad = Runtime(model_dirs["gru4rec"]).model.adapters
    assert ad.advance is not None and ad.item_table is not None and ad.readout is not None
    serve_gru4rec_as(monkeypatch, advance=None)
    rt = Runtime(model_dirs["gru4rec"])
    ad = rt.model.adapters
    assert ad.readout is not None and ad.advance is None and ad.item_table is None
    for item in CLICKS:
        rt.add_event("s", item)
    rec = rt.session_recommendations("s", 5)  # read from the state, not rescored
    assert rec.items == expected(model_dirs["gru4rec"], CLICKS)[0]
