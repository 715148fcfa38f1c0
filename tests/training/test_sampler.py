"""The pure-PyTorch neighbor sampler: real edges, fan-outs, seeds, reproducibility, no target leakage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.loader import LinkLoader, NodeLoader
from torch_geometric.sampler import NegativeSampling

from training.sampler import HeteroNeighborSampler, sample_without_replacement

SAVES = ("user", "saves", "good")


def edge_set(data, edge_type) -> set[tuple[int, int]]:
    return set(map(tuple, data[edge_type].edge_index.t().tolist()))


def global_edges(batch, edge_type) -> list[tuple[int, int]]:
    s, _, d = edge_type
    row, col = batch[edge_type].edge_index
    return list(zip(batch[s].n_id[row].tolist(), batch[d].n_id[col].tolist(), strict=True))


@given(
    degrees=st.lists(st.integers(0, 12), min_size=1, max_size=20),
    fanout=st.integers(-1, 6),
    seed=st.integers(0, 2**31),
)
@settings(max_examples=60, deadline=None)
def test_draws_are_distinct_neighbors_up_to_the_fanout(degrees: list[int], fanout: int, seed: int) -> None:
    if fanout == 0:
        fanout = 1
    deg = torch.tensor(degrees)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), deg.cumsum(0)])
    nodes = torch.arange(len(degrees)).flip(0)
    pos, owner = sample_without_replacement(ptr, nodes, fanout, torch.Generator().manual_seed(seed))
    for i, node in enumerate(nodes.tolist()):
        mine = pos[owner == i].tolist()
        assert len(mine) == len(set(mine)), "drawn with replacement"
        assert all(ptr[node] <= p < ptr[node + 1] for p in mine), "position outside the node's neighbors"
        want = degrees[node] if fanout < 0 else min(degrees[node], fanout)
        assert len(mine) == want


@pytest.mark.parametrize("fanouts", [[3, 2], [1], [4, 2, 2]])
def test_node_batches_hold_real_edges_within_fanouts(planted, fanouts: list[int]) -> None:
    data, *_ = planted()
    sampler = HeteroNeighborSampler(data, fanouts, seed=0)
    seeds = torch.tensor([3, 0, 17, 8])
    batch = next(iter(NodeLoader(data, sampler, input_nodes=("user", seeds), batch_size=len(seeds))))

    assert batch["user"].n_id[: len(seeds)].tolist() == seeds.tolist()
    for edge_type in data.edge_types:
        pairs = global_edges(batch, edge_type)
        assert set(pairs) <= edge_set(data, edge_type), f"{edge_type}: sampled an edge not in the graph"
        assert len(pairs) == len(set(pairs)), f"{edge_type}: an edge drawn twice"
        orig = data[edge_type].edge_index[:, batch[edge_type].e_id]
        assert list(map(tuple, orig.t().tolist())) == pairs, f"{edge_type}: e_id does not point at the edge"

    # Every node is expanded once, at the hop where it was reached, with min(in-degree, fan-out) edges.
    for edge_type in data.edge_types:
        dst_t = edge_type[2]
        hop_sizes = batch[dst_t].num_sampled_nodes
        bounds = np.cumsum([0, *hop_sizes])
        col = batch[edge_type].edge_index[1]
        in_deg = torch.bincount(data[edge_type].edge_index[1], minlength=data[dst_t].num_nodes)
        for hop in range(len(hop_sizes)):
            local = torch.arange(int(bounds[hop]), int(bounds[hop + 1]))
            got = torch.bincount(col, minlength=batch[dst_t].num_nodes)[local]
            if hop >= len(fanouts):
                assert int(got.sum()) == 0, "nodes of the last hop must not be expanded"
                continue
            want = in_deg[batch[dst_t].n_id[local]].clamp(max=fanouts[hop])
            assert torch.equal(got, want), f"{edge_type} hop {hop}: fan-out not respected"


def test_same_seed_same_batches_and_another_seed_differs(planted) -> None:
    data, *_ = planted()

    def run(seed: int) -> list[list[tuple[int, int]]]:
        sampler = HeteroNeighborSampler(data, [4, 3], seed=seed)
        loader = NodeLoader(data, sampler, input_nodes="user", batch_size=8)
        return [global_edges(b, SAVES) + global_edges(b, ("collection", "contains", "good")) for b in loader]

    assert run(7) == run(7)
    assert run(7) != run(8)


@pytest.mark.parametrize("exclude", [True, False])
def test_link_batches_do_not_show_their_supervision_edges(planted, exclude: bool) -> None:
    data, *_ = planted()
    owner = data["collection"].owner
    sampler = HeteroNeighborSampler(
        data, [10, 10], seed=0, exclude_supervision=exclude, node_maps={"collection": owner}
    )
    loader = LinkLoader(
        data,
        sampler,
        edge_label_index=(SAVES, data[SAVES].edge_index),
        batch_size=32,
        neg_sampling=NegativeSampling("triplet", 1),
        shuffle=False,
    )
    leaks = 0
    for batch in loader:
        users = batch["user"].n_id[batch["user"].src_index]
        goods = batch["good"].n_id[batch["good"].dst_pos_index]
        targets = set(zip(users.tolist(), goods.tolist(), strict=True))
        visible = set(global_edges(batch, SAVES))
        visible |= {(u, g) for g, u in global_edges(batch, ("good", "rev_saves", "user"))}
        # A target good inside one of the user's own collections gives it away as well.
        visible |= {(int(owner[c]), g) for c, g in global_edges(batch, ("collection", "contains", "good"))}
        visible |= {(int(owner[c]), g) for g, c in global_edges(batch, ("good", "rev_contains", "collection"))}
        leaks += len(targets & visible)
        # Dropping the targets must not drop the other edges of the batch.
        assert len(visible) > 0
    if exclude:
        assert leaks == 0
    else:
        assert leaks > 0  # the check above can fail: without exclusion, targets are visible


def test_sample_links_returns_local_positions_of_pairs_and_extra_seeds(planted) -> None:
    data, *_ = planted()
    sampler = HeteroNeighborSampler(data, [5, 5], seed=0)
    src, dst = data[SAVES].edge_index[:, :20]
    extra = torch.tensor([1, 2, 150])
    out, src_loc, dst_loc, extra_loc = sampler.sample_links(src, dst, SAVES, {"good": extra})
    assert torch.equal(out.node["user"][src_loc], src)
    assert torch.equal(out.node["good"][dst_loc], dst)
    assert torch.equal(out.node["good"][extra_loc["good"]], extra)
    pairs = set(zip(src.tolist(), dst.tolist(), strict=True))
    row, col = out.row[SAVES], out.col[SAVES]
    sampled = set(zip(out.node["user"][row].tolist(), out.node["good"][col].tolist(), strict=True))
    assert sampled and not (pairs & sampled)
