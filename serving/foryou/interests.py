"""Each user's interests, found from their saves the way PinnerSage does: cluster the vectors of the goods a user
saved, weight each cluster by its recency-weighted share of the user's saves, and stand it for by its medoid (a
saved good, so it can be looked up in any vector space, e.g. the graph model's) and its centroid.

The clustering is spherical k-means run for all users at once on flat arrays of saves (one row per save, the
owner's row beside it), so 5,000 users take a fraction of a second and 50,000 a few seconds:

1. Vectors are centred on the catalogue mean and L2-normalised, then projected onto their top `dim` principal
   directions (CLIP's cosine between unrelated goods is far from 0; centring puts it near 0, so one threshold
   means the same on any content).
2. Seeds: the user's medoid first, then repeatedly the save least similar to every seed so far, while that
   similarity is below `threshold`, up to 2 * `max_interests` seeds (farthest-point seeding with a cut-off, so
   k follows the data: a user with four distinct tastes gets four interests, one taste one).
3. `iters` Lloyd iterations (assign to the most similar centre, centres = normalised mean of their saves),
   then clusters whose centres are more similar than `merge` are joined (a single save is a noisy stand-in for
   a taste, so step 2 over-splits on purpose; means are not noisy), and Lloyd again.
4. Clusters holding fewer than `min_size` saves and less than `min_share` of the user's saves are noise, and so
   are those beyond the `max_interests` heaviest: their saves belong to no interest and do not count in the
   weights (a stray save is not a taste).

Everything is deterministic: the seeding has no randomness and the projection is fitted on a sample drawn with
`seed`.

Id spaces: `good_idx` rows of the vector matrix (the graph's goods), `user_idx` rows of the saves matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from serving.foryou.context import DAY, ForYouContext

NO_INTEREST = -1


@dataclass(frozen=True)
class InterestParams:
    """How interests are found; see the module docstring."""

    max_interests: int = 6
    threshold: float = 0.25  # cosine (centred, projected space) below which a save starts a new seed
    merge: float = 0.5  # cosine between two clusters' centres above which they are one interest
    iters: int = 8
    min_size: int = 2
    min_share: float = 0.1
    half_life: float | None = 90 * 86_400.0  # in the units of the save times; None weighs every save alike
    dim: int = 64  # principal directions kept for clustering; 0 keeps the vectors as they are
    max_saves: int = 500  # newest saves per user that are clustered
    seed: int = 0


@dataclass(frozen=True)
class UserInterests:
    """Interests of `users`, heaviest first per user. Interest j of row i is flat row `row[i, j]` (-1 padding).

    users:    int64 [n] user_idx.
    row:      int64 [n, K] flat interest row per (user row, slot), -1 where the user has fewer than K.
    weight:   float32 [n, K] recency-weighted share of the user's (non-noise) saves; rows sum to 1 for users
              with at least one interest, 0 elsewhere.
    owner:    int64 [I] user row (position in `users`) of each flat interest.
    size:     int64 [I] saves in the interest.
    medoid:   int64 [I] good_idx of the saved good most similar to the rest of the interest.
    centroid: float32 [I, d] L2-normalised mean of the interest's saved goods, in the space of the vectors passed
              in (not centred or projected), for retrieval and for assigning candidates.
    domains:  int64 [I, 2] the interest's most saved domain_idx and the runner-up (-1 when none).
    domain_share: float32 [I, 2] their shares of the interest's saves.
    save_user, save_good, save_interest: int64 [S] every clustered save (user row, good_idx, flat interest row
              or -1 for noise).
    centre_z: float32 [I, p] the interest's unit centre in the clustering space (vectors made unit, centred
              on `mean` and projected on `basis` [d, p], made unit again), where `threshold` is measured.
    """

    users: np.ndarray
    row: np.ndarray
    weight: np.ndarray
    owner: np.ndarray
    size: np.ndarray
    medoid: np.ndarray
    centroid: np.ndarray
    domains: np.ndarray
    domain_share: np.ndarray
    save_user: np.ndarray
    save_good: np.ndarray
    save_interest: np.ndarray
    centre_z: np.ndarray
    mean: np.ndarray
    basis: np.ndarray
    threshold: float

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """float32 [..., p]: vectors [..., d] (the space the interests were found in) in the clustering space."""
        v = _unit(np.asarray(vectors, dtype=np.float32))
        z = _unit(v @ self.basis - self.mean @ self.basis)
        return np.where(np.abs(v).sum(axis=-1, keepdims=True) > 0, z, 0.0)

    @property
    def count(self) -> np.ndarray:
        """int64 [n]: interests per user row."""
        return (self.row >= 0).sum(axis=1)

    def flat_weight(self) -> np.ndarray:
        """float32 [I]: each flat interest's weight."""
        out = np.zeros(len(self.owner), dtype=np.float32)
        ok = self.row >= 0
        out[self.row[ok]] = self.weight[ok]
        return out


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 1e-12)


