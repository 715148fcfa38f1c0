"""Reading and writing the source tables. All of etl's SQL lives here.

Bulk in both directions uses COPY: text COPY for the narrow tables, binary COPY for embeddings (100,000 x 512
floats would take seconds to format as text). Embeddings are read as `embedding::real[]`, so a pgvector
`vector` column and a plain `real[]` column read the same way.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg

from etl.demo_data import DemoTruth
from etl.tables import NO_TIME, CollectionGoods, Collections, Follows, Goods, Saves, SourceTables, Users
from graphrec.core import db

log = logging.getLogger(__name__)

_PG_EPOCH = 946_684_800  # 2000-01-01 in unix seconds
_FLOAT4_OID = 700
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_CHUNK = 20_000

SOURCE_TABLES = ("follows", "saves", "collection_goods", "collections", "goods", "users")


# --- text COPY helpers --------------------------------------------------------------------------------------


def _text_field(value: object) -> str:
    if value is None:
        return r"\N"
    s = str(value)
    if any(c in s for c in "\\\t\n\r"):
        s = s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return s


def _timestamps(seconds: np.ndarray) -> list[str | None]:
    """ISO timestamps for COPY; NO_TIME becomes NULL."""
    out = np.datetime_as_string(np.where(seconds == NO_TIME, 0, seconds).astype("datetime64[s]"), unit="s")
    text: list[str | None] = [f"{t}+00" for t in out.tolist()]
    for i in np.nonzero(seconds == NO_TIME)[0].tolist():
        text[i] = None
    return text


def _copy_text(conn: db.Connection, table: str, columns: list[str], cols: list[list[Any]]) -> None:
    stmt = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    n = len(cols[0]) if cols else 0
    with conn.cursor() as cur, cur.copy(stmt) as copy:  # type: ignore[arg-type]
        for start in range(0, n, _CHUNK):
            rows = zip(*(c[start : start + _CHUNK] for c in cols), strict=True)
            copy.write("".join("\t".join(_text_field(v) for v in row) + "\n" for row in rows))


# --- binary COPY of goods (embeddings) -------------------------------------------------------------------------


def _goods_rows(goods: Goods, has_vector: bool) -> Iterator[bytes]:
    dim = goods.embedding.shape[1]
    if has_vector:
        # pgvector's binary form: int16 dim, int16 unused, then the big-endian float4 values.
        head = struct.pack("!hh", dim, 0)
        vecs = goods.embedding.astype(">f4")
    else:
        # real[]: each element is preceded by its length (4) in the binary array format.
        head = struct.pack("!iiiii", 1, 0, _FLOAT4_OID, dim, 1)
        vecs = np.empty((len(goods.id), dim), dtype=[("len", ">i4"), ("val", ">f4")])
        vecs["len"] = 4
        vecs["val"] = goods.embedding
    created = (goods.created_at - _PG_EPOCH) * 1_000_000
    deleted = (goods.deleted_at - _PG_EPOCH) * 1_000_000
    for i in range(len(goods.id)):
        parts = [struct.pack("!hiq", 7, 8, int(goods.id[i]))]
        for text in (goods.title[i], goods.url[i], goods.image_url[i]):
            if text is None:
                parts.append(struct.pack("!i", -1))
            else:
                b = str(text).encode()
                parts.append(struct.pack("!i", len(b)) + b)
        parts.append(struct.pack("!iq", 8, int(created[i])))
        parts.append(
            struct.pack("!i", -1) if goods.deleted_at[i] == NO_TIME else struct.pack("!iq", 8, int(deleted[i]))
        )
        if goods.embedding_dim[i] == 0:
            parts.append(struct.pack("!i", -1))
        else:
            arr = head + vecs[i].tobytes()
            parts.append(struct.pack("!i", len(arr)) + arr)
        yield b"".join(parts)


def _copy_goods(conn: db.Connection, goods: Goods, has_vector: bool) -> None:
    stmt = "COPY goods (id, title, url, image_url, created_at, deleted_at, embedding) FROM STDIN (FORMAT binary)"
    with conn.cursor() as cur, cur.copy(stmt) as copy:  # type: ignore[arg-type]
        copy.write(_COPY_HEADER)
        batch: list[bytes] = []
        for row in _goods_rows(goods, has_vector):
            batch.append(row)
            if len(batch) >= 5000:
                copy.write(b"".join(batch))
                batch = []
        copy.write(b"".join(batch) + struct.pack("!h", -1))


def write_tables(conn: db.Connection, tables: SourceTables, truth: DemoTruth | None, replace: bool) -> None:
    """Load tables (and the demo truth) in one transaction. `replace` empties the source tables first."""
    has_vector = db.has_pgvector(conn)
    with conn.transaction():
        if replace:
            conn.execute("TRUNCATE " + ", ".join(SOURCE_TABLES) + ", demo_user_interests, demo_good_styles")
        u = tables.users
        _copy_text(
            conn,
            "users",
            ["id", "name", "created_at"],
            [u.id.tolist(), u.name.tolist(), _timestamps(u.created_at)],
        )
        _copy_goods(conn, tables.goods, has_vector)
        c = tables.collections
        _copy_text(
            conn,
            "collections",
            ["id", "owner_id", "title", "created_at"],
            [c.id.tolist(), c.owner_id.tolist(), c.title.tolist(), _timestamps(c.created_at)],
        )
        cg = tables.collection_goods
        _copy_text(
            conn,
            "collection_goods",
            ["collection_id", "good_id", "added_at"],
            [cg.collection_id.tolist(), cg.good_id.tolist(), _timestamps(cg.added_at)],
        )
        s = tables.saves
        _copy_text(
            conn,
            "saves",
            ["user_id", "good_id", "saved_at", "source"],
            [s.user_id.tolist(), s.good_id.tolist(), _timestamps(s.saved_at), s.source.tolist()],
        )
        f = tables.follows
        _copy_text(
            conn,
            "follows",
            ["follower_id", "followee_id", "created_at"],
            [f.follower_id.tolist(), f.followee_id.tolist(), _timestamps(f.created_at)],
        )
        if truth is not None:
            ui = truth.user_interests
            _copy_text(
                conn,
                "demo_user_interests",
                ["user_id", "style", "weight"],
                [ui["user_id"].tolist(), ui["style"].tolist(), ui["weight"].tolist()],
            )
            gs = truth.good_style
            _copy_text(conn, "demo_good_styles", ["good_id", "style"], [gs["good_id"].tolist(), gs["style"].tolist()])
    for table in SOURCE_TABLES:
        conn.execute(f"ANALYZE {table}")
    conn.commit()


# --- reading -------------------------------------------------------------------------------------------


def _fixed_copy(conn: db.Connection, query: str, dtype: np.dtype, params: tuple = ()) -> np.ndarray:
    """Binary COPY of a query whose columns are all NOT NULL fixed-width (int8, timestamptz as int8)."""
    # Each row: int16 field count, then per field int32 length and the big-endian value.
    fields = [("n", ">i2")]
    for name in dtype.names or ():
        fields += [(f"{name}_len", ">i4"), (name, ">i8")]
    row_dtype = np.dtype(fields)
    buf = bytearray()
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)", params or None) as copy:  # type: ignore[arg-type]
        for chunk in copy:
            buf += chunk
    body = bytes(buf[19:-2])  # header (19 bytes with no extension area) and the -1 trailer
    if len(body) % row_dtype.itemsize:
        raise RuntimeError(f"unexpected binary COPY layout for: {query}")
    rows = np.frombuffer(body, dtype=row_dtype)
    out = np.empty(len(rows), dtype=dtype)
    for name in dtype.names or ():
        out[name] = rows[name]
    return out


def _ts(col: str) -> str:
    """A timestamptz column as int64 unix seconds (NULL as NO_TIME)."""
    return f"COALESCE(floor(extract(epoch FROM {col}))::bigint, {NO_TIME})"


def _embedding_type(conn: db.Connection) -> str:
    row = conn.execute(
        "SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute"
        " WHERE attrelid = 'goods'::regclass AND attname = 'embedding'"
    ).fetchone()
    if row is None:
        raise RuntimeError("goods has no embedding column")
    return str(row["t"])


def _read_embeddings(conn: db.Connection, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings of goods in id order: float32 [n, D] with D the most common stored dimension (rows of
    another dimension, and NULLs, are zero), and each row's stored dimension (0 for NULL)."""
    # pgvector's own binary form is half the bytes of real[] and needs no cast on the server.
    is_vector = _embedding_type(conn).startswith("vector")
    column = "embedding" if is_vector else "embedding::real[]"
    buf = bytearray()
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY (SELECT {column} FROM goods ORDER BY id) TO STDOUT (FORMAT binary)") as copy,
    ):  # type: ignore[arg-type]
        for chunk in copy:
            buf += chunk
    mv = memoryview(bytes(buf))
    pos = 19
    offsets = np.full(n, -1, dtype=np.int64)
    dims = np.zeros(n, dtype=np.int32)
    for i in range(n):
        length = struct.unpack_from("!i", mv, pos + 2)[0]
        if length > 0:
            if is_vector:  # int16 dim, int16 unused, float4 values
                dims[i] = struct.unpack_from("!h", mv, pos + 6)[0]
                offsets[i] = pos + 10
            elif struct.unpack_from("!i", mv, pos + 6)[0] == 1:  # ndim, has_null, oid, dim, lbound, (len, val)...
                dims[i] = struct.unpack_from("!i", mv, pos + 18)[0]
                offsets[i] = pos + 26
        pos += 6 + max(length, 0)
    present = dims[dims > 0]
    dim = int(np.bincount(present).argmax()) if len(present) else 0
    emb = np.zeros((n, dim), dtype=np.float32)
    elem = np.dtype(">f4") if is_vector else np.dtype([("len", ">i4"), ("val", ">f4")])
    raw = np.frombuffer(mv, dtype=np.uint8)
    rows = np.nonzero(dims == dim)[0]
    for i in rows.tolist():
        start = int(offsets[i])
        values: Any = raw[start : start + dim * elem.itemsize].view(elem)
        emb[i] = values if is_vector else values["val"]
    return emb, dims


