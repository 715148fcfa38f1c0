"""The day's picks on the planted world (tests/serving/conftest.py), read from a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from world import DELETED, FEW_SAVES, NEW_USER, STYLE_A, World, good_domain

from graphrec.core import db, runs
from graphrec.core.config import RecommendConfig
from serving import picks as P
from serving import reads, store


def _run(world: World, cfg: RecommendConfig) -> tuple[P.Picks, P.PickRows]:
    with db.connect(world.url) as conn:
        rows = reads.read_rows(conn, cfg.repeat_days)
        p = P.make_picks(world.emb, rows, cfg, min_goods=10)
        labels = reads.read_labels(conn, *P.label_ids(p, rows))
        return p, P.to_rows(p, rows, labels, cfg)


def _publish(world: World, pr: P.PickRows) -> int:
    with runs.job_lock(world.url, "recommend") as conn:
        run_id = runs.new_run_id(conn)
        store.stage_picks(conn, pr)
        store.publish(conn, run_id, "v-test", time.time(), {}, {})
    return run_id


def test_picks_follow_taste_and_filters(world: World) -> None:
    cfg = RecommendConfig(picks_per_user=10, max_per_domain=2)
    p, pr = _run(world, cfg)
    served = set(pr.user_id.tolist())
    assert served == set(range(1, 21)) | {NEW_USER}, "eligible users only (user 21 has three saves)"
    assert FEW_SAVES not in served
    for u in range(1, 21):
        mine = pr.good_id[pr.user_id == u]
        assert len(mine) == 10 and len(set(mine.tolist())) == 10
        assert DELETED not in mine
        assert not set(mine.tolist()) & set(world.saves[u]), "never a saved good"
        liked = STYLE_A if world.style_of_user[u] == "A" else set(range(101, 201))
        assert set(mine.tolist()) <= liked, "model picks come from the user's style"
        domains = [good_domain(int(g)) for g in mine]
        assert max(domains.count(d) for d in set(domains)) <= 2
        assert not pr.is_fallback[pr.user_id == u].any()
    # The new user is unknown to the model: all fallbacks, from the followee's saves first.
    new = pr.user_id == NEW_USER
    assert pr.is_fallback[new].all() and new.sum() >= cfg.min_picks
    assert "user1" in pr.reason[int(np.flatnonzero(new)[0])]
    counts = p.counts(cfg.min_picks, 199)
    assert counts["users_unknown_to_model"] == 1 and counts["users_short"] == 0


def test_reasons_name_the_closest_saved_good_and_its_collection(world: World) -> None:
    _, pr = _run(world, RecommendConfig(picks_per_user=10))
    import json

    for i in np.flatnonzero(pr.user_id == 1):
        d = json.loads(pr.reason_detail[i])
        assert d["good_id"] in world.saves[1]
        if d["good_id"] in world.summer:
            assert d["kind"] == "collection" and pr.reason[i] == f"because you saved good {d['good_id']} in Summer"
        else:
            assert d["kind"] == "good" and pr.reason[i] == f"because you saved good {d['good_id']}"


def test_collection_goods_are_excluded_and_picks_do_not_repeat(world: World) -> None:
    with db.connect(world.url) as conn:
        # User 2 puts good 60 (style A, not saved) in a collection: it must never be picked for them.
        conn.execute("INSERT INTO collections (id, owner_id, title) VALUES (2, 2, 'Later')")
        conn.execute("INSERT INTO collection_goods (collection_id, good_id) VALUES (2, 60)")
        conn.commit()
    cfg = RecommendConfig(picks_per_user=10)
    _, first = _run(world, cfg)
    assert 60 not in first.good_id[first.user_id == 2]
    _publish(world, first)
    _, second = _run(world, cfg)
    for u in range(1, 21):
        assert not set(first.good_id[first.user_id == u].tolist()) & set(second.good_id[second.user_id == u].tolist())
    # With the repeat filter off, the same (deterministic) picks come back.
    _, again = _run(world, RecommendConfig(picks_per_user=10, repeat_days=0))
    assert again.good_id[again.user_id == 3].tolist() == first.good_id[first.user_id == 3].tolist()


def test_inductive_goods_count_and_zero_rows_are_never_model_picks(world: World) -> None:
    # Goods 60..100 are new since training but embedded inductively (real vectors, good_known False);
    # goods 1..40 are unknown to a transductive model (zero rows).
    known = world.emb.good_known.copy()
    vecs = world.emb.good_vecs.copy()
    known[59:100] = False
    known[:40] = False
    vecs[:40] = 0
    world.emb = dataclasses.replace(world.emb, good_known=known, good_vecs=vecs)
    p, pr = _run(world, RecommendConfig(picks_per_user=10))
    model = ~pr.is_fallback
    assert set(pr.good_id[model].tolist()) & set(range(60, 101)), "inductive goods are picked"
    assert not set(pr.good_id[model].tolist()) & set(range(1, 41)), "zero rows are never model picks"
    assert p.counts(5, 199)["goods_without_vector"] == 40
