"""Reading the source tables (and the demo's planted truth) out of PostgreSQL into columnar arrays.

Bulk columns come through binary COPY (graphrec.core.copy); embeddings are read in pgvector's own binary form
when the column is a `vector`, else as `real[]`, so both column types read the same. The SQL is in
etl/queries.sql.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import numpy as np
import psycopg
from psycopg import pq

from etl.tables import (
    BAD_EMBEDDING_LAYOUT,
    BAD_EMBEDDING_NULL_ELEMENT,
    CollectionGoods,
    Collections,
    DemoTruth,
    Follows,
    Goods,
    Saves,
    SourceTables,
    Users,
)
from graphrec.core import db
from graphrec.core.copy import copy_int64, copy_out
from graphrec.core.sql import load_queries

log = logging.getLogger(__name__)

Q = load_queries("etl", "queries.sql")
# One element of a real[] without NULLs in binary form: its length (always 4) and the big-endian float.
_REAL_ELEMENT = np.dtype([("len", ">i4"), ("val", ">f4")])


def _embedding_type(conn: db.Connection) -> str:
    row = conn.execute(Q["embedding_type"]).fetchone()
    if row is None:
        raise RuntimeError("goods has no embedding column")
    return str(row["t"])


def _read_embeddings(conn: db.Connection, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings of goods in id order: float32 [n, D] with D the most common stored dimension (rows of
    another dimension, NULLs and malformed rows are zero), and each row's stored dimension (0 for NULL,
    BAD_EMBEDDING_NULL_ELEMENT for a real[] with a NULL element, BAD_EMBEDDING_LAYOUT for a value whose length
    does not match its dimension or an array that is not one-dimensional).

    Every row is stepped over by its own field length, so one bad row never shifts the rows after it.
    """
    is_vector = _embedding_type(conn).startswith("vector")
    data, pos = copy_out(conn, Q["embeddings_vector" if is_vector else "embeddings_real"])
    end = len(data) - 2  # the trailer
    mv = memoryview(data)
    uniform = _uniform_embeddings(mv, pos, end, n, is_vector)
    if uniform is not None:
        return uniform
    offsets = np.full(n, -1, dtype=np.int64)
    dims = np.zeros(n, dtype=np.int32)
    for i in range(n):  # each row: int16 field count (1), int32 length (-1 for NULL), the value
        if pos + 6 > end or struct.unpack_from("!h", mv, pos)[0] != 1:
            raise ValueError(f"goods.embedding: unexpected binary COPY layout at row {i} of {n}")
        length = struct.unpack_from("!i", mv, pos + 2)[0]
        if pos + 6 + max(length, 0) > end:
            raise ValueError(f"goods.embedding: binary COPY row {i} of {n} runs past the end of the stream")
        if length > 0:
            dims[i] = _embedding_dim(mv, pos + 6, length, is_vector)
            if dims[i] > 0:
                offsets[i] = pos + _values_at(is_vector)
        pos += 6 + max(length, 0)
    present = dims[dims > 0]
    dim = int(np.bincount(present).argmax()) if len(present) else 0
    emb = np.zeros((n, dim), dtype=np.float32)
    elem = np.dtype(">f4") if is_vector else _REAL_ELEMENT
    raw = np.frombuffer(mv, dtype=np.uint8)
    rows = np.nonzero(dims == dim)[0] if dim else np.zeros(0, dtype=np.int64)
    for i in rows.tolist():
        start = int(offsets[i])
        values: Any = raw[start : start + dim * elem.itemsize].view(elem)
        emb[i] = values if is_vector else values["val"]
    return emb, dims


