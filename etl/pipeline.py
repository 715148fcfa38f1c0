"""`graphrec build-graph`: read the source tables, check them, build the graph, write the artifact."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from etl.build import BuildReport, build_graph
from etl.source import read_tables
from etl.tables import SourceTables
from etl.validate import Finding, clean_tables
from graphrec.core import db
from graphrec.core.artifacts import GRAPH_FORMAT_VERSION, graphs_dir, save_graph, write_pointer

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    path: Path
    manifest: dict[str, Any]
    summary: str


def fingerprint(tables: SourceTables) -> str:
    """A hash of the source rows that matter to the graph: equal fingerprints, equal graphs."""
    h = hashlib.sha256()
    for arr in (
        tables.users.id,
        tables.users.created_at,
        tables.goods.id,
        tables.goods.created_at,
        tables.goods.deleted_at,
        tables.goods.embedding,
        tables.collections.id,
        tables.collections.owner_id,
        tables.collections.created_at,
        tables.collection_goods.collection_id,
        tables.collection_goods.good_id,
        tables.collection_goods.added_at,
        tables.saves.user_id,
        tables.saves.good_id,
        tables.saves.saved_at,
        tables.follows.follower_id,
        tables.follows.followee_id,
        tables.follows.created_at,
    ):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update("\x1f".join(str(d) for d in tables.goods.domain.tolist()).encode())
    return h.hexdigest()[:16]


def iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def format_summary(path: Path, report: BuildReport, findings: list[Finding], data: Any) -> str:
    c, fig = report.counts, report.figures()
    saves_user = np.bincount(data["user", "saves", "good"].edge_index[0].numpy(), minlength=c["user"])
    saves_good = np.bincount(data["user", "saves", "good"].edge_index[1].numpy(), minlength=c["good"])
    lines = [
        f"graph as of {iso(report.as_of)} -> {path}",
        f"  nodes: {c['user']} users, {c['good']} goods, {c['collection']} collections, {c['domain']} domains",
        f"  edges: {c['saves']} saves, {c['contains']} collection memberships, {c['owns']} collection owners, "
        f"{c['in_domain']} good-domain, {c['follows']} follows",
        f"  density: {fig['density']:.2e}; saves per user: mean {fig['saves_per_user']:.1f}, "
        f"median {np.median(saves_user):.0f}; saves per good: mean {fig['saves_per_good']:.2f}, "
        f"share saved more than once {(saves_good > 1).mean():.1%}",
        f"  eligible users (more than {report.min_goods} goods): {report.eligible_users} "
        f"of {c['user']} ({report.eligible_users / max(c['user'], 1):.1%})",
    ]
    for key, n in report.dropped.items():
        if n:
            lines.append(f"  left out: {n} {key.replace('_', ' ')}")
    if findings:
        lines.append(f"  bad input ({sum(f.count for f in findings)} rows):")
        lines += [f"    {f.describe()}" for f in findings]
    else:
        lines.append("  bad input: none found")
    return "\n".join(lines)


def build_graph_artifact(
    url: str,
    artifacts: Path,
    *,
    as_of: int | None = None,
    out: Path | None = None,
    strict: bool = False,
    min_goods: int = 10,
    embedding_dim: int = 512,
) -> BuildResult:
    with db.connect(url) as conn:
        tables = read_tables(conn)
        schema_version = max(db.applied_versions(conn), default=0)
    cleaned, findings = clean_tables(tables, embedding_dim, strict=strict)
    data, id_maps, report = build_graph(cleaned, as_of=as_of, min_goods=min_goods)
    fp = fingerprint(tables)
    stamp = dt.datetime.fromtimestamp(report.as_of, dt.UTC).strftime("%Y%m%dT%H%M%S")
    name = f"graph-{stamp}-{fp[:8]}"
    path = Path(out) if out else graphs_dir(artifacts) / name
    manifest = {
        "format_version": GRAPH_FORMAT_VERSION,
        "schema_version": schema_version,
        "as_of": report.as_of,
        "as_of_iso": iso(report.as_of),
        "as_of_requested": as_of is not None,
        "built_at": iso(int(dt.datetime.now(dt.UTC).timestamp())),
        "source_fingerprint": fp,
        "counts": report.counts,
        "eligible_users": report.eligible_users,
        "min_goods": min_goods,
        "embedding_dim": int(data["good"].x.shape[1]),
        "dropped": report.dropped,
        "findings": [f.__dict__ for f in findings],
    }
    save_graph(path, data, id_maps, manifest)
    if out is None and as_of is None:
        write_pointer(graphs_dir(artifacts) / "LATEST", name)
    summary = format_summary(path, report, findings, data)
    log.info("built graph", extra={"path": str(path), "counts": report.counts, "findings": len(findings)})
    return BuildResult(path=path, manifest=manifest, summary=summary)
