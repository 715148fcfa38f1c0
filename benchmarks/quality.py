"""For You quality (issue 10): the demo at 5,000 users / 100,000 goods, seed 0, one run, in a fresh database
(on $GRAPHREC_DATABASE_URL's server or the embedded one).

1. `graphrec evaluate` (every row, for_you and its sources included) -> recall/NDCG@20 of for_you and of the
   best other row (the for_you_* variants and src_* rows are parts of for_you, not competitors).
2. `graphrec build-graph`, `graphrec train --promote` (the graph model, then the ranker beside it: ranker_train_s)
   and one timed `graphrec recommend` (daily_1x_s) with the ranker in use.

BENCH_QUALITY_USERS / BENCH_QUALITY_GOODS scale the demo; BENCH_QUALITY_TRAIN_BUDGET_S bounds the graph model's
training (train.time_budget_s, default the config's). Ends with `key: value` lines.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, fresh_database, graphrec, report, run_measured  # noqa: E402

K = 20
# Rows that are the For You pipeline or one of its parts: never "the best other row".
PARTS = re.compile(r"^(for_you.*|src_.*)$")


def _row_metrics(result: dict) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    rows = result["datasets"]["demo"]["rows"]
    ok = {r["name"]: r["metrics"] for r in rows if not r.get("error")}
    return ok, {r["name"]: r["error"] for r in rows if r.get("error")}


def main() -> None:
    users = os.environ.get("BENCH_QUALITY_USERS", "5000")
    goods = os.environ.get("BENCH_QUALITY_GOODS", "100000")
    budget = os.environ.get("BENCH_QUALITY_TRAIN_BUDGET_S")
    settings = ["--set", f"train.time_budget_s={budget}"] if budget else []
    figures: dict[str, float | int | str] = {"demo_users": int(users), "demo_goods": int(goods)}
    with fresh_database() as url, tempfile.TemporaryDirectory() as tmp:
        env = {"GRAPHREC_DATABASE_URL": url, "GRAPHREC_PATHS__ARTIFACTS": str(Path(tmp) / "artifacts")}
        run_measured(graphrec("db", "init"), env)
        wall, _, _ = run_measured(graphrec("demo-data", "--users", users, "--goods", goods, "--seed", "0"), env)
        figures["demo_data_s"] = wall
        out = Path(tmp) / "report"
        wall, peak_mb, stdout = run_measured(graphrec(*settings, "evaluate", "--out", str(out)), env)
        print(stdout, file=sys.stderr)
        figures["evaluate_s"] = wall
        figures["evaluate_peak_mb"] = peak_mb
        metrics, errors = _row_metrics(json.loads((out / "metrics.json").read_text()))
        keep = Path(os.environ.get("BENCH_QUALITY_REPORT_DIR", ROOT / "artifacts" / "bench-quality"))
        keep.mkdir(parents=True, exist_ok=True)
        for f in out.iterdir():
            if f.is_file():
                (keep / f.name).write_bytes(f.read_bytes())
        run_measured(graphrec("build-graph"), env)
        wall, _, train_out = run_measured(graphrec(*settings, "train", "--promote"), env)
        print(train_out, file=sys.stderr)
        figures["train_s"] = wall
        m = re.search(r"for_you ranker: .*?, ([0-9.]+) s", train_out)
        figures["ranker_train_s"] = float(m.group(1)) if m else "missing (no ranker line in `graphrec train`)"
        t0 = time.perf_counter()
        _, daily_peak, daily_out = run_measured(graphrec("recommend"), env)
        figures["daily_1x_s"] = time.perf_counter() - t0
        figures["daily_1x_peak_mb"] = daily_peak
        for line in daily_out.splitlines():
            rec = json.loads(line) if line.startswith("{") else {}
            if rec.get("summary") == "recommend":
                for key in ("users_eligible", "users_served", "users_short", "fallback_picks"):
                    figures[f"daily_1x_{key}"] = rec.get(key, "missing")
            if "picks per source" in str(rec.get("msg", "")):
                figures["daily_1x_for_you"] = rec["msg"].replace("\n", " ")[:300]
    fy = metrics.get("for_you")
    if fy is None:
        raise SystemExit(f"the for_you row is missing or failed: {errors.get('for_you', 'not in the table')}")
    others = {n: m for n, m in metrics.items() if not PARTS.match(n) and n != "oracle"}
    best = max(others, key=lambda n: others[n][f"recall@{K}"])
    best_ndcg = max(others, key=lambda n: others[n][f"ndcg@{K}"])
    figures[f"for_you_recall@{K}"] = fy[f"recall@{K}"]
    figures[f"for_you_ndcg@{K}"] = fy[f"ndcg@{K}"]
    figures[f"best_other_recall@{K}"] = others[best][f"recall@{K}"]
    figures[f"best_other_ndcg@{K}"] = others[best_ndcg][f"ndcg@{K}"]
    figures["best_other_row"] = best if best == best_ndcg else f"{best} (recall), {best_ndcg} (ndcg)"
    figures["for_you_recall_ratio"] = fy[f"recall@{K}"] / max(others[best][f"recall@{K}"], 1e-12)
    figures["for_you_ndcg_ratio"] = fy[f"ndcg@{K}"] / max(others[best_ndcg][f"ndcg@{K}"], 1e-12)
    coverage = [k for k in fy if "interest" in k and "coverage" in k]
    for key in coverage:
        figures[f"for_you_{key}"] = fy[key]
    if not coverage:
        figures[f"for_you_interest_coverage@{K}"] = "not measured (no interest coverage metric in the report)"
    for row in ("pinsage", "gf_cf", "oracle"):
        if row in metrics:
            figures[f"{row}_recall@{K}"] = metrics[row][f"recall@{K}"]
    for name, row_m in sorted(metrics.items()):
        if PARTS.match(name):
            figures[f"{name}_recall@{K}"] = row_m[f"recall@{K}"]
            figures[f"{name}_ndcg@{K}"] = row_m[f"ndcg@{K}"]
    for name, err in errors.items():
        figures[f"{name}_error"] = err.replace("\n", " ")[:200]
    figures["report_dir"] = str(keep)
    report(figures)


if __name__ == "__main__":
    main()
