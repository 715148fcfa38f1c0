"""Small planted worlds for the training tests, as source tables built into graphs by etl's `build_graph`.

A schema change in etl reaches these tests, since nothing here assembles a HeteroData by hand.
"""

from __future__ import annotations

import numpy as np
from torch_geometric.data import HeteroData

from etl.build import build_graph
from etl.tables import NO_TIME, CollectionGoods, Collections, Follows, Goods, Saves, SourceTables, Users
from etl.validate import clean_tables
from graphrec.core.artifacts import IdMaps

DAY = 86_400
T0 = 1_700_000_000
USER_ID, GOOD_ID, COLLECTION_ID = 1000, 5000, 9000


def tables_of(
    good_x: np.ndarray,
    good_domain: np.ndarray,
    saves: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_users: int,
    collections_per_user: int = 0,
    follows: tuple[np.ndarray, np.ndarray] | None = None,
) -> SourceTables:
    """SourceTables of a world given in graph indices: user u is user_id 1000 + u, good g is good_id 5000 + g
    sold by shop{good_domain[g]}.example; saves = (user, good, time). Each user's saves go round-robin into
    their `collections_per_user` collections (collection_id 9000 + c, c = collections_per_user * u + i).
    Users, goods and collections exist a day before the first save."""
    n_goods, dim = good_x.shape
    su, sg, st = (np.asarray(a, dtype=np.int64) for a in saves)
    born = np.full(n_users, T0 - DAY, dtype=np.int64)
    good_born = np.full(n_goods, T0 - DAY, dtype=np.int64)
    users = Users(
        id=USER_ID + np.arange(n_users), name=np.array([f"u{u}" for u in range(n_users)], dtype=object), created_at=born
    )
    domains = np.array([f"shop{d}.example" for d in good_domain], dtype=object)
    goods = Goods(
        id=GOOD_ID + np.arange(n_goods),
        title=np.array([f"good {g}" for g in range(n_goods)], dtype=object),
        url=np.array([f"https://{d}/p/{g}" for g, d in enumerate(domains)], dtype=object),
        domain=domains,
        image_url=np.array([None] * n_goods, dtype=object),
        created_at=good_born,
        deleted_at=np.full(n_goods, NO_TIME, dtype=np.int64),
        embedding=np.asarray(good_x, dtype=np.float32),
        embedding_dim=np.full(n_goods, dim, dtype=np.int32),
    )
    k = collections_per_user
    owner = np.arange(n_users * k) // max(k, 1)
    collections = Collections(
        id=COLLECTION_ID + np.arange(n_users * k),
        owner_id=USER_ID + owner,
        title=np.array([f"c{c}" for c in range(n_users * k)], dtype=object),
        created_at=np.full(n_users * k, T0 - DAY, dtype=np.int64),
    )
    if k:
        rank = np.zeros(len(su), dtype=np.int64)  # position of each save among its user's saves
        order = np.lexsort((st, su))
        starts = np.searchsorted(su[order], su[order])
        rank[order] = np.arange(len(su)) - starts
        coll = k * su + rank % k
        cg = CollectionGoods(collection_id=COLLECTION_ID + coll, good_id=GOOD_ID + sg, added_at=st.copy())
    else:
        cg = CollectionGoods(*(np.zeros(0, dtype=np.int64) for _ in range(3)))
    fa, fb = follows if follows is not None else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    return SourceTables(
        users=users,
        goods=goods,
        collections=collections,
        collection_goods=cg,
        saves=Saves(
            user_id=USER_ID + su,
            good_id=GOOD_ID + sg,
            saved_at=st,
            source=np.array(["external"] * len(su), dtype=object),
        ),
        follows=Follows(
            follower_id=USER_ID + np.asarray(fa, dtype=np.int64),
            followee_id=USER_ID + np.asarray(fb, dtype=np.int64),
            created_at=np.full(len(fa), T0 - DAY, dtype=np.int64),
        ),
    )


def graph_of(tables: SourceTables, min_goods: int = 5) -> tuple[HeteroData, IdMaps]:
    """The graph etl builds from `tables` after its checks (any finding is fatal: the worlds are clean)."""
    cleaned, _ = clean_tables(tables, int(tables.goods.embedding.shape[1]), strict=True)
    data, id_maps, _ = build_graph(cleaned, min_goods=min_goods)
    return data, id_maps


