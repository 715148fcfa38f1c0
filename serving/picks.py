"""The day's picks from embeddings and database rows: retrieve, filter, re-rank, fall back, explain.

Pure: arrays in, arrays out. `make_picks` decides the picks (serving good_idx/user_idx, see serving.rows);
`to_rows` turns them into the rows written to graphrec_picks once the labels for the words are known.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from graphrec.core.artifacts import Embeddings
from graphrec.core.config import RecommendConfig
from graphrec.core.stages import Stages
from serving import fallback, reasons, retrieval
from serving.rerank import rerank
from serving.rows import ServingRows, eligible_users, exclusion_matrix, pair_matrix, saved_matrix

DAY = 86_400


@dataclass(frozen=True)
class Picks:
    """Picks per served user, in serving index spaces. Row i belongs to user `users[i]`."""

    users: np.ndarray  # int64 [n] user_idx
    picks: np.ndarray  # int64 [n, k] good_idx, best first, -1 padded
    scores: np.ndarray  # float32 [n, k] model inner product (0 where the model cannot score the pair)
    source: np.ndarray  # int8 [n, k] fallback.MODEL / FOLLOWEE / POPULAR / SEQUENCE
    via_user: np.ndarray  # int64 [n, k] followee user_idx of FOLLOWEE picks
    # int64 [n, k] good_idx of the saved good a MODEL pick is closest to (a SEQUENCE pick: the save it comes
    # next after), -1 when none
    anchor: np.ndarray
    cosine: np.ndarray  # float32 [n, k]
    popular_saves: dict[int, tuple[int, int]]  # good_idx -> (recent, all-time) saves, for POPULAR picks
    eligible: int  # eligible users asked for (served or not)
    unknown_users: int  # served users the model has no vector for (all fallbacks)
    unknown_goods: int  # goods without a vector (new since training, for a transductive model)
    # The user's interest each pick serves (For You, serving/foryou/interests.py): the good_idx of the saved good
    # that stands for it (its medoid), -1 none, and the interest's weight; None when the picks carry no interests.
    interest_good: np.ndarray | None = None  # int64 [n, k]
    interest_weight: np.ndarray | None = None  # float32 [n, k]
    # bool [n, k]: picks that fill a short list (serving.fallback.fill, or For You's popularity top-up). None:
    # every pick whose source is not MODEL (model retrieval's lists, where FOLLOWEE and POPULAR come only from
    # fallback.fill). For You's followees source keeps the FOLLOWEE source (its reason names the followee) but is
    # a candidate source the ranker ranked, not a fallback.
    filler: np.ndarray | None = None

    def fallback_mask(self) -> np.ndarray:
        """bool [n, k]: the picks that came from a fallback path (see `filler`)."""
        fell_back = np.isin(self.source, (fallback.FOLLOWEE, fallback.POPULAR))
        mask = fell_back if self.filler is None else self.filler
        return (self.picks >= 0) & mask

    def counts(self, min_picks: int, num_goods: int) -> dict[str, float]:
        per_user = (self.picks >= 0).sum(axis=1)
        fb = self.fallback_mask()
        picked = self.picks[self.picks >= 0]
        return {
            "users_eligible": self.eligible,
            "users_served": int((per_user > 0).sum()),
            "users_short": int((per_user < min_picks).sum()),
            "picks": int(per_user.sum()),
            "fallback_picks": int(fb.sum()),
            "users_with_fallbacks": int(fb.any(axis=1).sum()),
            "users_unknown_to_model": self.unknown_users,
            "goods_without_vector": self.unknown_goods,
            "coverage": round(len(np.unique(picked)) / max(num_goods, 1), 4),
        }


def make_picks(
    emb: Embeddings,
    rows: ServingRows,
    cfg: RecommendConfig,
    min_goods: int,
    users: np.ndarray | None = None,
    stages: Stages | None = None,
) -> Picks:
    """Picks for `users` (user_idx; default: every eligible user, more than `min_goods` goods saved)."""
    stages = stages or Stages()
    with stages.stage("filters"):
        exclude = exclusion_matrix(rows)
        eligible = eligible_users(rows, min_goods)
        users = eligible if users is None else np.asarray(users, dtype=np.int64)
        emb_good, usable, vec_row, user_row = _vector_rows(emb, rows)

    with stages.stage("index", kind=cfg.index, goods=int(usable.sum())):
        index = retrieval.build_index(
            emb.good_vecs[usable], emb_good[usable], cfg.index, nlist=cfg.ivf_nlist, nprobe=cfg.ivf_nprobe
        )

    with stages.stage("retrieve", users=len(users)):
        known = user_row[users] >= 0
        cands = np.full((len(users), cfg.candidates), -1, dtype=np.int64)
        cand_scores = np.full((len(users), cfg.candidates), -np.inf, dtype=np.float32)
        if known.any():
            c, s = retrieval.retrieve(
                index, emb.user_vecs[user_row[users[known]]], exclude[users[known]], cfg.candidates
            )
            cands[known], cand_scores[known] = c, s

    with stages.stage("rerank"):
        # The re-rank works on good_idx; vectors of goods without one are never candidates, so zeros do.
        vecs_by_good = _rows_or_zero(emb.good_vecs, vec_row, np.unique(cands[cands >= 0]))
        picked = rerank(
            cands,
            cand_scores,
            vecs_by_good,
            rows.good_domain,
            cfg.picks_per_user,
            cfg.diversity,
            cfg.max_per_domain,
        )

    with stages.stage("fallback"):
        since_follow = rows.now - cfg.followee_days * DAY
        save_u, save_g = rows.user_idx(rows.save_user), rows.good_idx(rows.save_good)
        recent = fallback.recent_saves_by_user(
            rows.num_users, rows.num_goods, save_u, save_g, rows.save_time, since_follow
        )
        follows = pair_matrix(
            rows.num_users, rows.num_users, rows.user_idx(rows.follower), rows.user_idx(rows.followee)
        )
        pop, pop_recent, pop_total = _popular(rows, cfg, exclude)
        filled = fallback.fill(
            users,
            picked,
            cfg.picks_per_user,
            cfg.min_picks,
            exclude,
            follows,
            recent,
            pop,
            rows.good_domain,
            cfg.max_per_domain,
        )

    with stages.stage("reasons"):
        newest_first = reasons.order_rows_newest_first(rows.num_users, rows.num_goods, save_u, save_g, rows.save_time)
        anchor, cosine = reasons.anchors(users, filled.picks, filled.source, newest_first, vec_row, emb.good_vecs)
        scores = _scores(emb, users, filled.picks, user_row, vec_row)

    unknown_goods = int(rows.num_goods - (vec_row >= 0).sum())
    return Picks(
        users=users,
        picks=filled.picks,
        scores=scores,
        source=filled.source,
        via_user=filled.via_user,
        anchor=anchor,
        cosine=cosine,
        popular_saves=dict(zip(pop.tolist(), zip(pop_recent.tolist(), pop_total.tolist(), strict=True), strict=True)),
        eligible=len(eligible) if users is eligible else int(np.isin(users, eligible).sum()),
        unknown_users=int((user_row[users] < 0).sum()),
        unknown_goods=unknown_goods,
    )


def _vector_rows(emb: Embeddings, rows: ServingRows) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Embedding rows -> serving index spaces: (good_idx of each embedding good row [-1: deleted since],
    usable [bool per embedding good row], vec_row [G] embedding row of each good_idx or -1, user_row [U])."""
    emb_good = rows.good_idx(emb.good_ids)
    vec_row = np.full(rows.num_goods, -1, dtype=np.int64)
    # A good is scorable when it has a vector: goods unknown to a transductive model (LightGCN) are zero
    # rows; goods an inductive model (PinSage-lite) embedded after training are real vectors and count.
    usable = (emb_good >= 0) & np.any(emb.good_vecs != 0, axis=1)
    vec_row[emb_good[usable]] = np.flatnonzero(usable)
    user_row = np.full(rows.num_users, -1, dtype=np.int64)
    emb_user = rows.user_idx(emb.user_ids)
    user_row[emb_user[emb_user >= 0]] = np.flatnonzero(emb_user >= 0)
    return emb_good, usable, vec_row, user_row


