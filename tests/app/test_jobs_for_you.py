"""The daily job's two pick paths through a real database: For You's lists first, then model retrieval and the
fallbacks only for the users For You leaves short, and a fallback count that counts fallbacks only.

For You itself is planted (its own tests are in tests/serving/foryou): users 1-10 get a full For You list whose
first three picks come from its followees source and whose last is its popularity top-up; user 11 gets three
picks (short of recommend.min_picks); the others none."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graphrec.app import jobs
from graphrec.core import db
from graphrec.core.config import Config, PathsConfig
from serving import fallback
from serving import picks as P

sys.path.insert(0, str(Path(__file__).parent.parent / "serving"))
from world import NEW_USER, World, build_world, for_you_all  # noqa: E402

SERVED = list(range(1, 11))
SHORT_FY = 11  # For You gives this user three picks
FOLLOWEE_PICKS = 3  # per served user, from For You's followees source
VIA = 2  # the followee those picks name


def _plant_for_you(world: World, served: list[int] = SERVED) -> Any:
    def for_you_picks(cfg: Config, graph: dict, emb: Any, rows: Any, picks: P.Picks, stages: Any) -> P.Picks:
        assert (picks.picks < 0).all(), "For You must get empty lists, not model retrieval's"
        new = {f: getattr(picks, f).copy() for f in ("picks", "source", "via_user")}
        k = picks.picks.shape[1]
        for i, u in enumerate(rows.user_id[picks.users].tolist()):
            if u not in served and u != SHORT_FY:
                continue
            pool = [g for g in range(1, 101) if g not in world.saves[u] and g != 50 and g not in world.summer]
            n = k if u in served else 3
            new["picks"][i, :n] = rows.good_idx(np.array(pool[:n]))
            if u in served:
                new["source"][i, :FOLLOWEE_PICKS] = fallback.FOLLOWEE
                new["via_user"][i, :FOLLOWEE_PICKS] = rows.user_idx(np.array([VIA]))[0]
                new["source"][i, k - 1] = fallback.POPULAR  # For You's popularity top-up
        return dataclasses.replace(picks, **new)

    return for_you_picks


@pytest.fixture
def planted(migrated_url: str, artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[World, Config, list]:
    world = build_world(migrated_url)

    def load(cfg: Config, url: str, stages: Any, keep: dict | None = None) -> Any:
        assert keep is not None
        keep.update(data=None, id_maps=None, as_of=0, checkpoint=artifacts)  # a graph was loaded
        return world.emb

    calls: list = []
    real = P.make_picks

    def spy(*args: Any, **kwargs: Any) -> P.Picks:
        out = real(*args, **kwargs)
        calls.append(out)
        return out

    monkeypatch.setattr(jobs, "_load_current_embeddings", load)
    monkeypatch.setattr(jobs, "for_you_picks", _plant_for_you(world))
    monkeypatch.setattr(P, "make_picks", spy)
    return world, Config(paths=PathsConfig(artifacts=str(artifacts))), calls


def test_fallback_path_runs_only_for_users_for_you_leaves_short(planted: tuple[World, Config, list]) -> None:
    world, cfg, calls = planted
    rc = cfg.recommend
    result = jobs.recommend(cfg, world.url)
    eligible = sorted([*range(1, 21), NEW_USER])

    # One model-retrieval pass, for the users For You left short (user 11 with 3 picks, and those with none).
    assert len(calls) == 1
    with db.connect(world.url, autocommit=True) as conn:
        user_ids = np.array([r["id"] for r in conn.execute("SELECT id FROM users ORDER BY id").fetchall()])
        feeds = for_you_all(conn, eligible)
    short = sorted(set(eligible) - set(SERVED))
    assert sorted(user_ids[calls[0].users].tolist()) == short

    by_user: dict[int, list[dict]] = {}
    for r in feeds:
        by_user.setdefault(r["user_id"], []).append(r)
    assert all(len(by_user.get(u, [])) >= rc.min_picks for u in eligible)  # the guarantee holds
    for u in SERVED:  # For You's lists are served as they came
        rows = sorted(by_user[u], key=lambda r: r["rank"])
        assert len(rows) == rc.picks_per_user
        assert [r["is_fallback"] for r in rows] == [False] * (rc.picks_per_user - 1) + [True]
        assert all(f"user{VIA}" in r["reason"] for r in rows[:FOLLOWEE_PICKS])
    # User 11 got model retrieval's list, not For You's three picks.
    assert len(by_user[SHORT_FY]) == rc.picks_per_user

    # fallback_picks: the fill path's fallbacks (short users) plus For You's top-ups, not its followee picks.
    fill = calls[0]
    fill_fallbacks = int(((fill.picks >= 0) & (fill.source != fallback.MODEL)).sum())
    assert fill_fallbacks > 0  # NEW_USER (unknown to the model) is all fallbacks
    assert result.counts["fallback_picks"] == fill_fallbacks + len(SERVED)
    served_db = sum(r["is_fallback"] for r in feeds)
    assert served_db == result.counts["fallback_picks"]
    # The source-based count (what the job reported before) would have counted the followee picks too.
    naive = fill_fallbacks + len(SERVED) * (FOLLOWEE_PICKS + 1)
    assert naive != result.counts["fallback_picks"]
    assert result.counts["users_served"] == len(eligible)
    assert result.counts["users_short"] == 0


def test_a_run_for_you_serves_whole_counts_its_top_ups_alone(
    planted: tuple[World, Config, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No user short: no fill path, and still only the top-ups are fallbacks (the demo's case: 3,138 users
    # served, 8 top-ups, where the job reported its 18,131 followee picks as fallbacks too).
    world, cfg, calls = planted
    eligible = sorted([*range(1, 21), NEW_USER])
    monkeypatch.setattr(jobs, "for_you_picks", _plant_for_you(world, served=eligible))
    result = jobs.recommend(cfg, world.url)
    assert calls == []
    with db.connect(world.url, autocommit=True) as conn:
        feeds = for_you_all(conn, eligible)
    assert result.counts["fallback_picks"] == len(eligible)
    assert sum(r["is_fallback"] for r in feeds) == len(eligible)
    assert result.counts["users_served"] == len(eligible)


def test_the_catalogue_is_clustered_once_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # The clusters saved beside the run (for the one-user rescore) are kept with the graph's arrays, which For
    # You's context then takes (for_you_picks) instead of converting and clustering the catalogue again.
    import etl.arrays
    from graphrec.core.config import ForYouConfig
    from serving.foryou.context import ForYouContext
    from tests.serving.foryou.world import planted as planted_arrays

    arrays = planted_arrays(seed=2)
    built: list[int] = []
    monkeypatch.setattr(etl.arrays, "graph_arrays", lambda *a: built.append(1) or arrays)
    cfg = Config(foryou=ForYouConfig(clusters=8))
    graph: dict[str, Any] = {"data": None, "as_of": arrays.as_of}
    clusters = jobs.catalog_clusters(cfg, graph)
    assert graph["arrays"] is arrays and graph["clusters"] is clusters and len(built) == 1
    np.testing.assert_array_equal(clusters, ForYouContext.build(arrays, cfg.foryou).clusters())
    jobs.catalog_clusters(cfg, graph)
    assert len(built) == 1


def test_the_run_saves_the_fresh_sources_pool(tmp_path: Path) -> None:
    # The pool the fresh source draws from at the run's as-of (graph order is not id order here), which one
    # user's rescore reads instead of scanning the goods table; none without its fresh.json.
    from graphrec.core.config import ForYouConfig
    from tests.serving.foryou.world import planted as planted_arrays

    arrays = planted_arrays(seed=2)
    good_ids = np.random.default_rng(0).permutation(arrays.n_goods).astype(np.int64) + 1000
    content = np.asarray(arrays.content, np.float32)
    graph = {
        "arrays": arrays,
        "id_maps": type("M", (), {"good_ids": good_ids})(),
        "data": {"good": type("G", (), {"x": type("X", (), {"numpy": lambda self: content})()})()},
    }
    cfg = Config(foryou=ForYouConfig(fresh_days=20, fresh_max_saves=1))
    n = jobs.save_fresh_pool(tmp_path, cfg, graph)
    fresh = arrays.live() & (arrays.created_at >= arrays.as_of - 20 * 86_400) & (arrays.popularity() <= 1)
    assert 0 < n == fresh.sum() < arrays.n_goods
    pool = jobs.load_fresh_pool(tmp_path)
    assert pool is not None and pool.as_of == arrays.as_of and pool.covers(20, 1) and not pool.covers(30, 1)
    np.testing.assert_array_equal(pool.ids, np.sort(good_ids[fresh]))
    at = np.argsort(good_ids)[np.searchsorted(np.sort(good_ids), pool.ids)]
    np.testing.assert_array_equal(pool.created_at, arrays.created_at[at])
    np.testing.assert_allclose(pool.vecs, content[at], atol=2e-3)
    (tmp_path / jobs.FRESH_META).unlink()
    assert jobs.load_fresh_pool(tmp_path) is None
