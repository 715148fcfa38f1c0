"""`graphrec evaluate` end to end: load each data set into an EvalSet, pick the rows, evaluate, report.

Data sets: "demo" (the Goodsend tables in the database, whatever filled them), "gowalla" and "beauty"
(public data under `evaluate.data_root`). All go through the same evaluator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluation import baselines as B
from evaluation.evaluator import EvalResult, Recommender, evaluate
from evaluation.models import gowalla_lightgcn_params, graph_filter, graph_model, graph_models, public_lightgcn
from evaluation.protocol import EvalSet, from_public
from evaluation.report import flat_metrics, write_report
from graphrec.core.config import Config

if TYPE_CHECKING:
    from etl.tables import SourceTables

log = logging.getLogger(__name__)

DATASETS = ("demo", "gowalla", "beauty")


def load_database(url: str, cfg: Config, split_at: str | None = None, test_share: float | None = None) -> EvalSet:
    """The Goodsend tables, read once, checked as `build-graph` checks them, split at T."""
    from etl.load import load_graph
    from etl.source import read_truth
    from evaluation.split import split_tables, split_time
    from graphrec.core import db

    ev = cfg.evaluate

    def T(tables: SourceTables) -> int:
        return split_time(
            tables.saves.saved_at,
            ev.split_at if split_at is None else split_at,
            ev.test_share if test_share is None else test_share,
        )

    with db.connect(url) as conn:
        loaded = load_graph(conn, cfg.graph, T, keep_tables=True)
        truth = read_truth(conn)
    for f in loaded.findings:
        log.info("input: %s", f.describe())
    return split_tables(loaded, truth=truth, name="demo", seed=ev.seed)


WINDOWS = ("test", "validation")


def load_public(name: str, root: Path, seed: int = 0, window: str = "test") -> EvalSet:
    """A public data set under `root` (../shared/data by default) as an EvalSet. window "validation" (sequence
    data only) tests on each user's item before the last instead (evaluation.datasets.beauty.validation_window),
    for choosing settings."""
    root = Path(root)
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}: expected one of {', '.join(WINDOWS)}")
    if window != "test" and name == "gowalla":
        raise ValueError("gowalla has no validation window here: its split is train.txt / test.txt only")
    if name == "gowalla":
        from evaluation.datasets.gowalla import load_gowalla

        g = load_gowalla(root / "gowalla")
        return from_public(
            "gowalla",
            g.train,
            g.test,
            seed=seed,
            description=(
                "Gowalla check-ins, the LightGCN paper's fixed split (train.txt before, test.txt after); "
                "every item is a candidate except the user's train items. No content or domains."
            ),
        )
    if name == "beauty":
        from evaluation.datasets.beauty import load_beauty, sequence_evalset, validation_window

        split = load_beauty(root / "amazon-beauty")
        return sequence_evalset(
            validation_window(split) if window == "validation" else split,
            seed=seed,
            description=(
                "Amazon Beauty sequences (S3-Rec preprocessing), leave-last-out: each user's last item is "
                "the test, the one before it validates models; brands stand for shop domains and category "
                "attributes for CLIP vectors."
            ),
        )
    if Path(name).exists():  # data that is not bundled (evaluation/datasets/files.py)
        from evaluation.datasets.files import load_dataset_path

        return load_dataset_path(Path(name), seed, window)
    raise ValueError(f"unknown data set {name!r}: not one of {', '.join(DATASETS)} and no file or directory")


def recommenders(es: EvalSet, names: Sequence[str], cfg: Config, progress: bool = False) -> list[Recommender]:
    """The rows for `es`: `names` (empty: every one that applies), in table order."""
    from evaluation.peers import peers
    from evaluation.sequence_rows import sequence_rows
    from training.models.lightgcn import LightGCNParams

    available: dict[str, Recommender] = {}
    for b in B.BASELINES.values():
        if not b.needs_content or es.train.content is not None:
            available[b.name] = Recommender(b.name, b.what, b.fit)
    if es.truth is not None:
        available["oracle"] = Recommender(
            "oracle",
            "planted truth: the user's true styles, most saved goods first (knows tastes, not goods: no ceiling)",
            B.oracle(es.truth),
            "reference",
        )
    available["gf_cf"] = graph_filter()
    for row in sequence_rows(es, progress):  # SASRec on public sequences; EASE where a dense good x good fits
        available[row.name] = row
    for peer in peers():  # implicit's ALS and BPR: what an engineer would otherwise install
        available[peer.name] = peer
    if es.graph is not None:
        for kind in graph_models():
            available[kind] = graph_model(kind, es.graph, cfg.train, progress)
    elif es.name == "gowalla":
        available["lightgcn"] = public_lightgcn(gowalla_lightgcn_params(), early_stop=False, progress=progress)
    else:
        t = cfg.train
        params = LightGCNParams(
            embedding_dim=t.embedding_dim,
            num_layers=3,
            max_epochs=t.max_epochs,
            patience=t.patience,
            time_budget_s=t.time_budget_s,
            seed=t.seed,
        )
        available["lightgcn"] = public_lightgcn(params, progress=progress)
    if not names:
        return list(available.values())
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"model(s) {', '.join(unknown)} not available on {es.name}; available: {', '.join(available)}")
    return [available[n] for n in names]


@dataclass
class EvaluationRun:
    out: Path
    results: list[EvalResult]
    metrics: dict[str, float | None]
    counts: dict[str, Any]
    seconds: float


def run_evaluation(
    cfg: Config,
    datasets: Sequence[str],
    *,
    url: str | None = None,
    models: Sequence[str] = (),
    out: Path | None = None,
    split_at: str | None = None,
    test_share: float | None = None,
    progress: bool = False,
    extra_rows: Callable[[EvalSet], Sequence[Recommender]] | None = None,
    window: str = "test",
) -> EvaluationRun:
    """Evaluate every requested row on every data set and write reports/<run>/ (or `out`).

    extra_rows: rows the app layer adds per data set (the For You pipeline and its sources, which live in
    serving/ and so cannot be imported here); each fits on the EvalSet's train data and its as-of-T graph.
    window: "validation" tests public sequence data on each user's item before the last (see load_public);
    the demo's validation window is benchmarks/foryou_validation.py."""
    started = time.perf_counter()
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(out) if out is not None else cfg.artifacts / "reports" / run
    models = tuple(models) or cfg.evaluate.models
    results = []
    for name in datasets:
        if name == "demo":
            if window != "test":
                raise ValueError("the demo's validation window is benchmarks/foryou_validation.py, not --window")
            if url is None:
                raise ValueError("the demo data set is read from the database; no URL given")
            es = load_database(url, cfg, split_at, test_share)
        else:
            es = load_public(name, Path(cfg.evaluate.data_root), cfg.evaluate.seed, window)
        log.info("data set %s: %s", name, es.counts)
        # A row that does not apply here (oracle without planted truth, CLIP rows without content) is skipped.
        rows = recommenders(es, (), cfg, progress)
        if extra_rows is not None:
            rows += list(extra_rows(es))
        if models:
            rows = [r for r in rows if r.name in models]
            if not rows:
                raise ValueError(f"none of the models {', '.join(models)} applies to {name}")
        results.append(evaluate(es, rows, cfg.evaluate.ks, batch_size=cfg.evaluate.batch_size, progress=progress))
    meta = {
        "run": run,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ks": list(cfg.evaluate.ks),
        "config": {"evaluate": cfg.to_dict()["evaluate"], "train": cfg.to_dict()["train"]},
    }
    write_report(results, out, meta)
    counts = {r.eval_set.name: r.eval_set.counts for r in results}
    return EvaluationRun(out, results, flat_metrics(results), counts, time.perf_counter() - started)