def read_tables(conn: db.Connection) -> SourceTables:
    """Read every source table in one pass each (COPY or a single query), in id order."""
    i8 = np.dtype
    users_fixed = _fixed_copy(
        conn, f"SELECT id, {_ts('created_at')} FROM users ORDER BY id", i8([("id", "i8"), ("t", "i8")])
    )
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        names = [r[0] for r in cur.execute("SELECT name FROM users ORDER BY id").fetchall()]
        goods_text = cur.execute(
            f"SELECT id, title, url, domain, image_url, {_ts('created_at')}, {_ts('deleted_at')} FROM goods ORDER BY id"
        ).fetchall()
        coll_text = cur.execute(
            f"SELECT id, owner_id, title, {_ts('created_at')} FROM collections ORDER BY id"
        ).fetchall()
        # Save sources travel as small codes so the saves come in one fixed-width binary COPY.
        source_names = [r[0] for r in cur.execute("SELECT DISTINCT source FROM saves ORDER BY 1").fetchall()]
    emb, dims = _read_embeddings(conn, len(goods_text))
    cg = _fixed_copy(
        conn,
        f"SELECT collection_id, good_id, {_ts('added_at')} FROM collection_goods",
        i8([("c", "i8"), ("g", "i8"), ("t", "i8")]),
    )
    sv = _fixed_copy(
        conn,
        f"SELECT user_id, good_id, {_ts('saved_at')}, array_position(%s::text[], source)::bigint - 1"
        " FROM saves ORDER BY saved_at, user_id, good_id",
        i8([("u", "i8"), ("g", "i8"), ("t", "i8"), ("s", "i8")]),
        (source_names,),
    )
    sources = np.array(source_names, dtype=object)[sv["s"]] if len(sv) else np.empty(0, dtype=object)
    fo = _fixed_copy(
        conn,
        f"SELECT follower_id, followee_id, {_ts('created_at')} FROM follows",
        i8([("a", "i8"), ("b", "i8"), ("t", "i8")]),
    )

    def col(rows: list[tuple], i: int, dtype: Any = object) -> np.ndarray:
        return np.array([r[i] for r in rows], dtype=dtype) if rows else np.empty(0, dtype=dtype)

    return SourceTables(
        users=Users(
            id=users_fixed["id"].copy(),
            name=np.array(names, dtype=object),
            created_at=users_fixed["t"].copy(),
        ),
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
        collection_goods=CollectionGoods(collection_id=cg["c"].copy(), good_id=cg["g"].copy(), added_at=cg["t"].copy()),
        saves=Saves(user_id=sv["u"].copy(), good_id=sv["g"].copy(), saved_at=sv["t"].copy(), source=sources),
        follows=Follows(follower_id=fo["a"].copy(), followee_id=fo["b"].copy(), created_at=fo["t"].copy()),
    )


def read_truth(conn: db.Connection) -> DemoTruth | None:
    """The demo generator's planted truth, or None when the database holds no demo data."""
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        ui = cur.execute("SELECT user_id, style, weight FROM demo_user_interests ORDER BY user_id, style").fetchall()
        gs = cur.execute("SELECT good_id, style FROM demo_good_styles ORDER BY good_id").fetchall()
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
