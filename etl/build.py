"""Source tables -> a heterogeneous PyG graph, as it stood at a point in time.

Node types: user, good (x: L2-normalised CLIP features), collection, domain. Edge types: see
`graphrec.core.artifacts`. Every time-stamped edge carries `.time` (int64 unix seconds). A graph built `as_of`
T holds no node and no edge created after T, and no good deleted by T: that is what keeps evaluation honest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch_geometric.data import HeteroData

from etl.tables import NO_TIME, SourceTables
from graphrec.core.artifacts import CONTAINS, FOLLOWS, IN_DOMAIN, OWNS, SAVES, IdMaps, reverse


@dataclass
class BuildReport:
    as_of: int  # unix seconds
    counts: dict[str, int]  # nodes per type and edges per forward type
    eligible_users: int
    min_goods: int
    dropped: dict[str, int] = field(default_factory=dict)  # rows left out because of the as-of time or deletion

    def figures(self) -> dict[str, float]:
        users, goods, saves = self.counts["user"], self.counts["good"], self.counts["saves"]
        return {
            "density": saves / max(users * goods, 1),
            "saves_per_user": saves / max(users, 1),
            "saves_per_good": saves / max(goods, 1),
        }


def _index(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Graph index of each id in `sorted_ids`; -1 where absent."""
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, ids).clip(0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1).astype(np.int64)


def _edges(src: np.ndarray, dst: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([src, dst]).astype(np.int64))


def latest_time(tables: SourceTables) -> int:
    times = [
        tables.users.created_at,
        tables.goods.created_at,
        tables.collections.created_at,
        tables.collection_goods.added_at,
        tables.saves.saved_at,
        tables.follows.created_at,
    ]
    return int(max((t[t != NO_TIME].max() for t in times if len(t) and (t != NO_TIME).any()), default=0))


def build_graph(
    tables: SourceTables, as_of: int | None = None, min_goods: int = 10
) -> tuple[HeteroData, IdMaps, BuildReport]:
    """Build the graph from checked tables (see etl.validate.clean_tables) as of `as_of` (default: latest row)."""
    T = latest_time(tables) if as_of is None else int(as_of)
    dropped: dict[str, int] = {}

    u, g, c = tables.users, tables.goods, tables.collections
    user_ids = np.sort(u.id[u.created_at <= T])
    live = (g.created_at <= T) & (g.deleted_at > T)
    dropped["goods_deleted_by_as_of"] = int(((g.created_at <= T) & (g.deleted_at <= T)).sum())
    good_order = np.argsort(g.id[live], kind="stable")
    good_rows = np.nonzero(live)[0][good_order]
    good_ids = g.id[good_rows]
    coll_ok = (c.created_at <= T) & (_index(user_ids, c.owner_id) >= 0)
    coll_rows = np.nonzero(coll_ok)[0][np.argsort(c.id[coll_ok], kind="stable")]
    coll_ids = c.id[coll_rows]

    # Domains numbered in sorted order, through a dict: numpy's fixed-width copies of 1M names took seconds.
    domains = g.domain[good_rows].tolist()
    names = sorted({d for d in domains if d is not None})
    code = {d: i for i, d in enumerate(names)}
    domain_names = np.array(names, dtype=str) if names else np.empty(0, dtype=str)
    good_domain = np.fromiter((-1 if d is None else code[d] for d in domains), dtype=np.int64, count=len(domains))

    data = HeteroData()
    data["user"].num_nodes = len(user_ids)
    x = np.asarray(g.embedding[good_rows], dtype=np.float32)  # the gather's copy is the graph's own
    x /= np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
    data["good"].x = torch.from_numpy(x)
    data["good"].created_at = torch.from_numpy(g.created_at[good_rows].astype(np.int64))
    data["good"].domain = torch.from_numpy(good_domain)
    data["collection"].num_nodes = len(coll_ids)
    data["collection"].owner = torch.from_numpy(_index(user_ids, c.owner_id[coll_rows]))
    data["domain"].num_nodes = len(domain_names)

    def add(edge_type: tuple[str, str, str], src: np.ndarray, dst: np.ndarray, time: np.ndarray | None) -> None:
        order = np.lexsort((dst, src)) if time is None else np.lexsort((dst, time, src))
        src, dst = src[order], dst[order]
        data[edge_type].edge_index = _edges(src, dst)
        data[reverse(edge_type)].edge_index = _edges(dst, src)
        if time is not None:
            t = torch.from_numpy(time[order].astype(np.int64))
            data[edge_type].time = t
            data[reverse(edge_type)].time = t

    s = tables.saves
    s_user, s_good = _index(user_ids, s.user_id), _index(good_ids, s.good_id)
    in_time = s.saved_at <= T
    ok = in_time & (s_user >= 0) & (s_good >= 0)
    dropped["saves_of_goods_not_in_graph"] = int((in_time & (s_user >= 0) & (s_good < 0)).sum())
    add(SAVES, s_user[ok], s_good[ok], s.saved_at[ok])

    cg = tables.collection_goods
    cg_coll, cg_good = _index(coll_ids, cg.collection_id), _index(good_ids, cg.good_id)
    ok = (cg.added_at <= T) & (cg_coll >= 0) & (cg_good >= 0)
    add(CONTAINS, cg_coll[ok], cg_good[ok], cg.added_at[ok])
    add(OWNS, np.asarray(data["collection"].owner.numpy()), np.arange(len(coll_ids)), c.created_at[coll_rows])
    with_domain = good_domain >= 0
    add(IN_DOMAIN, np.nonzero(with_domain)[0], good_domain[with_domain], None)

    f = tables.follows
    f_a, f_b = _index(user_ids, f.follower_id), _index(user_ids, f.followee_id)
    ok = (f.created_at <= T) & (f_a >= 0) & (f_b >= 0)
    add(FOLLOWS, f_a[ok], f_b[ok], f.created_at[ok])

    saves_per_user = np.bincount(data[SAVES].edge_index[0].numpy(), minlength=len(user_ids))
    data["user"].eligible = torch.from_numpy(saves_per_user > min_goods)

    id_maps = IdMaps(user_ids=user_ids, good_ids=good_ids, collection_ids=coll_ids, domain_names=domain_names)
    counts = {t: int(data[t].num_nodes) for t in ("user", "good", "collection", "domain")}
    for et in (SAVES, CONTAINS, OWNS, IN_DOMAIN, FOLLOWS):
        counts[et[1]] = int(data[et].edge_index.shape[1])
    report = BuildReport(
        as_of=T,
        counts=counts,
        eligible_users=int((saves_per_user > min_goods).sum()),
        min_goods=min_goods,
        dropped=dropped,
    )
    return data, id_maps, report
