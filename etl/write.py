"""Loading source tables (the demo world, test fixtures) into PostgreSQL through COPY, in one transaction.

The narrow tables go as text COPY; goods go as binary COPY, because 100,000 x 512 embedding floats would take
seconds to format as text. The embedding column may be a pgvector `vector` or a `real[]`; both are written in
their binary form.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

from etl.tables import NO_TIME, DemoTruth, Goods, SourceTables
from graphrec.core import db
from graphrec.core.copy import copy_binary, copy_rows
from graphrec.core.sql import load_queries

Q = load_queries("etl", "queries.sql")

# Column types for copy_rows; times travel as ISO text (see _timestamps).
_ID, _TEXT, _TIME = "int8", "text", "text"
_PG_EPOCH = 946_684_800  # 2000-01-01 in unix seconds
_FLOAT4_OID = 700


def _timestamps(seconds: np.ndarray) -> list[str | None]:
    """ISO timestamps for text COPY; NO_TIME becomes NULL."""
    out = np.datetime_as_string(np.where(seconds == NO_TIME, 0, seconds).astype("datetime64[s]"), unit="s")
    text: list[str | None] = [f"{t}+00" for t in out.tolist()]
    for i in np.nonzero(seconds == NO_TIME)[0].tolist():
        text[i] = None
    return text


def _goods_rows(goods: Goods, has_vector: bool) -> Iterator[bytes]:
    """Each good as one binary COPY row of (id, title, url, image_url, created_at, deleted_at, embedding)."""
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


def write_tables(conn: db.Connection, tables: SourceTables, truth: DemoTruth | None, replace: bool) -> None:
    """Load tables (and the demo truth) in one transaction. `replace` empties the source tables first."""
    has_vector = db.has_pgvector(conn)
    with conn.transaction():
        if replace:
            conn.execute(Q["empty_source_tables"])
        u = tables.users
        copy_rows(
            conn,
            "users",
            ["id", "name", "created_at"],
            [u.id.tolist(), u.name.tolist(), _timestamps(u.created_at)],
            (_ID, _TEXT, _TIME),
        )
        copy_binary(
            conn,
            "goods",
            ["id", "title", "url", "image_url", "created_at", "deleted_at", "embedding"],
            _goods_rows(tables.goods, has_vector),
        )
        c = tables.collections
        copy_rows(
            conn,
            "collections",
            ["id", "owner_id", "title", "created_at"],
            [c.id.tolist(), c.owner_id.tolist(), c.title.tolist(), _timestamps(c.created_at)],
            (_ID, _ID, _TEXT, _TIME),
        )
        cg = tables.collection_goods
        copy_rows(
            conn,
            "collection_goods",
            ["collection_id", "good_id", "added_at"],
            [cg.collection_id.tolist(), cg.good_id.tolist(), _timestamps(cg.added_at)],
            (_ID, _ID, _TIME),
        )
        s = tables.saves
        copy_rows(
            conn,
            "saves",
            ["user_id", "good_id", "saved_at", "source"],
            [s.user_id.tolist(), s.good_id.tolist(), _timestamps(s.saved_at), s.source.tolist()],
            (_ID, _ID, _TIME, _TEXT),
        )
        f = tables.follows
        copy_rows(
            conn,
            "follows",
            ["follower_id", "followee_id", "created_at"],
            [f.follower_id.tolist(), f.followee_id.tolist(), _timestamps(f.created_at)],
            (_ID, _ID, _TIME),
        )
        if truth is not None:
            ui = truth.user_interests
            copy_rows(
                conn,
                "demo_user_interests",
                ["user_id", "style", "weight"],
                [ui["user_id"].tolist(), ui["style"].tolist(), ui["weight"].tolist()],
                (_ID, _ID, "float8"),
            )
            gs = truth.good_style
            copy_rows(
                conn,
                "demo_good_styles",
                ["good_id", "style"],
                [gs["good_id"].tolist(), gs["style"].tolist()],
                (_ID, _ID),
            )
    conn.execute(Q["analyze_source_tables"])
    conn.commit()
