"""make bench-serve: requests per second and latency of GET /v1/users/{id}/for-you on loopback.

A fresh database gets 5,000 users, 100,000 goods and a recommend run with 20 picks per user. The app of
`graphrec serve` runs under uvicorn (`--workers`, default serve.workers), and a closed-loop load generator
(wrk from Debian when installed, else a Python asyncio one) asks for random users' picks for a fixed time.
Then the same load runs while picks swap: a writer publishes complete new runs of 100,000 picks in a loop
through the recommend job's own write-back (serving.store.stage_picks + publish: COPY to staging, one
transaction to swap) and prunes old runs. Baseline in the same run: GET /healthz (one trivial query through
the same stack). CPU per request (app processes + their Postgres backends) is measured too: other work on
the machine slows the run, but hardly changes what a request costs.

Target on the 2-core machine: at least 2,000 requests/s with p99 under 50 ms and no errors. Server,
Postgres, load generator and writer all share the two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np
import psutil
from _common import ROOT, fresh_database, report

from graphrec.core import db
from graphrec.core.config import load_config

USERS = int(os.environ.get("BENCH_USERS", 5000))
GOODS = int(os.environ.get("BENCH_GOODS", 100000))
PICKS = 20


def seed(url: str) -> None:
    """Users, goods (no embeddings: the For You read never touches them) and one current run of picks."""
    rng = np.random.default_rng(0)
    with db.connect(url) as conn:
        db.migrate(conn)
        with conn.cursor() as cur:
            with cur.copy("COPY users (id, name) FROM STDIN") as copy:
                for u in range(1, USERS + 1):
                    copy.write_row((u, f"user {u}"))
            with cur.copy("COPY goods (id, title, url) FROM STDIN") as copy:
                for g in range(1, GOODS + 1):
                    copy.write_row((g, f"Linen thing no. {g}", f"https://shop{g % 600}.example/p/{g}"))
        conn.commit()
        publish_run(conn, rng, "bench-v1")
        conn.execute("ANALYZE")
        conn.commit()


def publish_run(conn, rng: np.random.Generator, version: str) -> int:
    """A complete run of PICKS picks per user, published the way `graphrec recommend` publishes."""
    from graphrec.core import runs
    from serving import store
    from serving.picks import PickRows

    n = USERS * PICKS
    picks = PickRows(
        user_id=np.repeat(np.arange(1, USERS + 1, dtype=np.int64), PICKS),
        rank=np.tile(np.arange(1, PICKS + 1, dtype=np.int32), USERS),
        good_id=rng.integers(1, GOODS + 1, n, dtype=np.int64),
        score=np.sort(rng.random(n, dtype=np.float32))[::-1].copy(),
        reason=[f"because you saved Linen thing no. {i % GOODS + 1}" for i in range(n)],
        reason_detail=[f'{{"kind": "good", "good_id": {i % GOODS + 1}}}' for i in range(n)],
        is_fallback=np.zeros(n, dtype=bool),
    )
    run_id = runs.new_run_id(conn)
    conn.commit()
    store.stage_picks(conn, picks)
    store.publish(conn, run_id, version, time.time(), {"users": USERS, "picks": n}, {})
    conn.commit()
    return run_id


class Swapper(threading.Thread):
    """Publishes new runs in a loop and deletes all but the two newest, until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.swaps, self.stop = url, 0, threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = np.random.default_rng(1)
        try:
            with db.connect(self.url) as conn:
                while not self.stop.is_set():
                    run_id = publish_run(conn, rng, f"bench-swap-{self.swaps}")
                    self.swaps += 1
                    conn.execute("DELETE FROM graphrec_runs WHERE id < %s - 1", (run_id,))
                    conn.commit()
        except BaseException as e:  # reported by the main thread
            self.error = e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, artifacts: str, port: int, workers: int, pool_max: int) -> subprocess.Popen:
    # Imported here: the load generators forked from this process need none of the app.
    from serving.web.main import APP_ENV, APP_FACTORY

    env = {
        **os.environ,
        APP_ENV: json.dumps(
            {
                "database_url": url,
                "artifacts": artifacts,
                "pool_min": pool_max,
                "pool_max": pool_max,
                "pool_timeout_s": 2.0,
                "min_goods": 10,
                # BENCH_FAST_PATH=0 serves For You through FastAPI's route instead, to compare the two.
                "fast_path": os.environ.get("BENCH_FAST_PATH", "1") != "0",
            }
        ),
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        APP_FACTORY,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.2)


# --- load generators: requests/s, p50/p99 latency in ms, errors, requests ---------------------------------

WRK_SCRIPT = """
math.randomseed(%(seed)d)
local paths = {}
request = function()
  return wrk.format("GET", string.format("%(path)s", math.random(1, %(users)d)))
end
"""


def load_wrk(port: int, path: str, seconds: float, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % {"seed": random.randrange(1 << 30), "path": path.replace("{id}", "%d"), "users": USERS})
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{int(seconds)}s",
                "--latency",
                "-s",
                f.name,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    if errors:
        print(f"wrk {path}: {non2xx.group(0) if non2xx else ''} {sock.group(0) if sock else ''}".strip())
    return {"rps": rps, "p50_ms": ms("50"), "p99_ms": ms("99"), "errors": errors, "requests": requests}


