"""A synthetic Goodsend with a planted answer, so the pipeline can be checked against known structure.

The world: `styles` latent tastes, unit vectors in a 512-d CLIP-like space. Each domain (a shop or an
Instagram handle) sells mostly one to three styles and has a Zipf popularity. A good's embedding is its
style plus its domain's look plus noise. Users hold 1-4 interests that can drift once over the year; their
activity is log-normal (median ~15 saves, long tail, many under 10). Saves arrive in time order: some create
a new good from outside the app ('external'), the rest re-save goods already in the catalog, found on the
explore feed (popular goods of the same style) or in a friend's saves ('friend'). Users sort saves of an
interest into a collection for it, and follow people with similar interests (homophily).

`generate` is pure: it returns the tables and the truth (each user's interests, each good's style), which
etl.write loads into the database. Demo goods have no real image, so `image_url` is NULL and the app draws a
tile for them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from etl.demo_words import ADJECTIVES, CATEGORIES, FIRST, MATERIALS, SHOP_WORDS, style_name
from etl.tables import NO_TIME, CollectionGoods, Collections, DemoTruth, Follows, Goods, Saves, SourceTables, Users

log = logging.getLogger(__name__)

DAY = 86_400


@dataclass(frozen=True)
class DemoParams:
    """The size and shape of the demo world (`graphrec demo-data` fills it from the [demo] config)."""

    users: int = 5000
    goods: int = 100000
    styles: int = 40
    domains: int = 600
    dim: int = 512
    seed: int = 0
    days: int = 365
    end: int = 1_767_225_600  # 2026-01-01T00:00:00Z; the CLI passes today's midnight


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@dataclass
class _Shops:
    """The styles and the domains that sell them."""

    style_vecs: np.ndarray  # float32 [S, dim] unit vectors
    look: np.ndarray  # float32 [D, dim] each domain's own look
    main: np.ndarray  # int [D] each domain's main style
    is_instagram: np.ndarray  # bool [D]
    names: list[str]  # [D] shop host or @handle
    style_domain_cdf: np.ndarray  # float [S, D] per style, the CDF over the domains that sell it


@dataclass
class _People:
    """The users' tastes, how much they save and when they joined (rows are user indices 0..U-1)."""

    interests: np.ndarray  # int [U, 4] style per slot, -1 unused
    weights: np.ndarray  # float [U, 4] each slot's share of the user's saves
    drifts: np.ndarray  # bool [U] whether one interest drifts ...
    drift_slot: np.ndarray  # int [U] ... which one ...
    drift_to: np.ndarray  # int [U] ... to which style ...
    drift_at: np.ndarray  # float [U] ... and when (share of the user's active time)
    activity: np.ndarray  # int64 [U] number of save events
    join: np.ndarray  # int64 [U] unix seconds


@dataclass
class _Saves:
    """The saves that happened, in time order, and the goods they created."""

    user: np.ndarray  # int64 [N] user index
    time: np.ndarray  # int64 [N]
    good: np.ndarray  # int64 [N] good index
    source: np.ndarray  # object [N] 'external', 'explore' or 'friend'
    good_style: np.ndarray  # int64 [G]
    good_domain: np.ndarray  # int64 [G]
    good_created: np.ndarray  # int64 [G]


def generate(p: DemoParams) -> tuple[SourceTables, DemoTruth]:
    """The demo world of `p`: the source tables (ids from 1) and the planted truth. Same `p`, same world."""
    rng = np.random.default_rng(p.seed)
    # The steps draw from one generator in this order; reordering them would change every world.
    shops = _shops(rng, p)
    people = _people(rng, p)
    ev_user, ev_time, ev_style = _events(rng, p, people)
    follow_src, follow_dst, follow_time = _follows(rng, p, people)
    saves = _saves(rng, p, shops, ev_user, ev_time, ev_style, follow_src, follow_dst)
    goods = _goods(rng, p, shops, saves)
    collections, collection_goods = _collections(rng, p, people, saves)
    user_ids = np.arange(1, p.users + 1, dtype=np.int64)
    names = np.array([f"{FIRST[i % len(FIRST)]}_{i}" for i in range(p.users)], dtype=object)
    tables = SourceTables(
        users=Users(id=user_ids, name=names, created_at=people.join.astype(np.int64)),
        goods=goods,
        collections=collections,
        collection_goods=collection_goods,
        saves=Saves(
            user_id=user_ids[saves.user], good_id=goods.id[saves.good], saved_at=saves.time, source=saves.source
        ),
        follows=Follows(follower_id=user_ids[follow_src], followee_id=user_ids[follow_dst], created_at=follow_time),
    )
    truth = _truth(p, people, goods.id, saves.good_style, shops.style_vecs)
    log.info("generated demo data", extra={"users": p.users, "goods": len(goods.id), "saves": len(saves.user)})
    return tables, truth


