"""The formats the stages hand each other on disk: graph artifacts, checkpoints and embeddings.

Id spaces: a `*_idx` is a row in the graph (0..n-1 for one node type); a `*_id` is the database key.
`IdMaps` converts between them. Never mix the two: every array below says which one it holds.

Graph artifact (written by `etl`, read by `training`, `evaluation` and the pipeline)::

    <dir>/graph.pt        torch.save of a torch_geometric HeteroData
    <dir>/id_maps.npz     IdMaps
    <dir>/manifest.json   counts per type, as-of time, schema version, source fingerprint, findings

Checkpoint (written by `training`, read by the pipeline)::

    <models>/<version>/weights.pt       model state_dict
    <models>/<version>/checkpoint.json  kind, constructor args, resolved config, graph manifest, val metrics,
                                        weights_sha256 (checked on load: a damaged weights.pt is refused)
    <models>/<version>/id_maps.npz      the id maps of the graph it was trained on
    <models>/CURRENT                    the version in use (replaced atomically)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

GRAPH_FORMAT_VERSION = 1
NODE_TYPES = ("user", "good", "collection", "domain")

# Edge types of the graph. Every forward type has a reverse "rev_<name>" type for message passing.
SAVES = ("user", "saves", "good")
CONTAINS = ("collection", "contains", "good")
OWNS = ("user", "owns", "collection")
IN_DOMAIN = ("good", "in_domain", "domain")
FOLLOWS = ("user", "follows", "user")
FORWARD_EDGE_TYPES = (SAVES, CONTAINS, OWNS, IN_DOMAIN, FOLLOWS)


def reverse(edge_type: tuple[str, str, str]) -> tuple[str, str, str]:
    src, rel, dst = edge_type
    return (dst, f"rev_{rel}", src)


class CorruptArtifact(ValueError):
    """A file on disk does not match the checksum written with it (damaged in place, or truncated)."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class IdMaps:
    """Database ids per node type, indexed by graph index: `user_ids[user_idx] == user_id`.

    Domains have no database id; `domain_names[domain_idx]` is the domain string.
    """

    user_ids: np.ndarray  # int64 [num_users]
    good_ids: np.ndarray  # int64 [num_goods]
    collection_ids: np.ndarray  # int64 [num_collections]
    domain_names: np.ndarray  # str [num_domains]
    _lookup: dict[str, dict[Any, int]] = field(default_factory=dict, repr=False, compare=False)

    def ids(self, node_type: str) -> np.ndarray:
        return {
            "user": self.user_ids,
            "good": self.good_ids,
            "collection": self.collection_ids,
            "domain": self.domain_names,
        }[node_type]

    def index_of(self, node_type: str) -> dict[Any, int]:
        """Database id (or domain name) -> graph index, built once per type."""
        if node_type not in self._lookup:
            ids = self.ids(node_type).tolist()
            self._lookup[node_type] = {k: i for i, k in enumerate(ids)}
        return self._lookup[node_type]

    def to_idx(self, node_type: str, ids: np.ndarray | list) -> np.ndarray:
        """Map database ids to graph indices; -1 where an id is not in the graph."""
        lookup = self.index_of(node_type)
        return np.fromiter((lookup.get(i, -1) for i in np.asarray(ids).tolist()), dtype=np.int64)

    def save(self, path: Path) -> None:
        np.savez(
            path,
            user_ids=self.user_ids,
            good_ids=self.good_ids,
            collection_ids=self.collection_ids,
            domain_names=self.domain_names.astype(str),
        )

    @classmethod
    def load(cls, path: Path) -> IdMaps:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                user_ids=z["user_ids"].astype(np.int64),
                good_ids=z["good_ids"].astype(np.int64),
                collection_ids=z["collection_ids"].astype(np.int64),
                domain_names=z["domain_names"].astype(str),
            )


