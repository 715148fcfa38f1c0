"""load_graph: the one read -> check -> build that build-graph, the daily job and evaluate share."""

from __future__ import annotations

import numpy as np
import pytest

from etl.build import build_graph
from etl.load import fingerprint, load_graph
from etl.source import read_tables
from etl.tables import SourceTables
from etl.validate import InputError, clean_tables
from etl.write import write_tables
from graphrec.core import db
from graphrec.core.artifacts import SAVES
from graphrec.core.config import GraphConfig
from graphrec.core.stages import Stages
from tests.etl.helpers import SMALL, small_world

CFG = GraphConfig(min_goods=10, embedding_dim=SMALL.dim)


@pytest.fixture
def url(migrated_url: str) -> str:
    tables, truth = small_world()
    with db.connect(migrated_url) as conn:
        write_tables(conn, tables, truth, replace=False)
        conn.execute("INSERT INTO saves (user_id, good_id, saved_at) VALUES (999999, 1, '2025-10-01T00:00:00Z')")
        conn.commit()
    return migrated_url


def test_same_graph_as_its_steps_and_nothing_kept_unasked(url: str) -> None:
    stages = Stages()
    with db.connect(url) as conn:
        g = load_graph(conn, CFG, stages=stages)
        raw = read_tables(conn)
    cleaned, findings = clean_tables(raw, CFG.embedding_dim)
    data, ids, report = build_graph(cleaned, min_goods=CFG.min_goods)
    assert g.findings == findings and [f.kind for f in findings] == ["save_of_missing_user"]
    assert g.report == report and np.array_equal(g.id_maps.good_ids, ids.good_ids)
    assert (g.data[SAVES].edge_index == data[SAVES].edge_index).all()
    assert g.schema_version == max(db.migrations(), key=lambda m: m.version).version
    assert g.tables is None and g.fingerprint is None
    assert list(stages.seconds) == ["read_tables", "build_graph"]
    with db.connect(url) as conn:
        fp = load_graph(conn, CFG, with_fingerprint=True).fingerprint
    assert fp == fingerprint(raw) and len(fp) == 16


def test_as_of_chosen_from_the_checked_tables(url: str) -> None:
    seen: list[SourceTables] = []

    def median_save(tables: SourceTables) -> int:
        seen.append(tables)
        return int(np.median(tables.saves.saved_at))

    with db.connect(url) as conn:
        g = load_graph(conn, CFG, median_save, keep_tables=True)
    (tables,) = seen
    assert g.tables is tables and 999999 not in tables.saves.user_id, "the function sees the checked tables"
    assert g.report.as_of == int(np.median(tables.saves.saved_at))
    assert (g.data[SAVES].time <= g.report.as_of).all()


def test_strict_stops_at_the_first_finding(url: str) -> None:
    with db.connect(url) as conn, pytest.raises(InputError, match="user_id=999999,good_id=1"):
        load_graph(conn, GraphConfig(min_goods=10, embedding_dim=SMALL.dim, strict=True))