def _popular(rows: ServingRows, cfg: RecommendConfig, exclude: sp.csr_matrix) -> tuple[np.ndarray, ...]:
    """fallback.popular_goods over the rows: enough goods to fill any user's list past their exclusions."""
    return fallback.popular_goods(
        rows.num_goods,
        rows.good_idx(rows.save_good),
        rows.save_time,
        rows.now - cfg.popular_days * DAY,
        limit=cfg.picks_per_user * 4 + int(np.diff(exclude.indptr).max(initial=0)),
    )


def unfilled(emb: Embeddings, rows: ServingRows, cfg: RecommendConfig, min_goods: int) -> Picks:
    """Every eligible user with an empty list (no retrieval, no fallback yet): what the For You pipeline fills
    in first (graphrec/app/foryou.py for_you_picks), before `make_picks` fills the lists it leaves short
    (`fill_short`). Carries the popular goods' save counts (the reasons of For You's popularity top-up) and
    the model's counts over all eligible users."""
    eligible = eligible_users(rows, min_goods)
    _, _, vec_row, user_row = _vector_rows(emb, rows)
    pop, pop_recent, pop_total = _popular(rows, cfg, exclusion_matrix(rows))
    k = cfg.picks_per_user
    n = len(eligible)
    return Picks(
        users=eligible,
        picks=np.full((n, k), -1, np.int64),
        scores=np.zeros((n, k), np.float32),
        source=np.full((n, k), fallback.MODEL, np.int8),
        via_user=np.full((n, k), -1, np.int64),
        anchor=np.full((n, k), -1, np.int64),
        cosine=np.zeros((n, k), np.float32),
        popular_saves=dict(zip(pop.tolist(), zip(pop_recent.tolist(), pop_total.tolist(), strict=True), strict=True)),
        eligible=n,
        unknown_users=int((user_row[eligible] < 0).sum()),
        unknown_goods=int(rows.num_goods - (vec_row >= 0).sum()),
    )


