"""Shared test helpers: where the third-party corpora live, and how to skip without them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"


def corpus_path(*parts: str) -> Path:
    """Path into ../shared/corpora; skip (or fail under VIGIE_REQUIRE_CORPORA=1) if absent."""
    path = CORPORA.joinpath(*parts)
    if not path.exists():
        reason = f"corpus not found: {path} (../shared/corpora is not checked out here)"
        if os.environ.get("VIGIE_REQUIRE_CORPORA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path
