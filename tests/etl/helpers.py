"""Small demo worlds for the ETL tests."""

from __future__ import annotations

from etl.demo_data import DemoParams, generate
from etl.tables import DemoTruth, SourceTables

SMALL = DemoParams(users=80, goods=900, styles=6, domains=24, dim=16, seed=3, days=120)


def small_world(**changes: int) -> tuple[SourceTables, DemoTruth]:
    params = DemoParams(**{**SMALL.__dict__, **changes})
    return generate(params)
