"""`graphrec recommend --user ID` rescores with the For You pipeline the daily job serves, through a real
database: the ranker beside the current run's model, For You's sources (its followee picks are not
fallbacks), the filters, and only the rows around the user (a good nobody near them touched is never read).
Without a ranker it is model retrieval, as before; and its list is compared with the daily pipeline's."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from graphrec.app import jobs
from graphrec.core import db
from graphrec.core.config import Config, ForYouConfig, PathsConfig, RecommendConfig
from serving import reads
from serving.foryou.features import feature_names
from serving.foryou.ranker import Ranker

sys.path.insert(0, str(Path(__file__).parent.parent / "serving"))
from world import DELETED, NEW_USER, World, build_world  # noqa: E402

SOURCES = ("graph_filter", "cosave", "followees", "trending", "fresh")
FAR = list(range(201, 211))  # old goods nobody saved, in no collection: nothing around any user


def _ranker(seed: int = 0) -> Ranker:
    """A LightGBM lambdarank booster over For You's features that puts what the followees source proposes
    first (a pair it did not propose has no followees_score: LightGBM's missing value)."""
    names = feature_names(SOURCES)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((400, len(names)))
    y = (rng.random(400) < 0.3).astype(int)
    x[y == 0, names.index("followees_score")] = np.nan
    booster = lgb.train(
        {"objective": "lambdarank", "verbose": -1, "min_data_in_leaf": 5, "num_threads": 1},
        lgb.Dataset(x, y, group=[20] * 20),
        num_boost_round=5,
    )
    return Ranker(booster, SOURCES, names, {"model": "v-test"})


@pytest.fixture
def served(migrated_url: str, artifacts: Path, tmp_path: Path) -> tuple[World, Config]:
    world = build_world(migrated_url)
    with db.connect(migrated_url) as conn:
        conn.execute(
            "INSERT INTO goods (id, title, url, created_at) "
            "SELECT g, 'far ' || g, 'https://far.example/p/' || g, now() - interval '400 days' "
            "FROM unnest(%s::int[]) g",
            (FAR,),
        )
        conn.execute("UPDATE goods SET created_at = now() - interval '200 days' WHERE id % 3 = 0")
        # CLIP-like content: the style's axis plus noise (For You's clusters, interests and fresh source read it).
        rng = np.random.default_rng(1)
        content = np.eye(4)[(np.arange(1, 201) > 100).astype(int)] + 0.3 * rng.standard_normal((200, 4))
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE goods SET embedding = %s::real[] WHERE id = %s",
                [(v.tolist(), g) for g, v in zip(range(1, 201), content, strict=True)],
            )
        conn.commit()
    # No good counts as fresh (every one is new here), and no repeat filter (the run's fallbacks for NEW_USER
    # were all of user 1's saves): the followees source's picks then reach the list.
    cfg = Config(
        paths=PathsConfig(artifacts=str(artifacts)),
        foryou=ForYouConfig(fresh_days=0),
        recommend=RecommendConfig(repeat_days=0),
    )
    emb_file = tmp_path / "emb.npz"
    world.emb.save(emb_file)
    jobs.recommend(cfg, migrated_url, embeddings_path=emb_file)  # the current run, model v-test
    return world, cfg


