"""Each kind of bad input, fed through a real database, is found, counted and named (or is fatal)."""

from __future__ import annotations

import math

import numpy as np
import psycopg
import pytest

from etl.source import read_tables
from etl.validate import InputError, clean_tables
from etl.write import write_tables
from graphrec.core import db
from tests.etl.helpers import SMALL, small_world

DIM = SMALL.dim


def _loaded(url: str) -> None:
    tables, truth = small_world()
    with db.connect(url) as conn:
        write_tables(conn, tables, truth, replace=False)


def _vec(values: list[float]) -> str:
    return (
        "{"
        + ",".join("NaN" if math.isnan(v) else ("Infinity" if math.isinf(v) else repr(float(v))) for v in values)
        + "}"
    )


def _insert_good(
    conn, good_id: int, embedding: list[float] | None, title: str = "ok", url: str = "https://a.com/x"
) -> None:
    conn.execute(
        "INSERT INTO goods (id, title, url, created_at) VALUES (%(id)s, %(t)s, %(u)s, now() - interval '1 day')",
        {"id": good_id, "t": title, "u": url},
    )
    if embedding is not None:
        # Through real[], cast to the column's type, so the same SQL works with pgvector and without.
        vec_type = conn.execute(
            "SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute "
            "WHERE attrelid = 'goods'::regclass AND attname = 'embedding'"
        ).fetchone()["t"]
        conn.execute(
            f"UPDATE goods SET embedding = %(e)s::real[]::{vec_type} WHERE id = %(id)s",
            {"e": _vec(embedding), "id": good_id},
        )


def _findings(url: str, strict: bool = False) -> dict[str, object]:
    with db.connect(url) as conn:
        tables = read_tables(conn)
    _, findings = clean_tables(tables, DIM, strict=strict)
    return {f"{f.table}.{f.kind}": f for f in findings}


def test_clean_data_has_no_findings(migrated_url):
    _loaded(migrated_url)
    assert _findings(migrated_url) == {}


def test_embedding_problems(migrated_url):
    _loaded(migrated_url)
    good = list(np.ones(DIM) / math.sqrt(DIM))
    with db.connect(migrated_url) as conn:
        _insert_good(conn, 10_001, good[:-3])  # wrong dimension
        _insert_good(conn, 10_002, [0.0] * DIM)  # all zero
        _insert_good(conn, 10_003, None)  # missing
        conn.commit()
        nan_stored = True
        try:
            with conn.transaction():
                _insert_good(conn, 10_004, [math.nan] + good[1:])
                _insert_good(conn, 10_005, [math.inf] + good[1:])
        except psycopg.errors.DataException:
            nan_stored = False  # pgvector refuses NaN and Inf itself: the database already guards this
        conn.commit()
    found = _findings(migrated_url)
    assert found["goods.wrong_dimension_embedding"].count == 1
    assert "id=10001" in found["goods.wrong_dimension_embedding"].examples
    assert found["goods.all_zero_embedding"].examples == ["id=10002"]
    assert found["goods.missing_embedding"].examples == ["id=10003"]
    if nan_stored:
        assert found["goods.nan_or_inf_embedding"].count == 2
    else:
        assert "goods.nan_or_inf_embedding" not in found


def test_reference_and_duplicate_problems(migrated_url):
    _loaded(migrated_url)
    with db.connect(migrated_url) as conn:
        first = conn.execute("SELECT user_id, good_id, saved_at FROM saves ORDER BY saved_at LIMIT 1").fetchone()
        conn.execute(
            "INSERT INTO saves (user_id, good_id, saved_at) VALUES (%(u)s, %(g)s, %(t)s + interval '1 hour')",
            {"u": first["user_id"], "g": first["good_id"], "t": first["saved_at"]},
        )
        conn.execute("INSERT INTO saves (user_id, good_id, saved_at) VALUES (999999, 1, now())")
        conn.execute("INSERT INTO saves (user_id, good_id, saved_at) VALUES (1, 888888, now())")
        conn.execute("UPDATE goods SET deleted_at = now() - interval '10 days' WHERE id = 5")
        conn.execute("INSERT INTO saves (user_id, good_id, saved_at) VALUES (2, 5, now() - interval '1 day')")
        conn.execute("INSERT INTO collection_goods (collection_id, good_id) VALUES (777777, 1)")
        conn.execute("INSERT INTO collections (id, owner_id, title) VALUES (666666, 555555, 'orphan')")
        conn.execute("INSERT INTO follows (follower_id, followee_id) VALUES (1, 1), (1, 444444)")
        conn.commit()
    found = _findings(migrated_url)
    assert found["saves.duplicate_save"].examples == [f"user_id={first['user_id']},good_id={first['good_id']}"]
    assert found["saves.save_of_missing_user"].examples == ["user_id=999999,good_id=1"]
    assert found["saves.save_of_missing_good"].examples == ["user_id=1,good_id=888888"]
    assert "user_id=2,good_id=5" in found["saves.save_after_good_deleted"].examples
    assert found["collection_goods.missing_collection"].count == 1
    assert found["collections.missing_owner"].examples == ["id=666666"]
    assert found["follows.self_follow"].count == 1
    assert found["follows.follow_of_missing_user"].count == 1


def test_url_and_title_problems_are_kept_and_flagged(migrated_url):
    _loaded(migrated_url)
    emb = list(np.ones(DIM) / math.sqrt(DIM))
    with db.connect(migrated_url) as conn:
        _insert_good(conn, 20_001, emb, url="not a url")
        _insert_good(conn, 20_002, emb, title="<script>alert(1)</script>")
        _insert_good(conn, 20_003, emb, title="bell\x07 title")
        conn.commit()
    found = _findings(migrated_url)
    assert found["goods.unparseable_url"].examples == ["id=20001"]
    assert found["goods.title_with_markup"].examples == ["id=20002"]
    assert found["goods.title_with_control_characters"].examples == ["id=20003"]
    with db.connect(migrated_url) as conn:
        cleaned, _ = clean_tables(read_tables(conn), DIM)
    assert {20_001, 20_002, 20_003} <= set(cleaned.goods.id.tolist())


def test_strict_makes_any_finding_fatal(migrated_url):
    _loaded(migrated_url)
    with db.connect(migrated_url) as conn:
        conn.execute("INSERT INTO saves (user_id, good_id, saved_at) VALUES (999999, 1, now())")
        conn.commit()
    with pytest.raises(InputError, match=r"saves: 1 save of missing user .*user_id=999999,good_id=1"):
        _findings(migrated_url, strict=True)


def test_no_goods_is_fatal(migrated_url):
    with db.connect(migrated_url) as conn:
        conn.execute("INSERT INTO users (id) VALUES (1)")
        conn.commit()
        tables = read_tables(conn)
    with pytest.raises(InputError, match="goods: the table is empty"):
        clean_tables(tables, DIM)


def test_mixed_dimensions_are_fatal(migrated_url):
    _loaded(migrated_url)
    with db.connect(migrated_url) as conn:
        # A tenth of the catalog re-embedded with another model: not a few bad rows but a mixed catalog.
        conn.execute(
            "UPDATE goods SET embedding = (embedding::real[])[1:8]::real[]"
            + ("::vector" if db.has_pgvector(conn) else "")
            + " WHERE id % 10 = 0"
        )
        conn.commit()
        tables = read_tables(conn)
    with pytest.raises(
        InputError,
        match=r"goods.embedding: mixed embedding dimensions \(8-d: 90 rows, 16-d: 810 rows\).*goods id=10",
    ):
        clean_tables(tables, DIM)
