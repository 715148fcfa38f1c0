"""SASRec-style next-good model: causal self-attention over each user's saves, oldest first.

Pure torch and numpy; no graph, no database. Ids are `good_idx` (a row of the catalog, 0-based) and
`user_idx`; inside the model a good is `good_idx + 1`, row 0 being the padding.

A good enters by an id embedding plus a linear projection of its content (CLIP) vector. Goods with no
training save have no id part (a fixed zero mask), so a good nobody has saved yet is scored by the
projection of its content alone, as is a good created after training (`SASRec.content_vectors`).
User vector = the output of the last position of the user's sequence; good vectors = the item-side
embeddings (shared with the input), so a score is a dot product and serving can use an inner-product index.

Training (`train_sasrec`): every position predicts the next good; the loss is a sampled softmax over
`negatives` uniform random goods shared by the batch (all goods when `negatives` covers the catalog: the
full softmax), optionally plus the batch's own targets as in-batch negatives with the logQ correction;
or (`loss="gbce"`) gSASRec's generalised binary cross-entropy over the same negatives (Petrov and
Macdonald, RecSys 2023: the positive's probability raised to beta, calibrated by `gbce_t`).
Early stopping (training.loop.train_loop) on a validation good per user (the one after the training
sequence): NDCG@10 over all goods, the sequence's goods excluded; the best epoch's weights are kept.
Deterministic for a seed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.loop import Schedule, TrainedVectors, train_loop

log = logging.getLogger(__name__)

VAL_K = 10


@dataclass(frozen=True)
class SASRecParams:
    """Settings of `train_sasrec` (see the module docstring). `negatives` >= the catalog: full softmax."""

    embedding_dim: int = 64
    num_blocks: int = 2
    num_heads: int = 1
    max_len: int = 50
    dropout: float = 0.3
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    negatives: int = 4096
    in_batch: bool = False
    temperature: float = 1.0
    loss: str = "softmax"  # or "gbce"
    gbce_t: float = 0.75  # gBCE calibration: 0 is plain BCE, 1 fully calibrated to the softmax
    use_content: bool = True
    max_epochs: int = 200
    patience: int = 10  # validations without gain before stopping
    val_every: int = 1  # epochs between validations
    time_budget_s: float = 900.0
    seed: int = 0
    threads: int = 2  # torch threads while training (0: leave torch's setting)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SASRec(nn.Module):
    """Causal transformer over good sequences.

    num_goods: catalog size G; content_dim: width c of the goods' content vectors (0: id embeddings only).
    `set_goods` then hands in the content [G, c] and which goods have an id embedding (those with a
    training save). forward is `encode`: left-padded model ids int64 [B, L] -> hidden states [B, L, d].
    """

    content: Tensor  # buffer float32 [G + 1, c], row 0 the padding
    has_id: Tensor  # buffer bool [G + 1]

    def __init__(
        self,
        num_goods: int,
        embedding_dim: int = 64,
        num_blocks: int = 2,
        num_heads: int = 1,
        max_len: int = 50,
        dropout: float = 0.3,
        content_dim: int = 0,
    ) -> None:
        super().__init__()
        self.num_goods, self.embedding_dim, self.max_len = num_goods, embedding_dim, max_len
        self.num_blocks, self.num_heads, self.content_dim = num_blocks, num_heads, content_dim
        self.id_embedding = nn.Embedding(num_goods + 1, embedding_dim, padding_idx=0)
        self.content_proj = nn.Linear(content_dim, embedding_dim, bias=False) if content_dim else None
        # Not in the state dict: the content comes from the graph (set_goods), not from the checkpoint.
        self.register_buffer("content", torch.zeros(num_goods + 1, content_dim), persistent=False)
        self.register_buffer("has_id", torch.ones(num_goods + 1, dtype=torch.bool), persistent=True)
        self.position = nn.Embedding(max_len, embedding_dim)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            embedding_dim,
            num_heads,
            dim_feedforward=embedding_dim,
            dropout=dropout,
            activation="relu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, num_blocks, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.id_embedding.weight, std=self.embedding_dim**-0.5)
        with torch.no_grad():
            self.id_embedding.weight[0].zero_()
        nn.init.normal_(self.position.weight, std=0.02)
        if self.content_proj is not None:
            nn.init.xavier_uniform_(self.content_proj.weight)
        for layer in self.blocks.layers:
            for p in layer.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        self.final_norm.reset_parameters()

    def args(self) -> dict[str, Any]:
        """Constructor arguments, for a checkpoint."""
        return {
            "num_goods": self.num_goods,
            "embedding_dim": self.embedding_dim,
            "num_blocks": self.num_blocks,
            "num_heads": self.num_heads,
            "max_len": self.max_len,
            "content_dim": self.content_dim,
        }

    def set_goods(self, content: np.ndarray | None, has_id: np.ndarray | None) -> None:
        """Content vectors [G, c] (None: zeros) and the id mask [G] (None: every good has an id)."""
        with torch.no_grad():
            self.content.zero_()
            if content is not None and self.content_dim:
                self.content[1:] = torch.as_tensor(np.asarray(content, dtype=np.float32))
            self.has_id.fill_(True)
            if has_id is not None:
                self.has_id[1:] = torch.as_tensor(np.asarray(has_id, dtype=bool))
            self.has_id[0] = False

    def content_vectors(self, content: Tensor) -> Tensor:
        """Vectors [n, d] of goods known only by their content [n, c] (e.g. created after training)."""
        if self.content_proj is None:
            return torch.zeros(len(content), self.embedding_dim)
        return self.content_proj(content)

    def good_table(self, rows: Tensor | None = None) -> Tensor:
        """Item-side vectors [G + 1, d] (or [len(rows), d] of model ids `rows`); id 0 is the padding (zero)."""
        ids = torch.arange(self.num_goods + 1) if rows is None else rows
        weight = self.id_embedding.weight if rows is None else self.id_embedding(rows)
        e = weight * self.has_id[ids][:, None].to(weight.dtype)
        if self.content_proj is not None:
            # The content buffer's row 0 is zero, so the padding stays zero.
            e = e + self.content_proj(self.content if rows is None else self.content[rows])
        return e

    def encode(self, seq: Tensor, table: Tensor | None = None) -> Tensor:
        """Hidden states [B, L, d] of left-padded sequences seq int64 [B, L] (model ids, 0 = padding)."""
        table = self.good_table() if table is None else table
        b, length = seq.shape
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        pad = seq == 0
        x = table[seq] * math.sqrt(self.embedding_dim)
        x = x + self.position.weight[self.max_len - length :][None]
        x = self.dropout(x) * (~pad)[..., None].to(x.dtype)
        # Causal, and pads are never attended to; each position may attend to itself, so a pad row
        # (which only sees pads) stays finite.
        causal = torch.ones(length, length, dtype=torch.bool).triu(1)
        blocked = causal[None] | pad[:, None, :]
        blocked = blocked & ~torch.eye(length, dtype=torch.bool)[None]
        if self.num_heads > 1:
            blocked = blocked.repeat_interleave(self.num_heads, dim=0)
        h = self.blocks(x, mask=blocked)
        return self.final_norm(h)

    def user_vectors(self, seq: Tensor, table: Tensor | None = None) -> Tensor:
        """The last position's output [B, d] for left-padded seq [B, L]."""
        return self.encode(seq, table)[:, -1]


