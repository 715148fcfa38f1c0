"""The SASRec-style sequence model (training.sequence) as a `training.models.base.Model`, kind "sasrec".

Fit: each user's training saves ordered by the saves edges' `time` (unix seconds; ties keep the graph's
order), goods entering by id embedding plus a projection of their CLIP vector (`data["good"].x`); early
stopping on the shared time-window validation (`training.split.validation_metrics`, recall@20).

Embed on a (newer) graph: goods matched to the checkpoint by database id keep their id part; every good
gets the projection of its own CLIP vector, so goods new since training have real vectors (inductive). A
user's vector encodes their newest `max_len` saves in that graph, new saves included.

`next_good_scorer` is the same model as a callable user_idx [b] -> scores [b, G] of every good as the
user's next save (the For You sequence source's input), over the saves of any time cut of the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import HeteroData

from graphrec.core.artifacts import SAVES, Embeddings, IdMaps
from graphrec.core.config import TrainConfig
from training.checkpoint import Trained
from training.models.base import Fitted, embeddings
from training.sequence import (
    SASRec,
    SASRecParams,
    Sequences,
    next_scores,
    sequence_vectors,
    sequences_from_saves,
    train_sasrec,
)
from training.split import VAL_METRIC, TimeSplit, validation_metrics

log = logging.getLogger(__name__)


def sasrec_params(cfg: TrainConfig) -> SASRecParams:
    """The SASRecParams of `graphrec train`'s settings (`train.sasrec_*`, plus the shared ones)."""
    return SASRecParams(
        embedding_dim=cfg.embedding_dim,
        num_blocks=cfg.sasrec_blocks,
        num_heads=cfg.sasrec_heads,
        max_len=cfg.sasrec_max_len,
        dropout=cfg.sasrec_dropout,
        lr=cfg.sasrec_lr,
        weight_decay=cfg.weight_decay,
        batch_size=cfg.sasrec_batch_size,
        negatives=cfg.negatives,
        max_epochs=cfg.max_epochs,
        patience=cfg.patience,
        time_budget_s=cfg.time_budget_s,
        seed=cfg.seed,
        threads=cfg.threads,
    )


def graph_sequences(data: HeteroData) -> Sequences:
    """Every user's saved goods (graph indices) in `data`, oldest first by the saves' times."""
    ei = data[SAVES].edge_index.numpy()
    return sequences_from_saves(ei[0], ei[1], data[SAVES].time.numpy(), int(data["user"].num_nodes))


def _content(data: HeteroData) -> np.ndarray:
    return np.asarray(data["good"].x.numpy(), dtype=np.float32)


class SASRecModel:
    """SASRec over each user's save order, as a registered Model."""

    kind: ClassVar[str] = "sasrec"
    inductive: ClassVar[bool] = True
    what: ClassVar[str] = "SASRec-style next-good model over each user's save order (id + CLIP embeddings)"

    def fit(self, split: TimeSplit, cfg: TrainConfig, *, progress: bool = False) -> Fitted:
        num_users, num_goods = split.num_users, split.num_goods
        seqs = sequences_from_saves(split.train_users, split.train_goods, split.train_time, num_users)
        params = sasrec_params(cfg)

        def validate(model: SASRec) -> float:
            user_vecs = sequence_vectors(model, seqs, np.arange(num_users))
            good_vecs = model.good_table()[1:].detach().numpy()
            return validation_metrics(user_vecs, good_vecs, split)[VAL_METRIC]

        result = train_sasrec(
            seqs,
            num_goods,
            params,
            content=_content(split.graph),
            validate=validate if split.has_validation else None,
            progress=progress,
        )
        state = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
        val = validation_metrics(result.user_vecs, result.good_vecs, split)
        return Fitted(state_dict=state, model_args=result.model.args(), history=result.history, val=val)

    def embed(self, trained: Trained, data: HeteroData, id_maps: IdMaps) -> Embeddings:
        model, table = serving_model(trained, data, id_maps)
        seqs = graph_sequences(data)
        user_vecs = sequence_vectors(model, seqs, np.arange(seqs.n_users), table=table)
        return embeddings(trained, id_maps, user_vecs, table[1:].numpy())


