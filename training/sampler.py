"""Heterogeneous neighbor sampling without pyg-lib or torch-sparse.

PyG's `NeighborSampler` needs one of those compiled extensions for its sampling kernel; neither installs
from PyPI here. `HeteroNeighborSampler` keeps everything else of PyG (the CSC conversion done by the parent
constructor, `LinkLoader`/`NodeLoader`, `filter_hetero_data`) and replaces only `_sample` with vectorized
PyTorch: per hop and edge type, each frontier node draws up to `fanout` distinct in-neighbors uniformly
without replacement. When pyg-lib is importable the parent's kernel is used instead.

Link batches also drop the batch's own supervision edges from the sampled subgraph (no target leakage):
for supervision edges (A, rel, B) every sampled edge joining a batch pair (a, b), in either direction
and for any edge type between A and B, is removed; `node_maps` extends this to edges whose endpoint maps
onto A (e.g. `{"collection": owner}` also drops the contains-edge from the user's own collection to the
target good).

All indices here are graph indices (`*_idx`), never database ids.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch_geometric.typing
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.sampler import (
    EdgeSamplerInput,
    HeteroSamplerOutput,
    NegativeSampling,
    NeighborSampler,
    SamplerOutput,
)
from torch_geometric.sampler.base import SubgraphType

EdgeType = tuple[str, str, str]


def sample_without_replacement(
    ptr: Tensor, nodes: Tensor, fanout: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Draw up to `fanout` distinct positions from each node's CSC segment, uniformly.

    ptr: int64 [N+1] column pointer; nodes: int64 [n] global indices of the frontier.
    Returns (pos, owner): positions into the CSC `row` array, int64 [m], and for each the index in
    `nodes` (0..n-1) of the node that drew it. `fanout < 0` takes every neighbor.
    """
    start = ptr[nodes]
    deg = ptr[nodes + 1] - start
    if fanout < 0:
        take = deg
    else:
        take = deg.clamp(max=fanout)
    full = deg <= take  # nodes that keep all their neighbors: no randomness needed
    # Everything of the small nodes.
    idx_full = full.nonzero().view(-1)
    owner_full = torch.repeat_interleave(idx_full, deg[idx_full])
    offs_full = torch.arange(owner_full.numel()) - torch.repeat_interleave(
        torch.cumsum(deg[idx_full], 0) - deg[idx_full], deg[idx_full]
    )
    pos_full = start[owner_full] + offs_full
    idx_big = (~full).nonzero().view(-1)
    if idx_big.numel() == 0:
        return pos_full, owner_full
    # Large nodes: random keys over every neighbor, keep the `fanout` smallest per node. Cost is the
    # total degree of the large frontier nodes; keys are drawn in a fixed order so a seed reproduces.
    deg_big = deg[idx_big]
    owner = torch.repeat_interleave(idx_big, deg_big)
    seg_start = torch.cumsum(deg_big, 0) - deg_big
    offs = torch.arange(owner.numel()) - torch.repeat_interleave(seg_start, deg_big)
    keys = torch.rand(owner.numel(), generator=generator, dtype=torch.float64)
    seg = torch.repeat_interleave(torch.arange(idx_big.numel()), deg_big)
    order = torch.argsort(seg.to(torch.float64) + keys)
    rank = torch.arange(owner.numel()) - torch.repeat_interleave(seg_start, deg_big)
    chosen = order[rank < fanout]
    pos_big = start[owner[chosen]] + offs[chosen]
    return torch.cat([pos_full, pos_big]), torch.cat([owner_full, owner[chosen]])


