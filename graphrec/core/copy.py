"""COPY between PostgreSQL and numpy arrays: the one binary COPY reader and the COPY writers every layer uses.

Reading: `copy_int64` turns a query whose columns are all `bigint NOT NULL` into int64 arrays through binary
COPY, without a Python loop per row; `copy_out` hands the raw binary stream (header checked) to readers of
other layouts (etl's embeddings). Writing: `copy_rows` sends columns row by row through psycopg's COPY
writer (its dumpers run in C); `copy_binary` frames rows a caller encoded itself (etl's goods, whose
embeddings would take seconds to format as text).
"""

from __future__ import annotations

import select
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import pq, sql

from graphrec.core.db import Connection

# The binary COPY stream: an 11-byte signature, int32 flags, int32 length of a header extension area (then
# the area), the rows, and an int16 -1 trailer. Each row: int16 field count, then per field an int32 length
# (-1 for NULL) and the value in network byte order.
SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
_HAS_OIDS = 1 << 16
_BINARY_BATCH = 5_000  # binary rows per write


def copy_out(conn: Connection, query: str, params: dict[str, Any] | None = None) -> tuple[bytearray, int]:
    """The binary COPY of `query`: (the whole stream, offset of its first row). The rows end 2 bytes before
    the end (the trailer). Raises ValueError naming the query when the stream is not a binary COPY.

    The server sends one message a row, and psycopg's `Copy.read` spends ~4 us of Python on each (a generator
    and a wait): 16 s for the 4M rows of a 1M-good catalog. So psycopg starts the COPY (and the transaction),
    and the rows are then taken from libpq directly, waiting on the socket only when none is buffered."""
    buf = bytearray()
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)", params):  # type: ignore[arg-type]
        pgconn = conn.pgconn
        while True:
            nbytes, chunk = pgconn.get_copy_data(1)  # 1: without blocking; 0 when no whole row is buffered
            if nbytes > 0:
                buf += chunk
            elif nbytes == 0:
                _wait_readable(pgconn)
            else:  # -1: the rows have ended (or an error came); the COPY's own result says which
                _finish_copy_out(conn)
                break
    return buf, body_start(buf, query)


def _wait_readable(pgconn: Any) -> None:
    select.select([pgconn.socket], [], [])
    pgconn.consume_input()


def _finish_copy_out(conn: Connection) -> None:
    """Take the results that follow a COPY TO's last row (once libpq's get_copy_data has returned -1, the
    Copy object can no longer read them, and with no error its exit reads nothing more): the COPY's
    COMMAND_OK, or the error that ended it, raised as psycopg would."""
    pgconn = conn.pgconn
    failed = None
    while True:
        while pgconn.is_busy():
            _wait_readable(pgconn)
        res = pgconn.get_result()
        if res is None:
            break
        if res.status != pq.ExecStatus.COMMAND_OK and failed is None:
            failed = res
    if failed is not None:
        raise psycopg.errors.error_from_result(failed, encoding=conn.info.encoding)


def body_start(data: bytes | bytearray, what: str) -> int:
    """Offset of the first row of a binary COPY stream, after checking its signature, flags and trailer."""
    if not data.startswith(SIGNATURE):
        raise ValueError(f"not a binary COPY stream (no PGCOPY signature) from: {what}")
    if len(data) < len(HEADER) + len(TRAILER):
        raise ValueError(f"truncated binary COPY stream from: {what}")
    flags, extension = struct.unpack_from("!ii", data, len(SIGNATURE))
    if flags & _HAS_OIDS:
        raise ValueError(f"binary COPY with OIDs is not supported, from: {what}")
    if extension < 0 or len(HEADER) + extension > len(data) - len(TRAILER) or not data.endswith(TRAILER):
        raise ValueError(f"truncated binary COPY stream from: {what}")
    return len(HEADER) + extension


def copy_int64(
    conn: Connection, query: str, ncols: int, params: dict[str, Any] | None = None
) -> tuple[np.ndarray, ...]:
    """The `ncols` columns of `query` (each bigint NOT NULL) as int64 arrays [rows], one per column.

    Raises ValueError naming the query when a row has another number of fields, a NULL or a field that is
    not 8 bytes wide (cast such columns with `::bigint` and COALESCE NULLs in the SQL).
    """
    data, start = copy_out(conn, query, params)
    row = np.dtype([("n", ">i2")] + [x for i in range(ncols) for x in ((f"l{i}", ">i4"), (f"v{i}", ">i8"))])
    body = memoryview(data)[start : len(data) - len(TRAILER)]
    bad = f"expected {ncols} bigint NOT NULL columns per row from: {query}"
    if len(body) % row.itemsize:
        raise ValueError(bad)
    rec = np.frombuffer(body, dtype=row)
    if len(rec) and (np.any(rec["n"] != ncols) or any(np.any(rec[f"l{i}"] != 8) for i in range(ncols))):
        raise ValueError(bad)
    return tuple(rec[f"v{i}"].astype(np.int64) for i in range(ncols))


def _statement(table: str, columns: Sequence[str], binary: bool) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN{}").format(
        sql.Identifier(*table.split(".")),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(" (FORMAT binary)" if binary else ""),
    )


def copy_rows(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    values: Sequence[Sequence[Any]],
    types: Sequence[str] | None = None,
) -> None:
    """COPY rows into `table` ("name" or "schema.name"). `values` holds one sequence per column, in `columns`
    order, all of one length; None is NULL. `types` (PostgreSQL type names, e.g. "int8", "text") pick
    psycopg's dumpers once instead of per value, which is faster; a `text` value may go to any column whose
    input accepts it (an ISO timestamp into timestamptz)."""
    if len(values) != len(columns) or (types is not None and len(types) != len(columns)):
        raise ValueError(f"COPY {table}: {len(columns)} columns but {len(values)} value lists and types {types}")
    with conn.cursor() as cur, cur.copy(_statement(table, columns, binary=False)) as copy:
        if types is not None:
            copy.set_types(list(types))
        for row in zip(*values, strict=True):
            copy.write_row(row)


def copy_binary(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[bytes]) -> None:
    """COPY rows already encoded in the binary row format (field count, then length and value per field)
    into `table`; this adds the header and the trailer."""
    with conn.cursor() as cur, cur.copy(_statement(table, columns, binary=True)) as copy:
        copy.write(HEADER)
        batch: list[bytes] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= _BINARY_BATCH:
                copy.write(b"".join(batch))
                batch = []
        copy.write(b"".join(batch) + TRAILER)
