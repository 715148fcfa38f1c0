"""etl's graph (HeteroData, see etl.build) as `GraphArrays`, the plain-array form serving/foryou reads."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphrec.core.arrays import GraphArrays, timed_pairs
from graphrec.core.artifacts import CONTAINS, FOLLOWS, SAVES


def _edges(data: Any, edge_type: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if edge_type not in data.edge_types:
        z = np.zeros(0, np.int64)
        return z, z, z.astype(np.float64)
    ei = data[edge_type].edge_index.numpy()
    t = data[edge_type].time.numpy() if "time" in data[edge_type] else np.zeros(ei.shape[1])
    return ei[0], ei[1], t.astype(np.float64)


def graph_arrays(data: Any, as_of: int, min_goods: int = 10) -> GraphArrays:
    """The arrays of `data` (a HeteroData built by etl.build.build_graph as of `as_of`, unix seconds)."""
    n_users, n_goods = int(data["user"].num_nodes), int(data["good"].num_nodes)
    n_coll = int(data["collection"].num_nodes) if "collection" in data.node_types else 0
    su, sg, st = _edges(data, SAVES)
    saves, save_time = timed_pairs(su, sg, st, (n_users, n_goods))
    fa, fb, ft = _edges(data, FOLLOWS)
    follows, follow_time = timed_pairs(fa, fb, ft, (n_users, n_users))
    cc, cg, ct = _edges(data, CONTAINS)
    contains, contains_time = timed_pairs(cc, cg, ct, (n_coll, n_goods))
    owner = (
        data["collection"].owner.numpy().astype(np.int64)
        if n_coll and "owner" in data["collection"]
        else np.full(n_coll, -1, np.int64)
    )
    good = data["good"]
    created = good.created_at.numpy().astype(np.int64) if "created_at" in good else np.zeros(n_goods, np.int64)
    domain = good.domain.numpy().astype(np.int64) if "domain" in good else np.full(n_goods, -1, np.int64)
    return GraphArrays(
        saves=saves,
        save_time=save_time,
        follows=follows,
        follow_time=follow_time,
        contains=contains,
        contains_time=contains_time,
        collection_owner=owner,
        content=np.ascontiguousarray(good.x.numpy(), dtype=np.float32),
        domain=domain,
        created_at=created,
        as_of=int(as_of),
        min_goods=min_goods,
    )