def short_rows(p: Picks, min_picks: int) -> np.ndarray:
    """Rows of `p` whose list holds fewer than `min_picks` picks."""
    return np.flatnonzero((p.picks >= 0).sum(axis=1) < min_picks)


def top_up_fillers(served: Picks) -> np.ndarray:
    """bool [n, k]: the fallbacks of For You's lists, its popularity top-up (source POPULAR) alone, unless
    `served` says otherwise (`filler`); its followees source is a source, not a fallback."""
    return (served.picks >= 0) & (served.source == fallback.POPULAR if served.filler is None else served.filler)


def fill_short(served: Picks, rows_short: np.ndarray, fill: Picks) -> Picks:
    """`served` with rows `rows_short` replaced by `fill`'s (model retrieval and fallbacks for those users,
    `fill.users == served.users[rows_short]`). The rows kept are For You's: their fillers are its popularity
    top-up (source POPULAR) alone; the rows replaced keep make_picks' sources, where every non-MODEL pick is
    a fallback."""
    if not np.array_equal(fill.users, served.users[rows_short]):
        raise ValueError("fill_short: the fill is for other users than the short rows")
    k = served.picks.shape[1]
    if fill.picks.shape[1] != k:
        raise ValueError(f"fill_short: lists of {fill.picks.shape[1]} picks for lists of {k}")
    filler = top_up_fillers(served)
    out = {f: getattr(served, f).copy() for f in ("picks", "scores", "source", "via_user", "anchor", "cosine")}
    for f in out:
        out[f][rows_short] = getattr(fill, f)
    filler[rows_short] = fill.fallback_mask()
    interest_good, interest_weight = served.interest_good, served.interest_weight
    if interest_good is not None:
        interest_good = interest_good.copy()
        interest_good[rows_short] = fill.interest_good if fill.interest_good is not None else -1
    if interest_weight is not None:
        interest_weight = interest_weight.copy()
        interest_weight[rows_short] = fill.interest_weight if fill.interest_weight is not None else 0.0
    return replace(
        served,
        **out,
        interest_good=interest_good,
        interest_weight=interest_weight,
        filler=filler,
        popular_saves={**served.popular_saves, **fill.popular_saves},
    )


def _rows_or_zero(vecs: np.ndarray, vec_row: np.ndarray, needed: np.ndarray) -> np.ndarray:
    """float32 [G, d] with the vectors of the `needed` good_idx filled in, zeros elsewhere."""
    out = np.zeros((len(vec_row), vecs.shape[1]), dtype=np.float32)
    has = needed[vec_row[needed] >= 0]
    out[has] = vecs[vec_row[has]]
    return out


def _scores(
    emb: Embeddings, users: np.ndarray, picks: np.ndarray, user_row: np.ndarray, vec_row: np.ndarray
) -> np.ndarray:
    """Model inner product of every (user, pick), 0 where the model has no vector for one of them."""
    urow = user_row[users][:, None].repeat(picks.shape[1], axis=1)
    grow = np.where(picks >= 0, vec_row[np.maximum(picks, 0)], -1)
    ok = (urow >= 0) & (grow >= 0)
    out = np.zeros(picks.shape, dtype=np.float32)
    out[ok] = np.einsum("nd,nd->n", emb.user_vecs[urow[ok]], emb.good_vecs[grow[ok]])
    return out


@dataclass(frozen=True)
class PickRows:
    """The rows of graphrec_picks for one run (without run_id), in database ids."""

    user_id: np.ndarray  # int64 [N]
    rank: np.ndarray  # int32 [N], 1 is the top pick
    good_id: np.ndarray  # int64 [N]
    score: np.ndarray  # float32 [N]
    reason: list[str]
    reason_detail: list[str]  # JSON objects
    is_fallback: np.ndarray  # bool [N]

    def __len__(self) -> int:
        return len(self.user_id)


