"""A small app planted by SQL for the web tests: users, goods, saves, two runs with picks, and their embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphrec.core import db
from graphrec.core.artifacts import Embeddings, run_embeddings_path

TOKEN = "test-token-5f1c"
XSS_TITLE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


@dataclass(frozen=True)
class Seeded:
    """What seed() planted, for the assertions."""

    run_old: int  # run 1, model "pinsage-v1": picks for users 1 and 3
    run_new: int  # run 2, model "lightgcn-v2", current: picks for users 1 and 3 in another order
    picks_new: list[int]  # user 1's goods in run_new, rank 1 first
    picks_old: list[int]  # user 1's goods in run_old, rank 1 first
    xss_good: int
    deleted_good: int
    new_good: int  # in the database, not in run_new's embeddings


def seed(url: str, artifacts: Path) -> Seeded:
    """Plant a small app: two styles of goods (1-20 red, 21-40 blue), users who like one or the other.

    User 1 (Ada, likes red) saved goods 1-12; user 2 (Bo) saved 21-22; user 3 (Cy, likes blue) saved 21-32;
    users 4-6 like blue and saved nothing. Good 13 has a hostile title, good 20 is deleted, good 41 is
    newer than the embeddings. Runs 1 and 2 picked for users 1 and 3; run 2 is current.
    """
    with db.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, name) VALUES (1, 'Ada Lovelace'), (2, 'Bo'), (3, 'Cy Young'), (4, 'Di'),"
            " (5, 'Ed'), (6, 'Flo')"
        )
        for g in range(1, 42):
            title = XSS_TITLE if g == 13 else f"{'Red' if g <= 20 else 'Blue'} thing {g}"
            host = f"shop{g % 4}.example" if g <= 20 else f"store{g % 3}.example"
            conn.execute(
                "INSERT INTO goods (id, title, url, image_url, deleted_at, created_at) VALUES"
                " (%s, %s, %s, %s, %s, now() - interval '30 days')",
                (
                    g,
                    title,
                    f"https://{host}/p/{g}",
                    "javascript:alert(1)" if g == 14 else None,
                    "2026-01-01" if g == 20 else None,
                ),
            )
        for user, goods in ((1, range(1, 13)), (2, range(21, 23)), (3, range(21, 33))):
            for i, g in enumerate(goods):
                conn.execute(
                    "INSERT INTO saves (user_id, good_id, saved_at) VALUES (%s, %s, now() - %s * interval '1 hour')",
                    (user, g, 100 - i),
                )
        conn.execute(
            "INSERT INTO collections (id, owner_id, title) VALUES (1, 1, %s), (2, 3, 'Blue mood')",
            ('Summer <b>fits</b> & "more"',),
        )
        conn.execute("INSERT INTO collection_goods (collection_id, good_id) VALUES (1, 1), (1, 2), (1, 13), (2, 21)")
        conn.execute("INSERT INTO follows (follower_id, followee_id) VALUES (1, 3), (2, 1), (3, 1)")

        picks_new = [15, 13, 16, 17, 18, 19]
        picks_old = [19, 18, 15, 24, 25, 14]
        runs = []
        for model, picks in (("pinsage-v1", picks_old), ("lightgcn-v2", picks_new)):
            run = conn.execute(
                "INSERT INTO graphrec_runs (kind, model_version, status, finished_at) VALUES"
                " ('recommend', %s, 'succeeded', now()) RETURNING id",
                (model,),
            ).fetchone()["id"]
            runs.append(run)
            for rank, g in enumerate(picks, 1):
                conn.execute(
                    "INSERT INTO graphrec_picks (run_id, user_id, rank, good_id, score, reason,"
                    " reason_detail, is_fallback) VALUES (%s, 1, %s, %s, %s, %s, %s, %s)",
                    (
                        run,
                        rank,
                        g,
                        1.0 - rank / 10,
                        f"because you saved Red thing {rank}",
                        f'{{"kind": "good", "good_id": {rank}}}',
                        rank == len(picks),
                    ),
                )
            conn.execute(
                "INSERT INTO graphrec_picks (run_id, user_id, rank, good_id, score, reason, reason_detail)"
                " VALUES (%s, 3, 1, 33, 0.9, 'because you follow Ada Lovelace', '{\"kind\": \"followee\"}')",
                (run,),
            )
        conn.execute("UPDATE graphrec_current SET run_id = %s", (runs[1],))
        conn.execute("INSERT INTO goods (id, title, url) VALUES (42, 'Brand new', 'https://shop1.example/p/42')")

    # Embeddings of the current run: red goods along axis 0, blue along axis 1, a little spread along axis 2.
    good_ids = np.arange(1, 42, dtype=np.int64)
    good_vecs = np.zeros((41, 3), dtype=np.float32)
    good_vecs[:20, 0] = 1.0
    good_vecs[20:, 1] = 1.0
    good_vecs[:, 2] = np.linspace(0, 0.5, 41)
    user_ids = np.arange(1, 7, dtype=np.int64)
    user_vecs = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0.9, 0], [0, 0.8, 0], [0.1, 0.7, 0]], dtype=np.float32)
    known = np.ones(41, dtype=bool)
    known[40] = False  # good 41: embedded inductively, not scoreable
    for run, version in zip(runs, ("pinsage-v1", "lightgcn-v2"), strict=True):
        Embeddings(version.split("-")[0], version, user_ids, user_vecs, good_ids, good_vecs, known).save(
            run_embeddings_path(artifacts, run)
        )
    return Seeded(runs[0], runs[1], picks_new, picks_old, xss_good=13, deleted_good=20, new_good=42)
