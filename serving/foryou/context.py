"""What every source, feature and the pipeline read: the graph as arrays plus what the app injects."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from graphrec.core.arrays import GraphArrays
from graphrec.core.config import ForYouConfig

DAY = 86_400

# user_idx int64 [b] -> float32 [b, G] scores over the graph's goods.
ScoreFn = Callable[[np.ndarray], np.ndarray]


@runtime_checkable
class FactoredScores(Protocol):
    """A ScoreFn whose scores split as ``linear(users)[i, g] + user_factors(users)[i] . good_factors()[g]``,
    the linear part a non-negative sparse csr [b, G] (training.graph_filter.GfCfScores): the graph_filter
    source then finds its top goods without a dense [b, G] block."""

    def __call__(self, users: np.ndarray) -> np.ndarray: ...

    def linear(self, users: np.ndarray) -> sp.csr_matrix: ...

    def user_factors(self, users: np.ndarray) -> np.ndarray: ...

    def good_factors(self) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelVectors:
    """The graph model's embeddings in the graph's index space (zero rows: no vector)."""

    user_vecs: np.ndarray  # float32 [U, d]
    good_vecs: np.ndarray  # float32 [G, d]
    kind: str = ""
    version: str = ""

    def __post_init__(self) -> None:
        if self.user_vecs.ndim != 2 or self.good_vecs.ndim != 2 or self.user_vecs.shape[1] != self.good_vecs.shape[1]:
            raise ValueError(
                f"model vectors: users {self.user_vecs.shape} and goods {self.good_vecs.shape} do not match"
            )


@dataclass
class ForYouContext:
    """arrays: the graph as of the time picks are made for. exclude: bool csr [U, G] goods never to pick
    (the user's saves; serving adds goods in their own collections and recent picks). graph_filter, model and
    sequence are injected by the app (training's GF-CF fitted on arrays.saves; the model's vectors of this
    graph; the sequence model's next-good scores after each user's newest saves in arrays)."""

    arrays: GraphArrays
    cfg: ForYouConfig
    exclude: sp.csr_matrix
    graph_filter: ScoreFn | None = None
    model: ModelVectors | None = None
    sequence: ScoreFn | None = None
    interests: Any = None  # serving.foryou.interests.UserInterests, or None
    cache: dict[str, Any] = field(default_factory=dict)
    # One lock per memo key: the first batch builds views on several threads (features.candidate_batch), and
    # a view two sources need is still built once; the other waits for it.
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False, compare=False)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        arrays: GraphArrays,
        cfg: ForYouConfig,
        *,
        graph_filter: ScoreFn | None = None,
        model: ModelVectors | None = None,
        sequence: ScoreFn | None = None,
        extra_exclude: sp.csr_matrix | None = None,
    ) -> ForYouContext:
        exclude = sp.csr_matrix(arrays.saves, dtype=bool)
        if extra_exclude is not None:
            if extra_exclude.shape != exclude.shape:
                raise ValueError(f"extra_exclude has shape {extra_exclude.shape}, the saves {exclude.shape}")
            exclude = sp.csr_matrix(exclude + sp.csr_matrix(extra_exclude, dtype=bool), dtype=bool)
        if model is not None and (
            model.user_vecs.shape[0] != arrays.n_users or model.good_vecs.shape[0] != arrays.n_goods
        ):
            raise ValueError(
                f"model vectors cover {model.user_vecs.shape[0]} users / {model.good_vecs.shape[0]} goods, "
                f"the graph has {arrays.n_users} / {arrays.n_goods}"
            )
        return cls(arrays=arrays, cfg=cfg, exclude=exclude, graph_filter=graph_filter, model=model, sequence=sequence)

    # --- shared, memoised views of the arrays ---------------------------------------------------------

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        if key in self.cache:
            return self.cache[key]
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self.cache:
                self.cache[key] = make()
        return self.cache[key]

    def recency_weights(self) -> sp.csr_matrix:
        """float32 csr [U, G]: each save weighted 0.5 ** (age / half-life) (1.0 without a half-life)."""

        def make() -> sp.csr_matrix:
            st = self.arrays.save_time
            hl = self.cfg.recency_half_life_days
            w = np.ones(st.nnz, np.float32) if hl <= 0 else 0.5 ** ((self.arrays.as_of - st.data) / (hl * DAY))
            return sp.csr_matrix((w.astype(np.float32), st.indices.copy(), st.indptr.copy()), shape=st.shape)

        return self.memo("recency_weights", make)

    def pickable(self) -> np.ndarray:
        """bool [G]: goods that exist at as_of (a good created later is not in the catalogue yet)."""
        return self.memo("pickable", self.arrays.live)

    def clusters(self) -> np.ndarray:
        """int64 [G]: a k-means cluster of each good's CLIP vector (seeded), the interest proxy."""

        def make() -> np.ndarray:
            import faiss

            x = np.ascontiguousarray(self.arrays.content, dtype=np.float32)
            k = max(1, min(self.cfg.clusters, len(x) // 40))
            if k == 1 or len(x) == 0:
                return np.zeros(len(x), np.int64)
            km = faiss.Kmeans(x.shape[1], k, niter=20, seed=self.cfg.seed + 1, spherical=True, verbose=False)
            sample = x
            if len(x) > 256 * k:
                rng = np.random.default_rng(self.cfg.seed)
                sample = x[rng.choice(len(x), 256 * k, replace=False)]
            km.train(sample)
            _, assign = km.index.search(x, 1)
            return assign.ravel().astype(np.int64)

        return self.memo("clusters", make)

    def n_clusters(self) -> int:
        return int(self.clusters().max(initial=-1)) + 1

    def user_cluster_share(self) -> sp.csr_matrix:
        """float32 csr [U, K]: share of each user's recency-weighted saves in each cluster (rows sum to 1)."""

        def make() -> sp.csr_matrix:
            w = self.recency_weights()
            k = self.n_clusters()
            onehot = sp.csr_matrix(
                (np.ones(self.arrays.n_goods, np.float32), (np.arange(self.arrays.n_goods), self.clusters())),
                shape=(self.arrays.n_goods, k),
            )
            m = sp.csr_matrix(w @ onehot)
            return _row_normalise(m)

        return self.memo("user_cluster_share", make)

    def user_domain_share(self) -> sp.csr_matrix:
        """float32 csr [U, D]: share of each user's recency-weighted saves (with a domain) in each domain."""

        def make() -> sp.csr_matrix:
            dom = self.arrays.domain
            n_dom = int(dom.max(initial=-1)) + 1
            ok = dom >= 0
            onehot = sp.csr_matrix(
                (np.ones(int(ok.sum()), np.float32), (np.flatnonzero(ok), dom[ok])),
                shape=(self.arrays.n_goods, max(n_dom, 1)),
            )
            return _row_normalise(sp.csr_matrix(self.recency_weights() @ onehot))

        return self.memo("user_domain_share", make)

    def newest_saves(self, users: np.ndarray, m: int) -> np.ndarray:
        """int64 [n, m] each user's m newest saved goods, newest first, -1 padded."""
        st = self.arrays.save_time
        out = np.full((len(users), m), -1, np.int64)
        for i, u in enumerate(np.asarray(users, dtype=np.int64).tolist()):
            lo, hi = st.indptr[u], st.indptr[u + 1]
            if hi == lo:
                continue
            order = np.argsort(-st.data[lo:hi], kind="stable")[:m]
            out[i, : len(order)] = st.indices[lo:hi][order]
        return out


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    s = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
    return sp.csr_matrix(sp.diags(inv.astype(np.float32)) @ m)
