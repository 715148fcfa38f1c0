"""`graphrec build-graph`: the graph of the source tables (etl.load) written as an artifact, with its summary."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from etl.build import BuildReport
from etl.load import load_graph
from etl.validate import Finding
from graphrec.core import db
from graphrec.core.artifacts import GRAPH_FORMAT_VERSION, graphs_dir, save_graph, write_pointer
from graphrec.core.config import GraphConfig

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    path: Path
    manifest: dict[str, Any]
    summary: str


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
    cfg: GraphConfig,
    *,
    as_of: int | None = None,
    out: Path | None = None,
) -> BuildResult:
    """Load the graph as of `as_of` (default: the newest row) and write it under artifacts/graphs/<name>
    (or `out`); the latest graph built without `as_of` or `out` becomes artifacts/graphs/LATEST."""
    with db.connect(url) as conn:
        g = load_graph(conn, cfg, as_of, with_fingerprint=True)
    data, report = g.data, g.report
    fp = g.fingerprint or ""
    stamp = dt.datetime.fromtimestamp(report.as_of, dt.UTC).strftime("%Y%m%dT%H%M%S")
    name = f"graph-{stamp}-{fp[:8]}"
    path = Path(out) if out else graphs_dir(artifacts) / name
    manifest = {
        "format_version": GRAPH_FORMAT_VERSION,
        "schema_version": g.schema_version,
        "as_of": report.as_of,
        "as_of_iso": iso(report.as_of),
        "as_of_requested": as_of is not None,
        "built_at": iso(int(dt.datetime.now(dt.UTC).timestamp())),
        "source_fingerprint": fp,
        "counts": report.counts,
        "eligible_users": report.eligible_users,
        "min_goods": cfg.min_goods,
        "embedding_dim": int(data["good"].x.shape[1]),
        "dropped": report.dropped,
        "findings": [dataclasses.asdict(f) for f in g.findings],
    }
    save_graph(path, data, g.id_maps, manifest)
    if out is None and as_of is None:
        write_pointer(graphs_dir(artifacts) / "LATEST", name)
    summary = format_summary(path, report, g.findings, data)
    log.info("built graph", extra={"path": str(path), "counts": report.counts, "findings": len(g.findings)})
    return BuildResult(path=path, manifest=manifest, summary=summary)
