"""Commands of the ETL stage: demo-data, build-graph, audit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path

import click

from graphrec.app.commands.context import Context, pass_ctx
from graphrec.core import db


def _parse_time(value: str | None) -> int | None:
    """An ISO date or date-time (UTC when no zone is given) as unix seconds."""
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO date or date-time (e.g. 2026-06-01 or 2026-06-01T12:00)"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp())


@click.command("demo-data")
@click.option("--users", type=click.IntRange(min=10), help="Number of users [config demo.users].")
@click.option("--goods", type=click.IntRange(min=10), help="Number of goods [config demo.goods].")
@click.option("--seed", type=int, help="Random seed [config demo.seed].")
@click.option("--end", "end", metavar="DATE", help="Last day of the generated year (default: today, UTC).")
@click.option("--replace", is_flag=True, help="Empty the source tables first.")
@pass_ctx
def demo_data(
    ctx: Context, users: int | None, goods: int | None, seed: int | None, end: str | None, replace: bool
) -> None:
    """Fill the source tables with a synthetic Goodsend whose structure (true interests) is known."""
    from etl.demo_data import DemoParams, generate
    from etl.write import write_tables

    cfg = ctx.config.demo
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    params = DemoParams(
        users=users or cfg.users,
        goods=goods or cfg.goods,
        styles=cfg.styles,
        domains=cfg.domains,
        dim=ctx.config.graph.embedding_dim,
        seed=cfg.seed if seed is None else seed,
        end=_parse_time(end) or int(today.timestamp()),
    )
    url = ctx.database_url()
    with db.connect(url) as conn:
        db.migrate(conn)
        existing = conn.execute("SELECT count(*) AS n FROM users").fetchone()
        if existing and existing["n"] and not replace:
            raise click.ClickException(
                f"the source tables already hold {existing['n']} users; pass --replace to start over"
            )
        t0 = time.perf_counter()
        tables, truth = generate(params)
        t1 = time.perf_counter()
        write_tables(conn, tables, truth, replace=replace)
        t2 = time.perf_counter()
    counts = tables.counts()
    click.echo(
        "demo data: "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + f" (generated in {t1 - t0:.1f}s, loaded in {t2 - t1:.1f}s into {db.redact(url)})"
    )


@click.command("build-graph")
@click.option("--as-of", "as_of", metavar="TIME", help="Build the graph as it stood then (ISO date or date-time, UTC).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Artifact directory (default: artifacts/graphs/<name>).",
)
@click.option("--strict", is_flag=True, default=None, help="Any bad-input finding is fatal [config graph.strict].")
@click.option(
    "--min-goods",
    type=click.IntRange(min=0),
    help="Eligible users have more than this many goods [config graph.min_goods].",
)
@pass_ctx
def build_graph_cmd(
    ctx: Context, as_of: str | None, out: Path | None, strict: bool | None, min_goods: int | None
) -> None:
    """Read the source tables and write a graph artifact (HeteroData, id maps, manifest)."""
    from etl.pipeline import build_graph_artifact
    from etl.validate import InputError

    cfg = ctx.config.graph
    cfg = dataclasses.replace(
        cfg,
        strict=cfg.strict if strict is None else strict,
        min_goods=cfg.min_goods if min_goods is None else min_goods,
    )
    try:
        result = build_graph_artifact(ctx.database_url(), ctx.config.artifacts, cfg, as_of=_parse_time(as_of), out=out)
    except InputError as e:
        raise click.ClickException(f"bad input, no graph written: {e}") from None
    click.echo(result.summary)


@click.command("audit")
@click.option("--as-of", "as_of", metavar="TIME", help="Audit the data as it stood then (default: now).")
@pass_ctx
def audit(ctx: Context, as_of: str | None) -> None:
    """Figures that tell whether collaborative filtering can work on this data at all."""
    from etl.audit import audit_figures, format_audit
    from etl.source import read_tables

    with db.connect(ctx.database_url()) as conn:
        tables = read_tables(conn)
    click.echo(format_audit(audit_figures(tables, min_goods=ctx.config.graph.min_goods, now=_parse_time(as_of))))


COMMANDS: list[click.Command] = [demo_data, build_graph_cmd, audit]