def _projection(vectors: np.ndarray, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean [d], basis [d, dim]) for centring and projecting vectors: the catalogue's mean and principal
    directions (of a seeded sample of 20,000 goods when there are more)."""
    rng = np.random.default_rng(seed)
    n_goods = len(vectors)
    sample = np.arange(n_goods) if n_goods <= 20_000 else np.sort(rng.choice(n_goods, 20_000, replace=False))
    x = _unit(np.asarray(vectors[sample], dtype=np.float32))
    x = x[np.abs(x).sum(axis=1) > 0]
    mean = x.mean(axis=0)
    xc = x - mean
    d = vectors.shape[1]
    if dim <= 0 or dim >= d:
        return mean, np.eye(d, dtype=np.float32)
    # Top eigenvectors of the d x d covariance by seeded subspace iteration (a full eigh of it can take seconds
    # on a busy machine); signs fixed for determinism.
    cov = (xc.T @ xc).astype(np.float64)
    q = np.linalg.qr(rng.standard_normal((d, dim + 8)))[0]
    for _ in range(8):
        q = np.linalg.qr(cov @ q)[0]
    vals, small = np.linalg.eigh(q.T @ cov @ q)
    basis = (q @ small)[:, np.argsort(-vals, kind="stable")[:dim]]
    basis *= np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(dim)])
    return mean, basis.astype(np.float32)


def _recentre(xb: np.ndarray, valid: np.ndarray, assign: np.ndarray, centres: np.ndarray) -> np.ndarray:
    k2 = centres.shape[1]
    onehot = ((assign[..., None] == np.arange(k2)) & valid[..., None]).astype(np.float32)  # [b, L, K2]
    summed = np.einsum("blk,blp->bkp", onehot, xb)
    filled = onehot.sum(axis=1) > 0
    return np.where(filled[..., None], _unit(summed), centres)


def _lloyd(
    xb: np.ndarray, valid: np.ndarray, centres: np.ndarray, live: np.ndarray, assign: np.ndarray, iters: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means steps on padded users: xb [b, L, p], valid [b, L], centres [b, K2, p], live [b, K2]."""
    for _ in range(iters + 1):
        sims = np.matmul(xb, centres.transpose(0, 2, 1))  # [b, L, K2]
        sims = np.where(live[:, None, :], sims, -np.inf)
        new = np.where(valid, sims.argmax(axis=2), 0)
        if np.array_equal(new, assign):
            break
        assign = new
        centres = _recentre(xb, valid, assign, centres)
    return assign, centres


