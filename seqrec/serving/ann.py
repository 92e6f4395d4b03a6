"""Approximate top-K over a large catalogue: a faiss inner-product index (optional).

For models whose scores are ``q . w_i + b_i`` (GRU4Rec: ``q`` the last layer's output,
``w_i``/``b_i`` the output item weights and bias), the top-K items are the maximum
inner-product neighbours of ``[q, 1]`` among the vectors ``[w_i, b_i]``. An IVF index
(``IndexIVFFlat``, inner-product metric) visits ``nprobe`` of its ``nlist`` clusters
instead of all items: sub-linear in the catalogue, at some loss of recall.

The runtime uses it when ``ann="faiss"``, or with ``ann="auto"`` (default) when the
catalogue has at least :data:`ANN_MIN_ITEMS` items and ``faiss`` is installed
(``pip install faiss-cpu``); below that, exact scoring is as fast and exact.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from seqrec.errors import ConfigError

# "auto": exact scoring below this many items; above it exact scoring's step + top-20
# passes the 1 ms p99 budget (measured: benchmarks/SERVING.md, "Approximate vs exact
# top-20").
ANN_MIN_ITEMS = 15_000


def _import_faiss() -> Any:
    """``import faiss`` without its loader's INFO lines about the SIMD builds it could
    not load (one per missing build, on every server start)."""
    loader = logging.getLogger("faiss.loader")
    level = loader.level
    loader.setLevel(max(level, logging.WARNING))
    try:
        import faiss
    finally:
        loader.setLevel(level)
    return faiss


def faiss_available() -> bool:
    try:
        _import_faiss()
    except ImportError:
        return False
    return True


class InnerProductIndex:
    """IVF-Flat inner-product index over item vectors ``w`` (n, d) with bias ``b`` (n,).

    ``nlist`` clusters (default ``4 * sqrt(n)``) trained on a sample of at most
    ``train_size`` items; ``nprobe`` clusters searched per query. ``threads`` (faiss'
    OpenMP threads, process-wide) is set after the build, for searching: 1 suits a
    server that batches concurrent requests itself.
    """

    def __init__(
        self,
        w: np.ndarray,
        b: np.ndarray,
        nlist: int | None = None,
        nprobe: int = 32,
        train_size: int = 100_000,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        try:
            faiss = _import_faiss()
        except ImportError:
            raise ConfigError(
                "approximate top-K needs faiss: pip install faiss-cpu (or use exact scoring)"
            ) from None
        n, d = w.shape
        self.n_items = n
        self.nlist = nlist or max(1, min(n // 39, int(4 * math.sqrt(n))))
        vecs = np.empty((n, d + 1), dtype=np.float32)  # [w_i, b_i]
        vecs[:, :d] = w
        vecs[:, d] = b
        quantizer = faiss.IndexFlatIP(d + 1)
        index = faiss.IndexIVFFlat(quantizer, d + 1, self.nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = vecs[rng.choice(n, size=min(n, max(train_size, 39 * self.nlist)), replace=False)]
        index.train(sample)
        index.add(vecs)
        if threads is not None:
            faiss.omp_set_num_threads(threads)
        self._faiss = faiss
        self._quantizer = quantizer  # keep alive: the IVF index refers to it
        self.index = index
        self.nprobe = nprobe

    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.index.nprobe = max(1, min(int(value), self.nlist))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` of ``queries`` (B, d): (scores (B, k), ids (B, k));
        missing results have id -1 and score -inf."""
        q = np.empty((queries.shape[0], queries.shape[1] + 1), dtype=np.float32)
        q[:, :-1] = queries
        q[:, -1] = 1.0
        scores, ids = self.index.search(q, min(k, self.n_items))
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
        return scores, ids.astype(np.int64)
