"""Serving's reads: the rows the daily picks need (one consistent snapshot, bulk through binary COPY), the
titles and names their reasons need, and the app's own read of a user's picks (`for_you`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphrec.core import db, rules
from graphrec.core.copy import TRAILER, copy_int64, copy_out
from graphrec.core.sql import load_queries
from serving.reasons import Labels
from serving.rows import ServingRows

Q = load_queries("serving", "queries.sql")


def read_rows(
    conn: db.Connection, repeat_days: int, user_ids: Sequence[int] | None = None, recent_days: int = 60
) -> ServingRows:
    """Everything the picks need from the database, read in one consistent snapshot.

    With `user_ids`, only those users' saves, collections and recent picks are read (plus everyone's saves
    of the last `recent_days` days, which the fallbacks need): the on-demand path for one user.
    """
    users_filter = None if user_ids is None else [int(u) for u in user_ids]
    p = {
        "days": repeat_days,
        "users": users_filter,
        "recent": recent_days,
        "min_id": rules.MIN_ID,
        "future_s": rules.FUTURE_TOLERANCE_S,
    }
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        now = conn.execute(Q["now"]).fetchone()
        domains = conn.execute(Q["domain_names"]).fetchall()
        good_id, good_domain = copy_int64(conn, Q["live_goods"], 2, p)
        (users,) = copy_int64(conn, Q["user_ids"], 1, p)
        save_user, save_good, save_time = copy_int64(
            conn, Q["saves"] if users_filter is None else Q["saves_of_users"], 3, p
        )
        owned_user, owned_collection, owned_good = copy_int64(conn, Q["owned_goods"], 3, p)
        follower, followee = copy_int64(conn, Q["follows"], 2, p)
        picked_user, picked_good = copy_int64(conn, Q["recent_picks"], 2, p)
    return ServingRows(
        user_id=np.unique(np.concatenate([users, save_user])),  # a saver missing from users still counts
        good_id=good_id,
        good_domain=good_domain,
        domain_names=np.array([r["domain"] for r in domains], dtype=str),
        save_user=save_user,
        save_good=save_good,
        save_time=save_time,
        owned_user=owned_user,
        owned_collection=owned_collection,
        owned_good=owned_good,
        follower=follower,
        followee=followee,
        picked_user=picked_user,
        picked_good=picked_good,
        now=int(now["t"]) if now else int(time.time()),
    )


def read_labels(conn: db.Connection, good_ids: np.ndarray, collection_ids: np.ndarray, user_ids: np.ndarray) -> Labels:
    """Titles and names the reasons' words need."""
    goods = conn.execute(Q["good_titles"], {"ids": good_ids.tolist()}).fetchall()
    colls = conn.execute(Q["collection_titles"], {"ids": collection_ids.tolist()}).fetchall()
    users = conn.execute(Q["user_names"], {"ids": user_ids.tolist()}).fetchall()
    return Labels(
        # Reasons quote these titles in every pick: at most rules.MAX_TITLE_CHARS each.
        good_titles={r["id"]: rules.short_title(r["title"]) for r in goods},
        collection_titles={r["id"]: rules.short_title(r["title"]) for r in colls},
        user_names={r["id"]: r["name"] for r in users},
    )


