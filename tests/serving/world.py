"""A small planted world for the serving tests (imported as `world`): two styles, ten domains, users who
like one style each, a deleted good, a collection, a user unknown to the model and one with too few saves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg

from graphrec.core import db
from graphrec.core.artifacts import Embeddings

DIM = 8
STYLE_A = set(range(1, 101))  # goods 1..100 are style A, 101..200 style B
DELETED = 50
NEW_USER = 22  # eligible, follows user 1, but unknown to the model
FEW_SAVES = 21  # three saves: not eligible


@dataclass
class World:
    url: str
    emb: Embeddings
    saves: dict[int, list[int]]  # user_id -> saved good_ids
    summer: list[int]  # user 1's collection "Summer"
    style_of_user: dict[int, str]


def good_domain(good_id: int) -> str:
    return f"shop{good_id % 10}.com"


def build_world(url: str, seed: int = 0) -> World:
    rng = np.random.default_rng(seed)
    good_ids = np.arange(1, 201, dtype=np.int64)
    style = np.where(good_ids <= 100, 0, 1)
    good_vecs = np.eye(DIM, dtype=np.float32)[style] + 0.05 * rng.standard_normal((200, DIM)).astype(np.float32)
    saves: dict[int, list[int]] = {}
    style_of_user = {}
    for u in range(1, 21):
        pool = list(range(1, 101)) if u <= 10 else list(range(101, 201))
        pool.remove(DELETED) if DELETED in pool else None
        saves[u] = [int(g) for g in rng.choice(pool, size=12, replace=False)]
        style_of_user[u] = "A" if u <= 10 else "B"
    saves[FEW_SAVES] = [101, 102, 103]
    saves[NEW_USER] = [int(g) for g in rng.choice(range(101, 201), size=12, replace=False)]
    user_ids = np.arange(1, 22, dtype=np.int64)
    user_vecs = np.eye(DIM, dtype=np.float32)[[0 if u <= 10 else 1 for u in user_ids]]
    emb = Embeddings(
        model_kind="test",
        model_version="v-test",
        user_ids=user_ids,
        user_vecs=user_vecs,
        good_ids=good_ids,
        good_vecs=good_vecs,
        good_known=np.ones(200, dtype=bool),
    )
    summer = saves[1][:5]
    with db.connect(url) as conn:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO users (id, name) VALUES (%s, %s)", [(u, f"user{u}") for u in range(1, 23)])
            cur.executemany(
                "INSERT INTO goods (id, title, url, image_url) VALUES (%s, %s, %s, %s)",
                [
                    (int(g), f"good {g}", f"https://www.{good_domain(int(g))}/p/{g}", f"https://img/{g}.jpg")
                    for g in good_ids
                ],
            )
            cur.execute("UPDATE goods SET deleted_at = now() WHERE id = %s", (DELETED,))
            rows = [(u, g, i) for u, gs in saves.items() for i, g in enumerate(gs)]
            cur.executemany(
                "INSERT INTO saves (user_id, good_id, saved_at) VALUES (%s, %s, now() - make_interval(hours => %s))",
                rows,
            )
            cur.execute("INSERT INTO collections (id, owner_id, title) VALUES (1, 1, 'Summer')")
            cur.executemany(
                "INSERT INTO collection_goods (collection_id, good_id) VALUES (1, %s)", [(g,) for g in summer]
            )
            cur.execute("INSERT INTO follows (follower_id, followee_id) VALUES (%s, 1)", (NEW_USER,))
        conn.commit()
    return World(url=url, emb=emb, saves=saves, summer=summer, style_of_user=style_of_user)


def for_you_all(conn: psycopg.Connection, users: list[int], limit: int = 50) -> list[dict]:
    """Several users' feeds in one statement (one snapshot)."""
    return conn.execute(
        "SELECT u.id AS user_id, f.* FROM unnest(%(u)s::bigint[]) AS u(id), LATERAL for_you(u.id, %(n)s) f",
        {"u": users, "n": limit},
    ).fetchall()
