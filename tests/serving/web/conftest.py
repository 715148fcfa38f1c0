"""Fixtures of the web tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from seeded_app import Seeded, seed


@pytest.fixture
def seeded(migrated_url: str, artifacts: Path) -> Seeded:
    """The app of seeded_app.seed() in a fresh migrated database."""
    return seed(migrated_url, artifacts)
