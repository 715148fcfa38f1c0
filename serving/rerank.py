"""Domain-diversity re-rank: maximal marginal relevance with a hard cap per domain.

Greedy, one pick at a time, each user's list takes the candidate maximising

    (1 - diversity) * relevance - diversity * redundancy

where relevance is the candidate's score min-max scaled to [0, 1] within the user's candidates (so the
trade-off does not depend on the model's score scale) and redundancy is the largest similarity to a pick
already in the list: the cosine of the good vectors, or 1 when both goods come from the same known domain.
A candidate whose domain already has `max_per_domain` picks is never taken. With diversity 0 this is the
score order, skipping goods of full domains.
"""

from __future__ import annotations

import numpy as np


def rerank(
    candidates: np.ndarray,
    scores: np.ndarray,
    good_vecs: np.ndarray,
    domains: np.ndarray,
    k: int,
    diversity: float,
    max_per_domain: int,
    batch_size: int = 256,
) -> np.ndarray:
    """Choose k picks per user from their candidates.

    candidates: int64 [B, C] good_idx (rows of `good_vecs`/`domains`), -1 for padding; duplicates after the
        first occurrence are ignored. A 1-D array is one user.
    scores: float [B, C] retrieval scores, higher is better.
    good_vecs: float [G, d] good vectors (any scale; cosine is used).
    domains: int64 [G] domain_idx per good, -1 when unknown (unknown domains are never capped).
    Returns int64 [B, k] good_idx, best first, -1 padded when fewer than k candidates can be taken
    (1-D [k] for 1-D input).
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be in [0, 1], got {diversity}")
    if max_per_domain < 1:
        raise ValueError(f"max_per_domain must be at least 1, got {max_per_domain}")
    cand = np.asarray(candidates, dtype=np.int64)
    one_user = cand.ndim == 1
    cand = np.atleast_2d(cand)
    sc = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if sc.shape != cand.shape:
        raise ValueError(f"scores {sc.shape} and candidates {cand.shape} differ in shape")
    domains = np.asarray(domains, dtype=np.int64)
    out = np.full((cand.shape[0], k), -1, dtype=np.int64)
    for start in range(0, cand.shape[0], batch_size):
        stop = start + batch_size
        out[start:stop] = _rerank_batch(
            cand[start:stop], sc[start:stop], good_vecs, domains, k, diversity, max_per_domain
        )
    return out[0] if one_user else out


def _first_occurrence(cand: np.ndarray) -> np.ndarray:
    """bool [B, C]: True at valid candidates that did not appear earlier in their row."""
    order = np.argsort(cand, axis=1, kind="stable")
    srt = np.take_along_axis(cand, order, axis=1)
    dup_sorted = np.zeros_like(srt, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    dup = np.zeros_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    return (cand >= 0) & ~dup


def _relevance(sc: np.ndarray, avail: np.ndarray) -> np.ndarray:
    """float [B, C]: each row's available scores min-max scaled to [0, 1] (all 0.0 when they are equal), 0
    at unavailable places."""
    lo = np.where(avail, sc, np.inf).min(axis=1, keepdims=True)
    hi = np.where(avail, sc, -np.inf).max(axis=1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.where(avail, (sc - np.where(np.isfinite(lo), lo, 0.0)) / span, 0.0)


def _take_best(value: np.ndarray, avail: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One greedy step over [B, C] candidates: (j [B] each row's best column among the available and allowed,
    ok [B] whether the row had one); the taken candidates are marked unavailable in `avail` (in place)."""
    rows = np.arange(len(value))
    value = np.where(avail & allowed, value, -np.inf)
    j = value.argmax(axis=1)
    ok = np.isfinite(value[rows, j])
    avail[rows[ok], j[ok]] = False
    return j, ok


def _rerank_batch(
    cand: np.ndarray,
    sc: np.ndarray,
    good_vecs: np.ndarray,
    domains: np.ndarray,
    k: int,
    diversity: float,
    max_per_domain: int,
) -> np.ndarray:
    b, c = cand.shape
    rows = np.arange(b)
    avail = _first_occurrence(cand)
    safe = np.where(avail, cand, 0)
    dom = np.where(avail, domains[safe], -1)

    relevance = _relevance(sc, avail)

    v = None
    if diversity > 0:
        v = np.asarray(good_vecs, dtype=np.float32)[safe]  # [b, c, d]
        v = v / np.maximum(np.linalg.norm(v, axis=2, keepdims=True), 1e-12)

    redundancy = np.zeros((b, c))
    per_domain = np.zeros((b, c), dtype=np.int64)  # picks so far from each candidate's domain
    out = np.full((b, k), -1, dtype=np.int64)
    for t in range(k):
        value = (1.0 - diversity) * relevance - diversity * redundancy
        j, ok = _take_best(value, avail, per_domain < max_per_domain)
        if not ok.any():
            break
        out[ok, t] = cand[rows[ok], j[ok]]
        chosen_dom = dom[rows, j]
        if v is not None:
            # Similarity of every candidate to the one just taken (k of these cost less than all pairs).
            sim = np.einsum("bcd,bd->bc", v, v[rows, j])
            sim = np.where((dom == chosen_dom[:, None]) & (chosen_dom[:, None] >= 0), 1.0, sim)
            redundancy = np.where(ok[:, None], np.maximum(redundancy, sim), redundancy)
        per_domain += ok[:, None] & (dom == chosen_dom[:, None]) & (chosen_dom[:, None] >= 0)
    return out