@dataclass
class Sequences:
    """Every user's goods in save order, CSR-like: goods[indptr[u]:indptr[u + 1]], oldest first."""

    indptr: np.ndarray  # int64 [U + 1]
    goods: np.ndarray  # int64 [nnz] good_idx

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def of(self, u: int) -> np.ndarray:
        return self.goods[self.indptr[u] : self.indptr[u + 1]]


def sequences_from_saves(users: np.ndarray, goods: np.ndarray, times: np.ndarray, n_users: int) -> Sequences:
    """Order saves (user_idx, good_idx, time) by user, then time (ties keep the input order)."""
    users = np.asarray(users, dtype=np.int64)
    goods = np.asarray(goods, dtype=np.int64)
    order = np.lexsort((np.arange(len(users)), np.asarray(times, dtype=np.float64), users))
    counts = np.bincount(users, minlength=n_users)
    return Sequences(np.r_[0, np.cumsum(counts)].astype(np.int64), goods[order])


def split_last(seqs: Sequences) -> tuple[Sequences, np.ndarray]:
    """(every sequence without its last good, that last good per user or -1 when the sequence has < 2)."""
    lengths = seqs.lengths()
    held = lengths >= 2
    last = np.full(seqs.n_users, -1, dtype=np.int64)
    last[held] = seqs.goods[seqs.indptr[1:][held] - 1]
    keep = np.ones(len(seqs.goods), dtype=bool)
    keep[seqs.indptr[1:][held] - 1] = False
    new_len = lengths - held
    return Sequences(np.r_[0, np.cumsum(new_len)].astype(np.int64), seqs.goods[keep]), last