def for_you(conn: db.Connection, user_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The app's read: the current run's picks for one user (the SQL function for_you)."""
    return conn.execute(Q["for_you"], {"user": user_id, "limit": limit}).fetchall()


# --- one user's For You world ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UserWorld:
    """What one user's For You rescore reads (serving.reads.read_user_world), in one snapshot.

    rows: ServingRows over the goods in reach (`good_id`: not deleted; the user's saves, their co-savers' and
    followees' saves, fresh goods, collections holding one of the user's saves, the recent popular goods) and
    the users whose saves were read (the user, the people who saved one of their goods, their followees).
    rows.save_* hold every save of those users; owned_*, follower/followee and picked_* the user's own.
    content: float32 [G, d] the goods' CLIP vectors, L2-normalised (zero rows: none stored). created_at: int64
    [G]. popularity: int64 [G, 1 + len(windows)]: users who saved each good in all (the whole table, not only
    the users read), then first in each window of `windows` days. contains: (collection_id, good_id, added)
    of the collections holding one of the user's saves."""

    rows: ServingRows
    content: np.ndarray
    created_at: np.ndarray
    popularity: np.ndarray
    windows: tuple[int, ...]
    contains: tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class FreshPool:
    """The fresh source's pool as a daily run had it (written beside the run): the goods created in the last
    `fresh_days` before `as_of` (unix s) with at most `max_saves` savers then. ids int64 [P] sorted, created_at
    int64 [P] unix s, vecs [P, d] their L2-normalised CLIP vectors (float16, e.g. memory-mapped)."""

    ids: np.ndarray
    created_at: np.ndarray
    vecs: np.ndarray
    as_of: int
    fresh_days: float
    max_saves: int

    def covers(self, fresh_days: float, max_saves: int) -> bool:
        """Whether every good fresh now by these settings is in the pool or created after it was taken."""
        return self.fresh_days >= fresh_days and self.max_saves >= max_saves


# Goods created this long before a run's as-of but committed after its read are taken from the table too.
FRESH_SINCE_MARGIN_S = 3600


def read_user_world(
    conn: db.Connection,
    user_id: int,
    *,
    repeat_days: int,
    fresh_days: int,
    fresh_max_saves: int,
    windows: tuple[int, int, int],
    popular_days: int,
    popular_goods: int,
    content_cache: tuple[np.ndarray, np.ndarray] | None = None,
    fresh_keep: int | None = None,
    fresh_anchors: int = 5,
    fresh_pool: FreshPool | None = None,
) -> UserWorld:
    """The rows one user's For You list needs (see UserWorld), by index (saves by user, saves by good), never
    a scan of the catalog's embeddings. content_cache: (sorted good ids [N], their L2-normalised CLIP vectors
    [N, d], e.g. memory-mapped: what the current run wrote); goods it holds are not read from the database.
    fresh_keep: with the cache, only the fresh goods the fresh source could propose are kept: the best
    `fresh_keep` plus as many as the user's exclusions by cosine to their `fresh_anchors` newest saves (the
    fresh source's own score), and every fresh good the cache does not hold. fresh_pool (with the cache and
    fresh_keep): the run's fresh pool replaces the scan of the goods table: the best of its goods still fresh
    (checked in the table) by the same score, and every fresh good created since the run (read through the
    goods_created_live index). A good inserted after the run with a creation time before it is then missed
    until the next run."""
    me = [int(user_id)]
    p: dict[str, Any] = {
        "days": repeat_days,
        "users": me,
        "min_id": rules.MIN_ID,
        "future_s": rules.FUTURE_TOLERANCE_S,
    }
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        now = conn.execute(Q["now"]).fetchone()
        mine_u, mine_g, mine_t = copy_int64(conn, Q["saves_by_users"], 3, p)
        follower, followee = copy_int64(conn, Q["follows"], 2, p)
        owned_user, owned_collection, owned_good = copy_int64(conn, Q["owned_goods"], 3, p)
        picked_user, picked_good = copy_int64(conn, Q["recent_picks"], 2, p)
        my_goods = np.unique(mine_g).tolist()
        (co,) = copy_int64(conn, Q["co_savers"], 1, {**p, "goods": my_goods})
        others = np.setdiff1d(np.union1d(co, followee), me).tolist()
        su, sg, st = _int_arrays(conn, Q["saves_by_users"], 3, {**p, "users": others})
        pf = {**p, "fresh_days": fresh_days, "fresh_max": fresh_max_saves}
        if content_cache is not None and fresh_keep is not None:  # only the fresh goods the source could propose
            keep = fresh_keep + len(np.unique(np.concatenate([mine_g, owned_good, picked_good])))
            newest = _newest(mine_g, mine_t, fresh_anchors)
            if fresh_pool is not None and fresh_pool.covers(fresh_days, fresh_max_saves):
                now_s = int(now["t"]) if now else int(time.time())
                fresh = _fresh_from_pool(conn, fresh_pool, newest, content_cache, keep, pf, now_s)
            else:
                (fresh,) = _int_arrays(conn, Q["fresh_goods"], 1, pf)
                fresh = _fresh_in_reach(fresh, newest, content_cache, keep)
        else:
            (fresh,) = _int_arrays(conn, Q["fresh_goods"], 1, pf)
        (popular,) = copy_int64(conn, Q["popular_recent_goods"], 1, {**p, "days": popular_days, "limit": popular_goods})
        coll, coll_good, coll_t = _int_arrays(conn, Q["collections_holding"], 3, {**p, "goods": my_goods})
        reach = np.unique(np.concatenate([mine_g, sg, fresh, popular, coll_good, owned_good, picked_good]))
        got = conn.execute(Q["goods_rows"], {**p, "goods": reach.tolist()}, binary=True).fetchone() or {}
        good_id = np.asarray(got.get("id", []), np.int64)
        created = np.asarray(got.get("created", []), np.int64)
        domain = np.array(got.get("domain", []), dtype=str)
        domain_names = np.unique(domain[domain != ""])
        good_domain = np.where(domain != "", np.searchsorted(domain_names, domain), -1).astype(np.int64)
        ids = good_id.tolist()
        content, missing = _cached_content(good_id, content_cache)
        if missing.any():  # goods new since the run wrote the cache, or no cache
            fetched = _embeddings(conn, good_id[missing], {**p, "goods": good_id[missing].tolist()})
            if content.shape[1] == 0:
                content = np.zeros((len(good_id), fetched.shape[1]), np.float32)
            if fetched.shape[1] == content.shape[1]:  # another dimension than the catalog's: no vector
                content[missing] = fetched
        w = {"w0": windows[0], "w1": windows[1], "w2": windows[2]}
        pg, *counts = _int_arrays(conn, Q["goods_popularity"], 5, {**p, **w, "goods": ids})
    popularity = np.zeros((len(good_id), 4), np.int64)  # a good nobody saved has no row
    if len(pg):
        popularity[np.searchsorted(good_id, pg)] = np.stack(counts, axis=1)
    rows = ServingRows(
        user_id=np.unique(np.concatenate([me, others, su])).astype(np.int64),
        good_id=good_id,
        good_domain=good_domain,
        domain_names=domain_names,
        save_user=np.concatenate([mine_u, su]),
        save_good=np.concatenate([mine_g, sg]),
        save_time=np.concatenate([mine_t, st]),
        owned_user=owned_user,
        owned_collection=owned_collection,
        owned_good=owned_good,
        follower=follower,
        followee=followee,
        picked_user=picked_user,
        picked_good=picked_good,
        now=int(now["t"]) if now else int(time.time()),
    )
    return UserWorld(rows, content, created, popularity, tuple(windows), (coll, coll_good, coll_t))


def _int_arrays(conn: db.Connection, query: str, ncols: int, params: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """The `ncols` bigint columns of `query` as int64 arrays, aggregated into one row of arrays by the server:
    a binary COPY hands rows over one at a time, which costs more than the query for 100,000 rows."""
    cols = ", ".join(f"c{i}" for i in range(ncols))
    agg = ", ".join(f"coalesce(array_agg(c{i}), '{{}}') AS a{i}" for i in range(ncols))
    row = conn.execute(f"SELECT {agg} FROM ({query}) AS q({cols})", params, binary=True).fetchone()  # type: ignore[arg-type]
    values = list(row.values()) if isinstance(row, dict) else list(row or [])
    return tuple(np.asarray(v, dtype=np.int64) for v in values)


def _newest(goods: np.ndarray, times: np.ndarray, m: int) -> np.ndarray:
    """The m goods saved most recently (each at its first save time), newest first."""
    first: dict[int, int] = {}
    for g, t in zip(goods.tolist(), times.tolist(), strict=True):
        first[g] = min(t, first.get(g, t))
    order = sorted(first, key=lambda g: -first[g])
    return np.array(order[:m], np.int64)


def _fresh_in_reach(
    fresh: np.ndarray, anchors: np.ndarray, cache: tuple[np.ndarray, np.ndarray], keep: int
) -> np.ndarray:
    """The fresh goods the fresh source could still propose: the `keep` best by their best cosine to an
    anchor (cached vectors), with a positive one, and every fresh good the cache does not hold."""
    ids, vecs = cache
    fresh = np.sort(np.asarray(fresh, np.int64))
    f_vec, f_missing = _cached_content(fresh, cache)
    a_vec, a_missing = _cached_content(anchors, cache)
    a_vec = a_vec[~a_missing]
    if len(fresh) <= keep or not len(a_vec) or f_vec.shape[1] != a_vec.shape[1]:
        return fresh
    held = np.flatnonzero(~f_missing)
    score = (f_vec[held] @ a_vec.T).max(axis=1)
    best = held[np.argsort(-score, kind="stable")[:keep]]
    best = best[score[np.searchsorted(held, best)] > 0]
    return np.union1d(fresh[best], fresh[f_missing])


def _fresh_from_pool(
    conn: db.Connection,
    pool: FreshPool,
    anchors: np.ndarray,
    cache: tuple[np.ndarray, np.ndarray],
    keep: int,
    p: dict[str, Any],
    now: int,
) -> np.ndarray:
    """As _fresh_in_reach over the goods fresh now, from the run's pool instead of the table: the `keep` best of
    the pool's goods still fresh (created in the window, not deleted, at most fresh_max saves: checked in the
    table, best first, in blocks) with a positive best cosine to an anchor, and every fresh good created since
    the run (all of them: the cache does not hold their vectors)."""
    (new,) = _int_arrays(conn, Q["fresh_goods_since"], 1, {**p, "since": pool.as_of - FRESH_SINCE_MARGIN_S})
    a_vec, a_missing = _cached_content(anchors, cache)
    a_vec = a_vec[~a_missing]
    window = (pool.created_at >= now - p["fresh_days"] * 86_400) & (pool.created_at <= now)
    held = np.flatnonzero(window)
    if not len(held) or not len(a_vec) or pool.vecs.shape[1] != a_vec.shape[1]:
        return np.unique(new)
    score = np.empty(len(held), np.float32)
    step = 65_536  # float32 copies of the float16 rows one block at a time
    for lo in range(0, len(held), step):
        rows = held[lo : lo + step]
        block = np.asarray(pool.vecs[rows[0] : rows[-1] + 1], np.float32)[rows - rows[0]]
        score[lo : lo + len(rows)] = (block @ a_vec.T).max(axis=1)
    order = np.argsort(-score, kind="stable")
    order = order[score[order] > 0]
    ranked = pool.ids[held[order]]
    kept: list[np.ndarray] = []
    n = 0
    for lo in range(0, len(ranked), max(2 * keep, 1)):
        chunk = ranked[lo : lo + max(2 * keep, 1)]
        (still,) = _int_arrays(conn, Q["fresh_goods_among"], 1, {**p, "goods": chunk.tolist()})
        chunk = chunk[np.isin(chunk, still)][: keep - n]
        kept.append(chunk)
        n += len(chunk)
        if n >= keep:
            break
    return np.union1d(np.concatenate([*kept, np.zeros(0, np.int64)]), new)


def _cached_content(good_id: np.ndarray, cache: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [G, d] the cached vectors of `good_id`, bool [G] goods the cache does not hold)."""
    if cache is None or not len(cache[0]):
        return np.zeros((len(good_id), 0), np.float32), np.ones(len(good_id), bool)
    ids, vecs = cache
    at = np.searchsorted(ids, good_id).clip(0, len(ids) - 1)
    held = ids[at] == good_id
    out = np.zeros((len(good_id), vecs.shape[1]), np.float32)
    rows = at[held]
    order = np.argsort(rows)  # ascending rows: sequential reads of a memory map
    out[np.flatnonzero(held)[order]] = vecs[rows[order]]
    return out, ~held


def _embeddings(conn: db.Connection, good_id: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """float32 [len(good_id), d] the goods' embeddings (sorted good_id), L2-normalised as etl stores them;
    rows without one, or of another dimension than most, or with a NULL element stay zero."""
    row = conn.execute(Q["embedding_dim"], p).fetchone()
    d = int(row["d"]) if row and row["d"] else 0
    out = np.zeros((len(good_id), d), np.float32)
    if d == 0 or not len(good_id):
        return out
    data, start = copy_out(conn, Q["goods_embeddings"], {**p, "dim": d})
    # Each row: int16 2 fields; int32 8, int64 id; int32 length, then the real[] (int32 ndim, has_null, oid,
    # size, lower bound) and per element int32 4 and the float4. The query keeps rows of dimension d only.
    rec = np.dtype(
        [("n", ">i2"), ("l0", ">i4"), ("id", ">i8"), ("l1", ">i4"), ("head", ">i4", 5)]
        + [("v", [("len", ">i4"), ("val", ">f4")], d)]
    )
    body = memoryview(data)[start : len(data) - len(TRAILER)]
    if len(body) % rec.itemsize:
        raise ValueError(f"goods.embedding: unexpected binary COPY layout for dimension {d}")
    r = np.frombuffer(body, dtype=rec)
    if len(r) and (np.any(r["n"] != 2) or np.any(r["l1"] != 20 + 8 * d) or np.any(r["v"]["len"] != 4)):
        raise ValueError(f"goods.embedding: unexpected binary COPY layout for dimension {d}")
    x = r["v"]["val"].astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
    out[np.searchsorted(good_id, r["id"])] = x
    return out
