"""Ranking losses over L2-normalised user and good vectors (scores are cosines over a temperature)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def sampled_softmax_loss(
    user_vecs: Tensor,
    cand_vecs: Tensor,
    pos_col: Tensor,
    mask: Tensor | None,
    temperature: float,
    log_q: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of each row's positive against all candidates (in-batch goods plus random goods).

    user_vecs: float [B, d]; cand_vecs: float [C, d]; pos_col: int64 [B], the candidate column of each
    row's positive; mask: bool [B, C], True where a candidate must not count as a negative (another
    positive of the same user); log_q: float [C], log of each candidate's chance of being drawn, subtracted
    from its logits (the logQ correction of sampled softmax: in-batch goods are drawn by popularity, so
    without it popular goods are pushed down more than a full softmax would). Returns a scalar.
    """
    logits = user_vecs @ cand_vecs.t() / temperature
    if log_q is not None:
        logits = logits - log_q[None, :]
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    return F.cross_entropy(logits, pos_col)


def bpr_loss(user_vecs: Tensor, pos_vecs: Tensor, neg_vecs: Tensor, temperature: float) -> Tensor:
    """Bayesian personalised ranking: -log sigmoid((s(u, pos) - s(u, neg)) / temperature), averaged.

    user_vecs, pos_vecs, neg_vecs: float [B, d], row-aligned triplets.
    """
    diff = ((user_vecs * pos_vecs).sum(-1) - (user_vecs * neg_vecs).sum(-1)) / temperature
    return -F.logsigmoid(diff).mean()
