"""Known-answer tests for each user's interests (serving/foryou/interests.py) and retrieval per interest."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from graphrec.core.arrays import GraphArrays
from graphrec.core.config import ForYouConfig
from serving.foryou.context import ForYouContext, ModelVectors
from serving.foryou.interests import (
    InterestParams,
    find_interests,
    good_interest,
    labels,
    projected_vectors,
    rows_of,
    user_interests,
)
from serving.foryou.sources.interest_embedding import InterestEmbedding, quotas

DIM = 48
STYLES = 6
PER_STYLE = 60


def catalogue(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors [G, DIM], style [G], domain [G]): STYLES near-orthogonal tastes, PER_STYLE goods each, two shops
    per style, noise like the demo's (a good is its style plus its shop's look plus noise)."""
    rng = np.random.default_rng(seed)
    style_vecs = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0][:STYLES]
    style = np.repeat(np.arange(STYLES), PER_STYLE)
    domain = style * 2 + (np.arange(len(style)) % 2)
    look = rng.standard_normal((STYLES * 2, DIM)) / np.sqrt(DIM)
    v = style_vecs[style] + 0.45 * look[domain] + 0.8 * rng.standard_normal((len(style), DIM)) / np.sqrt(DIM)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32), style, domain


def saves_of(goods_per_user: list[list[int]], n_goods: int) -> sp.csr_matrix:
    rows = np.repeat(np.arange(len(goods_per_user)), [len(g) for g in goods_per_user])
    cols = np.concatenate([np.asarray(g, dtype=np.int64) for g in goods_per_user]) if len(rows) else np.zeros(0)
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(goods_per_user), n_goods))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def four_taste_user(style: np.ndarray, counts: dict[int, int], seed: int = 1) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(g) for s, c in counts.items() for g in rng.choice(np.flatnonzero(style == s), c, replace=False)]


PLANTED = {0: 16, 1: 12, 2: 8, 3: 4}  # 40 saves: weights 0.4, 0.3, 0.2, 0.1


def test_four_planted_tastes_are_found_with_their_weights() -> None:
    vecs, style, domain = catalogue()
    saves = saves_of([four_taste_user(style, PLANTED)], len(style))
    ui = find_interests(saves, vecs, domain=domain, params=InterestParams(dim=0))
    assert ui.count[0] == 4
    found = []
    for j in range(4):
        i = ui.row[0, j]
        members = style[ui.save_good[ui.save_interest == i]]
        assert np.all(members == members[0]), "an interest mixes tastes"
        assert style[ui.medoid[i]] == members[0]
        found.append(int(members[0]))
    assert found == [0, 1, 2, 3]  # heaviest first
    np.testing.assert_allclose(ui.weight[0, :4], [0.4, 0.3, 0.2, 0.1], atol=1e-6)
    # The domains of an interest are its style's two shops.
    assert set(ui.domains[ui.row[0, 0]].tolist()) == {0, 1}


def test_projection_and_centring_keep_the_tastes() -> None:
    vecs, style, _ = catalogue()
    saves = saves_of([four_taste_user(style, PLANTED)], len(style))
    ui = find_interests(saves, vecs, params=InterestParams(dim=16))
    assert ui.count[0] == 4
    np.testing.assert_allclose(ui.weight[0, :4], [0.4, 0.3, 0.2, 0.1], atol=1e-6)