def padded(seqs: Sequences, users: np.ndarray, length: int) -> np.ndarray:
    """int64 [len(users), length]: each user's newest `length` goods as model ids, left-padded with 0."""
    out = np.zeros((len(users), length), dtype=np.int64)
    for i, u in enumerate(users):
        s = seqs.of(int(u))[-length:]
        if len(s):
            out[i, length - len(s) :] = s + 1
    return out


@dataclass
class SASRecResult(TrainedVectors[SASRec]):
    """A trained model and its vectors: user_vecs [U, d] from each user's whole sequence, good_vecs [G, d]."""


LOSSES = ("softmax", "gbce")


def _gbce(pos_logit: Tensor, neg_logit: Tensor, negatives: int, n_goods: int, t: float) -> Tensor:
    """gSASRec's generalised BCE: pos_logit [n, 1], neg_logit [n, k] (-inf: not a negative).

    The positive term is log sigmoid(s)^beta with beta = alpha (t (1 - 1/alpha) + 1/alpha), alpha = k / (G - 1)
    the sampling rate, written as the BCE of the logit log(1 / (sigmoid(s)^-beta - 1)) (float64, as in
    the reference code, for stability).
    """
    alpha = negatives / max(n_goods - 1, 1)
    beta = alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)
    eps = 1e-10
    prob = torch.sigmoid(pos_logit.to(torch.float64)).clamp(eps, 1 - eps)
    adjusted = prob.pow(-beta).clamp(min=1 + eps)
    pos = torch.log((1.0 / (adjusted - 1.0)).clamp(min=eps))
    valid = torch.isfinite(neg_logit)
    neg = neg_logit.to(torch.float64).masked_fill(~valid, 0.0)
    pos_term = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos), reduction="none").squeeze(1)
    neg_term = (F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg), reduction="none") * valid).sum(1)
    return ((pos_term + neg_term) / (1.0 + valid.sum(1))).mean().to(pos_logit.dtype)


def _loss(model: SASRec, seq: Tensor, target: Tensor, p: SASRecParams, gen: torch.Generator) -> Tensor:
    """Mean loss of every position's next good (softmax cross-entropy or gBCE); seq, target int64 [B, L]
    model ids."""
    n_goods = model.num_goods
    keep = target > 0
    if p.negatives >= n_goods and p.loss == "softmax":
        table = model.good_table()
        h = model.encode(seq, table)[keep]
        logits = h @ table[1:].t() / p.temperature
        return F.cross_entropy(logits, target[keep] - 1)
    neg = torch.randint(1, n_goods + 1, (p.negatives,), generator=gen)
    # Only the goods this step touches get vectors (a content projection of the whole catalog per step
    # would cost more than the loss). Local ids: 0 stays the padding, the rest index `rows`.
    touched = torch.cat([torch.zeros(1, dtype=torch.long), seq.ravel(), target.ravel(), neg])
    rows, local = torch.unique(touched, return_inverse=True)
    table = model.good_table(rows)
    local = local[1:]
    seq = local[: seq.numel()].view_as(seq)
    target = local[seq.numel() : 2 * seq.numel()].view_as(target)
    neg = local[2 * seq.numel() :]
    h = model.encode(seq, table)
    h, t = h[keep], target[keep]
    pos_logit = (h * table[t]).sum(-1, keepdim=True)
    neg_logit = h @ table[neg].t()
    neg_logit = neg_logit.masked_fill(neg[None, :] == t[:, None], float("-inf"))
    if p.loss == "gbce":
        return _gbce(pos_logit, neg_logit, p.negatives, n_goods, p.gbce_t)
    parts = [pos_logit, neg_logit]
    if p.in_batch:
        # logQ correction: each sampled logit loses log of how often its good is expected among the
        # candidates (uniform: negatives / G each; in-batch: the good's count among the batch's targets).
        uniq, counts = torch.unique(t, return_counts=True)
        ib = h @ table[uniq].t() - torch.log(counts.to(h.dtype))[None, :]
        ib = ib.masked_fill(uniq[None, :] == t[:, None], float("-inf"))
        parts = [pos_logit, neg_logit - math.log(p.negatives / n_goods), ib]
    logits = torch.cat(parts, dim=1) / p.temperature
    return F.cross_entropy(logits, torch.zeros(len(t), dtype=torch.long))


