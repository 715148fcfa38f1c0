"""PinSage-lite's settings on the demo's validation window (issue 10, item 4), beside GF-CF in the same run.

Reads a database that already holds the demo (--url, made by `graphrec demo-data`), or without --url makes the
demo (5,000 users, 100,000 goods, seed 0) in a fresh database of its own, dropped afterwards, so `make bench`
runs it too. With --window validation (the default) it copies that database, deletes every row after the test
split T in the copy (dropped at the end)
(benchmarks/foryou_validation.truncate_at_test_split) and tests on the newest saves before T, as many as the
test window holds; --window test evaluates the original database's test window, for the one test figure of the
chosen setting. Each setting is a set of train.* overrides (JSON) on the configuration and becomes one row,
fitted as evaluate's pinsage row is (evaluation.models.graph_model: selection run, then refit before the cut).

    python benchmarks/pinsage_validation.py [--url URL] ['{}' '{"spectral_dim": 64}' ...]

Without settings it runs the sweep the README reports (DEFAULT_SETTINGS), about 40 minutes here.

Ends with `key: value` lines: recall@20 and ndcg@20 per row, the users evaluated, and each PinSage row's
paired recall@20 difference (95% bootstrap interval over the same users) with the first row and with GF-CF,
so a setting's gain can be told from noise.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fresh_database, graphrec, report, run_measured  # noqa: E402
from foryou_validation import truncate_at_test_split  # noqa: E402

from evaluation.bootstrap import paired_difference  # noqa: E402
from evaluation.evaluator import evaluate  # noqa: E402
from evaluation.models import graph_filter, graph_model  # noqa: E402
from evaluation.run import load_database  # noqa: E402
from graphrec.core.config import load_config  # noqa: E402

K = 20
# The demo made without --url (BENCH_PSV_USERS / BENCH_PSV_GOODS scale it, for a quick check).
DEMO_USERS = os.environ.get("BENCH_PSV_USERS", "5000")
DEMO_GOODS = os.environ.get("BENCH_PSV_GOODS", "100000")
# The rows of the sweep in the README (the configuration, then the options measured against it).
DEFAULT_SETTINGS = (
    "{}",
    '{"spectral_dim": 64}',
    '{"spectral_dim": 128, "embedding_dim": 128}',
    '{"spectral_dim": 64, "id_min_saves": 2}',
)


def copy_database(url: str, name: str) -> str:
    """A copy of `url`'s database named `name` (replacing one of that name) on the same server."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    source = str(info["dbname"])
    copy = psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
    drop_database(copy)
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(source)))
    return copy


def drop_database(url: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(url)
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(info["dbname"]))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="database holding the demo (default: the demo made in a fresh database)")
    ap.add_argument("--window", choices=("validation", "test"), default="validation")
    ap.add_argument("settings", nargs="*", help="JSON objects of train.* overrides, one row each (default: the sweep)")
    args = ap.parse_args()
    cfg = load_config()
    overrides = [json.loads(s) for s in args.settings or DEFAULT_SETTINGS]
    if cfg.train.threads > 0:  # as `graphrec evaluate` sets them
        import torch

        torch.set_num_threads(cfg.train.threads)
    with contextlib.ExitStack() as cleanup:
        demo = args.url or cleanup.enter_context(fresh_database())
        if args.url is None:
            run_measured(graphrec("db", "init"), {"GRAPHREC_DATABASE_URL": demo})
            run_measured(
                graphrec("demo-data", "--users", DEMO_USERS, "--goods", DEMO_GOODS, "--seed", "0"),
                {"GRAPHREC_DATABASE_URL": demo},
            )
        if args.window == "validation":
            url = copy_database(demo, f"{psycopg.conninfo.conninfo_to_dict(demo)['dbname']}_val")
            cleanup.callback(drop_database, url)
            share = truncate_at_test_split(url, cfg.evaluate.test_share)
            es = load_database(url, cfg, test_share=share)
        else:
            es = load_database(demo, cfg)
    rows = [graph_filter()]
    for i, o in enumerate(overrides):
        row = graph_model("pinsage", es.graph, dataclasses.replace(cfg.train, **o))
        rows.append(dataclasses.replace(row, name=f"pinsage_{i}"))
    t0 = time.perf_counter()
    result = evaluate(es, rows, cfg.evaluate.ks, batch_size=cfg.evaluate.batch_size)
    figures: dict[str, float | int | str] = {"window": args.window, "users": len(es.users)}
    for row in result.rows:
        label = row.name if row.name == "gf_cf" else f"{row.name} {json.dumps(overrides[int(row.name[8:])])}"
        if row.error:
            figures[f"{label} error"] = row.error
            continue
        figures[f"{label} recall@{K}"] = f"{row.metrics[f'recall@{K}']:.4f}"
        figures[f"{label} ndcg@{K}"] = f"{row.metrics[f'ndcg@{K}']:.4f}"
        figures[f"{label} fit_s"] = row.fit_s
        print(label, row.details, file=sys.stderr)
    ok = {row.name: row.per_user[f"recall@{K}"] for row in result.rows if not row.error}
    for name, values in ok.items():
        for other in ("pinsage_0", "gf_cf"):
            if name.startswith("pinsage_") and name != other and other in ok:
                d = paired_difference(values, ok[other])
                figures[f"{name} - {other} recall@{K}"] = f"{d.point:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]"
    figures["eval_s"] = time.perf_counter() - t0
    report(figures)


if __name__ == "__main__":
    main()
