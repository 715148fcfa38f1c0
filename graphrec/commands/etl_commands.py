"""Commands of the ETL stage: demo-data, build-graph, audit."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