class HeteroNeighborSampler(NeighborSampler):
    """`NeighborSampler` with a pure-PyTorch heterogeneous kernel and leak-free link batches.

    Args:
        data: the message-passing graph (HeteroData); sampled edges always come from it.
        num_neighbors: fan-out per hop, as for PyG (a list for all edge types, or a dict per edge type).
        seed: seed of the sampler's own random generator (reproducible batches).
        exclude_supervision: drop a link batch's own supervision edges from its subgraph.
        node_maps: node type -> int64 tensor mapping its nodes onto the supervision source type
            (e.g. collection_idx -> owner user_idx), so edges through them are excluded as well.

    Supports directional, non-disjoint, non-temporal sampling without replacement (what training
    uses); other modes are delegated to PyG and need pyg-lib.
    """

    def __init__(
        self,
        data: HeteroData,
        num_neighbors: Any,
        *,
        seed: int = 0,
        exclude_supervision: bool = True,
        node_maps: dict[str, Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pyg-lib.*")
            super().__init__(data, num_neighbors, **kwargs)
        self.generator = torch.Generator().manual_seed(seed)
        self.exclude_supervision = exclude_supervision
        self.node_maps = dict(node_maps or {})

    @property
    def uses_pyg_lib(self) -> bool:
        return bool(torch_geometric.typing.WITH_PYG_LIB)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    # -- the kernel --------------------------------------------------------------------------------------

    def _sample(
        self,
        seed: Tensor | dict[str, Tensor],
        seed_time: Tensor | dict[str, Tensor] | None = None,
        **kwargs: Any,
    ) -> SamplerOutput | HeteroSamplerOutput:
        if self.uses_pyg_lib or not isinstance(seed, dict):
            return super()._sample(seed, seed_time, **kwargs)
        if seed_time is not None or self.replace or self.disjoint:
            raise NotImplementedError("temporal, disjoint or with-replacement sampling needs pyg-lib")
        if self.subgraph_type == SubgraphType.induced or self.sample_direction != "forward":
            raise NotImplementedError("only directional forward sampling is implemented without pyg-lib")
        return self._hetero_sample({k: v.to(torch.long) for k, v in seed.items()})

    def _hetero_sample(self, seed: dict[str, Tensor]) -> HeteroSamplerOutput:
        fanouts = self.num_neighbors.get_mapped_values(self.edge_types)
        num_hops = self.num_neighbors.num_hops
        # global -> local index per node type, -1 when not yet in the subgraph
        local = {t: torch.full((n,), -1, dtype=torch.long) for t, n in self.num_nodes.items()}
        nodes: dict[str, list[Tensor]] = {t: [] for t in self.node_types}
        count = dict.fromkeys(self.node_types, 0)
        frontier: dict[str, Tensor] = {}
        for t in self.node_types:
            s = seed.get(t, torch.empty(0, dtype=torch.long))
            local[t][s] = torch.arange(s.numel())
            nodes[t].append(s)
            count[t] = s.numel()
            frontier[t] = s
        num_sampled_nodes = {t: [count[t]] for t in self.node_types}
        rows: dict[str, list[Tensor]] = {r: [] for r in self.to_edge_type}
        cols: dict[str, list[Tensor]] = {r: [] for r in self.to_edge_type}
        edges: dict[str, list[Tensor]] = {r: [] for r in self.to_edge_type}
        num_sampled_edges: dict[str, list[int]] = {r: [] for r in self.to_edge_type}

        for hop in range(num_hops):
            found: dict[str, list[Tensor]] = {t: [] for t in self.node_types}
            drawn = []
            for edge_type in self.edge_types:
                rel = self.to_rel_type[edge_type]
                src_t, _, dst_t = edge_type
                dst_nodes = frontier[dst_t]
                fanout = fanouts[rel][hop] if hop < len(fanouts[rel]) else 0
                if fanout == 0 or dst_nodes.numel() == 0:
                    num_sampled_edges[rel].append(0)
                    continue
                pos, owner = sample_without_replacement(self.colptr_dict[rel], dst_nodes, fanout, self.generator)
                src_global = self.row_dict[rel][pos]
                drawn.append((rel, src_t, src_global, local[dst_t][dst_nodes[owner]], pos))
                found[src_t].append(src_global)
            # Add newly reached nodes (sorted, so the order does not depend on edge-type order).
            new_frontier = {}
            for t in self.node_types:
                if not found[t]:
                    new_frontier[t] = torch.empty(0, dtype=torch.long)
                    num_sampled_nodes[t].append(0)
                    continue
                cand = torch.unique(torch.cat(found[t]))
                new = cand[local[t][cand] < 0]
                local[t][new] = torch.arange(count[t], count[t] + new.numel())
                count[t] += new.numel()
                nodes[t].append(new)
                new_frontier[t] = new
                num_sampled_nodes[t].append(new.numel())
            for rel, src_t, src_global, dst_local, pos in drawn:
                rows[rel].append(local[src_t][src_global])
                cols[rel].append(dst_local)
                edges[rel].append(pos)
                num_sampled_edges[rel].append(pos.numel())
            frontier = new_frontier

        def cat(parts: list[Tensor]) -> Tensor:
            return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)

        return HeteroSamplerOutput(
            node={t: cat(v) for t, v in nodes.items()},
            row={self.to_edge_type[r]: cat(v) for r, v in rows.items()},
            col={self.to_edge_type[r]: cat(v) for r, v in cols.items()},
            edge={self.to_edge_type[r]: cat(v) for r, v in edges.items()},
            batch=None,
            num_sampled_nodes=num_sampled_nodes,
            num_sampled_edges={self.to_edge_type[r]: v for r, v in num_sampled_edges.items()},
        )

    # -- link batches without target leakage --------------------------------------------------------------

    def sample_from_edges(
        self, inputs: EdgeSamplerInput, neg_sampling: NegativeSampling | None = None
    ) -> SamplerOutput | HeteroSamplerOutput:
        out = super().sample_from_edges(inputs, neg_sampling)
        if self.exclude_supervision and isinstance(out, HeteroSamplerOutput):
            assert inputs.input_type is not None
            drop_pairs(out, inputs.input_type, inputs.row, inputs.col, self.num_nodes, self.node_maps)
        return out

    def sample_links(self, src: Tensor, dst: Tensor, supervision: EdgeType, extra: dict[str, Tensor] | None = None):
        """Subgraph around the positive pairs (src[i], dst[i]) of `supervision` plus `extra` seed nodes.

        Returns (out, src_local, dst_local, extra_local): the HeteroSamplerOutput (nodes: seeds of each
        type first, sorted) and the local positions of the pairs' endpoints and of the extra seeds.
        The pairs' own edges are removed when `exclude_supervision` is set. This is the path for batches
        that `LinkLoader` cannot express (e.g. hard negatives from the same domain).
        """
        src_t, _, dst_t = supervision
        extra = extra or {}
        parts: dict[str, list[Tensor]] = {}
        parts.setdefault(src_t, []).append(src)
        parts.setdefault(dst_t, []).append(dst)
        for t, v in extra.items():
            parts.setdefault(t, []).append(v)
        seeds = {t: torch.unique(torch.cat(v)) for t, v in parts.items()}
        out = self._sample(seeds)
        assert isinstance(out, HeteroSamplerOutput)
        if self.exclude_supervision:
            drop_pairs(out, supervision, src, dst, self.num_nodes, self.node_maps)

        def pos(t: str, v: Tensor) -> Tensor:
            return torch.searchsorted(seeds[t], v)

        return out, pos(src_t, src), pos(dst_t, dst), {t: pos(t, v) for t, v in extra.items()}


def drop_pairs(
    out: HeteroSamplerOutput,
    supervision: EdgeType,
    src: Tensor,
    dst: Tensor,
    num_nodes: dict[str, int],
    node_maps: dict[str, Tensor] | None = None,
) -> None:
    """Remove, in place, every sampled edge that joins a supervision pair (src[i], dst[i]).

    An edge (s, rel, d) is dropped when its endpoints, after mapping through `node_maps` onto the
    supervision's node types, form one of the pairs in either direction. `num_sampled_edges` no longer
    sums per hop after this, so it is cleared.
    """
    a_t, _, b_t = supervision
    node_maps = node_maps or {}
    n_b = num_nodes[b_t]
    keys = torch.unique(src.to(torch.long) * n_b + dst.to(torch.long))

    def as_type(t: str, glob: Tensor, want: str) -> Tensor | None:
        if t == want:
            return glob
        if t in node_maps and want == a_t:
            return node_maps[t][glob]
        return None

    for edge_type in list(out.row):
        s_t, _, d_t = edge_type
        row, col = out.row[edge_type], out.col[edge_type]
        if row.numel() == 0:
            continue
        s_glob, d_glob = out.node[s_t][row], out.node[d_t][col]
        hit = torch.zeros(row.numel(), dtype=torch.bool)
        for first, second in ((s_glob, d_glob), (d_glob, s_glob)):
            t_first, t_second = (s_t, d_t) if first is s_glob else (d_t, s_t)
            a = as_type(t_first, first, a_t)
            b = as_type(t_second, second, b_t) if t_second == b_t else None
            if a is None or b is None:
                continue
            hit |= torch.isin(a * n_b + b, keys)
        if bool(hit.any()):
            keep = ~hit
            out.row[edge_type] = row[keep]
            out.col[edge_type] = col[keep]
            if out.edge is not None and out.edge.get(edge_type) is not None:
                out.edge[edge_type] = out.edge[edge_type][keep]
    out.num_sampled_edges = None
