"""Commands of the serving stage: recommend (daily, or one user on demand), rollback, retrain (weekly)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from graphrec.app.commands.context import Context, pass_ctx

# Exit status when another run of the same job holds its lock (EX_TEMPFAIL: try again later).
LOCKED_EXIT = 75


def _locked(e: Exception) -> None:
    click.echo(f"graphrec: {e}", err=True)
    sys.exit(LOCKED_EXIT)


@click.command("recommend")
@click.option("--user", "user_id", type=int, help="Rescore only this user now (from the current run's embeddings).")
@click.option("--dry-run", is_flag=True, help="With --user: print the picks, write nothing.")
@click.option(
    "--embeddings",
    "embeddings_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Serve from this Embeddings .npz instead of embedding today's graph with the CURRENT model.",
)
@pass_ctx
def recommend(ctx: Context, user_id: int | None, dry_run: bool, embeddings_path: Path | None) -> None:
    """Write today's For You picks for every eligible user (the daily job), or rescore one user."""
    from graphrec.app import jobs as pipeline
    from graphrec.core.artifacts import CorruptArtifact
    from graphrec.core.runs import JobLocked

    url = ctx.database_url()
    if user_id is not None:
        try:
            out = pipeline.recommend_user(ctx.config, url, user_id, write=not dry_run)
        except (LookupError, FileNotFoundError) as e:
            raise click.ClickException(str(e)) from None
        if not out.eligible:
            click.echo(
                f"user {user_id} has {out.saved_goods} saved goods; picks start above {ctx.config.graph.min_goods}"
            )
            return
        where = "not written (dry run)" if dry_run else f"written into run {out.run_id}"
        click.echo(f"user {user_id}: {len(out.picks)} picks, {where}")
        for p in out.picks:
            fb = " [fallback]" if p["is_fallback"] else ""
            click.echo(f"  {p['rank']:>2}. good {p['good_id']}  {p['score']:.3f}  {p['reason']}{fb}")
        return
    try:
        result = pipeline.recommend(ctx.config, url, embeddings_path=embeddings_path)
    except JobLocked as e:
        _locked(e)
    except (pipeline.NoModelError, pipeline.PublishRefused, CorruptArtifact) as e:  # recorded and alerted already
        raise click.ClickException(str(e)) from None
    c = result.counts
    click.echo(
        f"run {result.run_id} is current: {c['users_served']} users, {c['picks']} picks "
        f"({c['fallback_picks']} fallbacks), coverage {c['coverage']:.1%}, {result.duration_s:.1f} s, "
        f"model {result.model_version}",
        err=True,  # stdout carries only the JSON log lines a log service ingests
    )


@click.command("rollback")
@click.option("--run", "run_id", type=int, help="Run to serve (default: the one before the current run).")
@pass_ctx
def rollback(ctx: Context, run_id: int | None) -> None:
    """Serve an older recommend run's picks again."""
    from graphrec.app import jobs as pipeline
    from graphrec.core.runs import JobLocked

    try:
        previous, now = pipeline.rollback(ctx.config, ctx.database_url(), run_id)
    except JobLocked as e:
        _locked(e)
    except LookupError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"run {now} is current (was {previous})", err=True)


@click.command("retrain")
@pass_ctx
def retrain(ctx: Context) -> None:
    """Build the graph, train, and promote the new model only if validation says it is not worse (weekly)."""
    from graphrec.app import jobs as pipeline
    from graphrec.core.runs import JobLocked

    try:
        r = pipeline.retrain(ctx.config, ctx.database_url(), progress=sys.stderr.isatty())
    except JobLocked as e:
        _locked(e)
    click.echo(f"model {r.version}: {'promoted to CURRENT' if r.promoted else 'not promoted'} ({r.reason})", err=True)


COMMANDS: list[click.Command] = [recommend, rollback, retrain]
