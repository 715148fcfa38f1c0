"""The web layer's queries.sql: every block is used by the web code, and every statement takes named parameters."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import serving.web
from serving.web.queries import QUERIES

WEB = Path(serving.web.__file__).parent


def _string_constants() -> set[str]:
    found = set()
    for path in WEB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def test_every_named_query_is_used_by_the_web_code() -> None:
    assert QUERIES and not set(QUERIES) - _string_constants()


def test_statements_take_only_named_parameters() -> None:
    for name, sql in QUERIES.items():
        placeholders = re.findall(r"%(?!%)(\(\w+\))?[a-z]?", sql.replace("%%", ""))
        assert all(p for p in placeholders), f"{name} has a positional placeholder"
