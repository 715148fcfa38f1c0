"""A public data set's train view as Goodsend's source tables, and the graph `build-graph` would make of them.

The For You pipeline (serving/foryou) runs on a graph as of a time T with a clock on every save; the demo's
EvalSet carries one (etl's graph as of the split time). A public set carries only its train matrix, and its
order where it has one. To run the same pipeline there, its train view is written as tables (users, goods with
their content vectors as embeddings and their brands as domains, saves with times; no collections, no follows)
and built by etl's own `build_graph`, so the row is the code `graphrec recommend` runs.

Times: a sequence set (Beauty, any S3-Rec file) orders each user's items but has no clock, and its test item is
each user's next one, so every user's sequence is laid on one clock that ends at the split: the user's newest
train item is saved one step before T, the one before it two steps, and so on. A cut at T - n steps then holds
out every user's last n items, the leave-last-out protocol's per-user cut written as the one global cut the
ranker and the time windows of the sources use. A set without an order (Gowalla, the LightGCN format) has no
such clock, and the pipeline's time windows (its ranker's labels, trending, freshness, recency) do not apply:
`public_graph` returns None for it, as for a set without content vectors (no interests).

Ids: user_id = user_idx + 1 and good_id = good_idx + 1, so the graph's indices are the EvalSet's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from etl.build import build_graph
from etl.tables import (
    NO_TIME,
    CollectionGoods,
    Collections,
    Follows,
    Goods,
    Saves,
    SourceTables,
    Users,
)
from evaluation.protocol import EvalSet, TrainData

# The split time T of a public set's clock (2024-01-01 UTC) and one step of a user's sequence on it (a day:
# the sources' windows, foryou.trending_days and the like, then count steps).
PUBLIC_T = 1_704_067_200
STEP_S = 86_400


def why_not(train: TrainData) -> str | None:
    """Why the pipeline does not apply to `train` (None when it does)."""
    if train.save_time is None or not train.time_in_steps:
        return "its saves have no order (the ranker's labels and the sources' time windows need one)"
    if train.content is None:
        return "its goods have no content vectors (the user's interests are clusters of them)"
    return None


def public_tables(train: TrainData, t: int = PUBLIC_T, step_s: int = STEP_S) -> SourceTables:
    """The source tables of a sequence set's train view: a save's time is ``t + position * step_s`` with
    position -1 for the user's newest train item (see the module docstring); every user and good exists
    from long before the first save, brand ``d`` is domain ``brand-d``."""
    reason = why_not(train)
    if reason is not None:
        raise ValueError(f"the For You pipeline does not apply to this data set: {reason}")
    assert train.save_time is not None and train.content is not None
    n_users, n_goods = train.saves.shape
    st = train.save_time.tocoo()
    if len(st.data) and float(st.data.max()) >= 0:
        raise ValueError("sequence positions must be negative (-1: the newest train item)")
    saved_at = t + st.data.astype(np.int64) * step_s
    born = int(saved_at.min()) - step_s if len(saved_at) else t - step_s
    domain = train.domain if train.domain is not None else np.full(n_goods, -1, np.int64)
    domains = np.array([f"brand-{d}" if d >= 0 else None for d in domain.tolist()], dtype=object)
    blank = np.full(n_goods, None, dtype=object)
    empty = np.zeros(0, np.int64)
    return SourceTables(
        users=Users(
            id=np.arange(1, n_users + 1, dtype=np.int64),
            name=np.full(n_users, None, dtype=object),
            created_at=np.full(n_users, born, np.int64),
        ),
        goods=Goods(
            id=np.arange(1, n_goods + 1, dtype=np.int64),
            title=np.array([f"item {i + 1}" for i in range(n_goods)], dtype=object),
            url=blank,
            domain=domains,
            image_url=blank,
            created_at=np.full(n_goods, born, np.int64),
            deleted_at=np.full(n_goods, NO_TIME, np.int64),
            embedding=np.ascontiguousarray(train.content, dtype=np.float32),
            embedding_dim=np.full(n_goods, train.content.shape[1], np.int32),
        ),
        collections=Collections(id=empty, owner_id=empty, title=np.zeros(0, object), created_at=empty),
        collection_goods=CollectionGoods(collection_id=empty, good_id=empty, added_at=empty),
        saves=Saves(
            user_id=st.row.astype(np.int64) + 1,
            good_id=st.col.astype(np.int64) + 1,
            saved_at=saved_at,
            source=np.full(len(saved_at), "external", dtype=object),
        ),
        follows=Follows(follower_id=empty, followee_id=empty, created_at=empty),
    )


def public_graph(es: EvalSet, min_goods: int) -> tuple[Any, Any, dict[str, Any]] | None:
    """(HeteroData, IdMaps, manifest) of `es`'s train view as of just before its split (the shape of the
    demo's `EvalSet.graph`), or None when the pipeline does not apply (`why_not`)."""
    if why_not(es.train) is not None:
        return None
    as_of = PUBLIC_T - 1
    data, id_maps, report = build_graph(public_tables(es.train), as_of=as_of, min_goods=min_goods)
    n_users, n_goods = es.train.saves.shape
    if data["user"].num_nodes != n_users or data["good"].num_nodes != n_goods:
        raise AssertionError("the public graph lost users or goods")  # every row is created before T
    manifest = {"as_of": as_of, "counts": report.counts, "clock": f"sequence steps of {STEP_S} s ending at T"}
    return data, id_maps, manifest