def test_one_user_rescore_runs_for_you_on_the_rows_around_the_user(
    served: tuple[World, Config], artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, cfg = served
    _ranker().save(artifacts / "models" / "v-test")
    seen: list[Any] = []
    real = reads.read_user_world
    monkeypatch.setattr(reads, "read_user_world", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    model_path: list[int] = []
    monkeypatch.setattr(jobs, "_one_user_model", lambda *a: model_path.append(1) or (None, None, 0))

    out = jobs.recommend_user(cfg, world.url, NEW_USER, write=True)
    assert not model_path, "the For You pipeline served the user"
    assert out.eligible and len(out.picks) == cfg.recommend.picks_per_user
    goods = [p["good_id"] for p in out.picks]
    assert not set(goods) & (set(world.saves[NEW_USER]) | {DELETED} | set(FAR))
    # NEW_USER follows user 1 and is unknown to the model: on the model path every pick was a fallback; For
    # You's followees source names user 1 and is not one.
    followee = [p for p in out.picks if "user1" in p["reason"]]
    assert followee and not any(p["is_fallback"] for p in followee)
    assert all(p["run_id"] == out.run_id for p in out.picks)
    # Only what is around the user was read: never the old goods nobody near them touched.
    (w,) = seen
    assert not set(w.rows.good_id.tolist()) & set(FAR)
    assert set(w.rows.user_id.tolist()) >= {NEW_USER, 1}
    assert len(w.rows.good_id) == len(w.content) and np.allclose(np.linalg.norm(w.content, axis=1), 1, atol=1e-5)

    # The user's collection goods are filtered too (user 1 owns "Summer").
    one = jobs.recommend_user(cfg, world.url, 1, write=False)
    assert not set(p["good_id"] for p in one.picks) & (set(world.summer) | set(world.saves[1]))
    # And with the repeat filter, the current run's picks are not picked again.
    with db.connect(world.url, autocommit=True) as conn:
        before = {r["good_id"] for r in reads.for_you(conn, 3)}
    again = jobs.recommend_user(dataclasses.replace(cfg, recommend=RecommendConfig()), world.url, 3, write=False)
    assert len(again.picks) >= cfg.recommend.min_picks and not before & {p["good_id"] for p in again.picks}


def test_without_a_ranker_it_is_model_retrieval(served: tuple[World, Config], monkeypatch: pytest.MonkeyPatch) -> None:
    world, cfg = served
    called: list[int] = []
    monkeypatch.setattr(jobs, "_one_user_for_you", lambda *a: called.append(1))
    out = jobs.recommend_user(cfg, world.url, 3, write=False)
    assert not called and len(out.picks) == cfg.recommend.picks_per_user
    few = jobs.recommend_user(cfg, world.url, 21, write=False)  # three saves: not eligible
    assert not few.eligible and not few.picks


def test_the_runs_content_cache_is_read_instead_of_the_database(
    served: tuple[World, Config], artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily job writes the graph's CLIP vectors beside the run; the rescore takes the goods it holds from
    there and reads only the others (goods new since the run) from the database."""
    world, cfg = served
    _ranker().save(artifacts / "models" / "v-test")
    with db.connect(world.url, autocommit=True) as conn:
        run_id = conn.execute("SELECT run_id FROM graphrec_current").fetchone()["run_id"]
    run_dir = jobs.run_embeddings_path(cfg.artifacts, run_id).parent
    cached_ids = np.arange(1, 151, dtype=np.int64)  # goods 151-200 "new since the run"
    marker = np.zeros((150, 4), np.float32)
    marker[:, 3] = 1.0  # not what the database holds

    class Graph:  # what save_content reads of the job's graph
        good_ids = cached_ids

    x = type("X", (), {"numpy": lambda self: marker})()
    jobs.save_content(run_dir, {"id_maps": Graph(), "data": {"good": type("G", (), {"x": x})()}})
    seen: list[Any] = []
    real = reads.read_user_world
    monkeypatch.setattr(reads, "read_user_world", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    jobs.recommend_user(cfg, world.url, 12, write=False)
    (w,) = seen
    ids = w.rows.good_id
    assert (ids <= 150).any() and (ids > 150).any()
    assert np.allclose(w.content[ids <= 150], marker[0])
    assert not np.allclose(w.content[ids > 150][:, 3], 1.0)  # read from the database


def test_content_cache_clusters_new_goods_by_the_nearest_cluster_mean() -> None:
    ids = np.array([10, 20, 30, 40], np.int64)
    vecs = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float16)
    cache = jobs.ContentCache(ids, vecs, np.array([3, 3, 5, 5], np.int16))
    content = np.array([[0, 1], [1, 0], [0.2, 0.98]], np.float32)  # 30 and 10 held; 35 new, near cluster 5
    assert cache.clusters_of(np.array([30, 10, 35]), content).tolist() == [5, 3, 5]
    assert jobs.ContentCache(ids, vecs, None).clusters_of(ids, vecs) is None


@pytest.mark.parametrize("keep", [3, 1000])
def test_the_runs_fresh_pool_replaces_the_scan_of_the_goods_table(
    served: tuple[World, Config], monkeypatch: pytest.MonkeyPatch, keep: int
) -> None:
    """With the run's fresh pool, the goods table is not scanned for fresh goods; the world holds the same
    goods as with the scan: the pool's goods still fresh (a stale pool's saved and deleted goods are checked
    away) and every good created since the run, which the run's content does not hold."""
    world, _ = served
    with db.connect(world.url, autocommit=True) as conn:
        # Goods 1, 4, ... created before the run, goods 2, 5, ... since it.
        conn.execute("UPDATE goods SET created_at = now() - interval '10 days' WHERE id % 3 = 1 AND id <= 200")
        conn.execute("UPDATE goods SET created_at = now() - interval '1 day' WHERE id % 3 = 2 AND id <= 200")
        conn.execute("UPDATE goods SET deleted_at = now() WHERE id IN (4, 7)")
        rows = conn.execute("SELECT id, embedding::real[] AS e FROM goods WHERE id <= 200 ORDER BY id").fetchall()
        now = int(conn.execute("SELECT extract(epoch FROM now())::bigint AS t").fetchone()["t"])
    ids = np.array([r["id"] for r in rows], np.int64)
    vecs = np.array([r["e"] for r in rows], np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    held = ids % 3 != 2  # the run's content: not the goods created since it
    old = ids[ids % 3 == 1]  # the pool as the run had it: every old good, saved, deleted or not (stale)
    pool = reads.FreshPool(old, np.full(len(old), now - 10 * 86_400), vecs[ids % 3 == 1], now - 3 * 86_400, 30, 0)
    kw: dict[str, Any] = dict(
        repeat_days=0,
        fresh_days=30,
        fresh_max_saves=0,
        windows=(7, 14, 30),
        popular_days=7,
        popular_goods=80,
        content_cache=(ids[held], vecs[held]),
        fresh_keep=keep,
        fresh_anchors=5,
    )
    with db.connect(world.url, autocommit=True) as conn:
        scan = reads.read_user_world(conn, 12, **kw)
        monkeypatch.setitem(reads.Q, "fresh_goods", "SELECT 1 / 0")  # no scan of the table with the pool
        pooled = reads.read_user_world(conn, 12, **kw, fresh_pool=pool)
        # A pool of other settings (fewer days than asked for) does not cover them: the table is read.
        with pytest.raises(Exception, match="division by zero"):
            reads.read_user_world(conn, 12, **kw, fresh_pool=dataclasses.replace(pool, fresh_days=7))
    assert pooled.rows.good_id.tolist() == scan.rows.good_id.tolist()
    got = set(pooled.rows.good_id.tolist())
    saved = {g for gs in world.saves.values() for g in gs}
    assert not got & {4, 7, 50} and got >= set(ids[ids % 3 == 2].tolist()) - saved - {50}
    if keep == 1000:  # every good of the pool still fresh is in reach
        assert got >= set(old.tolist()) - saved - {4, 7}