def _cluster_padded(
    xb: np.ndarray, valid: np.ndarray, k2: int, threshold: float, merge: float, iters: int
) -> np.ndarray:
    """int64 [b, L]: each save's cluster slot (0..k2-1) for users padded to one length (see find_interests)."""
    b, L, _ = xb.shape
    rows = np.arange(b)
    # Seeds: the user's medoid (x . the sum of the user's x is its summed cosine to all their saves), then the
    # save least similar to every seed while below the threshold. Single saves are noisy stand-ins for a taste,
    # so this over-splits on purpose; the merge below rejoins.
    total = xb.sum(axis=1)
    score = np.where(valid, np.einsum("blp,bp->bl", xb, total), -np.inf)
    centres = np.zeros((b, k2, xb.shape[2]), dtype=np.float32)
    centres[:, 0] = xb[rows, score.argmax(axis=1)]
    n_seeds = np.ones(b, dtype=np.int64)
    best = np.where(valid, np.einsum("blp,bp->bl", xb, centres[:, 0]), np.inf)
    for j in range(1, k2):
        far = best.argmin(axis=1)
        grow = (n_seeds == j) & (best[rows, far] < threshold)
        if not grow.any():
            break
        g = np.flatnonzero(grow)
        centres[g, j] = xb[g, far[g]]
        n_seeds[g] = j + 1
        best[g] = np.maximum(best[g], np.einsum("blp,bp->bl", xb[g], centres[g, j]))
    live = np.arange(k2)[None, :] < n_seeds[:, None]
    assign, centres = _lloyd(xb, valid, centres, live, np.full((b, L), -1), iters)
    if k2 == 1:
        return assign
    # Merge: clusters whose centres (means, far less noisy than single saves) are more similar than `merge` are
    # one interest (connected components of the user's centre graph, by label propagation).
    gram = np.matmul(centres, centres.transpose(0, 2, 1))
    adj = (gram > merge) & live[:, :, None] & live[:, None, :]
    label = np.broadcast_to(np.arange(k2), (b, k2)).copy()
    for _ in range(k2):
        new = np.minimum(np.where(adj, label[:, None, :], k2).min(axis=2), label)
        if np.array_equal(new, label):
            break
        label = new
    assign = np.take_along_axis(label, assign, axis=1)
    centres = _recentre(xb, valid, assign, centres)
    assign, _ = _lloyd(xb, valid, centres, live & (label == np.arange(k2)[None, :]), assign, iters)
    return assign


