"""build_graph: structure of the HeteroData, and the as-of guarantee that keeps evaluation honest."""

from __future__ import annotations

import numpy as np
import pytest

from etl.build import build_graph
from etl.tables import NO_TIME
from etl.validate import clean_tables
from graphrec.core.artifacts import CONTAINS, FOLLOWS, IN_DOMAIN, OWNS, SAVES, load_graph, reverse, save_graph
from tests.etl.helpers import SMALL, small_world


@pytest.fixture(scope="module")
def world():
    tables, truth = small_world()
    cleaned, findings = clean_tables(tables, SMALL.dim)
    assert findings == []
    return cleaned


def test_graph_structure(world):
    data, ids, report = build_graph(world, min_goods=10)
    assert set(data.node_types) == {"user", "good", "collection", "domain"}
    for et in (SAVES, CONTAINS, OWNS, IN_DOMAIN, FOLLOWS):
        fwd, rev = data[et].edge_index, data[reverse(et)].edge_index
        assert fwd.shape == rev.shape and (fwd.flip(0) == rev).all()
        for row, node_type in ((0, et[0]), (1, et[2])):
            assert fwd[row].min() >= 0 and fwd[row].max() < data[node_type].num_nodes
    x = data["good"].x
    assert x.shape == (len(ids.good_ids), SMALL.dim)
    np.testing.assert_allclose(x.norm(dim=1).numpy(), 1.0, atol=1e-5)
    # A save edge points at the right database rows.
    u, g = data[SAVES].edge_index[:, 0].tolist()
    s = world.saves
    assert ((s.user_id == ids.user_ids[u]) & (s.good_id == ids.good_ids[g])).any()
    # Eligibility: more than min_goods distinct saved goods.
    per_user = np.bincount(data[SAVES].edge_index[0].numpy(), minlength=data["user"].num_nodes)
    assert np.array_equal(data["user"].eligible.numpy(), per_user > 10)
    assert report.eligible_users == int((per_user > 10).sum())
    # Deleted goods are not in the graph.
    deleted = world.goods.id[world.goods.deleted_at != NO_TIME]
    assert len(deleted) and not np.isin(deleted, ids.good_ids).any()


@pytest.mark.parametrize("quantile", [0.25, 0.6, 0.9])
def test_as_of_excludes_everything_created_later(world, quantile):
    T = int(np.quantile(world.saves.saved_at, quantile))
    data, ids, report = build_graph(world, as_of=T)
    assert report.as_of == T
    g_created = dict(zip(world.goods.id.tolist(), world.goods.created_at.tolist(), strict=True))
    g_deleted = dict(zip(world.goods.id.tolist(), world.goods.deleted_at.tolist(), strict=True))
    u_created = dict(zip(world.users.id.tolist(), world.users.created_at.tolist(), strict=True))
    c_created = dict(zip(world.collections.id.tolist(), world.collections.created_at.tolist(), strict=True))
    assert all(g_created[g] <= T < g_deleted[g] for g in ids.good_ids.tolist())
    assert all(u_created[u] <= T for u in ids.user_ids.tolist())
    assert all(c_created[c] <= T for c in ids.collection_ids.tolist())
    assert (data["good"].created_at <= T).all()
    for et in (SAVES, CONTAINS, OWNS, FOLLOWS):
        assert (data[et].time <= T).all()
        assert (data[reverse(et)].time <= T).all()
    # Nothing that existed by T is missing: every save up to T between graph nodes is there.
    s = world.saves
    before = (s.saved_at <= T) & np.isin(s.good_id, ids.good_ids) & np.isin(s.user_id, ids.user_ids)
    assert data[SAVES].edge_index.shape[1] == int(before.sum())
    # And the domains are only those of goods in the graph.
    assert data["domain"].num_nodes == len(
        np.unique(world.goods.domain[np.isin(world.goods.id, ids.good_ids)].astype(str))
    )


def test_later_changes_do_not_move_an_as_of_graph(world):
    """Appending saves after T leaves the graph as of T identical."""
    T = int(np.quantile(world.saves.saved_at, 0.5))
    before, _, _ = build_graph(world, as_of=T)
    s = world.saves
    late = s.saved_at > T
    s.saved_at[late] = s.saved_at[late] + 3600  # shuffle the future around
    after, _, _ = build_graph(world, as_of=T)
    for et in before.edge_types:
        assert np.array_equal(before[et].edge_index.numpy(), after[et].edge_index.numpy())


def test_artifact_round_trip(world, artifacts):
    data, ids, _ = build_graph(world)
    manifest = {"format_version": 1, "counts": {"user": data["user"].num_nodes}}
    save_graph(artifacts / "g", data, ids, manifest)
    data2, ids2, manifest2 = load_graph(artifacts / "g")
    assert manifest2 == manifest
    assert np.array_equal(ids2.good_ids, ids.good_ids)
    assert (data2[SAVES].edge_index == data[SAVES].edge_index).all()
    assert ids2.to_idx("good", [ids.good_ids[3], -5]).tolist() == [3, -1]
