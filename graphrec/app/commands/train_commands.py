"""Commands of the training stage: train."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from graphrec.app.commands.context import Context, pass_ctx


@click.command("train")
@click.option(
    "--graph",
    "graph_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Graph artifact directory (default: the LATEST graph under the artifacts dir).",
)
@click.option(
    "--model",
    default=None,
    help="Model kind, a key of training.models.MODELS (default: train.model); an unknown one lists them.",
)
@click.option(
    "--promote/--no-promote",
    default=None,
    help="Make the new model CURRENT once it is complete (default: only when there is no CURRENT yet).",
)
@pass_ctx
def train(ctx: Context, graph_dir: Path | None, model: str | None, promote: bool | None) -> None:
    """Train a model on a graph artifact and save a versioned checkpoint under models/."""
    from graphrec.app.foryou import train_for_you_ranker
    from graphrec.core.artifacts import current_model, latest_graph_dir, models_dir, set_current_model
    from training.loop import NonFiniteError
    from training.models import get_model
    from training.train import train_graph

    cfg = ctx.config.train if model is None else dataclasses.replace(ctx.config.train, model=model)
    try:
        get_model(cfg.model)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--model" if model is not None else "train.model") from None
    if cfg.threads > 0:
        import torch

        torch.set_num_threads(cfg.threads)
    try:
        graph = graph_dir if graph_dir is not None else latest_graph_dir(ctx.config.artifacts)
        models = models_dir(ctx.config.artifacts)
        if promote is None:
            promote = current_model(models) is None
        # CURRENT moves only once the For You ranker is saved beside the checkpoint too.
        run = train_graph(graph, models, cfg, promote=False, progress=sys.stderr.isatty())
        ranker = train_for_you_ranker(ctx.config, graph, run)
        if promote:
            set_current_model(models, run.trained.version)
            run = dataclasses.replace(run, promoted=True)
    except (FileNotFoundError, ValueError, NonFiniteError) as e:
        raise click.ClickException(str(e)) from None
    meta = run.trained.meta
    click.echo(f"model {run.trained.kind} version {run.trained.version} trained on {graph}")
    for key, value in sorted(meta.val.items()):
        click.echo(f"  validation {key}: {value:.4f}" if isinstance(value, float) else f"  validation {key}: {value}")
    click.echo(f"  train time: {meta.train_s:.1f} s")
    click.echo(f"  checkpoint: {run.checkpoint}")
    if ranker is not None:
        m = ranker.meta
        click.echo(
            f"  for_you ranker: {m['users']} users, {m['rows']} candidates, {m['rounds']} rounds, "
            f"{m['train_s']:.1f} s (ranker.txt beside the checkpoint)"
        )
        if m.get("sequence"):
            click.echo(f"  for_you sequence model: {m['sequence']}, {m['sequence_train_s']:.1f} s (in sequence/)")
    click.echo("  promoted to CURRENT" if run.promoted else "  not promoted (CURRENT unchanged)")


COMMANDS: list[click.Command] = [train]