def test_users_with_one_two_and_five_hundred_saves() -> None:
    rng = np.random.default_rng(3)
    vecs, style, _ = catalogue()
    big_styles = rng.choice([0, 1, 2], 500, p=[0.5, 0.3, 0.2])
    # 500 distinct goods: re-use the catalogue's vectors with small noise to make enough goods.
    base = np.concatenate([np.flatnonzero(style == s) for s in range(STYLES)])
    extra = vecs[np.repeat(base, 4)] + 0.05 * rng.standard_normal((len(base) * 4, DIM)).astype(np.float32)
    all_vecs = np.concatenate([vecs, extra / np.linalg.norm(extra, axis=1, keepdims=True)])
    all_style = np.concatenate([style, np.repeat(style[base], 4)])
    big = [int(rng.choice(np.flatnonzero(all_style == s))) for s in big_styles]
    big = list(dict.fromkeys(big))
    while len(big) < 500:
        s = int(rng.choice([0, 1, 2], p=[0.5, 0.3, 0.2]))
        g = int(rng.choice(np.flatnonzero(all_style == s)))
        if g not in big:
            big.append(g)
    one = [5]
    two_apart = [0, PER_STYLE * 3]  # styles 0 and 3
    two_close = [1, 2]  # both style 0
    saves = saves_of([one, two_apart, two_close, big], len(all_style))
    ui = find_interests(saves, all_vecs, params=InterestParams(dim=0))
    assert ui.count.tolist()[:3] == [1, 2, 1]
    assert ui.medoid[ui.row[0, 0]] == 5 and ui.weight[0, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(ui.weight[1, :2], [0.5, 0.5], atol=1e-6)
    assert ui.count[3] == 3
    big_shares = [float((all_style[big] == s).mean()) for s in (0, 1, 2)]
    np.testing.assert_allclose(ui.weight[3, :3], big_shares, atol=0.02)


def test_a_stray_save_is_noise_not_an_interest() -> None:
    vecs, style, _ = catalogue()
    goods = four_taste_user(style, {0: 20, 1: 20}) + [int(np.flatnonzero(style == 5)[0])]
    ui = find_interests(saves_of([goods], len(style)), vecs, params=InterestParams(dim=0))
    assert ui.count[0] == 2
    assert (ui.save_interest == -1).sum() == 1
    np.testing.assert_allclose(ui.weight[0, :2].sum(), 1.0, atol=1e-6)


def test_recency_weighs_newer_saves_more_and_skips_goods_without_a_vector() -> None:
    vecs, style, _ = catalogue()
    vecs[PER_STYLE * 1 + 3] = 0.0  # a good without a vector
    goods = four_taste_user(style, {0: 10, 1: 10})
    saves = saves_of([goods + [PER_STYLE * 1 + 3]], len(style))
    times = sp.csr_matrix(saves, dtype=np.float64)
    times.data = np.where(style[saves.indices] == 0, 0.0, 365.0 * 86_400)  # style 0 a year ago, style 1 today
    ui = find_interests(
        saves, vecs, save_time=times, now=365.0 * 86_400, params=InterestParams(dim=0, half_life=90 * 86_400.0)
    )
    assert ui.count[0] == 2
    assert style[ui.medoid[ui.row[0, 0]]] == 1  # the recent taste is the heavier one
    assert ui.weight[0, 0] > 0.9
    assert PER_STYLE * 1 + 3 not in ui.save_good.tolist()


def test_interests_and_labels_are_deterministic_and_readable() -> None:
    vecs, style, domain = catalogue()
    rng = np.random.default_rng(7)
    users = [four_taste_user(style, {int(s): 6 for s in rng.choice(STYLES, 3, replace=False)}, i) for i in range(30)]
    saves = saves_of(users, len(style))
    titles = [f"{['Folk', 'Zen', 'Utility', 'Industrial', 'Boho', 'Neon'][s]} good {g}" for g, s in enumerate(style)]
    shops = [f"shop{d}.com" for d in range(domain.max() + 1)]
    a = find_interests(saves, vecs, domain=domain, params=InterestParams(seed=4))
    b = find_interests(saves, vecs, domain=domain, params=InterestParams(seed=4))
    la, lb = labels(a, titles, shops), labels(b, titles, shops)
    assert la == lb
    np.testing.assert_array_equal(a.medoid, b.medoid)
    np.testing.assert_array_equal(a.weight, b.weight)
    # A label names a saved good of the interest and its shop(s).
    first = la[a.row[0, 0]]
    med = a.medoid[a.row[0, 0]]
    assert first.startswith(titles[med]) and f"shop{domain[med]}.com" in first
    # Found again from the users in another order, each user's interests are the same.
    perm = rng.permutation(len(users))
    c = find_interests(saves, vecs, users=perm, domain=domain, params=InterestParams(seed=4))
    r = rows_of(c, np.arange(len(users)))
    np.testing.assert_array_equal(c.medoid[c.row[r, 0]], a.medoid[a.row[:, 0]])


def test_blocks_on_threads_give_the_interests_of_one_thread() -> None:
    vecs, style, domain = catalogue()
    rng = np.random.default_rng(3)
    tastes = [{int(s): int(rng.integers(2, 12)) for s in rng.choice(STYLES, 3)} for _ in range(90)]
    users = [four_taste_user(style, counts, i) for i, counts in enumerate(tastes)]
    saves = saves_of(users, len(style))
    # Blocks of about 64 padded saves: a few users each, in several length buckets.
    one, many = (find_interests(saves, vecs, domain=domain, block_saves=64, threads=t) for t in (1, 3))
    assert len(one.owner) > 90
    for name in ("row", "weight", "owner", "size", "medoid", "centroid", "save_interest", "centre_z"):
        np.testing.assert_array_equal(getattr(many, name), getattr(one, name), err_msg=name)


def test_candidates_are_assigned_to_the_nearest_interest() -> None:
    vecs, style, _ = catalogue()
    saves = saves_of([four_taste_user(style, PLANTED)], len(style))
    ui = find_interests(saves, vecs, params=InterestParams(dim=0))
    saved = set(saves.indices.tolist())
    cands = np.array([[g for g in range(len(style)) if g not in saved and style[g] < 5]])
    slot = good_interest(ui, np.array([0]), cands, vecs)
    want = style[cands]  # styles 0..3 are slots 0..3; style 4 is none of the user's tastes
    on = want < 4
    assert (slot[on] == want[on]).mean() > 0.97
    assert (slot[~on] == -1).mean() > 0.97  # far from every interest: serves none
    flat = good_interest(ui, np.zeros(cands.shape[1], np.int64), cands[0], vecs)
    np.testing.assert_array_equal(flat, slot[0])
    # A user the interests do not cover gets no interest.
    assert (good_interest(ui, np.array([5]), cands[:, :3], vecs) == -1).all()


def test_candidates_assigned_from_projected_vectors_match_projecting_each() -> None:
    # The daily job projects the catalogue once (projected_vectors) and gathers rows per candidate.
    vecs, style, _ = catalogue()
    saves = saves_of([four_taste_user(style, PLANTED)], len(style))
    ui = find_interests(saves, vecs, params=InterestParams(dim=8))
    assert ui.basis.shape[1] == 8 < vecs.shape[1]
    cands = np.array([[g for g in range(len(style)) if style[g] < 5]])
    z = np.concatenate([ui.project(vecs[lo : lo + 7]) for lo in range(0, len(vecs), 7)])  # chunks, as it runs
    np.testing.assert_allclose(z, ui.project(vecs), atol=1e-6)
    want = good_interest(ui, np.array([0]), cands, vecs)
    assert (want >= 0).any() and (want == -1).any()
    np.testing.assert_array_equal(good_interest(ui, np.array([0]), cands, z, projected=True), want)
    flat = good_interest(ui, np.zeros(cands.shape[1], np.int64), cands[0], z, projected=True)
    np.testing.assert_array_equal(flat, want[0])
    # projected_vectors: the context's interests' projection of its vectors, in chunks, computed once.
    ctx = ForYouContext.build(_arrays(saves, vecs, np.zeros(len(vecs), np.int64)), ForYouConfig())
    pz = projected_vectors(ctx, chunk=7)
    np.testing.assert_allclose(pz, user_interests(ctx).project(vecs), atol=1e-6)
    assert projected_vectors(ctx) is pz


def test_flat_pairs_grouped_by_user_get_the_slots_of_their_lists() -> None:
    # The daily job's candidates come as flat (user, good) pairs grouped by user; they take one product per
    # user (interests._assign_runs) and must get the slots that the same goods as each user's list get.
    vecs, style, _ = catalogue()
    rng = np.random.default_rng(2)
    users = [
        four_taste_user(style, {int(a): 10, int(b): 6}, seed=u) for u, (a, b) in enumerate(rng.integers(0, 6, (7, 2)))
    ]
    saves = saves_of(users, len(style))
    ui = find_interests(saves, vecs, params=InterestParams(dim=8))
    z = ui.project(vecs)
    lists = rng.integers(-1, len(style), (8, 40))  # -1: padding; user 7 has no saves, so no interests
    want = good_interest(ui, np.arange(8), lists, z, projected=True)
    assert (want >= 0).any() and (want == -1).any() and (want[7] == -1).all()
    flat = good_interest(ui, np.repeat(np.arange(8), 40), lists.ravel(), z, projected=True)
    np.testing.assert_array_equal(flat, want.ravel())
    # Users in no order (runs of one): the per-pair path, the same slots.
    order = rng.permutation(8 * 40)
    np.testing.assert_array_equal(
        good_interest(ui, np.repeat(np.arange(8), 40)[order], lists.ravel()[order], z, projected=True),
        want.ravel()[order],
    )


def test_quotas_give_every_interest_places_and_sum_to_n() -> None:
    q = quotas(np.array([[0.7, 0.2, 0.1, 0.0], [1.0, 0, 0, 0], [0, 0, 0, 0]]), 40)
    assert q[0].sum() == 40 and q[0, 3] == 0 and q[0, 2] >= 5
    assert q[1].tolist() == [40, 0, 0, 0]
    assert q[2].sum() == 0


def _arrays(saves: sp.csr_matrix, content: np.ndarray, domain: np.ndarray) -> GraphArrays:
    u, g = saves.shape
    times = sp.csr_matrix(saves, dtype=np.float64)
    times.data = np.arange(times.nnz, dtype=np.float64) + 1000.0
    empty_uu = sp.csr_matrix((u, u), dtype=np.float32)
    empty_cg = sp.csr_matrix((0, g), dtype=np.float32)
    return GraphArrays(
        saves=saves,
        save_time=times,
        follows=empty_uu,
        follow_time=sp.csr_matrix((u, u), dtype=np.float64),
        contains=empty_cg,
        contains_time=sp.csr_matrix((0, g), dtype=np.float64),
        collection_owner=np.zeros(0, np.int64),
        content=content,
        domain=domain,
        created_at=np.zeros(g, np.int64),
        as_of=10**6,
    )


def test_retrieval_per_interest_covers_every_taste_where_one_user_vector_does_not() -> None:
    vecs, style, domain = catalogue()
    goods = four_taste_user(style, PLANTED)
    saves = saves_of([goods], len(style))
    arrays = _arrays(saves, vecs, domain)
    # The "model": here the same vectors; its one user vector is the mean of the saves.
    user_vec = vecs[goods].mean(axis=0, keepdims=True)
    ctx = ForYouContext.build(
        arrays, ForYouConfig(interest_threshold=0.25), model=ModelVectors(user_vec, vecs, "test", "v")
    )
    c = InterestEmbedding().candidates(ctx, np.array([0]), 40)
    got = c.goods[0][c.goods[0] >= 0]
    assert len(got) == 40 and not set(got.tolist()) & set(goods)
    assert set(style[got].tolist()) == {0, 1, 2, 3}
    assert c.interest is not None
    np.testing.assert_array_equal(c.interest[0][: len(got)], style[got])  # slot j is taste j here
    assert all(style[v] == style[g] for v, g in zip(c.via[0][: len(got)], got, strict=True))  # via: the medoid
    one_vector = np.argsort(-(vecs @ user_vec[0]))
    one_vector = [g for g in one_vector if g not in set(goods)][:40]
    assert len(set(style[one_vector].tolist())) < 4
    assert user_interests(ctx) is user_interests(ctx)  # found once per context


def test_pick_interests_give_the_reason_its_medoid_domain_and_weight() -> None:
    from serving.foryou.interests import pick_interests

    vecs, style, domain = catalogue()
    saves = saves_of([four_taste_user(style, PLANTED), []], len(style))
    ui = find_interests(saves, vecs, domain=domain, params=InterestParams(dim=0))
    medoid, dom, weight = pick_interests(ui, np.array([0, 1]), np.array([[1, -1, 0], [0, 0, -1]]))
    assert style[medoid[0, 0]] == 1 and medoid[0, 1] == -1 and style[medoid[0, 2]] == 0
    assert dom[0, 0] in (2, 3) and dom[0, 1] == -1
    np.testing.assert_allclose(weight[0], [0.3, 0.0, 0.4], atol=1e-6)
    assert (medoid[1] == -1).all() and (weight[1] == 0).all()  # user 1 saved nothing: no interests
