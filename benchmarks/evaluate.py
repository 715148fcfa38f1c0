"""The full evaluation table: demo data (5,000 users / 100,000 goods in a fresh database) and both public
sets (../shared/data), every baseline and trained model, through `graphrec evaluate`.

Prints `<dataset>_<row>_<metric>` for recall/ndcg/hit@20, fit and score seconds, and each data set's
evaluation time. Set BENCH_EVAL_DATASETS (comma-separated) to run a subset, BENCH_EVAL_USERS/GOODS to
scale the demo, BENCH_EVAL_TRAIN_BUDGET_S to bound each model's training time.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, fresh_database, graphrec, report, run_measured  # noqa: E402

SHOWN = ("recall@20", "ndcg@20", "hit@20", "coverage@20", "domains@20", "new_good_cosine@20")


def main() -> None:
    datasets = [d for d in os.environ.get("BENCH_EVAL_DATASETS", "demo,gowalla,beauty").split(",") if d]
    data_root = ROOT.parent / "shared" / "data"
    missing = [d for d in datasets if d != "demo" and not (data_root / {"beauty": "amazon-beauty"}.get(d, d)).is_dir()]
    for d in missing:
        print(f"skipping {d}: {data_root} has no data for it", file=sys.stderr)
    datasets = [d for d in datasets if d not in missing]
    users = os.environ.get("BENCH_EVAL_USERS", "5000")
    goods = os.environ.get("BENCH_EVAL_GOODS", "100000")
    budget = os.environ.get("BENCH_EVAL_TRAIN_BUDGET_S", "300")
    figures: dict[str, float | int | str] = {}
    with fresh_database() as url, tempfile.TemporaryDirectory() as tmp:
        env = {"GRAPHREC_DATABASE_URL": url, "GRAPHREC_PATHS__ARTIFACTS": str(Path(tmp) / "artifacts")}
        run_measured(graphrec("db", "init"), env)
        if "demo" in datasets:
            wall, _, _ = run_measured(graphrec("demo-data", "--users", users, "--goods", goods, "--seed", "0"), env)
            figures["demo_data_s"] = wall
        out = Path(tmp) / "report"
        args = [
            "--set",
            f"train.time_budget_s={budget}",
            "--set",
            f"evaluate.data_root={data_root}",
            "evaluate",
        ]
        for d in datasets:
            args += ["--dataset", d]
        wall, peak_mb, stdout = run_measured(graphrec(*args, "--out", str(out)), env)
        print(stdout, file=sys.stderr)
        result = json.loads((out / "metrics.json").read_text())
        keep = Path(os.environ.get("BENCH_EVAL_REPORT_DIR", ROOT / "artifacts" / "bench-evaluate"))
        keep.mkdir(parents=True, exist_ok=True)
        for f in out.iterdir():
            (keep / f.name).write_bytes(f.read_bytes())
    figures["demo_users"] = int(users)
    figures["demo_goods"] = int(goods)
    figures["train_budget_s"] = float(budget)
    for name, ds in result["datasets"].items():
        figures[f"{name}_evaluated_users"] = ds["counts"]["evaluated_users"]
        figures[f"{name}_eval_s"] = float(ds["eval_s"])
        for row in ds["rows"]:
            if row["error"]:
                figures[f"{name}_{row['name']}_error"] = row["error"].replace("\n", " ")[:200]
                continue
            for key in SHOWN:
                if row["metrics"].get(key) is not None:
                    figures[f"{name}_{row['name']}_{key}"] = float(row["metrics"][key])
            figures[f"{name}_{row['name']}_fit_s"] = float(row["fit_s"])
            figures[f"{name}_{row['name']}_score_s"] = float(row["score_s"])
    figures["eval_s"] = wall
    figures["eval_peak_mb"] = peak_mb
    figures["report_dir"] = str(keep)
    report(figures)


if __name__ == "__main__":
    main()
