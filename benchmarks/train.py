"""Training on the demo data: wall time, peak memory and validation figures per model.

Generates the demo world (etl.demo_data, 5,000 users / 100,000 goods by default), builds its graph
(etl.build) into a temporary artifact, then trains each configuration in a fresh process (so peak memory is
that run's own, graph loading included, as for `graphrec train`): PinSage-lite and LightGCN with the
configured recency half-life, and both again without recency weighting. A popularity baseline is scored on
the same validation split (the newest `train.val_share` of the saves).

Targets: each training run under 10 minutes wall and 4 GB peak on the 2-core machine. Wall times measured
while other work runs on the machine are pessimistic; the popularity line is the same-run reference.

    make bench-train                      # or: .venv/bin/python benchmarks/train.py --users 1000 --goods 20000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RUNS: dict[str, dict[str, object]] = {
    "pinsage": {"model": "pinsage"},
    "lightgcn": {"model": "lightgcn"},
    "pinsage_no_recency": {"model": "pinsage", "recency_half_life_days": 0.0},
    "lightgcn_no_recency": {"model": "lightgcn", "recency_half_life_days": 0.0},
}


def child(graph_dir: str, overrides: str) -> None:
    """Train one configuration on the graph artifact and print its figures as one JSON line."""
    import torch

    from graphrec.core.artifacts import load_graph
    from graphrec.core.config import TrainConfig
    from training.train import fit

    values = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(overrides).items()}
    cfg = TrainConfig(**values)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    data, id_maps, manifest = load_graph(Path(graph_dir))
    trained = fit(data, id_maps, manifest, cfg, progress=False)
    out = {
        "train_s": time.perf_counter() - start,
        "train_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "epochs": len(trained.meta.history),
        **trained.meta.val,
    }
    print("RESULT " + json.dumps(out), flush=True)


def build_demo_graph(users: int, goods: int, seed: int, directory: Path) -> dict[str, int]:
    from etl.build import build_graph
    from etl.demo_data import DemoParams, generate
    from graphrec.core.artifacts import GRAPH_FORMAT_VERSION, save_graph

    tables, _ = generate(DemoParams(users=users, goods=goods, seed=seed))
    data, id_maps, report = build_graph(tables)
    save_graph(directory, data, id_maps, {"format_version": GRAPH_FORMAT_VERSION, "counts": report.counts})
    return report.counts


def popularity(graph_dir: Path, val_share: float) -> dict[str, float]:
    """Most-saved goods of the training window, same validation users, truth and exclusions as fit()."""
    from graphrec.core import metrics
    from graphrec.core.artifacts import load_graph
    from training.split import VAL_K, time_split

    data, _, _ = load_graph(graph_dir)
    split = time_split(data, val_share)
    counts = np.bincount(split.train_goods, minlength=data["good"].num_nodes).astype(np.float32)
    counts[~split.candidates] = -np.inf
    picks = metrics.topk(lambda u: np.tile(counts, (len(u), 1)), split.val_users, VAL_K, exclude=split.seen)
    return {
        f"recall@{VAL_K}": float(metrics.recall_at_k(picks, split.val_truth, VAL_K).mean()),
        f"ndcg@{VAL_K}": float(metrics.ndcg_at_k(picks, split.val_truth, VAL_K).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--goods", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {', '.join(RUNS)}")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TrainConfig override for every run, e.g. time_budget_s=120",
    )
    parser.add_argument("--child", nargs=2, metavar=("GRAPH", "OVERRIDES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from graphrec.core.config import load_config

    base = load_config(None, [f"train.{s}" for s in args.sets], environ={}).train
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        graph_dir = Path(tmp) / "graph"
        t0 = time.perf_counter()
        counts = build_demo_graph(args.users, args.goods, args.seed, graph_dir)
        print(f"demo graph {counts} built in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        figures.update({f"graph_{k}": v for k, v in counts.items() if k in ("user", "good", "saves")})
        for key, value in popularity(graph_dir, base.val_share).items():
            figures[f"popularity_val_{key}"] = round(value, 4)
        for name in args.runs.split(","):
            overrides = json.dumps({**dataclasses.asdict(base), **RUNS[name]})
            print(f"training {name} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(graph_dir), overrides],
                capture_output=True,
                text=True,
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"training {name} failed (exit {proc.returncode})")
            result = json.loads(lines[-1][len("RESULT ") :])
            print(f"  {name}: {result}", file=sys.stderr, flush=True)
            for key in ("train_s", "train_peak_mb", "epochs", "recall@20", "ndcg@20"):
                value = result[key]
                prefix = "" if key in ("train_s", "train_peak_mb", "epochs") else "val_"
                figures[f"{name}_{prefix}{key}"] = round(value, 4) if isinstance(value, float) else value
        figures["val_users"] = result.get("val_users", 0)
    figures["threads"] = base.threads
    figures["time_budget_s"] = base.time_budget_s
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