def _uniform_embeddings(
    mv: memoryview, pos: int, end: int, n: int, is_vector: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """`_read_embeddings`' answer without a Python loop per row, when every one of the n rows holds a valid
    value of the first row's dimension (the usual case: one CLIP model for the whole catalog); None when any
    row differs (a NULL, another dimension, a NULL element, a bad layout), which the row-by-row reader then
    names."""
    if n == 0 or pos + 6 > end:
        return None
    length = struct.unpack_from("!i", mv, pos + 2)[0]
    if length <= 0 or end - pos != n * (6 + length):
        return None
    dim = _embedding_dim(mv, pos + 6, length, is_vector)
    if dim <= 0:
        return None
    head = _values_at(is_vector)
    rows = np.frombuffer(mv, dtype=np.uint8, count=end - pos, offset=pos).reshape(n, 6 + length)
    # Same field count, length and value header (dimension; for real[] also ndim, has_null, oid, lower bound)
    # in every row as in the first, which _embedding_dim found valid.
    if not (rows[:, :head] == rows[0, :head]).all():
        return None
    if not is_vector:
        elements = rows[:, head:].view(_REAL_ELEMENT)
        if not (elements["len"] == 4).all():
            return None
    return _floats_in_place(mv, rows[:, head:], dim, is_vector), np.full(n, dim, dtype=np.int32)


def _floats_in_place(mv: memoryview, values: np.ndarray, dim: int, is_vector: bool) -> np.ndarray:
    """float32 [n, dim] over the COPY buffer itself: each row's big-endian floats (`values` [n, bytes], a view
    of `mv`: pgvector's 4 bytes each, real[]'s 8 with their length first) moved to the buffer's front in row
    order, block by block, then swapped to native order in place.

    A row's floats land before its own start, never over a row not yet moved. At 1M goods x 512 (2 GB) a new
    array took 2-6 s to fill, nearly all of it page faults on fresh memory (the same copy into touched memory:
    0.1 s); here no memory is new."""
    n, width = len(values), 4 * dim
    flat = np.frombuffer(mv, dtype=np.uint8)
    if flat.ctypes.data % 4:  # a buffer not aligned for floats: a new array after all
        floats = values.view(">f4") if is_vector else values.view(_REAL_ELEMENT)["val"]
        return floats.astype(np.float32)
    block = 4096
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        dst = flat[lo * width : hi * width].reshape(hi - lo, dim, 4)
        src = values[lo:hi].reshape(hi - lo, dim, 4 if is_vector else 8)[:, :, -4:]
        dst[...] = src  # the same block's source and destination may overlap: numpy copies through a buffer
    out = flat[: n * width].view(np.float32).reshape(n, dim)
    if np.little_endian:
        out.byteswap(inplace=True)
    return out


def _values_at(is_vector: bool) -> int:
    """Bytes from a binary COPY row's start to its first float: the field count and length (6), then the
    value's own header (vector: dim and unused, 4; real[]: ndim, has_null, oid, size and lower bound, 20)."""
    return 10 if is_vector else 26


def _embedding_dim(mv: memoryview, at: int, length: int, is_vector: bool) -> int:
    """The dimension of one binary value of `length` bytes at `at`, or a BAD_EMBEDDING_* code."""
    if is_vector:  # int16 dim, int16 unused, float4 values
        dim = struct.unpack_from("!h", mv, at)[0]
        return dim if length == 4 + 4 * dim else BAD_EMBEDDING_LAYOUT
    # real[]: int32 ndim, int32 has_null, oid, then per dimension int32 size and lower bound, then per
    # element int32 length (-1 for NULL) and the value
    ndim, has_null = struct.unpack_from("!ii", mv, at)
    if ndim == 0:
        return 0  # '{}': no embedding
    if ndim != 1 or length < 20:
        return BAD_EMBEDDING_LAYOUT
    if has_null:
        return BAD_EMBEDDING_NULL_ELEMENT
    dim = struct.unpack_from("!i", mv, at + 12)[0]
    # Without NULLs every float4 element is its int32 length 4 and 4 bytes.
    return dim if length == 20 + 8 * dim else BAD_EMBEDDING_LAYOUT


def read_tables(conn: db.Connection) -> SourceTables:
    """Read every source table in one pass each (COPY or a single query), in id order: in one REPEATABLE READ,
    READ ONLY snapshot when no transaction is open (a save committed between two tables' reads would otherwise
    point at a good read as missing), else in the caller's transaction."""
    if conn.info.transaction_status == pq.TransactionStatus.IDLE:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return _read_tables(conn)
    return _read_tables(conn)


def _read_tables(conn: db.Connection) -> SourceTables:
    user_id, user_created = copy_int64(conn, Q["users"], 2)
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        names = [r[0] for r in cur.execute(Q["user_names"]).fetchall()]
        goods_text = cur.execute(Q["goods"]).fetchall()
        coll_text = cur.execute(Q["collections"]).fetchall()
        source_names = [r[0] for r in cur.execute(Q["save_sources"]).fetchall()]
    emb, dims = _read_embeddings(conn, len(goods_text))
    cg_collection, cg_good, cg_added = copy_int64(conn, Q["collection_goods"], 3)
    s_user, s_good, s_time, s_source = copy_int64(conn, Q["saves"], 4, {"sources": source_names})
    sources = np.array(source_names, dtype=object)[s_source] if len(s_source) else np.empty(0, dtype=object)
    f_follower, f_followee, f_created = copy_int64(conn, Q["follows"], 3)

    def col(rows: list[tuple], i: int, dtype: Any = object) -> np.ndarray:
        return np.array([r[i] for r in rows], dtype=dtype) if rows else np.empty(0, dtype=dtype)

    return SourceTables(
        users=Users(id=user_id, name=np.array(names, dtype=object), created_at=user_created),
        goods=Goods(
            id=col(goods_text, 0, np.int64),
            title=col(goods_text, 1),
            url=col(goods_text, 2),
            domain=col(goods_text, 3),
            image_url=col(goods_text, 4),
            created_at=col(goods_text, 5, np.int64),
            deleted_at=col(goods_text, 6, np.int64),
            embedding=emb,
            embedding_dim=dims,
        ),
        collections=Collections(
            id=col(coll_text, 0, np.int64),
            owner_id=col(coll_text, 1, np.int64),
            title=col(coll_text, 2),
            created_at=col(coll_text, 3, np.int64),
        ),
        collection_goods=CollectionGoods(collection_id=cg_collection, good_id=cg_good, added_at=cg_added),
        saves=Saves(user_id=s_user, good_id=s_good, saved_at=s_time, source=sources),
        follows=Follows(follower_id=f_follower, followee_id=f_followee, created_at=f_created),
    )


def read_truth(conn: db.Connection) -> DemoTruth | None:
    """The demo generator's planted truth, or None when the database holds no demo data."""
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        ui = cur.execute(Q["demo_user_interests"]).fetchall()
        gs = cur.execute(Q["demo_good_styles"]).fetchall()
    if not ui:
        return None
    a = np.array(ui, dtype=np.float64)
    b = np.array(gs, dtype=np.int64).reshape(-1, 2)
    return DemoTruth(
        user_interests={
            "user_id": a[:, 0].astype(np.int64),
            "style": a[:, 1].astype(np.int64),
            "weight": a[:, 2].astype(np.float32),
        },
        good_style={"good_id": b[:, 0], "style": b[:, 1]},
        style_vecs=np.empty((0, 0), dtype=np.float32),
    )
