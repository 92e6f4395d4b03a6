"""Approximate top-K with faiss: exact when every cluster is searched; the runtime's
answers (with options) match exact scoring; "auto" keeps small catalogues exact."""

import numpy as np
import pytest

from seqrec.serving.runtime import Runtime, RuntimeOptions

faiss = pytest.importorskip("faiss", reason="faiss-cpu is not installed (optional)")

from seqrec.serving.ann import InnerProductIndex  # noqa: E402


def test_index_searching_every_cluster_is_exact():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3000, 16), dtype=np.float32)
    b = rng.standard_normal(3000).astype(np.float32)
    q = rng.standard_normal((5, 16), dtype=np.float32)
    index = InnerProductIndex(w, b, nlist=16, nprobe=16)
    vals, ids = index.search(q, 10)
    exact = q @ w.T + b
    np.testing.assert_array_equal(ids, np.argsort(-exact, axis=1)[:, :10])
    np.testing.assert_allclose(vals, np.sort(exact, axis=1)[:, ::-1][:, :10], rtol=1e-5)
    index.nprobe = 1  # fewer clusters: still k valid ids, scores consistent
    vals, ids = index.search(q, 10)
    np.testing.assert_allclose(vals, np.take_along_axis(exact, ids, axis=1), rtol=1e-5)


def test_runtime_with_faiss_matches_exact(model_dirs):
    exact = Runtime(model_dirs["gru4rec"], options=RuntimeOptions(ann="exact"))
    approx = Runtime(model_dirs["gru4rec"], options=RuntimeOptions(ann="faiss"))
    assert approx.model_info()["top_k"].startswith("faiss")
    assert exact.model_info()["top_k"] == "exact"
    for rt in (exact, approx):
        for item in ["a", "c", "e"]:
            rt.add_event("s", item, 5)
    calls = [
        lambda rt: rt.add_event("s", "b", 5),
        lambda rt: rt.session_recommendations("s", 4, exclude_history=True),
        lambda rt: rt.session_recommendations("s", 6, deny=["a", "b"]),
        lambda rt: rt.session_recommendations("s", 3, allow=["a", "d", "f", "j"]),
        lambda rt: rt.recommend_items(["d", "e"], 5),
        lambda rt: rt.add_event("s", "f", 10, exclude_history=True, allow=["a", "b", "g"]),
    ]
    for call in calls:
        a, e = call(approx), call(exact)
        assert a.items == e.items
        np.testing.assert_allclose(a.scores, e.scores, rtol=1e-4, atol=1e-5)


def test_auto_keeps_small_catalogues_exact(model_dirs):
    rt = Runtime(model_dirs["gru4rec"])
    assert rt.model.ann is None and rt.model_info()["top_k"] == "exact"
    rt = Runtime(model_dirs["gru4rec"], options=RuntimeOptions(ann_min_items=5))
    assert rt.model.ann is not None


def test_importing_faiss_prints_no_loader_lines():
    """faiss' loader logs one INFO line per SIMD build it cannot load; a server start
    must not show them (the logger's level is restored afterwards). Fresh interpreter:
    faiss logs only on its first import."""
    import subprocess
    import sys

    pytest.importorskip("faiss")
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from seqrec.serving.ann import _import_faiss; _import_faiss()\n"
        "assert logging.getLogger('faiss.loader').level == logging.NOTSET\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "faiss" not in proc.stderr, proc.stderr
