"""The daily job (`graphrec recommend`) end to end on demo data, at the demo scale (5,000 users,
100,000 goods) and at ten times that (50,000 users, 1,000,000 goods): wall time and peak memory per stage
and in total, and the IVF index's recall@k against exact search on the run's own embeddings.

Setup: demo data in a database of its own per scale (kept between runs and reused when its counts match) and
a graph; at 1x a briefly trained PinSage-lite model (quality does not matter for timing the daily job; the
model's shape does), at 10x the real `graphrec train --promote` with the project's configuration (model fit
and For You ranker), timed with its peak RSS: train_10x_s and train_10x_peak_mb (kept in the scale's
artifacts as train_figures.json and printed again while the model is reused). Timed: one `graphrec
recommend` subprocess per scale, whose JSON stage lines give the per-stage figures (peak memory is that
process's peak RSS when the stage ended; PostgreSQL's own memory is not included). The model's directory
holds its For You ranker (`graphrec train` trains one), so the run is For You's sources and ranker, with
model retrieval for the users it leaves short. Then the app's read and one user's rescore (`graphrec
recommend --user`, in process, median of 10 users: rescore_<scale>_s).

    python benchmarks/daily.py [--scales 1x,10x] [--k 20] [--setup-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graphrec.core import db  # noqa: E402
from graphrec.core.artifacts import (  # noqa: E402
    Embeddings,
    current_model,
    graphs_dir,
    models_dir,
    read_pointer,
    run_embeddings_path,
)
from graphrec.core.config import load_config  # noqa: E402
from serving.retrieval import build_index, index_recall, retrieve  # noqa: E402

SCALES = {"1x": (5_000, 100_000), "10x": (50_000, 1_000_000)}
# The index each scale serves with: exact at the demo scale; at ten times, exact search grows with
# users x goods (100x), so the job switches to IVF (recall against exact is printed below).
# 1,024 lists probed 32 at a time: at 10x, 4,096 lists cut the search but k-means took 196 s to train them.
INDEX = {"1x": ("flat", 1024, 32), "10x": ("ivf", 1024, 32)}
GRAPHREC = str(Path(sys.executable).parent / "graphrec")
# Setup training: a few steps only. The daily job's cost depends on the model's shape, not its quality.
QUICK_TRAIN = [
    "--set",
    "train.max_epochs=1",
    "--set",
    "train.steps_per_epoch=20",
    "--set",
    "train.time_budget_s=300",
]


def log(msg: str) -> None:
    print(f"[daily] {msg}", file=sys.stderr, flush=True)


def scale_url(scale: str) -> str:
    """A database of its own for this scale, on $GRAPHREC_DATABASE_URL's server or the embedded one."""
    cfg = load_config(ROOT / "configs" / "graphrec.toml")
    admin = os.environ.get(db.URL_ENV) or db.embedded_server_url(ROOT / cfg.database.embedded_dir)
    # GRAPHREC_BENCH_DB_PREFIX: a prefix of its own for whoever shares the server (default graphrec).
    name = f"{os.environ.get('GRAPHREC_BENCH_DB_PREFIX', 'graphrec')}_bench_daily_{scale}"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def run(args: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    proc, _, _ = measured(args, env, what)
    return proc


def measured(args: list[str], env: dict[str, str], what: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """One `graphrec` subprocess: (its completed process, wall seconds, its own peak RSS in MB)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        child = subprocess.Popen([GRAPHREC, *args], env=env, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's rusage alone (not earlier children's)
        seconds = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(child.args, child.returncode, out.read(), err.read())
    peak_mb = usage.ru_maxrss / 1024  # KB on Linux
    log(f"{what}: {seconds:.1f} s, peak {peak_mb:.0f} MB (exit {proc.returncode})")
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{what} failed")
    return proc, seconds, peak_mb


def setup(scale: str, env: dict[str, str], artifacts: Path) -> dict[str, float]:
    """The scale's data, graph and CURRENT model (see the module's docstring); returns the 10x training's
    figures (train_<scale>_s, train_<scale>_peak_mb), also when a model trained by an earlier run is reused."""
    users, goods = SCALES[scale]
    with db.connect(env[db.URL_ENV]) as conn:
        db.migrate(conn)
        n = conn.execute("SELECT (SELECT count(*) FROM users) AS u, (SELECT count(*) FROM goods) AS g").fetchone()
    fresh_data = (n["u"], n["g"]) != (users, goods)
    if fresh_data:
        run(
            ["demo-data", "--users", str(users), "--goods", str(goods), "--seed", "0", "--replace"],
            env,
            f"{scale} demo data",
        )
    figures_file = artifacts / "train_figures.json"
    if current_model(models_dir(artifacts)) is not None:
        return json.loads(figures_file.read_text()) if figures_file.exists() else {}
    if fresh_data or read_pointer(graphs_dir(artifacts) / "LATEST") is None:  # else the graph of this data
        run(["build-graph"], env, f"{scale} build-graph")
    if scale == "1x":
        run([*QUICK_TRAIN, "train", "--promote"], env, f"{scale} quick train")
        return {}
    # The model served at 10x is trained at 10x, with the project's configuration (its own time budget):
    # the model fit and the For You ranker, as `graphrec train` runs them.
    _, seconds, peak_mb = measured(["train", "--promote"], env, f"{scale} train")
    figures = {f"train_{scale}_s": round(seconds, 1), f"train_{scale}_peak_mb": round(peak_mb)}
    figures_file.write_text(json.dumps(figures))
    return figures


def daily(scale: str, env: dict[str, str]) -> dict[str, float | str]:
    """One timed `graphrec recommend`; returns stage -> seconds / peak MB and the totals."""
    kind, nlist, nprobe = INDEX[scale]
    settings = ["--set", f"recommend.index={kind}", "--set", f"recommend.ivf_nlist={nlist}"]
    settings += ["--set", f"recommend.ivf_nprobe={nprobe}"]
    t0 = time.perf_counter()
    proc = run([*settings, "recommend"], env, f"{scale} recommend")
    wall = time.perf_counter() - t0
    out: dict[str, float | str] = {f"daily_{scale}_s": round(wall, 2), f"daily_{scale}_index": kind}
    peak = 0.0
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if rec.get("event") == "done":
            out[f"daily_{scale}_stage_{rec['stage']}_s"] = round(rec["seconds"], 2)
            out[f"daily_{scale}_stage_{rec['stage']}_peak_mb"] = rec["peak_mb"]
            peak = max(peak, float(rec["peak_mb"]))
        if "for_you_first_batch_s" in rec:  # the batch that builds For You's views, before the workers fork
            out[f"daily_{scale}_for_you_first_batch_s"] = rec["for_you_first_batch_s"]
        if rec.get("summary") == "recommend":
            out[f"daily_{scale}_run_id"] = rec["run_id"]
            for key in ("users_served", "picks", "fallback_picks", "users_short", "coverage"):
                out[f"daily_{scale}_{key}"] = rec[key]
    out[f"daily_{scale}_peak_mb"] = round(peak)
    return out


def ivf_figures(scale: str, emb: Embeddings, k: int, nlist: int, nprobe: int) -> dict[str, float]:
    """Recall@k of the IVF index against exact search for a sample of users; build and search times of
    the three index kinds (200 candidates each)."""
    scorable = np.any(emb.good_vecs != 0, axis=1)  # as serving indexes them (not only goods seen in training)
    goods = np.ascontiguousarray(emb.good_vecs[scorable])
    rng = np.random.default_rng(0)
    queries = emb.user_vecs[rng.choice(len(emb.user_vecs), size=min(2000, len(emb.user_vecs)), replace=False)]
    out = {f"ivf_{scale}_recall_at_{k}": round(index_recall(goods, queries, k, nlist, nprobe), 4)}
    # FAISS's flat index is only timed where it finishes in reasonable time.
    for kind in ("exact", "flat", "ivf") if len(goods) <= 200_000 else ("exact", "ivf"):
        t0 = time.perf_counter()
        index = build_index(goods, np.arange(len(goods)), kind, nlist=nlist, nprobe=nprobe)
        t1 = time.perf_counter()
        retrieve(index, queries, None, 200)
        t2 = time.perf_counter()
        out[f"{kind}_{scale}_build_s"] = round(t1 - t0, 2)
        out[f"{kind}_{scale}_search_2000_users_s"] = round(t2 - t1, 3)
    return out


def reads(scale: str, url: str, artifacts: Path, n: int = 300) -> dict[str, float]:
    """The app's read (for_you) and the on-demand rescore of one user (in process, imports excluded)."""
    from graphrec.app import jobs as pipeline
    from graphrec.core.config import Config, PathsConfig

    with db.connect(url, autocommit=True) as conn:
        users = [
            r["user_id"]
            for r in conn.execute(
                "SELECT DISTINCT p.user_id FROM graphrec_picks p JOIN graphrec_current c USING (run_id) LIMIT %s",
                (n,),
            ).fetchall()
        ]
        times = []
        for u in users:
            t0 = time.perf_counter()
            conn.execute("SELECT * FROM for_you(%s, 20)", (u,)).fetchall()
            times.append(time.perf_counter() - t0)
    cfg = Config(paths=PathsConfig(artifacts=str(artifacts)))
    rescore = []
    for_you_path = 0
    pipeline.recommend_user(cfg, url, users[-1], write=False)  # imports (torch-free) and first reads, untimed
    for u in users[:10]:
        t0 = time.perf_counter()
        out = pipeline.recommend_user(cfg, url, u, write=True)
        rescore.append(time.perf_counter() - t0)
        for_you_path += any(not p["is_fallback"] for p in out.picks)
    return {
        f"for_you_{scale}_p50_ms": round(1000 * float(np.median(times)), 2),
        f"for_you_{scale}_p95_ms": round(1000 * float(np.percentile(times, 95)), 2),
        # One user's `graphrec recommend --user` (in process): For You on the rows around the user.
        f"rescore_{scale}_s": round(float(np.median(rescore)), 3),
        f"rescore_{scale}_max_s": round(float(np.max(rescore)), 3),
        f"rescore_{scale}_users": len(rescore),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="1x,10x")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--setup-only", action="store_true", help="data, graph and model (train_10x_*) only")
    args = ap.parse_args()
    figures: dict[str, float | str] = {}
    for scale in args.scales.split(","):
        artifacts = ROOT / "artifacts" / "bench" / f"daily-{scale}"
        env = dict(os.environ, GRAPHREC_PATHS__ARTIFACTS=str(artifacts))
        env[db.URL_ENV] = scale_url(scale)
        for var in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"):
            env.pop(var, None)
        figures.update(setup(scale, env, artifacts))
        if args.setup_only:
            continue
        result = daily(scale, env)
        figures.update(result)
        emb = Embeddings.load(run_embeddings_path(artifacts, int(result[f"daily_{scale}_run_id"])))
        _, nlist, nprobe = INDEX[scale]
        figures.update(ivf_figures(scale, emb, args.k, nlist, nprobe))
        figures.update(reads(scale, env[db.URL_ENV], artifacts))
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