def find_interests(
    saves: sp.csr_matrix,
    vectors: np.ndarray,
    users: np.ndarray | None = None,
    *,
    save_time: sp.csr_matrix | None = None,
    now: float | None = None,
    domain: np.ndarray | None = None,
    params: InterestParams | None = None,
    batch_rows: int = 1 << 17,
    block_saves: int = 1 << 18,
    threads: int = 1,
) -> UserInterests:
    """Find the interests of `users` (default: every row of `saves`).

    saves: csr [U, G] whose nonzeros are the saved good_idx (values ignored). save_time: csr [U, G] with the same
    pattern holding each save's time, or None (then the newest saves are unknown and every save weighs the
    same). now: the time recency is measured from (default: the newest save time). vectors: float [G, d] good
    vectors (CLIP content, or a model's good embeddings); goods whose vector is all zero are skipped.
    domain: int64 [G] domain_idx per good (-1 unknown), for the interests' domains. block_saves: about how
    many padded saves one clustering block holds; threads: the blocks are clustered on this many threads (the
    interests are the same bit for bit).
    """
    p = params or InterestParams()
    if p.max_interests < 1:
        raise ValueError(f"max_interests must be at least 1, got {p.max_interests}")
    saves = sp.csr_matrix(saves)
    n_users_all, n_goods = saves.shape
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != n_goods:
        raise ValueError(f"vectors must be [{n_goods}, d] (one row per good of saves), got {vectors.shape}")
    users = np.arange(n_users_all, dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
    if len(users) and (users.min() < 0 or users.max() >= n_users_all):
        raise ValueError(f"users must be rows of saves (0..{n_users_all - 1})")
    n = len(users)
    K = p.max_interests

    # Flat saves, grouped by user row, newest first, at most max_saves each, goods with a vector only.
    sub = saves[users]
    sub.sort_indices()
    counts = np.diff(sub.indptr)
    s_user = np.repeat(np.arange(n, dtype=np.int64), counts)
    s_good = sub.indices.astype(np.int64)
    if save_time is not None:
        st = sp.csr_matrix(save_time)[users]
        st.sort_indices()
        if st.nnz != sub.nnz or not np.array_equal(st.indices, sub.indices):
            raise ValueError("save_time must have the same nonzero pattern as saves")
        s_time = st.data.astype(np.float64)
    else:
        s_time = np.zeros(len(s_good))
    # Each distinct saved good once: its norm (zero vectors are skipped) and, below, its clustering coordinates.
    uniq, inverse = np.unique(s_good, return_inverse=True)
    norms = np.empty(len(uniq), dtype=np.float32)
    for lo in range(0, len(uniq), batch_rows):
        v = np.asarray(vectors[uniq[lo : lo + batch_rows]], dtype=np.float32)
        norms[lo : lo + batch_rows] = np.sqrt(np.einsum("nd,nd->n", v, v))
    keep = norms[inverse] > 1e-12
    s_user, s_good, s_time, inverse = s_user[keep], s_good[keep], s_time[keep], inverse[keep]
    order = np.lexsort((s_good, -s_time, s_user))
    s_user, s_good, s_time, inverse = s_user[order], s_good[order], s_time[order], inverse[order]
    starts = np.searchsorted(s_user, np.arange(n))
    rank = np.arange(len(s_user)) - starts[s_user]
    keep = rank < p.max_saves
    s_user, s_good, s_time, inverse = s_user[keep], s_good[keep], s_time[keep], inverse[keep]
    N = len(s_user)

    if save_time is not None and p.half_life:
        t_now = float(s_time.max()) if now is None and N else float(now or 0.0)
        recency = np.power(0.5, np.maximum(t_now - s_time, 0.0) / float(p.half_life))
    else:
        recency = np.ones(N)

    # Clustering space: unit, centred, projected, unit again.
    if N:
        mean, basis = _projection(vectors, p.dim, p.seed)
    else:
        mean, basis = np.zeros(vectors.shape[1], np.float32), np.eye(vectors.shape[1], dtype=np.float32)
    z = np.zeros((len(uniq), basis.shape[1]), dtype=np.float32)
    shift = mean @ basis
    for lo in range(0, len(uniq), batch_rows):
        v = np.asarray(vectors[uniq[lo : lo + batch_rows]], dtype=np.float32)
        nv = np.maximum(norms[lo : lo + batch_rows, None], 1e-12)
        z[lo : lo + batch_rows] = _unit((v @ basis) / nv - shift)
    x = z[inverse]

    # Users are clustered in buckets of equal padded length (the next power of two of their save count), so
    # every step is a batched matrix product over [users, saves, dims] with at most 2x padding.
    K2 = 2 * K  # seeds before merging
    assign = np.zeros(N, dtype=np.int64)
    counts = np.bincount(s_user, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)])
    length = np.where(counts > 0, 2 ** np.ceil(np.log2(np.maximum(counts, 1))).astype(np.int64), 0)
    blocks = []
    for L in np.unique(length[length > 0]).tolist():
        bucket = np.flatnonzero(length == L)
        step = max(1, block_saves // L)
        blocks += [(L, bucket[lo : lo + step]) for lo in range(0, len(bucket), step)]

    def cluster_block(block: tuple[int, np.ndarray]) -> None:
        L, us = block
        valid = np.arange(L)[None, :] < counts[us][:, None]
        idx = np.where(valid, starts[us][:, None] + np.arange(L)[None, :], 0)
        xb = x[idx] * valid[..., None]
        assign[idx[valid]] = _cluster_padded(xb, valid, K2, p.threshold, p.merge, p.iters)[valid]

    # The blocks are fixed by the data and each writes its own saves' slots, so threads change no bit.
    if threads > 1 and len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(cluster_block, blocks))
    else:
        for block in blocks:
            cluster_block(block)

    # Noise clusters: too small both in saves and in share of the user's saves. A user whose every cluster is
    # small (a handful of scattered saves) keeps them all. Beyond the K heaviest, clusters are noise too.
    cell = s_user * K2 + assign
    cell_size = np.bincount(cell, minlength=n * K2).reshape(n, K2)
    user_n = np.maximum(cell_size.sum(axis=1, keepdims=True), 1)
    real = (cell_size > 0) & ((cell_size >= p.min_size) | (cell_size / user_n >= p.min_share))
    real |= (cell_size > 0) & ~real.any(axis=1, keepdims=True)
    # float even with no saves at all (numpy's bincount of nothing is int64, whatever its weights)
    raw_w = np.bincount(cell, weights=recency, minlength=n * K2).astype(np.float64).reshape(n, K2)
    # Heaviest first: recency-weighted share, then size, then slot.
    slot_order = np.lexsort((np.broadcast_to(np.arange(K2), (n, K2)), -cell_size, -raw_w, ~real), axis=1)
    rank_of = np.empty_like(slot_order)
    np.put_along_axis(rank_of, slot_order, np.broadcast_to(np.arange(K2), (n, K2)), axis=1)
    real &= rank_of < K
    cell_w = raw_w * real
    tot = cell_w.sum(axis=1, keepdims=True)
    # Recency can round a real cluster's weight to 0 (very old saves); fall back to counts then.
    cell_w = np.where(tot > 0, cell_w, cell_size * real)
    tot = cell_w.sum(axis=1, keepdims=True)
    weight_uk = np.divide(cell_w, tot, out=np.zeros_like(cell_w), where=tot > 0)

    n_int = real.sum(axis=1)
    K_out = max(int(n_int.max()) if n else 0, 1)
    flat_start = np.concatenate([[0], np.cumsum(n_int)])
    row = np.full((n, K_out), -1, dtype=np.int64)
    weight = np.zeros((n, K_out), dtype=np.float32)
    slot_to_flat = np.full((n, K2), -1, dtype=np.int64)
    pos = np.arange(K_out)[None, :]
    r_idx, c_idx = np.nonzero(pos < n_int[:, None])
    flat_ids = flat_start[r_idx] + c_idx
    row[r_idx, c_idx] = flat_ids
    weight[r_idx, c_idx] = weight_uk[r_idx, slot_order[r_idx, c_idx]]
    slot_to_flat[r_idx, slot_order[r_idx, c_idx]] = flat_ids
    I_ = int(flat_start[-1])
    owner = np.repeat(np.arange(n, dtype=np.int64), n_int)

    s_int = slot_to_flat[s_user, assign]
    size = np.bincount(s_int[s_int >= 0], minlength=I_).astype(np.int64)

    # Medoid: the member with the largest sum of cosines to its interest's members (x . the members' sum).
    medoid = np.full(I_, -1, dtype=np.int64)
    centre_z = np.zeros((I_, x.shape[1]), dtype=np.float32)
    centroid = np.zeros((I_, vectors.shape[1]), dtype=np.float32)
    if I_:
        member = s_int >= 0
        m = sp.csr_matrix(
            (np.ones(int(member.sum()), np.float32), (s_int[member], np.flatnonzero(member))), shape=(I_, N)
        )
        csum = np.asarray(m @ x)
        centre_z = _unit(csum).astype(np.float32)
        score = np.full(N, -np.inf)
        score[member] = np.einsum("nd,nd->n", x[member], csum[s_int[member]])
        order = np.lexsort((s_good, -score, np.where(member, s_int, I_)))
        srt = np.where(member, s_int, I_)[order]
        firsts = np.ones(len(order), dtype=bool)
        firsts[1:] = srt[1:] != srt[:-1]
        firsts &= srt < I_
        medoid[srt[firsts]] = s_good[order[firsts]]
        # Sum of the members' unit vectors, by a sparse [I, distinct goods] product (no [N, d] copy).
        m_ig = sp.csr_matrix(
            (1.0 / np.maximum(norms[inverse[member]], 1e-12), (s_int[member], inverse[member])),
            shape=(I_, len(uniq)),
        )
        m_ig.sum_duplicates()
        used = np.unique(m_ig.indices)
        for lo in range(0, len(used), batch_rows):
            cols = used[lo : lo + batch_rows]
            centroid += m_ig[:, cols] @ np.asarray(vectors[uniq[cols]], dtype=np.float32)
        centroid = _unit(centroid)

    domains = np.full((I_, 2), -1, dtype=np.int64)
    domain_share = np.zeros((I_, 2), dtype=np.float32)
    if domain is not None and I_:
        dom = np.asarray(domain, dtype=np.int64)[s_good]
        ok = (s_int >= 0) & (dom >= 0)
        pair_i, pair_d = s_int[ok], dom[ok]
        key2 = pair_i * (int(dom.max()) + 1) + pair_d
        uk, cnt = np.unique(key2, return_counts=True)
        ui, ud = uk // (int(dom.max()) + 1), uk % (int(dom.max()) + 1)
        o = np.lexsort((ud, -cnt, ui))
        ui, ud, cnt = ui[o], ud[o], cnt[o]
        first_of = np.searchsorted(ui, ui)
        place = np.arange(len(ui)) - first_of
        top2 = place < 2
        domains[ui[top2], place[top2]] = ud[top2]
        domain_share[ui[top2], place[top2]] = cnt[top2] / size[ui[top2]]

    return UserInterests(
        users=users,
        row=row,
        weight=weight,
        owner=owner,
        size=size,
        medoid=medoid,
        centroid=centroid,
        domains=domains,
        domain_share=domain_share,
        save_user=s_user,
        save_good=s_good,
        save_interest=s_int,
        centre_z=centre_z,
        mean=mean,
        basis=basis,
        threshold=float(p.threshold),
    )


