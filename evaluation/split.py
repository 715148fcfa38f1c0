"""The Goodsend protocol: one global split time T over the source tables, read once.

Everything a recommender sees is etl's graph loaded as of T (`load_graph(conn, cfg, as_of=T)`: no node or
edge newer than T, no good deleted by T). The test set is the saves made after T:
- evaluated users: eligible at T (more than `min_goods` goods) with at least one test save of a good that
  existed at T (a candidate);
- candidates: every good in the as-of-T graph, minus the user's own saves before T (masked by the evaluator);
- test saves of goods created after T cannot be picked by anyone: they are counted and scored softly
  (`SoftTest`).
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from etl.load import LoadedGraph
from etl.tables import DemoTruth as PlantedTruth
from evaluation.protocol import DemoTruth, EvalSet, SoftTest, TrainData, binary_csr
from graphrec.core.artifacts import SAVES

log = logging.getLogger(__name__)


def parse_time(text: str) -> int:
    """An ISO date or date-time (UTC when no zone is given) as unix seconds."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"split time {text!r} is not an ISO date or date-time (e.g. 2025-11-01)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def split_time(saved_at: np.ndarray, split_at: str = "", test_share: float = 0.1) -> int:
    """T: the given date, or the time at which `test_share` of the saves are newer (saves at T are train)."""
    if split_at:
        return parse_time(split_at)
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"evaluate.test_share must be in (0, 1), got {test_share}")
    if len(saved_at) == 0:
        raise ValueError("there are no saves to split")
    times = np.sort(np.asarray(saved_at, dtype=np.int64))
    n_test = max(1, math.ceil(len(times) * test_share))
    return int(times[len(times) - n_test - 1]) if n_test < len(times) else int(times[0]) - 1