@contextmanager
def _staged_dir(final: Path) -> Iterator[Path]:
    """Write into a temporary sibling directory and rename it into place only when complete."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_pointer(path: Path, value: str) -> None:
    """Atomically replace a small text file (e.g. models/CURRENT, graphs/latest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(value + "\n")
    os.replace(tmp, path)


def read_pointer(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


# --- graph artifact -------------------------------------------------------------------------------------


def save_graph(directory: Path, data: Any, id_maps: IdMaps, manifest: dict[str, Any]) -> Path:
    """Write a graph artifact directory atomically. `data` is a torch_geometric HeteroData."""
    import torch

    with _staged_dir(Path(directory)) as tmp:
        torch.save(data, tmp / "graph.pt")
        id_maps.save(tmp / "id_maps.npz")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return Path(directory)


def load_graph(directory: Path) -> tuple[Any, IdMaps, dict[str, Any]]:
    """Read a graph artifact: (HeteroData, IdMaps, manifest)."""
    import torch

    directory = Path(directory)
    if not (directory / "manifest.json").exists():
        raise FileNotFoundError(f"{directory} is not a graph artifact (no manifest.json); run `graphrec build-graph`")
    manifest = json.loads((directory / "manifest.json").read_text())
    if manifest.get("format_version") != GRAPH_FORMAT_VERSION:
        raise ValueError(
            f"{directory}: graph format {manifest.get('format_version')} but this graphrec reads "
            f"{GRAPH_FORMAT_VERSION}; rebuild it with `graphrec build-graph`"
        )
    data = torch.load(directory / "graph.pt", weights_only=False)
    return data, IdMaps.load(directory / "id_maps.npz"), manifest


def graphs_dir(artifacts: Path) -> Path:
    return Path(artifacts) / "graphs"


def latest_graph_dir(artifacts: Path) -> Path:
    name = read_pointer(graphs_dir(artifacts) / "LATEST")
    if name is None:
        raise FileNotFoundError(f"no graph under {graphs_dir(artifacts)}; run `graphrec build-graph` first")
    return graphs_dir(artifacts) / name


# --- checkpoints ----------------------------------------------------------------------------------------


def models_dir(artifacts: Path) -> Path:
    return Path(artifacts) / "models"


def save_checkpoint(
    models: Path, version: str, state_dict: dict[str, Any], meta: dict[str, Any], id_maps: IdMaps
) -> Path:
    """Write models/<version>/ atomically; never touches models/CURRENT."""
    import torch

    final = Path(models) / version
    with _staged_dir(final) as tmp:
        torch.save(state_dict, tmp / "weights.pt")
        id_maps.save(tmp / "id_maps.npz")
        meta = {**meta, "weights_sha256": file_sha256(tmp / "weights.pt")}
        (tmp / "checkpoint.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return final


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any], IdMaps]:
    """(state_dict, meta, id_maps) of a checkpoint directory. Raises CorruptArtifact naming weights.pt when it
    does not match the SHA-256 in checkpoint.json (checkpoints written before the checksum load unchecked)."""
    import torch

    path = Path(path)
    if not (path / "checkpoint.json").exists():
        raise FileNotFoundError(f"{path} is not a checkpoint (no checkpoint.json)")
    meta = json.loads((path / "checkpoint.json").read_text())
    weights = path / "weights.pt"
    expected = meta.pop("weights_sha256", None)
    if expected is not None and file_sha256(weights) != expected:
        raise CorruptArtifact(
            f"{weights}: SHA-256 does not match the one in checkpoint.json; the file is damaged. "
            "Restore it, or point models/CURRENT at another checkpoint (`graphrec train --promote`)"
        )
    state = torch.load(weights, weights_only=True)
    return state, meta, IdMaps.load(path / "id_maps.npz")


def current_model(models: Path) -> Path | None:
    version = read_pointer(Path(models) / "CURRENT")
    return Path(models) / version if version else None


def set_current_model(models: Path, version: str) -> None:
    if not (Path(models) / version / "checkpoint.json").exists():
        raise FileNotFoundError(f"no complete checkpoint {version} under {models}")
    write_pointer(Path(models) / "CURRENT", version)


# --- embeddings -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Embeddings:
    """What a model hands to serving and evaluation: vectors keyed by database id.

    Scores are inner products `user_vecs @ good_vecs.T`. Rows of `good_vecs` align with `good_ids`.
    `good_known` marks goods the model had seen in training (False for goods embedded inductively or,
    for a transductive model, goods it cannot score; those rows are zero).
    """

    model_kind: str
    model_version: str
    user_ids: np.ndarray  # int64 [U] database ids
    user_vecs: np.ndarray  # float32 [U, d]
    good_ids: np.ndarray  # int64 [G] database ids
    good_vecs: np.ndarray  # float32 [G, d]
    good_known: np.ndarray  # bool [G]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "model_kind": np.array(self.model_kind),
            "model_version": np.array(self.model_version),
            "user_ids": self.user_ids,
            "user_vecs": self.user_vecs,
            "good_ids": self.good_ids,
            "good_vecs": self.good_vecs,
            "good_known": self.good_known,
        }

    def save(self, path: Path) -> None:
        """Write to an .npz file atomically (serving reads the current run's file while a run writes), with a
        SHA-256 of its arrays inside (`load` checks it). A failed write (a full disk) leaves no partial file
        behind, and a partial file a killed run left is replaced."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        arrays = self._arrays()
        try:
            tmp.unlink(missing_ok=True)  # a stale one holds disk space the new one needs
            np.savez(tmp, **arrays, sha256=np.array(_arrays_sha256(arrays)))  # type: ignore[arg-type]
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, verify: bool = True) -> Embeddings:
        """Read an .npz written by `save`. Raises CorruptArtifact naming the file when it is truncated, not an
        embeddings file, or (with `verify`) its arrays do not match their SHA-256; files written before the
        checksum load unchecked. Without `verify` (0.5 s at 50,000 users and 1M goods, too slow for the
        one-user rescore) zip's CRC-32 of each array still catches a damaged file."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in cls._NAMES}
                expected = str(z["sha256"]) if "sha256" in z.files else None
        except FileNotFoundError:
            raise
        except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError...
            raise CorruptArtifact(f"{path}: not a complete embeddings file ({type(e).__name__}: {e})") from e
        if verify and expected is not None and _arrays_sha256(arrays) != expected:
            raise CorruptArtifact(f"{path}: the arrays do not match their SHA-256; the file is damaged")
        return cls(
            model_kind=str(arrays["model_kind"]),
            model_version=str(arrays["model_version"]),
            user_ids=arrays["user_ids"],
            user_vecs=arrays["user_vecs"],
            good_ids=arrays["good_ids"],
            good_vecs=arrays["good_vecs"],
            good_known=arrays["good_known"],
        )

    _NAMES = ("model_kind", "model_version", "user_ids", "user_vecs", "good_ids", "good_vecs", "good_known")


def _arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """A SHA-256 over named arrays: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        # A uint8 view of numeric arrays hashes them without a copy (embeddings at 10x are ~300 MB).
        h.update(a.reshape(-1).view(np.uint8).data if a.size and a.dtype.kind in "biuf" else a.tobytes())
    return h.hexdigest()


def run_embeddings_path(artifacts: Path, run_id: int) -> Path:
    """Where a recommend run keeps the embeddings it served from (the API's similar/audience read it)."""
    return Path(artifacts) / "runs" / str(run_id) / "embeddings.npz"
