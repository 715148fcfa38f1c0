"""The COPY helpers: the binary stream's header check, the int64 reader's layout checks, and both writers'
round trips through a real PostgreSQL."""

from __future__ import annotations

import struct

import numpy as np
import psycopg
import pytest

from graphrec.core import db
from graphrec.core.copy import HEADER, SIGNATURE, TRAILER, body_start, copy_binary, copy_int64, copy_out, copy_rows


def _stream(rows: bytes = b"", extension: bytes = b"", flags: int = 0) -> bytes:
    return SIGNATURE + struct.pack("!ii", flags, len(extension)) + extension + rows + TRAILER


def test_body_starts_after_the_header_and_its_extension_area() -> None:
    assert body_start(_stream(), "q") == len(HEADER) == 19
    assert body_start(_stream(b"row", extension=b"1234567"), "q") == 26


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"COPY" + _stream()[4:], "no PGCOPY signature"),
        (_stream(flags=1 << 16), "with OIDs"),
        (_stream()[:-2], "truncated"),
        (SIGNATURE + struct.pack("!ii", 0, 50) + TRAILER, "truncated"),
    ],
)
def test_a_bad_stream_names_its_query(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=f"{why}.* from: SELECT 1"):
        body_start(data, "SELECT 1")


def test_copy_int64_reads_columns_and_refuses_other_layouts(db_url: str) -> None:
    with db.connect(db_url) as conn:
        a, b = copy_int64(conn, "SELECT g::bigint, -g * 10000000000 FROM generate_series(1, 5) g ORDER BY g", 2)
        assert a.dtype == np.int64 and a.tolist() == [1, 2, 3, 4, 5]
        assert b.tolist() == [-g * 10_000_000_000 for g in range(1, 6)]
        (x,) = copy_int64(conn, "SELECT g::bigint FROM generate_series(1, %(n)s) g", 1, {"n": 0})
        assert x.shape == (0,)
        with pytest.raises(ValueError, match="expected 1 bigint NOT NULL columns per row from: SELECT 1::int"):
            copy_int64(conn, "SELECT 1::int", 1)
        with pytest.raises(ValueError, match="expected 2 bigint NOT NULL columns"):
            copy_int64(conn, "SELECT 1::bigint, NULL::bigint UNION ALL SELECT 2, 3", 2)
        with pytest.raises(ValueError, match="expected 3 bigint"):
            copy_int64(conn, "SELECT 1::bigint, 2::bigint", 3)


def test_copy_out_reads_every_row_and_raises_an_error_that_ends_the_stream(db_url: str) -> None:
    """copy_out takes rows from libpq itself: a stream of many network reads arrives whole and in order, the
    connection is left in its transaction for the next statement, and an error raised by the server after
    some rows is raised as psycopg's own error (the connection recovers with a rollback)."""
    n = 300_000
    with db.connect(db_url) as conn:
        (got,) = copy_int64(conn, "SELECT g::bigint FROM generate_series(1, %(n)s) g ORDER BY g", 1, {"n": n})
        assert np.array_equal(got, np.arange(1, n + 1))
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute("SELECT 7 AS x").fetchone() == {"x": 7}
        with pytest.raises(psycopg.errors.DivisionByZero):
            copy_out(
                conn,
                "SELECT CASE WHEN g = %(at)s THEN 1 / 0 ELSE g END FROM generate_series(1, %(n)s) g",
                {"at": n // 2, "n": n},
            )
        conn.rollback()
        assert conn.execute("SELECT 8 AS x").fetchone() == {"x": 8}
        data, start = copy_out(conn, "SELECT 1 WHERE false")
        assert len(data) - start == len(TRAILER)


@pytest.mark.parametrize("types", [None, ("int8", "text", "bool", "float4", "text")])
def test_copy_rows_round_trips_what_needs_escaping(db_url: str, types: tuple[str, ...] | None) -> None:
    values = [
        [1, 2, 3, 4],
        ["tab\there", "line\nbreak\r\n", "back\\slash \\N", None],
        [True, False, True, None],
        [0.1, float("nan"), -1e-30, 3.0],
        ["2026-01-01T00:00:00+00", None, "1999-12-31T23:59:59+00", "2000-01-01T00:00:00+00"],
    ]
    with db.connect(db_url) as conn:
        conn.execute("CREATE TEMP TABLE t (id bigint, s text, b boolean, f real, at timestamptz)")
        copy_rows(conn, "pg_temp.t", ["id", "s", "b", "f", "at"], values, types)
        rows = conn.execute("SELECT id, s, b, f, extract(epoch FROM at)::bigint AS at FROM t ORDER BY id").fetchall()
        with pytest.raises(ValueError, match="2 columns but 1 value lists"):
            copy_rows(conn, "t", ["id", "s"], [[1]])
    assert [r["s"] for r in rows] == values[1] and [r["b"] for r in rows] == values[2]
    f = [r["f"] for r in rows]
    assert np.isnan(f[1]) and np.float32(f[0]) == np.float32(0.1) and f[3] == 3.0
    assert [r["at"] for r in rows] == [1_767_225_600, None, 946_684_799, 946_684_800]


def test_copy_binary_frames_encoded_rows(db_url: str) -> None:
    def row(i: int, s: str | None) -> bytes:
        text = struct.pack("!i", -1) if s is None else struct.pack("!i", len(s.encode())) + s.encode()
        return struct.pack("!hiq", 2, 8, i) + text

    with db.connect(db_url) as conn:
        conn.execute("CREATE TEMP TABLE t (id bigint, s text)")
        copy_binary(conn, "pg_temp.t", ["id", "s"], (row(i, None if i % 3 == 0 else f"é{i}") for i in range(12_000)))
        got = conn.execute("SELECT count(*) AS n, count(s) AS named, max(s) AS top FROM t").fetchone()
    assert got == {"n": 12_000, "named": 8_000, "top": "é9998"}