def _shops(rng: np.random.Generator, p: DemoParams) -> _Shops:
    """Styles, and domains that sell mostly one to three of them, with Zipf popularity."""
    S, D = p.styles, p.domains
    style_vecs = _unit(rng.standard_normal((S, p.dim))).astype(np.float32)
    look = _unit(rng.standard_normal((D, p.dim))).astype(np.float32)
    # Each domain sells one main style and sometimes one or two more.
    domain_styles = np.zeros((D, S))
    main = rng.integers(0, S, D)
    domain_styles[np.arange(D), main] = 1.0
    for extra in range(2):
        has = rng.random(D) < 0.4 / (extra + 1)
        domain_styles[np.where(has)[0], rng.integers(0, S, has.sum())] += 0.35
    domain_pop = 1.0 / np.arange(1, D + 1) ** 0.9
    rng.shuffle(domain_pop)
    is_instagram = rng.random(D) < 0.2
    names = [
        f"@{rng.choice(FIRST)}.{ADJECTIVES[main[d] % len(ADJECTIVES)]}{d}"
        if is_instagram[d]
        else f"{ADJECTIVES[main[d] % len(ADJECTIVES)]}{rng.choice(SHOP_WORDS)}{d}.com"
        for d in range(D)
    ]
    # style -> distribution over domains that sell it, weighted by popularity.
    style_domain_p = domain_styles.T * domain_pop
    style_domain_p /= style_domain_p.sum(axis=1, keepdims=True)
    return _Shops(style_vecs, look, main, is_instagram, names, np.cumsum(style_domain_p, axis=1))


def _people(rng: np.random.Generator, p: DemoParams) -> _People:
    """Users: interests (with one possible drift), activity, join time."""
    S, U = p.styles, p.users
    n_int = rng.choice([1, 2, 3, 4], U, p=[0.25, 0.35, 0.25, 0.15])
    interests = np.full((U, 4), -1)
    for u in range(U):
        interests[u, : n_int[u]] = rng.choice(S, n_int[u], replace=False)
    weights = rng.dirichlet(np.ones(4), U) * (interests >= 0)
    weights /= weights.sum(axis=1, keepdims=True)
    drifts = rng.random(U) < 0.4
    drift_slot = (rng.random(U) * n_int).astype(int)
    drift_to = rng.integers(0, S, U)
    drift_at = rng.uniform(0.3, 0.8, U)

    activity = np.minimum(np.ceil(rng.lognormal(np.log(15), 1.2, U)), 800).astype(np.int64)
    total = int(activity.sum())
    if total < 1.2 * p.goods:  # every good comes from a save; keep enough re-saves for the graph to matter
        activity = np.ceil(activity * (1.2 * p.goods / total)).astype(np.int64)
    start = p.end - p.days * DAY
    join = start + (rng.beta(1.0, 1.6, U) * (p.days - 7) * DAY).astype(np.int64)
    return _People(interests, weights, drifts, drift_slot, drift_to, drift_at, activity, join)


def _events(rng: np.random.Generator, p: DemoParams, people: _People) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every save event (user index, time, style), in time order."""
    total = int(people.activity.sum())
    # Users stay active for a while (log-normal, median ~4 months), then most drift away.
    life = np.minimum(rng.lognormal(np.log(120 * DAY), 0.9, p.users).astype(np.int64), p.end - people.join)
    ev_user = np.repeat(np.arange(p.users), people.activity)
    span = life[ev_user]
    ev_frac = rng.random(total)
    ev_time = people.join[ev_user] + (ev_frac * span).astype(np.int64)
    order = np.argsort(ev_time, kind="stable")
    ev_user, ev_time, ev_frac = ev_user[order], ev_time[order], ev_frac[order]

    # Style of each event: an interest by weight (after drift if past the drift point), or noise.
    cum_w = np.cumsum(people.weights, axis=1)
    slot = (rng.random(total)[:, None] > cum_w[ev_user]).sum(axis=1).clip(0, 3)
    ev_style = people.interests[ev_user, slot]
    drifted = people.drifts[ev_user] & (ev_frac > people.drift_at[ev_user]) & (slot == people.drift_slot[ev_user])
    ev_style = np.where(drifted, people.drift_to[ev_user], ev_style)
    noise = rng.random(total) < 0.08
    ev_style = np.where(noise, rng.integers(0, p.styles, total), ev_style)
    return ev_user, ev_time, ev_style


def _follows(rng: np.random.Generator, p: DemoParams, people: _People) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(follower, followee, time) with homophily: candidates scored by shared interests plus noise."""
    U = p.users
    taste = np.zeros((U, p.styles))
    np.put_along_axis(taste, people.interests.clip(0), people.weights, axis=1)
    n_follow = np.minimum(rng.poisson(2 + 4 * np.log1p(people.activity / 10)), U - 1)
    cand = rng.integers(0, U, (U, 60))
    affinity = (taste[:, None, :] * taste[cand]).sum(-1) + rng.gumbel(0, 0.15, cand.shape)
    affinity[cand == np.arange(U)[:, None]] = -np.inf
    ranked = np.argsort(-affinity, axis=1)
    f_src, f_dst = [], []
    for u in range(U):
        picked = np.unique(cand[u, ranked[u, : n_follow[u]]])
        picked = picked[picked != u]
        f_src.append(np.full(len(picked), u))
        f_dst.append(picked)
    src = np.concatenate(f_src)
    dst = np.concatenate(f_dst)
    when = np.maximum(people.join[src], people.join[dst]) + rng.integers(0, 30 * DAY, len(src))
    return src, dst, np.minimum(when, p.end - 1)