def label_ids(p: Picks, rows: ServingRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(good_ids, collection_ids, user_ids) whose titles or names the reasons need."""
    named = p.anchor if p.interest_good is None else np.concatenate([p.anchor.ravel(), p.interest_good.ravel()])
    goods = rows.good_id[np.unique(named[named >= 0])]
    collections = np.unique(_anchor_collections(p, rows))
    users = rows.user_id[np.unique(p.via_user[p.via_user >= 0])]
    return goods, collections[collections >= 0], users


def _anchor_collections(p: Picks, rows: ServingRows) -> np.ndarray:
    """int64 [n, k] the user's own collection holding each pick's anchor good (latest added), -1 when none."""
    n_goods = np.int64(max(rows.num_goods, 1))
    ou, og = rows.user_idx(rows.owned_user), rows.good_idx(rows.owned_good)
    ok = (ou >= 0) & (og >= 0)
    keys = ou[ok] * n_goods + og[ok]
    colls = rows.owned_collection[ok]
    # Rows arrive in added order; sorting stably by key makes the last of each key the latest added.
    order = np.argsort(keys, kind="stable")
    keys, colls = keys[order], colls[order]
    want = p.users[:, None] * n_goods + p.anchor
    pos = np.searchsorted(keys, want, side="right") - 1
    found = (p.anchor >= 0) & (pos >= 0) & (keys[np.maximum(pos, 0)] == want if len(keys) else False)
    return np.where(found, colls[np.maximum(pos, 0)] if len(colls) else -1, -1)


def to_rows(p: Picks, rows: ServingRows, labels: reasons.Labels, cfg: RecommendConfig) -> PickRows:
    """The picks as graphrec_picks rows, each with its reason in words and JSON."""
    valid = p.picks >= 0
    ui, jj = np.nonzero(valid)  # row-major: each user's picks in rank order
    g = p.picks[ui, jj]
    rank = (np.cumsum(valid, axis=1) * valid)[ui, jj].astype(np.int32)
    anchor = p.anchor[ui, jj]
    collection = _anchor_collections(p, rows)[ui, jj]
    via = p.via_user[ui, jj]
    dom = rows.good_domain[g]
    # Plain lists: the loop below reads one element at a time, which numpy does slowly.
    source_l = p.source[ui, jj].tolist()
    anchor_id = np.where(anchor >= 0, rows.good_id[np.maximum(anchor, 0)], -1).tolist()
    collection_l = collection.tolist()
    via_id = np.where(via >= 0, rows.user_id[np.maximum(via, 0)], -1).tolist()
    dom_l = dom.tolist()
    cosine_l = p.cosine[ui, jj].tolist()
    if p.interest_good is not None:
        ig = p.interest_good[ui, jj]
        iw = (p.interest_weight[ui, jj] if p.interest_weight is not None else np.zeros(len(ig))).tolist()
        ig_id = np.where(ig >= 0, rows.good_id[np.maximum(ig, 0)], -1).tolist()
        ig_dom = np.where(ig >= 0, rows.good_domain[np.maximum(ig, 0)], -1).tolist()
    else:
        ig_id, ig_dom, iw = [-1] * len(g), [-1] * len(g), [0.0] * len(g)
    g_l = g.tolist()
    user_l = p.users[ui].tolist()
    names = rows.domain_names.tolist()
    saved = saved_matrix(rows)
    user_domains: dict[int, set[str]] = {}
    reason, detail = [], []
    for k, src in enumerate(source_l):
        a, d = anchor_id[k], dom_l[k]
        domains: set[str] = set()
        if src in (fallback.MODEL, fallback.SEQUENCE) and a < 0:
            u = user_l[k]
            if u not in user_domains:
                doms = rows.good_domain[saved.indices[saved.indptr[u] : saved.indptr[u + 1]]]
                user_domains[u] = {names[x] for x in doms.tolist() if x >= 0}
            domains = user_domains[u]
        why = reasons.explain(
            source=src,
            anchor_good_id=a if a >= 0 else None,
            cosine=cosine_l[k],
            collection_id=collection_l[k] if collection_l[k] >= 0 else None,
            followee_id=via_id[k] if via_id[k] >= 0 else None,
            pick_domain=names[d] if d >= 0 else None,
            user_domains=domains,
            popular_saves=p.popular_saves.get(g_l[k]),
            interest=(ig_id[k], names[ig_dom[k]] if ig_dom[k] >= 0 else None, iw[k]) if ig_id[k] >= 0 else None,
        )
        words, js = reasons.render(why, labels, cfg.popular_days)
        reason.append(words)
        detail.append(js)
    return PickRows(
        user_id=rows.user_id[p.users[ui]].astype(np.int64),
        rank=rank,
        good_id=rows.good_id[g].astype(np.int64),
        score=p.scores[ui, jj].astype(np.float32),
        reason=reason,
        reason_detail=detail,
        is_fallback=p.fallback_mask()[ui, jj],
    )
