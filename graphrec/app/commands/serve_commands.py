"""Commands of the serving API: serve."""

from __future__ import annotations

import json
import logging
import os

import click

from graphrec.app.commands.context import Context, pass_ctx
from graphrec.core import db
from graphrec.core.logs import uvicorn_log_config


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on (default: serve.host, loopback).")
@click.option("--port", type=int, default=None, help="Port (default: serve.port).")
@click.option("--workers", type=int, default=None, help="uvicorn worker processes (default: serve.workers).")
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None, workers: int | None) -> None:
    """The For You API (/v1/...) and the vibe-check page (/vibe, token from $GRAPHREC_SERVE_TOKEN)."""
    import uvicorn

    # faiss announces at INFO which CPU build it loads: noise in the server's log.
    logging.getLogger("faiss").setLevel(logging.WARNING)
    from serving.web.main import APP_ENV, APP_FACTORY, TOKEN_ENV

    cfg = ctx.config.serve
    url = ctx.database_url()
    # Workers are separate processes that import the app factory: hand them the resolved settings.
    os.environ[APP_ENV] = json.dumps(
        {
            "database_url": url,
            "artifacts": str(ctx.config.artifacts.absolute()),
            "pool_min": cfg.pool_min,
            "pool_max": cfg.pool_max,
            "pool_timeout_s": cfg.pool_timeout_s,
            "min_goods": ctx.config.graph.min_goods,
        }
    )
    host, port, workers = host or cfg.host, port or cfg.port, workers or cfg.workers
    if not os.environ.get(TOKEN_ENV):
        click.echo(f"{TOKEN_ENV} is not set: the API answers, the vibe-check page stays disabled", err=True)
    click.echo(f"serving {db.redact(url)} on http://{host}:{port} with {workers} worker(s); page at /vibe")
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
        log_config=uvicorn_log_config("warning"),  # JSON lines from every worker, like the rest of graphrec
    )


COMMANDS: list[click.Command] = [serve]