def serving_model(trained: Trained, data: HeteroData, id_maps: IdMaps) -> tuple[SASRec, torch.Tensor]:
    """The checkpoint's model (eval mode) and its good table [G_new + 1, d] for the goods of `data`."""
    return serving_model_of(trained, np.asarray(id_maps.good_ids, dtype=np.int64), _content(data))


def serving_model_of(trained: Trained, good_ids: np.ndarray, content: np.ndarray) -> tuple[SASRec, torch.Tensor]:
    """The checkpoint's model (eval mode) and its good table [n + 1, d] for any `n` goods: good_ids int64 [n]
    (database ids; the goods the checkpoint knows keep their id part) and their CLIP vectors content [n, c]."""
    a: dict[str, Any] = trained.meta.model_args
    model = SASRec(
        a["num_goods"],
        a["embedding_dim"],
        a["num_blocks"],
        a["num_heads"],
        a["max_len"],
        0.0,
        content_dim=a["content_dim"],
    )
    model.load_state_dict(trained.state_dict, strict=False)  # the content buffer is not saved
    model.eval()
    old = trained.id_maps.to_idx("good", np.asarray(good_ids, dtype=np.int64))  # [n] training good_idx or -1
    known = old >= 0
    with torch.no_grad():
        id_part = model.id_embedding.weight * model.has_id[:, None].to(torch.float32)  # [G_old + 1, d]
        table = torch.zeros(len(old) + 1, a["embedding_dim"])
        table[1:][torch.from_numpy(known)] = id_part[torch.from_numpy(old[known] + 1)]
        if a["content_dim"]:
            table[1:] += model.content_vectors(torch.from_numpy(np.asarray(content, dtype=np.float32)))
    return model, table


def next_good_scorer(
    trained: Trained, data: HeteroData, id_maps: IdMaps, save_time: sp.csr_matrix | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """A sasrec checkpoint as `score(user_idx int64 [b]) -> float32 [b, G]`: every good of `data` (column
    good_idx) scored as the user's next save after their newest `max_len` saves.

    save_time: float csr [U, G] of save times (e.g. GraphArrays.save_time of a time cut, so a ranker trained
    before a cut sees sequences from before it); default the saves of `data`. Saved goods are not masked.
    """
    if save_time is None:
        model, table = serving_model(trained, data, id_maps)
        return _scorer(model, table, graph_sequences(data))
    return next_good_scorer_of(trained, np.asarray(id_maps.good_ids, dtype=np.int64), _content(data), save_time)


def next_good_scorer_of(
    trained: Trained, good_ids: np.ndarray, content: np.ndarray, save_time: sp.csr_matrix
) -> Callable[[np.ndarray], np.ndarray]:
    """`next_good_scorer` in any index space: column j is the good with database id good_ids[j] (CLIP vector
    content[j]); save_time float csr [U, len(good_ids)] each user's save times (their sequences)."""
    model, table = serving_model_of(trained, good_ids, content)
    st = sp.csr_matrix(save_time)
    if st.shape[1] != len(good_ids):
        raise ValueError(f"save_time has {st.shape[1]} goods, good_ids {len(good_ids)}")
    st.sort_indices()
    users = np.repeat(np.arange(st.shape[0]), np.diff(st.indptr))
    return _scorer(model, table, sequences_from_saves(users, st.indices, st.data, st.shape[0]))


def _scorer(model: SASRec, table: torch.Tensor, seqs: Sequences) -> Callable[[np.ndarray], np.ndarray]:
    def score(users: np.ndarray) -> np.ndarray:
        return next_scores(model, seqs, np.asarray(users, dtype=np.int64), table=table)

    return score