def _saves(
    rng: np.random.Generator,
    p: DemoParams,
    shops: _Shops,
    ev_user: np.ndarray,
    ev_time: np.ndarray,
    ev_style: np.ndarray,
    follow_src: np.ndarray,
    follow_dst: np.ndarray,
) -> _Saves:
    """The save process, in time order: exactly `goods` events create a new good; the rest re-save one a
    followee saved, or one of the style found on explore, or are dropped when there is nothing new to save."""
    S, D, U = p.styles, p.domains, p.users
    total = len(ev_user)
    followees: list[list[int]] = [[] for _ in range(U)]
    for a, b in zip(follow_src.tolist(), follow_dst.tolist(), strict=True):
        followees[a].append(b)
    n_new = min(p.goods, total)
    is_new = np.zeros(total, dtype=bool)
    is_new[rng.choice(total, n_new, replace=False)] = True
    friend_first = rng.random(total) < 0.35
    r_pick = rng.random(total)
    good_style = np.empty(n_new, dtype=np.int64)
    good_domain = np.empty(n_new, dtype=np.int64)
    good_created = np.empty(n_new, dtype=np.int64)
    ev_good = np.empty(total, dtype=np.int64)
    ev_source = np.empty(total, dtype=object)
    style_saves: list[list[int]] = [[] for _ in range(S)]  # goods saved per style, one entry per save
    user_saves: list[list[int]] = [[] for _ in range(U)]
    user_set: list[set[int]] = [set() for _ in range(U)]
    all_saves: list[int] = []
    r_dom = rng.random(total)
    n_made = 0
    for e in range(total):
        u, s = int(ev_user[e]), int(ev_style[e])
        g = -1
        if is_new[e]:
            g = n_made
            n_made += 1
            good_style[g] = s
            good_domain[g] = min(int(np.searchsorted(shops.style_domain_cdf[s], r_dom[e])), D - 1)
            good_created[g] = ev_time[e]
            ev_source[e] = "external"
        else:
            if friend_first[e] and followees[u]:
                f = followees[u][int(r_pick[e] * len(followees[u]))]
                if user_saves[f]:
                    g = user_saves[f][int(r_dom[e] * len(user_saves[f]))]
                    ev_source[e] = "friend"
            if (g < 0 or g in user_set[u]) and style_saves[s]:
                # Preferential attachment: a random earlier save of the style, so popular goods spread.
                g = style_saves[s][int(r_pick[e] * len(style_saves[s]))]
                ev_source[e] = "explore"
            if g < 0 and all_saves:
                g = all_saves[int(r_pick[e] * len(all_saves))]
                ev_source[e] = "explore"
            if g < 0 or g in user_set[u]:  # nothing new to re-save (the first events of the world): skip
                ev_good[e] = -1
                continue
        ev_good[e] = g
        style_saves[int(good_style[g])].append(g)
        user_saves[u].append(g)
        user_set[u].add(g)
        all_saves.append(g)
    keep = ev_good >= 0
    return _Saves(
        user=ev_user[keep],
        time=ev_time[keep],
        good=ev_good[keep],
        source=ev_source[keep],
        good_style=good_style[:n_made],
        good_domain=good_domain[:n_made],
        good_created=good_created[:n_made],
    )


