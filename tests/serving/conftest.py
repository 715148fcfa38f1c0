"""Fixtures of the serving tests."""

from __future__ import annotations

import pytest
from world import World, build_world


@pytest.fixture
def world(migrated_url: str) -> World:
    """The planted world of world.py in a fresh migrated database."""
    return build_world(migrated_url)
