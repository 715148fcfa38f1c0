"""Why each pick was made, in structured form and in words.

A model pick is explained by the user's saved good it is closest to (cosine of the model's good vectors, over
the user's newest saves), named with the user's collection that holds that good when there is one:
"because you saved <title> in <collection>". Without a usable vector it falls back to the domain the user
saves from. A pick of For You's sequence source names the save it comes next after: "next after <title>".
Fallback picks say whose save or which popularity they come from. A pick that serves one of the
user's interests (serving/foryou/interests.py) also names that interest by its representative good and main
domain: "... · for your interest: <title>, <domain>".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from serving.fallback import FOLLOWEE, MODEL, POPULAR, SEQUENCE

# Reason kinds, as stored in reason_detail->>'kind'.
GOOD, COLLECTION, DOMAIN, FOLLOWEE_KIND, POPULAR_KIND, MODEL_KIND, NEXT_KIND = (
    "good",
    "collection",
    "domain",
    "followee",
    "popular",
    "model",
    "next",
)


# One encoder for all picks (json.dumps with options builds a new one per call).
_JSON = json.JSONEncoder(ensure_ascii=False)


@dataclass(frozen=True)
class Reason:
    """The structured reason of one pick, in database ids."""

    kind: str
    good_id: int | None = None  # the saved good the pick is closest to (kind "next": the one it comes after)
    collection_id: int | None = None  # the user's collection holding that good
    followee_id: int | None = None
    domain: str | None = None
    similarity: float | None = None
    saves: int | None = None  # saves of a popular pick in the last `popular_days` days
    saves_all_time: int | None = None
    # The user's interest the pick serves: its medoid (the saved good that stands for it), main domain, weight.
    interest_good_id: int | None = None
    interest_domain: str | None = None
    interest_weight: float | None = None


@dataclass(frozen=True)
class Labels:
    """Display names the words need, keyed by database id."""

    good_titles: dict[int, str]
    collection_titles: dict[int, str]
    user_names: dict[int, str]


def anchors(
    users: np.ndarray,
    picks: np.ndarray,
    source: np.ndarray,
    saves_newest_first: sp.csr_matrix,
    vec_row: np.ndarray,
    vecs: np.ndarray,
    max_saves: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """For each model pick, the user's saved good closest to it.

    users: int64 [n] user_idx; picks: int64 [n, k] good_idx (-1 padded); source: int8 [n, k].
    saves_newest_first: csr [U, G] whose row indices are the user's saved good_idx in newest-first order
    (see `order_rows_newest_first`). vec_row: int64 [G] row of each good in `vecs` float32 [R, d], -1 when
    it has no vector. Returns (anchor good_idx int64 [n, k], -1 where none; cosine float32 [n, k]).
    """
    anchor = np.full(picks.shape, -1, dtype=np.int64)
    cosine = np.zeros(picks.shape, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(vecs, axis=1), 1e-12) if len(vecs) else np.ones(0)
    for i, u in enumerate(users.tolist()):
        cols = np.flatnonzero((source[i] == MODEL) & (picks[i] >= 0))
        if len(cols) == 0:
            continue
        saved = saves_newest_first.indices[saves_newest_first.indptr[u] : saves_newest_first.indptr[u + 1]]
        saved = saved[vec_row[saved] >= 0][:max_saves]
        pick_rows = vec_row[picks[i, cols]]
        ok = pick_rows >= 0
        if len(saved) == 0 or not ok.any():
            continue
        a = vecs[vec_row[saved]] / norms[vec_row[saved], None]
        p = vecs[pick_rows[ok]] / norms[pick_rows[ok], None]
        sims = p @ a.T
        best = sims.argmax(axis=1)
        anchor[i, cols[ok]] = saved[best]
        cosine[i, cols[ok]] = sims[np.arange(len(best)), best]
    return anchor, cosine


def order_rows_newest_first(
    n_users: int, n_goods: int, user_idx: np.ndarray, good_idx: np.ndarray, t: np.ndarray
) -> sp.csr_matrix:
    """csr [U, G] whose row u lists user u's distinct saved goods newest first (data = 1)."""
    keep = (user_idx >= 0) & (good_idx >= 0)
    u, g, tt = user_idx[keep], good_idx[keep], t[keep]
    order = np.lexsort((g, -tt, u))
    u, g = u[order], g[order]
    # Keep each (user, good) once, at its newest save.
    key = u * np.int64(n_goods) + g
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    u, g = u[first], g[first]
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(u, minlength=n_users), out=indptr[1:])
    return sp.csr_matrix((np.ones(len(g), dtype=np.int8), g, indptr), shape=(n_users, n_goods))