def _truth_arrays(planted: PlantedTruth, user_ids: np.ndarray, good_ids: np.ndarray) -> DemoTruth:
    ui, gs = planted.user_interests, planted.good_style
    n_styles = int(max(ui["style"].max(initial=-1), gs["style"].max(initial=-1))) + 1
    interest = np.zeros((len(user_ids), max(n_styles, 1)), dtype=np.float32)
    u = np.searchsorted(user_ids, ui["user_id"])
    ok = (u < len(user_ids)) & (user_ids[np.minimum(u, len(user_ids) - 1)] == ui["user_id"])
    interest[u[ok], ui["style"][ok]] = ui["weight"][ok]
    style = np.full(len(good_ids), -1, dtype=np.int64)
    g = np.searchsorted(good_ids, gs["good_id"])
    ok = (g < len(good_ids)) & (good_ids[np.minimum(g, len(good_ids) - 1)] == gs["good_id"])
    style[g[ok]] = gs["style"][ok]
    return DemoTruth(interest=interest, style=style)


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Position of each id in `sorted_ids`, -1 where absent."""
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1).astype(np.int64)


def split_tables(
    loaded: LoadedGraph,
    *,
    truth: PlantedTruth | None = None,
    name: str = "demo",
    seed: int = 0,
) -> EvalSet:
    """The EvalSet of a graph loaded as of the split time T (etl.load.load_graph with keep_tables: the
    checked tables hold the saves after T that become the test set)."""
    if loaded.tables is None:
        raise ValueError("split_tables needs the checked tables: load the graph with keep_tables=True")
    tables, data, id_maps, report = loaded.tables, loaded.data, loaded.id_maps, loaded.report
    T, min_goods = report.as_of, report.min_goods
    n_users, n_goods = int(data["user"].num_nodes), int(data["good"].num_nodes)
    edge = data[SAVES].edge_index.numpy()
    train_saves = binary_csr(edge[0], edge[1], (n_users, n_goods))
    save_time = binary_csr(edge[0], edge[1], (n_users, n_goods), data[SAVES].time.numpy())
    content = data["good"].x.numpy()
    domain = data["good"].domain.numpy().astype(np.int64)
    eligible = data["user"].eligible.numpy()

    s = tables.saves
    after = s.saved_at > T
    u = _lookup(id_maps.user_ids, s.user_id[after])
    g_ids = s.good_id[after]
    g = _lookup(id_maps.good_ids, g_ids)
    keep = u >= 0
    keep[keep] = eligible[u[keep]]
    u, g, g_ids = u[keep], g[keep], g_ids[keep]
    # One test save per (user, good); a re-save of a good saved before T is not a new interest.
    is_candidate = g >= 0
    already = np.zeros(len(u), dtype=bool)
    already[is_candidate] = np.asarray(train_saves[u[is_candidate], g[is_candidate]]).ravel() > 0
    hard = is_candidate & ~already
    test_all = binary_csr(u[hard], g[hard], (n_users, n_goods))

    goods = tables.goods
    gpos = _lookup(np.sort(goods.id), g_ids)
    order = np.argsort(goods.id, kind="stable")
    created_after = np.zeros(len(g_ids), dtype=bool)
    known = gpos >= 0
    created_after[known] = goods.created_at[order][gpos[known]] > T
    new = ~is_candidate & created_after
    # Deduplicate the new-good saves per (user, good).
    pairs = np.unique(np.stack([u[new], g_ids[new]], axis=1), axis=0) if new.any() else np.zeros((0, 2), np.int64)

    users = np.flatnonzero(np.diff(test_all.indptr) > 0).astype(np.int64)
    row_of_user = np.full(n_users, -1, dtype=np.int64)
    row_of_user[users] = np.arange(len(users))
    soft_rows = row_of_user[pairs[:, 0]] if len(pairs) else np.zeros(0, np.int64)
    in_eval = soft_rows >= 0
    soft_goods = order[_lookup(np.sort(goods.id), pairs[in_eval, 1])] if len(pairs) else np.zeros(0, np.int64)
    soft_vecs = goods.embedding[soft_goods].astype(np.float32)
    domain_index = {name: i for i, name in enumerate(id_maps.domain_names.tolist())}
    soft_domain = np.array([domain_index.get(d, -1) for d in goods.domain[soft_goods].tolist()], dtype=np.int64)

    n_hard = int(test_all.nnz)
    n_new = len(pairs)
    counts: dict[str, Any] = {
        "split_time": datetime.fromtimestamp(T, UTC).isoformat(),
        "users": n_users,
        "eligible_users": int(eligible.sum()),
        "evaluated_users": len(users),
        "candidate_goods": n_goods,
        "train_saves": int(train_saves.nnz),
        "test_saves_all": n_hard + n_new + int((~is_candidate & ~created_after).sum()),
        "test_saves_candidates": n_hard,
        "test_saves_new_goods": n_new,
        "test_saves_other": int((~is_candidate & ~created_after).sum()),
        "test_saves_resaved": int(already.sum()),
        "soft_scored_saves": int(in_eval.sum()),
    }
    train = TrainData(
        saves=train_saves,
        save_time=save_time,
        content=content,
        domain=domain,
        split_time=float(T),
        seed=seed,
    )
    manifest = {"as_of": T, "counts": report.counts, "min_goods": min_goods, "purpose": "evaluate"}
    return EvalSet(
        name=name,
        train=train,
        users=users,
        test=test_all[users],
        soft=SoftTest(rows=soft_rows[in_eval], vecs=soft_vecs, domain=soft_domain),
        truth=_truth_arrays(truth, id_maps.user_ids, id_maps.good_ids) if truth is not None else None,
        graph=(data, id_maps, manifest),
        counts=counts,
        description=(
            f"Goodsend source tables split at {counts['split_time']}: models and baselines see the graph "
            f"as of then ({n_users} users, {n_goods} goods, {train_saves.nnz} saves); the {len(users)} "
            f"eligible users with later saves of existing goods are evaluated on them."
        ),
    )
