"""Turn a trained model and a graph into `Embeddings` (vectors keyed by database id) for serving.

The graph may be newer than the one the model was trained on. PinSage-lite embeds every user and good
of the new graph from its features and edges (goods new since training are inductive: `good_known`
False, but their vectors are real). LightGCN only knows the users and goods of its training graph: its
learned layer-0 vectors are matched to the new graph by database id and propagated over the new graph's
saves (so recent saves still shape the user vectors); goods it never saw stay zero rows with
`good_known` False.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch_geometric.data import HeteroData
from torch_geometric.nn import LightGCN

from graphrec.core.artifacts import SAVES, Embeddings, IdMaps
from training.lightgcn import normalized_adjacency, propagate
from training.pinsage import recency_weights
from training.train import Trained, build_pinsage, pinsage_vectors

log = logging.getLogger(__name__)


def _known(trained: Trained, id_maps: IdMaps, node_type: str) -> np.ndarray:
    """For each node of the new graph, its index in the training graph (-1 when new)."""
    return trained.id_maps.to_idx(node_type, id_maps.ids(node_type))


def embed(trained: Trained, data: HeteroData, id_maps: IdMaps) -> Embeddings:
    """Embeddings of every user and good of `data` (a graph artifact; `id_maps` its id maps)."""
    train_good = _known(trained, id_maps, "good")
    good_known = train_good >= 0
    n_new = int((~good_known).sum())
    if trained.kind == "pinsage":
        model = build_pinsage(trained)
        user_vecs, good_vecs = pinsage_vectors(model, data, trained.meta["model_args"]["recency_half_life_days"])
        if n_new:
            log.info("pinsage: %d goods new since training embedded inductively", n_new)
    elif trained.kind == "lightgcn":
        user_vecs, good_vecs = _lightgcn_vectors(trained, data, id_maps, train_good)
        if n_new:
            log.info("lightgcn: %d goods new since training cannot be scored (zero rows)", n_new)
    else:
        raise ValueError(f"unknown model kind {trained.kind!r} in checkpoint {trained.version}")
    return Embeddings(
        model_kind=trained.kind,
        model_version=trained.version,
        user_ids=np.asarray(id_maps.user_ids, dtype=np.int64),
        user_vecs=np.ascontiguousarray(user_vecs, dtype=np.float32),
        good_ids=np.asarray(id_maps.good_ids, dtype=np.int64),
        good_vecs=np.ascontiguousarray(good_vecs, dtype=np.float32),
        good_known=good_known,
    )


def _lightgcn_vectors(
    trained: Trained, data: HeteroData, id_maps: IdMaps, train_good: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    a = trained.meta["model_args"]
    old = LightGCN(a["num_users"] + a["num_goods"], a["embedding_dim"], a["num_layers"])
    old.load_state_dict(trained.state_dict)
    base = old.embedding.weight.detach()
    num_users, num_goods = data["user"].num_nodes, data["good"].num_nodes
    train_user = _known(trained, id_maps, "user")
    model = LightGCN(num_users + num_goods, a["embedding_dim"], a["num_layers"])
    with torch.no_grad():
        weight = torch.zeros(num_users + num_goods, a["embedding_dim"])
        ku, kg = np.nonzero(train_user >= 0)[0], np.nonzero(train_good >= 0)[0]
        weight[torch.as_tensor(ku)] = base[torch.as_tensor(train_user[ku])]
        weight[torch.as_tensor(num_users + kg)] = base[torch.as_tensor(a["num_users"] + train_good[kg])]
        model.embedding.weight.copy_(weight)
        ei = data[SAVES].edge_index.numpy()
        half_life = trained.meta["config"]["recency_half_life_days"]
        weight_e = None
        if half_life > 0:  # the same edge weights as in training
            weight_e = recency_weights(ei[0], data[SAVES].time.numpy(), num_users, half_life)
        emb = propagate(model, normalized_adjacency(ei[0], ei[1], num_users, num_goods, weight_e))
        if a.get("normalize", True):
            emb = torch.nn.functional.normalize(emb, dim=1)
    user_vecs = emb[:num_users].numpy()
    good_vecs = emb[num_users:].numpy().copy()
    good_vecs[train_good < 0] = 0.0
    return user_vecs, good_vecs
