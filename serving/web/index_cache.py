"""The current run's embeddings as FAISS indexes, loaded once per run and swapped when the current run changes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from graphrec.core.artifacts import CorruptArtifact, Embeddings, run_embeddings_path
from serving.web.errors import Unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunIndex:
    """FAISS inner-product indexes over one run's good and user vectors, keyed by database id."""

    run_id: int
    embeddings: Embeddings
    good_row: dict[int, int]  # good_id -> row of embeddings.good_vecs
    goods: faiss.IndexFlatIP  # rows of goods the model knows (good_known), in `good_rows` order
    good_rows: np.ndarray  # int64: index position -> row of embeddings.good_vecs
    users: faiss.IndexFlatIP  # all rows of embeddings.user_vecs

    @classmethod
    def load(cls, artifacts: Path, run_id: int) -> RunIndex:
        """Index runs/<run_id>/embeddings.npz under `artifacts`. Raises Unavailable (a JSON 503 that names no
        server path; the log has it) when the file is missing, truncated or damaged."""
        path = run_embeddings_path(artifacts, run_id)
        if not path.exists():
            log.error("run %s has no embeddings file at %s", run_id, path)
            raise Unavailable(f"the embeddings of run {run_id} are missing on the server")
        try:
            emb = Embeddings.load(path)
        except CorruptArtifact as e:
            log.error("cannot read the embeddings of run %s: %s", run_id, e)
            raise Unavailable(f"the embeddings of run {run_id} cannot be read on the server") from e
        known = np.flatnonzero(emb.good_known).astype(np.int64)
        goods = faiss.IndexFlatIP(emb.good_vecs.shape[1])
        goods.add(np.ascontiguousarray(emb.good_vecs[known], dtype=np.float32))
        users = faiss.IndexFlatIP(emb.user_vecs.shape[1])
        users.add(np.ascontiguousarray(emb.user_vecs, dtype=np.float32))
        good_row = {int(g): i for i, g in enumerate(emb.good_ids.tolist())}
        log.info(
            "indexed embeddings of run %s: %d goods (%d known), %d users",
            run_id,
            len(good_row),
            len(known),
            len(emb.user_ids),
        )
        return cls(run_id, emb, good_row, goods, known, users)

    def good_vector(self, good_id: int) -> np.ndarray | None:
        """The good's vector [1, d], or None when the run has no (known) vector for it."""
        row = self.good_row.get(good_id)
        if row is None or not self.embeddings.good_known[row]:
            return None
        return self.embeddings.good_vecs[row : row + 1].astype(np.float32)

    def similar(self, good_id: int, k: int) -> list[tuple[int, float]]:
        """(good_id, inner product) of up to k goods nearest to `good_id`, itself excluded, best first."""
        vec = self.good_vector(good_id)
        if vec is None:
            return []
        scores, pos = self.goods.search(vec, min(k + 1, self.goods.ntotal))
        ids = self.embeddings.good_ids[self.good_rows[pos[0][pos[0] >= 0]]]
        out = [(int(g), float(s)) for g, s in zip(ids.tolist(), scores[0].tolist(), strict=False) if g != good_id]
        return out[:k]

    def audience(self, good_id: int, k: int, exclude: set[int]) -> list[tuple[int, float]]:
        """(user_id, inner product) of up to k users scoring the good highest, users in `exclude` left out."""
        vec = self.good_vector(good_id)
        if vec is None:
            return []
        scores, pos = self.users.search(vec, min(k + len(exclude), self.users.ntotal))
        ids = self.embeddings.user_ids[pos[0][pos[0] >= 0]]
        out = [(int(u), float(s)) for u, s in zip(ids.tolist(), scores[0].tolist(), strict=False) if u not in exclude]
        return out[:k]


class RunIndexCache:
    """The index of the current run, rebuilt (once, off the event loop) when the current run changes."""

    def __init__(self, artifacts: Path) -> None:
        self.artifacts = Path(artifacts)
        self._index: RunIndex | None = None
        self._lock = asyncio.Lock()

    async def get(self, run_id: int) -> RunIndex:
        index = self._index
        if index is not None and index.run_id == run_id:
            return index
        async with self._lock:
            if self._index is None or self._index.run_id != run_id:
                self._index = await asyncio.to_thread(RunIndex.load, self.artifacts, run_id)
            return self._index