def community_tables(
    n_users: int = 40,
    n_goods: int = 160,
    saves_per_user: int = 20,
    dim: int = 32,
    noise: float = 1.0,
    seed: int = 0,
) -> tuple[SourceTables, np.ndarray, np.ndarray]:
    """(tables, user_style [U], good_style [G]): user u (style u % 2) saves only goods of its style, keeps them
    in two collections, follows users of its style; each of 4 domains sells one style. A good's CLIP vector
    is its style's centre plus `noise` times a standard normal vector (then unit length)."""
    rng = np.random.default_rng(seed)
    good_style = np.arange(n_goods) % 2
    centers = rng.normal(size=(2, dim))
    x = centers[good_style] + noise * rng.normal(size=(n_goods, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    user_style = np.arange(n_users) % 2
    domain = np.arange(n_goods) % 4  # domains 0, 2 sell style 0; 1, 3 style 1
    su, sg, st = [], [], []
    for u in range(n_users):
        pool = np.nonzero(good_style == user_style[u])[0]
        goods = rng.choice(pool, saves_per_user, replace=False)
        times = T0 + np.sort(rng.integers(0, 300 * DAY, saves_per_user))
        su += [u] * saves_per_user
        sg += goods.tolist()
        st += times.tolist()
    follower = np.arange(n_users).repeat(3)
    followee = (follower + 2 * rng.integers(1, n_users // 2, len(follower))) % n_users
    follows = np.unique(np.stack([follower, followee])[:, follower != followee], axis=1)
    saves = (np.array(su), np.array(sg), np.array(st))
    tables = tables_of(x, domain, saves, n_users, collections_per_user=2, follows=(follows[0], follows[1]))
    return tables, user_style, good_style


def without_goods(tables: SourceTables, goods: tuple[int, ...]) -> SourceTables:
    """The same world as seen before `goods` (graph indices of the full world) existed: they, their saves and
    their collection entries are absent (database ids of the rest stay)."""
    ids = GOOD_ID + np.asarray(goods, dtype=np.int64)
    g, s, cg = tables.goods, tables.saves, tables.collection_goods
    keep_g, keep_s, keep_c = ~np.isin(g.id, ids), ~np.isin(s.good_id, ids), ~np.isin(cg.good_id, ids)
    return SourceTables(
        users=tables.users,
        goods=Goods(**{k: v[keep_g] for k, v in g.__dict__.items()}),
        collections=tables.collections,
        collection_goods=CollectionGoods(**{k: v[keep_c] for k, v in cg.__dict__.items()}),
        saves=Saves(**{k: v[keep_s] for k, v in s.__dict__.items()}),
        follows=tables.follows,
    )


def planted_graph(
    n_users: int = 40,
    n_goods: int = 160,
    saves_per_user: int = 20,
    dim: int = 32,
    noise: float = 1.0,
    seed: int = 0,
    drop_goods: tuple[int, ...] = (),
) -> tuple[HeteroData, IdMaps, np.ndarray, np.ndarray]:
    """(data, id_maps, user_style [U], good_style [G]) of `community_tables`, built by etl.

    `drop_goods` builds the same world as seen before those goods existed: they and their edges are absent
    and the remaining goods are renumbered (database ids stay those of the full world).
    """
    tables, user_style, good_style = community_tables(n_users, n_goods, saves_per_user, dim, noise, seed)
    if drop_goods:
        tables = without_goods(tables, drop_goods)
    data, id_maps = graph_of(tables)
    keep = np.ones(n_goods, dtype=bool)
    keep[list(drop_goods)] = False
    return data, id_maps, user_style, good_style[keep]


def ring_world(
    rings: int = 4, positions: int = 40, users_per_centre: int = 3, window: int = 4, noise: float = 0.05, seed: int = 0
) -> tuple[SourceTables, np.ndarray, np.ndarray]:
    """A world with one right answer per test user: (tables, test_users [n], withheld_good [n]) in graph indices.

    Each community's goods sit on a ring (good r * positions + p; domain r sells ring r). Every user likes the
    2 * window + 1 goods around a centre of one ring and saves them in one order (c - w, ..., c - 1, then
    c + w, ..., c + 1, then c), an hour apart. For each centre, the first of its users is a test user whose
    last save, the centre itself, is withheld (absent from the tables); the others save all of it. A good's
    CLIP vector encodes its ring and its angle on the ring (plus `noise`), so the centre is at once the nearest
    good to the mean of the user's saves, the good most co-saved with them, and the next in the sequence.
    """
    rng = np.random.default_rng(seed)
    n_goods = rings * positions
    dim = 3 * rings + 4
    angle = 2 * np.pi * np.arange(positions) / positions
    x = np.zeros((n_goods, dim))
    for r in range(rings):
        rows = slice(r * positions, (r + 1) * positions)
        x[rows, r] = 1.0
        x[rows, rings + 2 * r] = np.cos(angle)
        x[rows, rings + 2 * r + 1] = np.sin(angle)
    x += noise * rng.normal(size=x.shape)
    # Offsets from the centre in save order: up the left side, down the right side, then the centre. After
    # the right side's last two goods (c + 2, c + 1) every user in the world saves c next.
    order = [*range(-window, 0), *range(window, 0, -1), 0]
    su, sg, st, test_users, withheld = [], [], [], [], []
    u = 0
    for r in range(rings):
        for c in range(positions):
            for i in range(users_per_centre):
                start = T0 + int(rng.integers(0, 30 * DAY))
                goods = r * positions + (c + np.array(order)) % positions
                if i == 0:
                    test_users.append(u)
                    withheld.append(int(goods[-1]))
                    goods = goods[:-1]
                su += [u] * len(goods)
                sg += goods.tolist()
                st += (start + 3600 * np.arange(len(goods))).tolist()
                u += 1
    tables = tables_of(x, np.arange(n_goods) // positions, (np.array(su), np.array(sg), np.array(st)), u)
    return tables, np.array(test_users), np.array(withheld)