@torch.no_grad()
def sequence_vectors(
    model: SASRec, seqs: Sequences, users: np.ndarray, batch_size: int = 1024, table: Tensor | None = None
) -> np.ndarray:
    """User vectors float32 [len(users), d] from each user's newest `max_len` goods (eval mode).

    table: the good vectors [G + 1, d] the sequences' goods index (default the model's own).
    """
    was = model.training
    model.eval()
    table = model.good_table() if table is None else table
    out = np.zeros((len(users), model.embedding_dim), dtype=np.float32)
    lengths = seqs.lengths()[users]
    # Shortest sequences first, so each batch is padded only to its own longest.
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(users), batch_size):
        part = order[start : start + batch_size]
        width = int(min(model.max_len, max(1, lengths[part].max())))
        seq = torch.from_numpy(padded(seqs, users[part], width))
        out[part] = model.user_vectors(seq, table).numpy()
    model.train(was)
    return out


@torch.no_grad()
def good_vectors(model: SASRec) -> np.ndarray:
    """float32 [G, d], row good_idx."""
    return model.good_table()[1:].numpy().astype(np.float32)


@torch.no_grad()
def next_scores(model: SASRec, seqs: Sequences, users: np.ndarray, table: Tensor | None = None) -> np.ndarray:
    """Scores float32 [len(users), G] of every good (column good_idx) as the next save after each user's
    sequence (their newest `max_len` goods), the dot product of the user vector and the good vectors.

    table: the good vectors [G + 1, d] to use (default the model's own; a serving-time table from
    `SASRecModel.embed` for goods new since training). Higher is more likely next; the sequence's own
    goods are not masked.
    """
    was = model.training
    model.eval()
    table = model.good_table() if table is None else table
    user_vecs = torch.from_numpy(sequence_vectors(model, seqs, np.asarray(users, dtype=np.int64), table=table))
    model.train(was)
    return (user_vecs @ table[1:].t()).numpy().astype(np.float32)


