"""`load_graph`: the source tables read, checked and built into the graph as of a time, in one call, the
start of build-graph, the daily job and evaluate alike."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from torch_geometric.data import HeteroData

from etl.build import BuildReport, build_graph
from etl.source import read_tables
from etl.tables import SourceTables
from etl.validate import Finding, clean_tables
from graphrec.core import db
from graphrec.core.artifacts import IdMaps
from graphrec.core.config import GraphConfig
from graphrec.core.stages import Stages

log = logging.getLogger(__name__)

# When the graph stands: unix seconds, None for the newest row, or a function of the checked tables that
# picks the time (evaluate's split time is the time a share of the saves are newer than).
AsOf = int | None | Callable[[SourceTables], int]


@dataclass(frozen=True)
class LoadedGraph:
    data: HeteroData  # the graph (node and edge types: graphrec.core.artifacts), in graph index spaces
    id_maps: IdMaps  # graph index <-> database id
    report: BuildReport  # counts, the as-of time used, rows left out by it
    findings: list[Finding]  # bad input found (and skipped or kept) while checking
    schema_version: int  # newest migration applied to the database read
    tables: SourceTables | None = None  # the checked tables, with `keep_tables` (evaluate reads the test saves)
    fingerprint: str | None = None  # of the rows as read, with `fingerprint` (the graph artifact's manifest)


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


def load_graph(
    conn: db.Connection,
    cfg: GraphConfig,
    as_of: AsOf = None,
    *,
    keep_tables: bool = False,
    with_fingerprint: bool = False,
    stages: Stages | None = None,
) -> LoadedGraph:
    """Read every source table, check it (etl.validate: InputError on fatal input, or on any finding with
    cfg.strict), and build the graph as of `as_of` with cfg.min_goods; each table is read once.

    keep_tables: also return the checked tables (off by default, so that a job embedding the graph does
    not hold a second copy of every embedding). with_fingerprint: hash the rows as read. stages: time the
    read and the build as the stages "read_tables" and "build_graph".
    """

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        if stages is None:
            yield
        else:
            with stages.stage(name):
                yield

    with stage("read_tables"):
        tables = read_tables(conn)
        schema_version = max(db.applied_versions(conn), default=0)
    with stage("build_graph"):
        fp = fingerprint(tables) if with_fingerprint else None
        cleaned, findings = clean_tables(tables, cfg.embedding_dim, strict=cfg.strict)
        del tables
        T = as_of(cleaned) if callable(as_of) else as_of
        data, id_maps, report = build_graph(cleaned, as_of=T, min_goods=cfg.min_goods)
        for f in findings:  # each kind of bad input with its count and an example row, not only how many
            log.warning(
                "bad input: %s",
                f.describe(),
                extra={
                    "finding": f.kind,
                    "table": f.table,
                    "column": f.column,
                    "count": f.count,
                    "action": f.action,
                    "example": f.examples[0] if f.examples else None,
                },
            )
        log.info("graph built", extra={"counts": report.counts, "findings": len(findings)})
    return LoadedGraph(
        data=data,
        id_maps=id_maps,
        report=report,
        findings=findings,
        schema_version=schema_version,
        tables=cleaned if keep_tables else None,
        fingerprint=fp,
    )
