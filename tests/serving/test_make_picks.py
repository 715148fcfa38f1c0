"""Properties of the whole pure pipeline (retrieve, re-rank, fall back, explain) on random worlds."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrec.core.artifacts import Embeddings
from graphrec.core.config import RecommendConfig
from serving import picks as P
from serving.reasons import Labels
from serving.rows import ServingRows, exclusion_matrix

NOW = 1_700_000_000


@st.composite
def worlds(draw: st.DrawFn) -> tuple[ServingRows, Embeddings, RecommendConfig]:
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    n_users, n_goods = draw(st.integers(2, 12)), draw(st.integers(5, 80))
    user_id = np.sort(rng.choice(1000, n_users, replace=False)).astype(np.int64)
    all_goods = np.sort(rng.choice(10_000, n_goods, replace=False)).astype(np.int64)
    deleted = rng.random(n_goods) < 0.1
    n_saves = draw(st.integers(0, 300))
    save_user = rng.choice(user_id, n_saves)
    save_good = rng.choice(all_goods, n_saves)  # deleted goods included, as in the database
    n_owned = draw(st.integers(0, 30))
    n_picked = draw(st.integers(0, 30))
    n_follows = draw(st.integers(0, 20))
    rows = ServingRows(
        user_id=user_id,
        good_id=all_goods[~deleted],
        good_domain=rng.integers(-1, draw(st.integers(1, 8)), int((~deleted).sum())),
        domain_names=np.array([f"d{i}.com" for i in range(8)]),
        save_user=save_user,
        save_good=save_good,
        save_time=NOW - rng.integers(0, 60 * 86_400, n_saves),
        owned_user=rng.choice(user_id, n_owned),
        owned_collection=rng.integers(1, 5, n_owned),
        owned_good=rng.choice(all_goods, n_owned),
        follower=rng.choice(user_id, n_follows),
        followee=rng.choice(user_id, n_follows),
        picked_user=rng.choice(user_id, n_picked),
        picked_good=rng.choice(all_goods, n_picked),
        now=NOW,
    )
    known_users = user_id[rng.random(n_users) < 0.8]  # some users unknown to the model
    emb = Embeddings(
        model_kind="test",
        model_version="v",
        user_ids=known_users,
        user_vecs=rng.standard_normal((len(known_users), 4)).astype(np.float32),
        good_ids=all_goods,
        good_vecs=rng.standard_normal((n_goods, 4)).astype(np.float32),
        good_known=rng.random(n_goods) < 0.9,
    )
    cfg = RecommendConfig(
        picks_per_user=draw(st.integers(1, 8)),
        min_picks=draw(st.integers(1, 4)),
        candidates=draw(st.integers(1, 30)),
        diversity=draw(st.sampled_from([0.0, 0.5])),
        max_per_domain=draw(st.integers(1, 3)),
    )
    return rows, emb, cfg


@settings(max_examples=60, deadline=None)
@given(worlds(), st.integers(0, 4))
def test_picks_are_never_filtered_and_fill_to_min_picks(world: tuple, min_goods: int) -> None:
    rows, emb, cfg = world
    p = P.make_picks(emb, rows, cfg, min_goods=min_goods)
    pr = P.to_rows(p, rows, Labels({}, {}, {}), cfg)
    exclude = exclusion_matrix(rows)
    deleted = set(np.setdiff1d(np.concatenate([rows.save_good, rows.picked_good]), rows.good_id).tolist())
    for u in np.unique(pr.user_id):
        mine = pr.good_id[pr.user_id == u]
        assert len(set(mine.tolist())) == len(mine) <= cfg.picks_per_user
        assert pr.rank[pr.user_id == u].tolist() == list(range(1, len(mine) + 1))
        assert not set(mine.tolist()) & deleted
        ui = int(rows.user_idx(np.array([u]))[0])
        assert not any(exclude[ui, int(g)] for g in rows.good_idx(mine)), "never a filtered good"
    # Every eligible user gets min_picks unless fewer goods than that are left to show them.
    for ui in p.users.tolist():
        allowed = rows.num_goods - exclude[ui].nnz
        got = int((pr.user_id == rows.user_id[ui]).sum())
        assert got >= min(cfg.min_picks, allowed) or got == cfg.picks_per_user
