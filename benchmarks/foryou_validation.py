"""For You's final-list settings on the demo's validation window (issue 10): how the calibration, the interest
pool and the interest places trade recall@20 for planted-interest coverage@20.

The demo (5,000 users / 100,000 goods, seed 0) is written to a fresh database; every row newer than the test
split T (`evaluate.test_share` of the newest saves, as `graphrec evaluate` splits) is deleted, so the test
window is never read; the newest saves before T, as many as the test window holds, are the validation window.
The graph filter and the ranker are fitted once on the graph before that window, then each setting builds
the lists with the same code as `graphrec recommend` and `evaluate`'s for_you row. The configuration's
defaults were chosen from this table: the highest recall@20 whose coverage is at least 0.9.

BENCH_FYV_USERS / BENCH_FYV_GOODS scale the demo. Ends with `key: value` lines, one pair per setting.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fresh_database, graphrec, report, run_measured  # noqa: E402

from etl.arrays import graph_arrays  # noqa: E402
from evaluation.evaluator import INTEREST_MIN_WEIGHT, InterestTruth, measure  # noqa: E402
from evaluation.run import load_database  # noqa: E402
from evaluation.split import split_time  # noqa: E402
from graphrec.app.foryou import _ranked, fit_base, train_ranker  # noqa: E402
from graphrec.core.config import load_config  # noqa: E402
from serving.foryou.pipeline import for_you  # noqa: E402

K = 20
# (label, ForYouConfig overrides); "config" is the configuration as it stands.
SETTINGS: list[tuple[str, dict[str, float | int]]] = [
    ("config", {}),
    ("score_order", {"calibration": 0.0, "interest_pool": 0, "interest_min_places": 0}),
    ("calib_0.35", {"calibration": 0.35, "interest_pool": 0, "interest_min_places": 0}),
    ("calib_0.6", {"calibration": 0.6, "interest_pool": 0, "interest_min_places": 0}),
    ("places1", {"calibration": 0.35, "interest_pool": 0, "interest_min_places": 1}),
    ("places1_pool20", {"calibration": 0.35, "interest_pool": 20, "interest_min_places": 1}),
    ("places1_pool20_calib0.2", {"calibration": 0.2, "interest_pool": 20, "interest_min_places": 1}),
    ("places2_pool20", {"calibration": 0.35, "interest_pool": 20, "interest_min_places": 2}),
    ("quota0.5_pool20", {"calibration": 0.35, "interest_pool": 20, "interest_min_places": 0, "interest_quota": 0.5}),
]

# Every source table's time column: rows newer than T are deleted (goods deleted after T are live at T).
AFTER_T = [
    ("saves", "saved_at"),
    ("collection_goods", "added_at"),
    ("follows", "created_at"),
    ("collections", "created_at"),
    ("goods", "created_at"),
    ("users", "created_at"),
]


def truncate_at_test_split(url: str, test_share: float) -> float:
    """Delete every row after the test split T; the validation window's share of the saves that remain."""
    with psycopg.connect(url) as conn:
        saved = np.array([r[0] for r in conn.execute("SELECT extract(epoch FROM saved_at)::bigint FROM saves")])
        t = split_time(saved, "", test_share)
        n_test = int((saved > t).sum())
        for table, column in AFTER_T:
            conn.execute(f"DELETE FROM {table} WHERE {column} > to_timestamp(%s)", (t,))  # noqa: S608 (fixed names)
        conn.execute("UPDATE goods SET deleted_at = NULL WHERE deleted_at > to_timestamp(%s)", (t,))
    return n_test / (len(saved) - n_test)


def main() -> None:
    users = os.environ.get("BENCH_FYV_USERS", "5000")
    goods = os.environ.get("BENCH_FYV_GOODS", "100000")
    cfg = load_config()
    figures: dict[str, float | int | str] = {"demo_users": int(users), "demo_goods": int(goods)}
    with fresh_database() as url:
        env = {"GRAPHREC_DATABASE_URL": url}
        run_measured(graphrec("db", "init"), env)
        run_measured(graphrec("demo-data", "--users", users, "--goods", goods, "--seed", "0"), env)
        share = truncate_at_test_split(url, cfg.evaluate.test_share)
        es = load_database(url, cfg, test_share=share)
    if es.graph is None:
        raise SystemExit("the validation split has no graph")
    data, id_maps, manifest = es.graph
    arrays = graph_arrays(data, int(manifest["as_of"]), cfg.graph.min_goods)
    t0 = time.perf_counter()
    base = fit_base(cfg, data, id_maps, arrays)
    ranker = train_ranker(cfg, arrays, base)
    figures["fit_s"] = time.perf_counter() - t0
    it = InterestTruth.of(es)
    if it.planted is None:
        raise SystemExit("the demo's planted interests are missing")
    figures["validation_users"] = len(es.users)
    figures["coverage_ceiling@20"] = coverage_ceiling(it)
    users_idx = np.asarray(es.users, np.int64)
    for label, overrides in SETTINGS:
        fy = dataclasses.replace(cfg.foryou, **overrides)
        ctx = dataclasses.replace(base.ctx, cfg=fy, cache={})
        picks = _ranked(for_you(ctx, users_idx, K, ranker, fy.ranker_threads), users_idx).picks
        f = measure(picks, es, [K], it)
        print(
            label,
            json.dumps(overrides),
            {k: round(f[k], 4) for k in (f"recall@{K}", f"interest_coverage@{K}")},
            file=sys.stderr,
        )
        figures[f"{label}_recall@{K}"] = f[f"recall@{K}"]
        figures[f"{label}_ndcg@{K}"] = f[f"ndcg@{K}"]
        figures[f"{label}_interest_coverage@{K}"] = f[f"interest_coverage@{K}"]
    report(figures)


def coverage_ceiling(it: InterestTruth) -> float:
    """Share of the users' planted interests of weight >= INTEREST_MIN_WEIGHT with a save before the cut: what a
    list built from the user's history can cover without luck."""
    assert it.planted is not None
    interest, style = it.planted
    h = it.history.tocoo()
    s = style[h.col]
    has = np.zeros(interest.shape, dtype=bool)
    has[h.row[s >= 0], s[s >= 0]] = True
    heavy = interest >= INTEREST_MIN_WEIGHT
    return float((heavy & has).sum() / max(int(heavy.sum()), 1))


if __name__ == "__main__":
    main()
