"""The `graphrec` command line. Each command parses options, resolves config, and calls one function."""

from __future__ import annotations

import logging
import os
import sys

import click

from graphrec.app.commands import register
from graphrec.app.commands.context import Context, pass_ctx
from graphrec.core import db
from graphrec.core.config import ConfigError, load_config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help="Override a config key.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, overrides: tuple[str, ...], verbose: bool) -> None:
    """graphrec: For You picks for Goodsend from a user-good-collection-domain graph."""
    from graphrec.core.logs import setup_logging

    setup_logging(logging.DEBUG if verbose else logging.INFO)
    try:
        ctx.obj = Context(load_config(config_path, overrides))
    except ConfigError as e:
        raise click.UsageError(str(e)) from None


@cli.group("db")
def db_group() -> None:
    """Database schema and status."""


@db_group.command("init")
@pass_ctx
def db_init(ctx: Context) -> None:
    """Apply the schema migrations that are not applied yet (idempotent)."""
    url = ctx.database_url()
    with db.connect(url) as conn:
        applied = db.migrate(conn)
    for mig in applied:
        click.echo(f"applied {mig.version:04d}_{mig.name}: {mig.why}")
    click.echo(f"database {db.redact(url)} is at migration {db.migrations()[-1].version:04d}")


@db_group.command("status")
@pass_ctx
def db_status(ctx: Context) -> None:
    """Which migrations are applied and what the database holds."""
    from graphrec.app.status import database_status

    url = ctx.database_url()
    with db.connect(url) as conn:
        click.echo(database_status(conn, url))


# Commands of the stages, each in its own small module under graphrec/commands.
register(cli)


def main() -> None:
    # OpenMP threads that spin while they wait made 2-thread training steps ~60x slower whenever anything else
    # ran on the 2-core box (bench-beauty: 3,094 ms a step against 52 ms passive). It must be set before torch
    # loads; an operator's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
