"""Serving's reads: the rows the daily picks need (one consistent snapshot, bulk through binary COPY), the
titles and names their reasons need, and the app's own read of a user's picks (`for_you`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphrec.core import db, rules
from graphrec.core.copy import copy_int64
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