def assign(
    interests: UserInterests,
    rows: np.ndarray,
    goods: np.ndarray,
    vectors: np.ndarray,
    batch: int = 256,
    *,
    projected: bool = False,
) -> np.ndarray:
    """Each candidate's nearest interest of its user, by cosine to the interests' centres in the clustering
    space; a candidate less similar than the interests' `threshold` to all of them serves none (so a list is
    not counted as covering a taste with goods that merely lie nearer to it than to the others).

    rows: int64 [m] user rows (positions in `interests.users`) of the candidate lists; goods: int64 [m, C]
    good_idx, -1 padding; vectors: float [G, d] the space `interests` was found in, or with `projected` those
    vectors already in the clustering space (projected_vectors: a row gathered per candidate instead of a
    projection per candidate). Returns int64 [m, C] slots
    (0 = the user's heaviest interest), -1 for padding, goods without a vector, goods far from every interest
    and users without interests.
    """
    rows = np.asarray(rows, dtype=np.int64)
    goods = np.atleast_2d(np.asarray(goods, dtype=np.int64))
    out = np.full(goods.shape, NO_INTEREST, dtype=np.int64)
    if len(interests.owner) == 0:
        return out
    for lo in range(0, len(rows), batch):
        sl = slice(lo, lo + batch)
        ir = interests.row[rows[sl]]  # [b, K]
        c = interests.centre_z[np.maximum(ir, 0)] * (ir >= 0)[..., None]  # [b, K, p]
        g = goods[sl]
        z = np.asarray(vectors[np.maximum(g, 0)], dtype=np.float32)
        z = z if projected else interests.project(z)  # [b, C, p]
        sims = np.einsum("bcp,bkp->bck", z, c)
        sims = np.where((ir >= 0)[:, None, :], sims, -np.inf)
        best = sims.argmax(axis=2)
        near = sims.max(axis=2) >= interests.threshold
        ok = (g >= 0) & near & (np.abs(z).sum(axis=2) > 0)
        out[sl] = np.where(ok, best, NO_INTEREST)
    return out


