"""Shared pytest fixtures (keep generic: other test packages may add their own)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXCERPT = REPO / "data" / "excerpt"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark datasets next to the repo (../shared/data); skips if absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data not available: {SHARED_DATA} does not exist")
    return SHARED_DATA


@pytest.fixture(scope="session")
def excerpt() -> Path:
    """The small real excerpt shipped in the repo (data/excerpt)."""
    if not (EXCERPT / "train.tsv").is_file():
        pytest.skip(f"data excerpt not available: {EXCERPT}/train.tsv does not exist")
    return EXCERPT


@pytest.fixture
def write(tmp_path: Path):
    """``write(name, text)`` writes a literal fixture file under tmp_path, returns its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write
