"""The named-block SQL loader: names, bodies, and errors that say where a file is wrong."""

from __future__ import annotations

import pytest

from graphrec.core.sql import load_queries, parse_queries

TEXT = """-- Queries for a test.

-- name: first
-- What the first one does.
SELECT 1 AS one
FROM t WHERE id = %(id)s;

-- name: second
SELECT '%%' || %(q)s;
"""


def test_blocks_in_file_order_with_comments_kept_and_semicolon_dropped() -> None:
    queries = parse_queries(TEXT)
    assert list(queries) == ["first", "second"]
    assert queries["first"] == "-- What the first one does.\nSELECT 1 AS one\nFROM t WHERE id = %(id)s"
    assert queries["second"] == "SELECT '%%' || %(q)s"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n", "x.sql:3: query 'a' is defined twice"),
        ("-- name: a\n-- only a comment\n\n-- name: b\nSELECT 2\n", "x.sql:1: query 'a' has no SQL"),
        ("SELECT 0;\n-- name: a\nSELECT 1\n", "x.sql:1: SQL before the first '-- name:' line"),
        ("-- name: Bad-Name\nSELECT 1\n", "x.sql:1: query name 'Bad-Name' is not a lower-case identifier"),
        ("-- name:\nSELECT 1\n", "x.sql:1: query name '' is not a lower-case identifier"),
    ],
)
def test_malformed_files_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(") + "$"):
        parse_queries(text, "x.sql")


def test_load_reads_a_package_file_once_and_returns_fresh_dicts(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "sqlpkg_for_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "q.sql").write_text("-- name: one\nSELECT 1;\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = load_queries("sqlpkg_for_test", "q.sql")
    assert first == {"one": "SELECT 1"}
    first["one"] = "changed"
    (pkg / "q.sql").write_text("-- name: two\nSELECT 2;\n")
    assert load_queries("sqlpkg_for_test", "q.sql") == {"one": "SELECT 1"}
    with pytest.raises(FileNotFoundError):
        load_queries("sqlpkg_for_test", "missing.sql")