def labels(
    interests: UserInterests, good_titles: Sequence[str], domain_names: Sequence[str], max_title: int = 40
) -> list[str]:
    """A readable label per flat interest: its medoid's title, then its main domain(s),
    e.g. "Folk silver necklace · atelier-lane.com, @folkstudio". good_titles is indexed by good_idx,
    domain_names by domain_idx."""
    out = []
    for i in range(len(interests.owner)):
        g = int(interests.medoid[i])
        title = (str(good_titles[g]) if g >= 0 and good_titles[g] else f"good {g}").strip()
        if len(title) > max_title:
            title = title[: max_title - 1].rstrip() + "…"
        doms = [
            str(domain_names[d])
            for d, s in zip(interests.domains[i].tolist(), interests.domain_share[i].tolist(), strict=True)
            if d >= 0 and s >= 0.2
        ]
        out.append(title + (" · " + ", ".join(doms) if doms else ""))
    return out


def rows_of(interests: UserInterests, users: np.ndarray) -> np.ndarray:
    """int64 [m]: the row of each user_idx in `interests.users`, -1 for users it does not cover."""
    users = np.asarray(users, dtype=np.int64)
    order = np.argsort(interests.users, kind="stable")
    srt = interests.users[order]
    pos = np.searchsorted(srt, users)
    pos_c = np.minimum(pos, max(len(srt) - 1, 0))
    found = (pos < len(srt)) & (srt[pos_c] == users) if len(srt) else np.zeros(len(users), dtype=bool)
    return np.where(found, order[pos_c], -1)