def explain(
    *,
    source: int,
    anchor_good_id: int | None,
    cosine: float,
    collection_id: int | None,
    followee_id: int | None,
    pick_domain: str | None,
    user_domains: set[str],
    popular_saves: tuple[int, int] | None,
    interest: tuple[int, str | None, float] | None = None,
) -> Reason:
    """The structured reason of one pick (database ids). interest: (medoid good_id, main domain or None,
    weight) of the user's interest the pick serves, or None."""
    if source == FOLLOWEE:
        why = Reason(FOLLOWEE_KIND, followee_id=followee_id)
    elif source == POPULAR:
        recent, total = popular_saves or (0, 0)
        why = Reason(POPULAR_KIND, saves=recent, saves_all_time=total)
    elif source == SEQUENCE and anchor_good_id is not None:
        why = Reason(NEXT_KIND, good_id=anchor_good_id)
    elif anchor_good_id is not None:
        kind = COLLECTION if collection_id is not None else GOOD
        why = Reason(kind, good_id=anchor_good_id, collection_id=collection_id, similarity=round(cosine, 4))
    elif pick_domain is not None and pick_domain in user_domains:
        why = Reason(DOMAIN, domain=pick_domain)
    else:
        why = Reason(MODEL_KIND)
    if interest is None:
        return why
    good_id, domain, weight = interest
    return replace(why, interest_good_id=good_id, interest_domain=domain, interest_weight=round(float(weight), 4))


def render(reason: Reason, labels: Labels, popular_days: int) -> tuple[str, str]:
    """(words, JSON detail) of a reason."""
    detail: dict[str, Any] = {"kind": reason.kind}
    if reason.kind in (GOOD, COLLECTION):
        title = labels.good_titles.get(reason.good_id or -1, "") or f"good {reason.good_id}"
        detail.update(good_id=reason.good_id, good_title=title, similarity=reason.similarity)
        words = f"because you saved {title}"
        if reason.kind == COLLECTION:
            ctitle = (
                labels.collection_titles.get(reason.collection_id or -1, "") or f"collection {reason.collection_id}"
            )
            detail.update(collection_id=reason.collection_id, collection_title=ctitle)
            words += f" in {ctitle}"
    elif reason.kind == NEXT_KIND:
        title = labels.good_titles.get(reason.good_id or -1, "") or f"good {reason.good_id}"
        detail.update(good_id=reason.good_id, good_title=title)
        words = f"next after {title}"
    elif reason.kind == FOLLOWEE_KIND:
        name = labels.user_names.get(reason.followee_id or -1, "") or f"user {reason.followee_id}"
        detail.update(user_id=reason.followee_id, user_name=name)
        words = f"because {name}, whom you follow, saved it"
    elif reason.kind == DOMAIN:
        detail.update(domain=reason.domain)
        words = f"because you save from {reason.domain}"
    elif reason.kind == POPULAR_KIND:
        detail.update(saves=reason.saves, days=popular_days, saves_all_time=reason.saves_all_time)
        if reason.saves:
            words = f"popular on Goodsend: saved {reason.saves} times in the last {popular_days} days"
        elif reason.saves_all_time:
            words = f"popular on Goodsend: saved {reason.saves_all_time} times"
        else:
            words = "new on Goodsend"
    else:
        words = "picked for you"
    if reason.interest_good_id is not None:
        title = labels.good_titles.get(reason.interest_good_id, "") or f"good {reason.interest_good_id}"
        detail["interest"] = {
            "good_id": reason.interest_good_id,
            "good_title": title,
            "domain": reason.interest_domain,
            "weight": reason.interest_weight,
        }
        words += f" · for your interest: {title}" + (f", {reason.interest_domain}" if reason.interest_domain else "")
    return words, _JSON.encode(detail)