def _validate(model: SASRec, seqs: Sequences, users: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """HR@10 and NDCG@10 of each user's held-out good, all goods ranked except the user's sequence."""
    uvec = torch.from_numpy(sequence_vectors(model, seqs, users))
    gvec = torch.from_numpy(good_vectors(model))
    hits, ndcg = 0.0, 0.0
    for start in range(0, len(users), 2048):
        part = users[start : start + 2048]
        scores = uvec[start : start + len(part)] @ gvec.t()
        rows = np.concatenate([np.full(seqs.lengths()[u], i) for i, u in enumerate(part)]).astype(np.int64)
        cols = np.concatenate([seqs.of(int(u)) for u in part])
        tgt = torch.from_numpy(target[start : start + len(part)])
        pos = scores.gather(1, tgt[:, None])
        scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
        rank = (scores > pos).sum(1)  # 0-based rank of the held-out good
        inside = rank < VAL_K
        hits += float(inside.sum())
        ndcg += float((1.0 / torch.log2(rank[inside].to(torch.float64) + 2.0)).sum())
    n = max(len(users), 1)
    return {f"hr@{VAL_K}": hits / n, f"ndcg@{VAL_K}": ndcg / n}


def train_sasrec(
    seqs: Sequences,
    num_goods: int,
    params: SASRecParams,
    *,
    content: np.ndarray | None = None,
    validation: np.ndarray | None = None,
    validate: Callable[[SASRec], float] | None = None,
    final: Sequences | None = None,
    progress: bool = False,
) -> SASRecResult:
    """Train on `seqs` (every user's goods, oldest first) and return the best model by validation.

    validation: int64 [U] a held-out good_idx per user, the one right after their sequence (-1: none), or
    None to train for `max_epochs` (or the time budget) without early stopping; or `validate(model) -> float`
    (higher is better) for another validation (e.g. a time window). content: float32 [G, c] or
    None; ignored unless `params.use_content`. final: the sequences the returned user vectors encode
    (e.g. `seqs` with the validation goods put back); default `seqs`.
    """
    p = params
    if p.loss not in LOSSES:
        raise ValueError(f"unknown loss {p.loss!r}; expected one of {LOSSES}")
    threads = torch.get_num_threads()
    if p.threads > 0:
        torch.set_num_threads(p.threads)
    try:
        use = content if p.use_content else None
        return _train(seqs, num_goods, p, use, validation, validate, final, progress)
    finally:
        torch.set_num_threads(threads)


def _train(
    seqs: Sequences,
    num_goods: int,
    p: SASRecParams,
    content: np.ndarray | None,
    validation: np.ndarray | None,
    validate_model: Callable[[SASRec], float] | None,
    final: Sequences | None,
    progress: bool,
) -> SASRecResult:
    start = time.perf_counter()
    torch.manual_seed(p.seed)
    gen = torch.Generator().manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    if content is not None and (content.ndim != 2 or content.shape[0] != num_goods):
        raise ValueError(f"content has shape {content.shape}, expected [{num_goods}, c]")
    model = SASRec(
        num_goods,
        p.embedding_dim,
        p.num_blocks,
        p.num_heads,
        p.max_len,
        p.dropout,
        content_dim=0 if content is None else int(content.shape[1]),
    )
    has_id = np.bincount(seqs.goods, minlength=num_goods) > 0
    model.set_goods(content, has_id)
    optimizer = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    # Training windows: the newest max_len + 1 goods of each user with something to predict.
    lengths = seqs.lengths()
    users = np.flatnonzero(lengths >= 2)
    if len(users) == 0:
        raise ValueError("no user has two saves in order: nothing to learn a next good from")
    windows = padded(seqs, users, p.max_len + 1)
    win_len = np.minimum(lengths[users], p.max_len + 1)
    steps = math.ceil(len(users) / p.batch_size)
    batches: list[np.ndarray] = []
    batch_order = np.zeros(0, dtype=np.int64)

    def step_loss(epoch: int, step: int) -> tuple[Tensor, float]:
        nonlocal batches, batch_order
        if step == 0:
            # Batches of users with similar sequence lengths (random within a length, batches in random
            # order), so a batch is padded only to its own longest window.
            order = np.lexsort((rng.random(len(users)), win_len))
            batches = [order[i : i + p.batch_size] for i in range(0, len(order), p.batch_size)]
            batch_order = rng.permutation(len(batches))
        idx = batches[batch_order[step]]
        width = int(win_len[idx].max())
        w = torch.from_numpy(windows[idx, -width:])
        return _loss(model, w[:, :-1], w[:, 1:], p, gen), float((w[:, 1:] > 0).sum())

    val_users = np.flatnonzero((validation >= 0) & (lengths >= 1)) if validation is not None else np.zeros(0, int)
    val_hr: dict[int, float] = {}

    def validate() -> float:
        assert validation is not None
        figures = _validate(model, seqs, val_users, validation[val_users])
        val_hr[len(val_hr) + 1] = figures[f"hr@{VAL_K}"]
        log.info(
            "sasrec validation hr@%d %.4f ndcg@%d %.4f", VAL_K, val_hr[len(val_hr)], VAL_K, figures[f"ndcg@{VAL_K}"]
        )
        return figures[f"ndcg@{VAL_K}"]

    schedule = Schedule(
        max_epochs=p.max_epochs,
        steps_per_epoch=steps,
        patience=p.patience,
        time_budget_s=p.time_budget_s,
        validate_every=p.val_every,
    )
    if validate_model is not None:
        chosen: Callable[[], float] | None = lambda: validate_model(model)  # noqa: E731
    else:
        chosen = validate if len(val_users) else None
    loop = train_loop(
        "sasrec",
        model,
        optimizer,
        step_loss,
        schedule,
        validate=chosen,
        start=start,
        progress=progress,
    )
    validated = [h for h in loop.history if h["val"] is not None]
    for h, hr in zip(validated, val_hr.values(), strict=False):
        h["val_hr"] = hr
    final = seqs if final is None else final
    user_vecs = sequence_vectors(model, final, np.arange(final.n_users))
    return SASRecResult.of_loop(model, user_vecs, good_vectors(model), loop, start)