def good_interest(
    interests: UserInterests,
    users: np.ndarray,
    goods: np.ndarray,
    vectors: np.ndarray,
    batch: int = 256,
    *,
    projected: bool = False,
) -> np.ndarray:
    """The nearest interest slot of each candidate's user, for candidates given by user_idx.

    users: int64 [n] user_idx with goods int64 [n, C] (lists), or users and goods both int64 [N] (flat pairs).
    Returns int64 of goods' shape: the slot (0 = heaviest interest), -1 when none (see `assign`)."""
    users = np.asarray(users, dtype=np.int64)
    goods = np.asarray(goods, dtype=np.int64)
    flat = goods.ndim == 1
    rows = rows_of(interests, users)
    if flat:
        from serving.foryou.sources.base import row_runs  # the sources import this module

        runs = row_runs(rows) if projected else None
        if runs is not None:
            return _assign_runs(interests, rows, goods, vectors, runs)
        # One pair per row: [N, 1] lists.
        out = _assign_rows(interests, rows, goods[:, None], vectors, batch * 64, projected)
        return out[:, 0]
    return _assign_rows(interests, rows, goods, vectors, batch, projected)


def _assign_runs(
    interests: UserInterests, rows: np.ndarray, goods: np.ndarray, z_all: np.ndarray, runs: list[tuple[int, int]]
) -> np.ndarray:
    """`assign` of flat pairs in runs of one user row (a batch's candidates come grouped by user), with vectors
    already projected: one [m, p] x [K, p] product per run, where `assign` gathers the user's K centres for
    every pair (~6x the pair's own vector). The same slots (the same float32 sums)."""
    out = np.full(len(rows), NO_INTEREST, dtype=np.int64)
    for lo, hi in runs:
        r = int(rows[lo])
        if r < 0:
            continue
        ir = interests.row[r]
        mine = ir[ir >= 0]
        if not len(mine):
            continue
        g = goods[lo:hi]
        z = np.asarray(z_all[np.maximum(g, 0)], dtype=np.float32)
        sims = np.einsum("mp,kp->mk", z, interests.centre_z[mine])
        ok = (g >= 0) & (sims.max(axis=1) >= interests.threshold) & (np.abs(z).sum(axis=1) > 0)
        out[lo:hi] = np.where(ok, np.flatnonzero(ir >= 0)[sims.argmax(axis=1)], NO_INTEREST)
    return out


def _assign_rows(
    interests: UserInterests, rows: np.ndarray, goods: np.ndarray, vectors: np.ndarray, batch: int, projected: bool
) -> np.ndarray:
    out = np.full(goods.shape, NO_INTEREST, dtype=np.int64)
    has = rows >= 0
    if has.any():
        out[has] = assign(interests, rows[has], goods[has], vectors, batch, projected=projected)
    return out


