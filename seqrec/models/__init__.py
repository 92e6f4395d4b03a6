"""Models: ``base`` (the API and capability protocols), ``registry`` (name -> class)
and one module per model.

Importing this package loads no model module: ``get_model_class`` and ``load_model``
import the registry when called, and ``MODELS`` / ``Recommender`` are resolved on first
access, so ``from seqrec.models import load_model`` stays cheap for evaluation and
serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def get_model_class(name: str) -> Any:
    from seqrec.models.registry import get_model_class as get

    return get(name)


def load_model(path: str | Path, device: str | None = None) -> Any:
    """Load any seqrec model directory (see :func:`seqrec.models.registry.load_model`)."""
    from seqrec.models.registry import load_model as load

    return load(path, device=device)


def __getattr__(name: str) -> Any:
    if name == "MODELS":
        from seqrec.models.registry import MODELS

        return MODELS
    if name == "Recommender":
        from seqrec.models.base import Recommender

        return Recommender
    raise AttributeError(f"module 'seqrec.models' has no attribute {name!r}")


__all__ = ["MODELS", "Recommender", "get_model_class", "load_model"]