def _goods(rng: np.random.Generator, p: DemoParams, shops: _Shops, saves: _Saves) -> Goods:
    """Each good's embedding (its style, its domain's look, noise), title, URL, and for about 1% a deletion
    some time after its last save (never before it)."""
    G = len(saves.good_style)
    style, domain = saves.good_style, saves.good_domain
    emb = np.empty((G, p.dim), dtype=np.float32)
    for lo in range(0, G, 100_000):  # in blocks: at 1M goods the temporaries would otherwise take GBs
        hi = min(lo + 100_000, G)
        block = shops.style_vecs[style[lo:hi]] + 0.45 * shops.look[domain[lo:hi]]
        block += rng.standard_normal((hi - lo, p.dim), dtype=np.float32) * np.float32(1.0 / np.sqrt(p.dim))
        emb[lo:hi] = _unit(block)
    mats = rng.integers(0, len(MATERIALS), G)
    good_ids = np.arange(1, G + 1, dtype=np.int64)
    titles = np.array(
        [
            f"{ADJECTIVES[s % len(ADJECTIVES)].capitalize()} {MATERIALS[m]} {CATEGORIES[s % len(CATEGORIES)]}"
            for s, m in zip(style.tolist(), mats.tolist(), strict=True)
        ],
        dtype=object,
    )
    names = shops.names
    urls = np.array(
        [
            f"https://www.instagram.com/{names[d][1:]}/?item={i}"
            if shops.is_instagram[d]
            else f"https://www.{names[d]}/products/{i}"
            for d, i in zip(domain.tolist(), good_ids.tolist(), strict=True)
        ],
        dtype=object,
    )
    last_save = np.zeros(G, dtype=np.int64)
    np.maximum.at(last_save, saves.good, saves.time)
    deleted = np.full(G, NO_TIME, dtype=np.int64)
    when = last_save + rng.integers(DAY, 120 * DAY, G)
    gone = (rng.random(G) < 0.01) & (when < p.end)
    deleted[gone] = when[gone]
    return Goods(
        id=good_ids,
        title=titles,
        url=urls,
        domain=np.array([names[d] for d in domain], dtype=object),
        image_url=np.full(G, None, dtype=object),
        created_at=saves.good_created,
        deleted_at=deleted,
        embedding=emb,
        embedding_dim=np.full(G, p.dim, dtype=np.int32),
    )


def _collections(
    rng: np.random.Generator, p: DemoParams, people: _People, saves: _Saves
) -> tuple[Collections, CollectionGoods]:
    """One collection per (user, interest style) they saved into; most such saves go in it."""
    S = p.styles
    user_ids = np.arange(1, p.users + 1, dtype=np.int64)
    ev_user, style = saves.user, saves.good_style[saves.good]
    on_interest = (people.interests[ev_user] == style[:, None]).any(axis=1) | (
        people.drifts[ev_user] & (people.drift_to[ev_user] == style)
    )
    collect = on_interest & (rng.random(len(ev_user)) < 0.75)
    pair = ev_user[collect] * S + style[collect]
    uniq_pairs, coll_of = np.unique(pair, return_inverse=True)
    coll_ids = np.arange(1, len(uniq_pairs) + 1, dtype=np.int64)
    added = saves.time[collect] + rng.integers(0, 3 * DAY, collect.sum())
    added = np.minimum(added, p.end - 1)
    created = np.full(len(uniq_pairs), NO_TIME, dtype=np.int64)
    np.minimum.at(created, coll_of, added)
    titles = np.array([style_name(int(s)).title() for s in uniq_pairs % S], dtype=object)
    return (
        Collections(id=coll_ids, owner_id=user_ids[uniq_pairs // S], title=titles, created_at=created),
        CollectionGoods(collection_id=coll_ids[coll_of], good_id=saves.good[collect] + 1, added_at=added),
    )


def _truth(
    p: DemoParams, people: _People, good_ids: np.ndarray, good_style: np.ndarray, style_vecs: np.ndarray
) -> DemoTruth:
    """The interests each user holds at the end of the year (after drift), with their weights."""
    S = p.styles
    final = people.interests.copy()
    d = people.drifts
    final[d, people.drift_slot[d]] = people.drift_to[d]
    rows = np.nonzero(final >= 0)
    # Drift can land on a style the user already holds: merge such duplicates.
    key = (rows[0] + 1).astype(np.int64) * S + final[rows]
    uk, inv = np.unique(key, return_inverse=True)
    w = np.zeros(len(uk))
    np.add.at(w, inv, people.weights[rows])
    return DemoTruth(
        user_interests={"user_id": uk // S, "style": uk % S, "weight": w.astype(np.float32)},
        good_style={"good_id": good_ids, "style": good_style},
        style_vecs=style_vecs,
    )