async def _python_load(port: int, path: str, seconds: float, connections: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            target = path.replace("{id}", str(rng.randint(1, USERS)))
            t0 = time.perf_counter()
            writer.write(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            latencies.append((time.perf_counter() - t0) * 1e3)
            if head[9:12] != b"200":
                errors += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(connections)))
    elapsed = time.perf_counter() - start
    lat = np.array(latencies)
    return {
        "rps": len(lat) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "errors": errors,
        "requests": len(lat),
    }


def _python_load_process(port: int, path: str, seconds: float, connections: int, out: mp.Queue) -> None:
    out.put(asyncio.run(_python_load(port, path, seconds, connections)))


class CpuMeter:
    """CPU seconds spent by the server's processes and by this database's PostgreSQL backends.

    Divided by the requests served, it says what a request costs whatever else the machine is doing:
    the figure to read when other work shares the cores during the run.
    """

    def __init__(self, url: str, server_pid: int) -> None:
        self.url, self.server_pid = url, server_pid

    def _processes(self) -> list[psutil.Process]:
        server = psutil.Process(self.server_pid)
        procs = [server, *server.children(recursive=True)]
        with db.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'graphrec-serve'"
            ).fetchall()
        for r in rows:
            try:
                procs.append(psutil.Process(r["pid"]))
            except psutil.NoSuchProcess:
                pass
        return procs

    def snapshot(self) -> dict[int, float]:
        out = {}
        self.server_pids = {self.server_pid} | {c.pid for c in psutil.Process(self.server_pid).children(True)}
        for p in self._processes():
            try:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return out

    def spent(self, before: dict[int, float], after: dict[int, float]) -> tuple[float, float]:
        """(server seconds, database seconds) between two snapshots."""
        server = sum(t - before.get(pid, 0.0) for pid, t in after.items() if pid in self.server_pids)
        database = sum(t - before.get(pid, 0.0) for pid, t in after.items() if pid not in self.server_pids)
        return server, database


def load(tool: str, port: int, path: str, seconds: float, connections: int) -> dict[str, float]:
    if tool == "wrk":
        return load_wrk(port, path, seconds, connections)
    # Its own process, so the writer thread here does not share its interpreter lock.
    queue: mp.Queue = mp.Queue()
    proc = mp.Process(target=_python_load_process, args=(port, path, seconds, connections, queue))
    proc.start()
    result = queue.get(timeout=seconds + 60)
    proc.join()
    return result


def main() -> None:
    cfg = load_config().serve
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 10)))
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", 32)))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", cfg.workers)))
    parser.add_argument("--pool-max", type=int, default=cfg.pool_max)
    parser.add_argument("--tool", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    args = parser.parse_args()

    figures: dict[str, float | int | str] = {
        "serve_tool": args.tool,
        "serve_workers": args.workers,
        "serve_connections": args.connections,
        "serve_seconds": args.seconds,
    }
    with fresh_database() as url, tempfile.TemporaryDirectory() as artifacts:
        t0 = time.perf_counter()
        seed(url)
        print(f"seeded {USERS} users, {GOODS} goods, {USERS * PICKS} picks in {time.perf_counter() - t0:.1f} s")
        port = free_port()
        server = start_server(url, artifacts, port, args.workers, args.pool_max)
        try:
            for_you = "/v1/users/{id}/for-you"
            load(args.tool, port, for_you, 2, args.connections)  # warm up: connections, prepared statements
            meter = CpuMeter(url, server.pid)
            before = meter.snapshot()
            base = load(args.tool, port, "/healthz", args.seconds, args.connections)
            base_app_s, base_db_s = meter.spent(before, meter.snapshot())
            before = meter.snapshot()
            steady = load(args.tool, port, for_you, args.seconds, args.connections)
            server_s, db_s = meter.spent(before, meter.snapshot())
            cpu_s = server_s + db_s
            swapper = Swapper(url)
            swapper.start()
            time.sleep(1.0)  # let the first publish get going
            swapping = load(args.tool, port, for_you, args.seconds, args.connections)
            swapper.stop.set()
            swapper.join()
            if swapper.error:
                raise SystemExit(f"the picks writer failed: {swapper.error!r}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    figures.update(
        {
            "serve_baseline_healthz_rps": base["rps"],
            "serve_baseline_healthz_p99_ms": base["p99_ms"],
            "serve_baseline_healthz_cpu_ms_per_request_app": 1e3 * base_app_s / base["requests"],
            "serve_baseline_healthz_cpu_ms_per_request_db": 1e3 * base_db_s / base["requests"],
            "serve_requests": int(steady["requests"]),
            "serve_swap_requests": int(swapping["requests"]),
            "serve_swaps": swapper.swaps,
            "serve_swap_rps": swapping["rps"],
            "serve_swap_p50_ms": swapping["p50_ms"],
            "serve_swap_p99_ms": swapping["p99_ms"],
            "serve_swap_errors": int(swapping["errors"]),
            # What one request costs in CPU (server + its Postgres backends; the load generator excluded),
            # and the rate both cores could sustain at that cost with nothing else running.
            "serve_cpu_ms_per_request": 1e3 * cpu_s / steady["requests"],
            "serve_cpu_ms_per_request_app": 1e3 * server_s / steady["requests"],
            "serve_cpu_ms_per_request_db": 1e3 * db_s / steady["requests"],
            "serve_rps_if_2_cores_free": 2 * steady["requests"] / cpu_s,
            "serve_rps": steady["rps"],
            "serve_p50_ms": steady["p50_ms"],
            "serve_p99_ms": steady["p99_ms"],
            "serve_errors": int(steady["errors"] + base["errors"]),
        }
    )
    report(figures)


if __name__ == "__main__":
    main()
