"""The daily embed step: a trained model and a graph -> `Embeddings` (vectors keyed by database id) for serving.

The graph may be newer than the one the model was trained on; the model's kind picks its `embed` from the
registry. Inductive models (PinSage-lite) embed every user and good of the new graph from features and edges
(goods new since training: `good_known` False, but real vectors); LightGCN matches its learned vectors to the
new graph by database id, and goods it never saw stay zero rows.
"""

from __future__ import annotations

import logging

from torch_geometric.data import HeteroData

from graphrec.core.artifacts import Embeddings, IdMaps
from training.checkpoint import Trained
from training.models import get_model

log = logging.getLogger(__name__)


def embed(trained: Trained, data: HeteroData, id_maps: IdMaps) -> Embeddings:
    """Embeddings of every user and good of `data` (a graph artifact; `id_maps` its id maps)."""
    try:
        model = get_model(trained.kind)
    except ValueError as e:
        raise ValueError(f"checkpoint {trained.version}: {e}") from None
    emb = model.embed(trained, data, id_maps)
    n_new = int((~emb.good_known).sum())
    if n_new:
        how = "embedded inductively" if model.inductive else "cannot be scored (zero rows)"
        log.info("%s: %d goods new since training %s", trained.kind, n_new, how)
    return emb
