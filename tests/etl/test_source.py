"""Write the demo world through COPY into a real PostgreSQL and read it back."""

import numpy as np
import pytest
from psycopg import pq

from etl import source
from etl.source import read_tables, read_truth
from etl.write import write_tables
from graphrec.core import db
from tests.etl.helpers import small_world


def test_round_trip(migrated_url):
    tables, truth = small_world()
    with db.connect(migrated_url) as conn:
        write_tables(conn, tables, truth, replace=False)
        back = read_tables(conn)
        truth_back = read_truth(conn)
    assert back.counts() == tables.counts()
    order = np.argsort(tables.goods.id)
    assert np.array_equal(back.goods.id, tables.goods.id[order])
    np.testing.assert_allclose(back.goods.embedding, tables.goods.embedding[order], rtol=0, atol=1e-7)
    assert back.goods.title.tolist() == tables.goods.title[order].tolist()
    # The domain is derived in SQL from the URL and matches the generator's shop or handle.
    assert back.goods.domain.tolist() == tables.goods.domain[order].tolist()
    assert np.array_equal(back.goods.deleted_at, tables.goods.deleted_at[order])
    s = tables.saves
    key = np.lexsort((s.good_id, s.user_id, s.saved_at))
    assert np.array_equal(back.saves.user_id, s.user_id[key])
    assert np.array_equal(back.saves.saved_at, s.saved_at[key])
    assert back.saves.source.tolist() == s.source[key].tolist()
    assert truth_back is not None
    assert np.array_equal(truth_back.good_style["style"], truth.good_style["style"])


def test_replace_empties_first(migrated_url):
    tables, truth = small_world()
    with db.connect(migrated_url) as conn:
        write_tables(conn, tables, truth, replace=False)
        write_tables(conn, tables, truth, replace=True)
        assert read_tables(conn).counts() == tables.counts()


def test_domain_from_url(migrated_url):
    cases = {
        "https://www.Shop-One.com/products/1": "shop-one.com",
        "http://shop.example.co.uk/x?y=1": "shop.example.co.uk",
        "https://www.instagram.com/Some.Handle/": "@some.handle",
        "https://instagram.com/p/Cx123/": "instagram.com",
        "https://user:pw@store.io:8080/a": "store.io",
        "not a url": None,
        "https:///nohost": None,
        "": None,
    }
    with db.connect(migrated_url) as conn:
        for url, want in cases.items():
            got = conn.execute("SELECT graphrec_domain(%s) AS d", (url,)).fetchone()["d"]
            assert got == want, url


@pytest.mark.parametrize("column", ["as_created", "real[]"])
def test_uniform_embeddings_read_as_the_row_by_row_reader_does(migrated_url, monkeypatch, column):
    """The loop-free read of a catalog whose embeddings all share one dimension gives what the row-by-row
    reader gives, for pgvector's binary form and for real[]; one row of another dimension sends the read
    back to the row-by-row reader, which zeroes that row and reports its dimension."""
    tables, truth = small_world()
    with db.connect(migrated_url) as conn:
        write_tables(conn, tables, truth, replace=False)
        if column == "real[]" and db.has_pgvector(conn):
            conn.execute("ALTER TABLE goods ALTER COLUMN embedding TYPE real[] USING embedding::real[]")
        n = len(tables.goods.id)
        fast = source._uniform_embeddings
        took: list[bool] = []

        def spy(*args):
            out = fast(*args)
            took.append(out is not None)
            return out

        monkeypatch.setattr(source, "_uniform_embeddings", spy)
        emb, dims = source._read_embeddings(conn, n)
        monkeypatch.setattr(source, "_uniform_embeddings", lambda *args: None)
        slow_emb, slow_dims = source._read_embeddings(conn, n)
        assert took == [True]
        assert emb.dtype == slow_emb.dtype == np.float32
        assert np.array_equal(emb, slow_emb) and np.array_equal(dims, slow_dims)
        assert np.all(dims == tables.goods.embedding.shape[1])

        odd = int(conn.execute("SELECT id FROM goods ORDER BY id OFFSET 3 LIMIT 1").fetchone()["id"])
        cast = "::vector" if column == "as_created" and db.has_pgvector(conn) else ""
        conn.execute(f"UPDATE goods SET embedding = (embedding::real[])[1:4]::real[]{cast} WHERE id = %s", (odd,))
        monkeypatch.setattr(source, "_uniform_embeddings", spy)
        emb, dims = source._read_embeddings(conn, n)
    assert took == [True, False]
    assert dims[3] == 4 and not emb[3].any()
    assert np.array_equal(np.delete(emb, 3, axis=0), np.delete(slow_emb, 3, axis=0))


@pytest.mark.parametrize("is_vector", [True, False], ids=["vector", "real[]"])
def test_floats_moved_in_place_across_blocks_equal_a_plain_conversion(is_vector):
    # 10,000 rows cross the mover's 4,096-row blocks; each row: field count, length, value header, floats.
    n, dim = 10_000, 3
    vals = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    head = source._values_at(is_vector)
    per = 4 if is_vector else 8
    rows = np.zeros((n, head + per * dim), np.uint8)
    body = rows[:, head:].reshape(n, dim, per)
    body[:, :, -4:] = vals.astype(">f4").view(np.uint8).reshape(n, dim, 4)
    if not is_vector:
        body[:, :, :4] = np.array([4], ">i4").view(np.uint8)
    for shift in (0, 1):  # 1: a buffer not aligned for floats, converted into a new array instead
        buf = bytearray(shift) + bytearray(rows.tobytes())
        mv = memoryview(buf)[shift:]
        view = np.frombuffer(mv, np.uint8).reshape(n, -1)[:, head:]
        out = source._floats_in_place(mv, view, dim, is_vector)
        assert out.dtype == np.float32 and out.shape == (n, dim)
        np.testing.assert_array_equal(out, vals)


def test_tables_are_read_in_one_snapshot_unless_the_caller_has_a_transaction_open(migrated_url, monkeypatch):
    tables, truth = small_world()
    with db.connect(migrated_url) as conn:
        write_tables(conn, tables, truth, replace=False)
        conn.commit()
    seen: list[str] = []
    real = source.copy_int64

    def spy(conn, *args, **kwargs):
        seen.append(conn.execute("SHOW transaction_isolation").fetchone()["transaction_isolation"])
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(source, "copy_int64", spy)
    with db.connect(migrated_url) as conn:
        assert read_tables(conn).counts() == tables.counts()
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE  # the snapshot's transaction ended
        assert set(seen) == {"repeatable read"}
        seen.clear()
        conn.execute("DELETE FROM follows")  # the caller's own transaction, not committed: its reads see it
        back = read_tables(conn)
        assert set(seen) == {"read committed"} and len(back.follows.follower_id) == 0
        conn.rollback()