def interest_vectors(ctx: ForYouContext) -> np.ndarray:
    """float32 [G, d]: the space interests are found and candidates assigned in (cfg.interest_space): the CLIP
    content, or the graph model's good vectors ("model"; content when the app passed no model)."""
    space = ctx.cfg.interest_space
    if space not in ("content", "model"):
        raise ValueError(f"foryou.interest_space must be 'content' or 'model', got {space!r}")
    if space == "model" and ctx.model is not None:
        return np.asarray(ctx.model.good_vecs, dtype=np.float32)
    content = ctx.arrays.content
    if content.size == 0 or content.shape[1] == 0:
        if ctx.model is None:
            raise ValueError("interests need CLIP content or the model's good vectors; this graph has neither")
        return np.asarray(ctx.model.good_vecs, dtype=np.float32)
    return np.asarray(content, dtype=np.float32)


def projected_vectors(ctx: ForYouContext, chunk: int = 1 << 16) -> np.ndarray:
    """float32 [G, p]: every good's interest_vectors row in the clustering space of user_interests(ctx)
    (UserInterests.project, row by row), computed once per context: assigning a batch's candidates then
    gathers rows instead of projecting a [N, d] copy of their vectors each time (the daily job projected
    ~4M candidate vectors, ~15 s at 1x)."""

    def make() -> np.ndarray:
        ui, vectors = user_interests(ctx), interest_vectors(ctx)
        out = np.empty((len(vectors), ui.basis.shape[1]), np.float32)
        for lo in range(0, len(vectors), chunk):
            out[lo : lo + chunk] = ui.project(vectors[lo : lo + chunk])
        return out

    result: np.ndarray = ctx.memo("interest_projected", make)
    return result


def user_interests(ctx: ForYouContext) -> UserInterests:
    """Every user's interests in this context (ctx.interests when the app set it, else found once and kept in
    ctx.cache). Weights use the saves' recency (cfg.recency_half_life_days, measured from arrays.as_of)."""
    if ctx.interests is not None:
        return ctx.interests  # type: ignore[no-any-return]

    def make() -> UserInterests:
        cfg, a = ctx.cfg, ctx.arrays
        hl = cfg.recency_half_life_days
        params = InterestParams(
            max_interests=cfg.interest_max,
            threshold=cfg.interest_threshold,
            half_life=hl * DAY if hl > 0 else None,
            seed=cfg.seed,
        )
        users = np.flatnonzero(np.diff(a.saves.indptr) > 0).astype(np.int64)
        return find_interests(
            a.saves,
            interest_vectors(ctx),
            users,
            save_time=a.save_time,
            now=a.as_of,
            domain=a.domain,
            params=params,
            threads=max(1, cfg.workers),  # as many as the run has worker processes: its cores
        )

    result: UserInterests = ctx.memo("interests", make)
    return result


def pick_interests(
    interests: UserInterests, users: np.ndarray, slots: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a pick's reason says about its interest: for user_idx `users` [n] and interest slots [n, k] (-1
    none), (medoid good_idx int64 [n, k], main domain_idx int64 [n, k], weight float32 [n, k]); -1 / 0 where a
    pick serves no interest. serving.reasons.explain(interest=(medoid good_id, domain name, weight)) words it."""
    slots = np.asarray(slots, dtype=np.int64)
    rows = rows_of(interests, users)
    ok = (slots >= 0) & (rows >= 0)[:, None] & (slots < interests.row.shape[1])
    flat = np.where(ok, interests.row[np.maximum(rows, 0)[:, None], np.where(ok, slots, 0)], -1)
    ok &= flat >= 0
    medoid = (
        np.where(ok, interests.medoid[np.maximum(flat, 0)], -1) if len(interests.owner) else np.full(slots.shape, -1)
    )
    domain = np.where(ok, interests.domains[np.maximum(flat, 0), 0], -1) if len(interests.owner) else medoid
    weight = np.where(ok, interests.weight[np.maximum(rows, 0)[:, None], np.where(ok, slots, 0)], 0.0)
    return medoid.astype(np.int64), domain.astype(np.int64), weight.astype(np.float32)
