"""Commands of the evaluation stage: evaluate."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from graphrec.app.commands.context import Context, pass_ctx


@click.command("evaluate")
@click.option(
    "--dataset",
    "datasets",
    metavar="NAME|PATH",
    multiple=True,
    help=(
        "Data set(s) to evaluate on, repeat for several: demo (the database's tables, the default), gowalla, "
        "beauty, or a path: a directory with train.txt and test.txt (LightGCN format) or a sequence file "
        "(S3-Rec format, <stem>_item2attributes.json beside it when present)."
    ),
)
@click.option("--split-at", metavar="DATE", help="Split time T, ISO date or date-time UTC [evaluate.split_at].")
@click.option(
    "--test-share",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Share of newest saves held out when no --split-at is given [evaluate.test_share].",
)
@click.option("--models", help="Comma-separated rows, e.g. random,svd,pinsage (default: all that apply).")
@click.option(
    "--window",
    type=click.Choice(["test", "validation"]),
    default="test",
    show_default=True,
    help="validation: test sequence data (beauty, an S3-Rec file) on each user's item before the last, for "
    "choosing settings.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Report directory (default: <artifacts>/reports/<run>).",
)
@pass_ctx
def evaluate(
    ctx: Context,
    datasets: tuple[str, ...],
    split_at: str | None,
    test_share: float | None,
    models: str | None,
    window: str,
    out: Path | None,
) -> None:
    """Time-split evaluation of the baselines and trained models; writes a report and records the run."""
    from evaluation.run import run_evaluation
    from graphrec.app.foryou import evaluation_rows
    from graphrec.core import db
    from graphrec.core.runs import record_run

    cfg = ctx.config
    if cfg.train.threads > 0:
        import torch

        torch.set_num_threads(cfg.train.threads)
    started = time.time()
    url = ctx.database_url()
    names = tuple(m.strip() for m in models.split(",") if m.strip()) if models else ()
    try:
        run = run_evaluation(
            cfg,
            datasets or ("demo",),
            url=url,
            models=names,
            out=out,
            split_at=split_at,
            test_share=test_share,
            progress=sys.stderr.isatty(),
            # The For You pipeline and each of its sources (serving/foryou), on the as-of-T graph.
            extra_rows=evaluation_rows(cfg, progress=sys.stderr.isatty()),
            window=window,
        )
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    with db.connect(url) as conn:
        run_id = record_run(
            conn,
            "evaluate",
            None,
            started,
            "succeeded",
            run.counts,
            {**run.metrics, "report": str(run.out)},
        )
        conn.commit()
    for result in run.results:
        k = max(result.ks)
        click.echo(f"{result.eval_set.name}: {len(result.eval_set.users)} users evaluated")
        for row in sorted(result.rows, key=lambda r: -r.metrics.get(f"recall@{k}", -1.0)):
            if row.error:
                click.echo(f"  {row.name:15s} failed: {row.error}")
            else:
                click.echo(
                    f"  {row.name:15s} recall@{k} {row.metrics[f'recall@{k}']:.4f}  "
                    f"ndcg@{k} {row.metrics[f'ndcg@{k}']:.4f}  fit {row.fit_s:.1f}s  score {row.score_s:.1f}s"
                )
    click.echo(f"report: {run.out / 'report.md'} (run {run_id} in graphrec_runs, {run.seconds:.0f} s)")


COMMANDS: list[click.Command] = [evaluate]
