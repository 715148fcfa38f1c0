"""make bench-serve: requests per second and latency of GET /v1/users/{id}/for-you on loopback.

The world is bench-daily's at 1x (database graphrec_bench_daily_1x: demo data, 5,000 users and 100,000 goods,
a briefly trained PinSage-lite with its For You ranker, set up by benchmarks/daily.py's `setup` when missing,
reused when there) with a current recommend run; requests ask for the picks of random users that run serves.
The app of `graphrec serve` runs under uvicorn (`--workers`, default serve.workers). Phases:

1. steady, closed loop: wrk from Debian when installed (else a Python asyncio one), `--connections` at once
   for `--seconds` (serve_rps, serve_p99_ms, serve_errors); GET /healthz the same way as a baseline (one
   trivial query through the same stack).
2. fixed rate (wrk2-style, open loop): requests scheduled at a constant `--rate`, each latency measured
   from the request's scheduled send time, so time spent queued behind a slow response (in the server or
   in the generator) counts (serve_fixed_rate_p99_ms). With wrk: WRK_RATE_SCRIPT, `--rate-connections`
   connections each on its own schedule (wrk's C event loop costs the shared cores little); without it, a
   Python asyncio generator over `--load-procs` processes. On a quiet machine the two agree (2,000/s:
   p99 4.4-13.9 ms from wrk, 8.5 ms from Python). The achieved rate and how late requests left their
   schedule are reported: a generator that cannot keep up says so (serve_fixed_rate_sustained: no) instead
   of a flattering figure; a p99 near 100 ms with a dispatch lag of the same size means the whole machine
   stalled (other work on the shared cores), not the server.
3. during a real daily job: `graphrec recommend` at the deployed priority (DAILY_JOB_PRIORITY, as
   deploy/graphrec-recommend.service and deploy/crontab run it: idle CPU and I/O class, nice 19; the For
   You pipeline, model retrieval for the users it leaves short, the write-back and the swap) against the
   same database, with the fixed-rate load in back-to-back `--window`s from its start to its end (a window
   starts as the previous one's schedule ends, while that wrk still waits for its last answers)
   (serve_swap_rps: answered requests over all windows; serve_swap_p99_ms: the worst window's p99;
   serve_swap_p99_ms_all: over all windows). A closed loop would leave the idle-class job no CPU at all;
   the job's wall time under the load is reported (serve_swap_daily_job_s). `--trace` prints a per-second
   timeline of this phase (Trace: CPU of the job, its backends, the API, the server and the rest, CPU
   pressure), beside the job's stage lines and each window's p99; `--swap-only` runs this phase alone.

CPU per request (app processes + their Postgres backends) is measured in phase 1: other work on the machine
slows the run, but hardly changes what a request costs.

Target on the 2-core machine: at least 2,000 requests/s with p99 under 50 ms and no errors, in every phase.
Server, Postgres, load generator (and in phase 3 the daily job) all share the two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
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
from _common import ROOT, report

from graphrec.core import db
from graphrec.core.config import load_config


def world() -> tuple[str, dict[str, str], list[int]]:
    """bench-daily's 1x database and artifacts, set up when missing, with a current recommend run:
    (database url, the environment graphrec commands run with, the user ids that run serves)."""
    import daily

    artifacts = ROOT / "artifacts" / "bench" / "daily-1x"
    env = dict(os.environ, GRAPHREC_PATHS__ARTIFACTS=str(artifacts))
    env[db.URL_ENV] = daily.scale_url("1x")
    for var in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"):
        env.pop(var, None)
    daily.setup("1x", env, artifacts)

    def served() -> list[int]:
        with db.connect(env[db.URL_ENV], autocommit=True) as conn:
            rows = conn.execute(
                "SELECT DISTINCT p.user_id FROM graphrec_picks p JOIN graphrec_current c USING (run_id)"
            ).fetchall()
        return sorted(int(r["user_id"]) for r in rows)

    users = served()
    if not users:
        daily.run(["recommend"], env, "1x recommend (the run served during the steady phases)")
        users = served()
    return env[db.URL_ENV], env, users


# How the daily job runs beside the API on one machine (deploy/graphrec-recommend.service: Nice=19,
# CPUSchedulingPolicy=idle, IOSchedulingClass=idle; deploy/crontab the same through chrt and ionice): it gets
# the CPU the API leaves idle.
DAILY_JOB_PRIORITY = ["chrt", "--idle", "0", "ionice", "-c", "3", "nice", "-n", "19"]


class DailyJob(threading.Thread):
    """One `graphrec recommend` at the deployed priority (DAILY_JOB_PRIORITY), its wall time and exit status."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.env, self.seconds, self.status, self.output = env, 0.0, -1, ""
        self.started = threading.Event()
        self.pid = 0
        self.t0 = 0.0
        self.lines: list[tuple[float, str]] = []  # (seconds since the start, line) as the job printed them

    def run(self) -> None:
        self.t0 = time.perf_counter()
        graphrec = str(ROOT / ".venv" / "bin" / "graphrec")
        proc = subprocess.Popen(
            [*DAILY_JOB_PRIORITY, graphrec, "recommend"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.pid = proc.pid  # chrt, ionice and nice exec the next: the same process ends up as graphrec
        self.started.set()
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append((time.perf_counter() - self.t0, line))
        self.output = "".join(line for _, line in self.lines)
        self.status, self.seconds = proc.wait(), time.perf_counter() - self.t0


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
local users = {%(users)s}
request = function()
  return wrk.format("GET", string.format("%(path)s", users[math.random(1, #users)]))
end
"""


def load_wrk(port: int, path: str, seconds: float, connections: int, users: list[int]) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        ids = ",".join(map(str, users))
        f.write(WRK_SCRIPT % {"seed": random.randrange(1 << 30), "path": path.replace("{id}", "%d"), "users": ids})
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


async def _python_load(port: int, path: str, seconds: float, connections: int, users: list[int]) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            target = path.replace("{id}", str(rng.choice(users)))
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


def _python_load_process(
    port: int, path: str, seconds: float, connections: int, users: list[int], out: mp.Queue
) -> None:
    out.put(asyncio.run(_python_load(port, path, seconds, connections, users)))


# --- the fixed-rate (open-loop, wrk2-style) generator -------------------------------------------------------

# Generator processes whose p99 lateness in putting requests on their schedule exceeds this could not keep
# the rate themselves (CPU-starved): their figure is reported as not sustained.
MAX_DISPATCH_LAG_MS = 5.0


async def _fixed_rate(
    port: int, path: str, rate: float, seconds: float, connections: int, users: list[int], seed: int, start: float
) -> dict[str, object]:
    """One process's share of the schedule: request i is due at t0 + i / rate (t0 = wall time `start`, the same
    for every process). A dispatcher hands each request to the `connections` keep-alive connections when it
    is due; a request waiting for a free connection keeps its due time, and its latency runs from then."""
    n = int(rate * seconds)
    rng = random.Random(seed)
    targets = [path.replace("{id}", str(rng.choice(users))).encode() for _ in range(n)]
    latency = np.full(n, np.nan)
    dispatch_lag = np.full(n, np.nan)
    ok = np.zeros(n, dtype=bool)
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    await asyncio.sleep(max(0.0, start - time.time()))
    t0 = time.perf_counter()

    async def dispatcher() -> None:
        for i in range(n):
            due = t0 + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            dispatch_lag[i] = time.perf_counter() - due
            queue.put_nowait(i)
        for _ in range(connections):
            queue.put_nowait(None)

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while (i := await queue.get()) is not None:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert reader is not None
                writer.write(b"GET " + targets[i] + b" HTTP/1.1\r\nHost: bench\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await asyncio.wait_for(reader.readexactly(int(length.group(1)) if length else 0), 10)
                ok[i] = head[9:12] == b"200"
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                if writer is not None:
                    writer.close()
                reader = writer = None
            latency[i] = (time.perf_counter() - (t0 + i / rate)) * 1e3
        if writer is not None:
            writer.close()

    await asyncio.gather(dispatcher(), *(connection() for _ in range(connections)))
    return {"latency": latency, "ok": ok, "dispatch_lag_ms": dispatch_lag * 1e3, "elapsed": time.perf_counter() - t0}


def _fixed_rate_process(args: tuple, out: mp.Queue) -> None:
    try:  # uvicorn's event loop (installed with it): less of the generator's CPU per request
        import uvloop

        out.put(uvloop.run(_fixed_rate(*args)))
    except ImportError:
        out.put(asyncio.run(_fixed_rate(*args)))


def load_fixed_rate(
    port: int, path: str, rate: float, seconds: float, connections: int, users: list[int], procs: int
) -> dict[str, float | int | str]:
    """`rate` requests/s for `seconds` over `procs` processes of `connections` connections each."""
    queue: mp.Queue = mp.Queue()
    start = time.time() + 1.0  # every process builds its schedule first
    workers = [
        mp.Process(
            target=_fixed_rate_process,
            args=((port, path, rate / procs, seconds, connections, users, 1000 + j, start + j / rate), queue),
        )
        for j in range(procs)
    ]
    for w in workers:
        w.start()
    parts = [queue.get(timeout=seconds + 120) for _ in workers]
    for w in workers:
        w.join()
    latency = np.concatenate([p["latency"] for p in parts])  # type: ignore[misc]
    ok = np.concatenate([p["ok"] for p in parts])  # type: ignore[misc]
    lag = np.concatenate([p["dispatch_lag_ms"] for p in parts])  # type: ignore[misc]
    elapsed = max(float(p["elapsed"]) for p in parts)  # type: ignore[arg-type]
    achieved = len(latency) / elapsed
    lag_p99 = float(np.percentile(lag, 99))
    sustained = achieved >= 0.95 * rate and lag_p99 <= MAX_DISPATCH_LAG_MS
    return {
        "target_rps": rate,
        "achieved_rps": achieved,
        "requests": len(latency),
        "p50_ms": float(np.percentile(latency, 50)),
        "p99_ms": float(np.percentile(latency, 99)),
        "max_ms": float(latency.max()),
        "errors": int((~ok).sum()),
        "dispatch_lag_p99_ms": lag_p99,
        "sustained": "yes" if sustained else "no",
        "seconds": seconds,
    }


# wrk at a fixed rate, as wrk2 does it (wrk2 is not packaged): one connection per wrk thread, so the thread's
# script state is the connection's; connection j of n sends request k at start + j / rate + k * n / rate
# (delay() sleeps until then, rounded up to wrk's millisecond timer), and each latency runs from that
# scheduled time, so a response that keeps its connection busy past the next slot makes the next request
# late and that lateness counts. The schedule covers `seconds`; wrk runs 3 s longer for the last answers.
# Latencies and send lateness go into 0.1 ms histograms per thread, which done() prints for load_wrk_rate
# to merge. A literal percent sign is written twice (Python %% formatting).
WRK_RATE_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } gr_timespec;
int clock_gettime(int clk_id, gr_timespec *tp);
]]
local ts = ffi.new("gr_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local users = {%(users)s}
local threads = {}
local origin = nil

function setup(thread)
  if origin == nil then origin = now() + 0.5 end
  table.insert(threads, thread)
  thread:set("id", #threads)
  thread:set("start", origin)
end

function init(args)
  rate, nthreads, seconds = tonumber(args[1]), tonumber(args[2]), tonumber(args[4])
  math.randomseed(tonumber(args[3]) + id)
  first = start + (id - 1) / rate
  interval = nthreads / rate
  k, due, n, errors = 0, 0, 0, 0
  hist, lag = {}, {}
end

function delay()
  if first + k * interval >= start + seconds then return 3600000 end  -- the schedule is over
  local wait = (first + k * interval - now()) * 1000
  if wait <= 0 then return 0 end
  return math.ceil(wait)
end

function request()
  due = first + k * interval
  k = k + 1
  local b = math.floor((now() - due) * 10000)  -- 0.1 ms buckets
  lag[b] = (lag[b] or 0) + 1
  return wrk.format("GET", string.format("%(path)s", users[math.random(1, #users)]))
end

function response(status, headers, body)
  local b = math.floor((now() - due) * 10000)
  hist[b] = (hist[b] or 0) + 1
  n = n + 1
  if status ~= 200 then errors = errors + 1 end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local h, l = t:get("hist"), t:get("lag")
    local parts = {}
    for b, c in pairs(h) do parts[#parts + 1] = b .. ":" .. c end
    io.write("HIST ", table.concat(parts, " "), "\n")
    parts = {}
    for b, c in pairs(l) do parts[#parts + 1] = b .. ":" .. c end
    io.write("LAG ", table.concat(parts, " "), "\n")
    io.write("THREAD ", t:get("n"), " ", t:get("errors"), " ", t:get("k"), "\n")
  end
  local e = summary.errors
  io.write("SOCKET ", e.connect, " ", e.read, " ", e.write, " ", e.status, " ", e.timeout, "\n")
end
"""


def _histogram(line: str) -> dict[int, int]:
    return {int(b): int(c) for b, c in (part.split(":") for part in line.split())}


def _percentile(hist: dict[int, int], q: float) -> float:
    """The q-th percentile (ms) of a histogram of 0.1 ms buckets."""
    buckets = sorted(hist)
    counts = np.cumsum([hist[b] for b in buckets])
    at = int(np.searchsorted(counts, q / 100 * counts[-1]))
    return (buckets[min(at, len(buckets) - 1)] + 1) / 10


def load_wrk_rate(port: int, path: str, rate: float, seconds: float, connections: int, users: list[int]) -> dict:
    """`rate` requests/s for `seconds` from wrk (WRK_RATE_SCRIPT), `connections` connections (and threads)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        ids = ",".join(map(str, users))
        f.write(WRK_RATE_SCRIPT % {"path": path.replace("{id}", "%d"), "users": ids})
    try:
        out = subprocess.run(
            # wrk runs whole seconds: the schedule (from 0.5 s after start) ends first, answers still come.
            ["wrk", f"-t{connections}", f"-c{connections}", f"-d{math.ceil(seconds) + 3}s", "--timeout", "10s"]
            + ["-s", f.name, f"http://127.0.0.1:{port}", "--", str(rate), str(connections)]
            + [str(random.randrange(1 << 20)), str(seconds)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    latency: dict[int, int] = {}
    lag: dict[int, int] = {}
    answered = errors = sent = 0
    for line in out.splitlines():
        head, _, rest = line.partition(" ")
        if head in ("HIST", "LAG"):
            for b, c in _histogram(rest).items():
                into = latency if head == "HIST" else lag
                into[b] = into.get(b, 0) + c
        elif head == "THREAD":
            n, bad, k = map(int, rest.split())
            answered, errors, sent = answered + n, errors + bad, sent + k
        elif head == "SOCKET":
            connect, read, write, _status, timeout = map(int, rest.split())  # non-2xx: counted per thread
            errors += connect + read + write + timeout
    lag_p99 = _percentile(lag, 99)
    achieved = answered / seconds
    return {
        "target_rps": rate,
        "achieved_rps": achieved,
        "requests": answered,
        "p50_ms": _percentile(latency, 50),
        "p99_ms": _percentile(latency, 99),
        "max_ms": max(latency) / 10,
        "errors": errors,
        "unanswered": sent - answered,  # in flight when wrk stopped, or lost with a socket error
        "dispatch_lag_p99_ms": lag_p99,
        "sustained": "yes" if achieved >= 0.95 * rate and lag_p99 <= MAX_DISPATCH_LAG_MS else "no",
        "histogram": latency,
        "seconds": seconds,
    }


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


class Trace(threading.Thread):
    """--trace: once a second during phase 3, the CPU (% of one core) of the daily job, its PostgreSQL backends
    (job_db) and their parallel workers (par), the API's processes (api) and backends (api_db), the server's
    other processes (pg: checkpointer, WAL writer, autovacuum...), the load generator (wrk) and the rest of
    the machine (other), the share of the second in which some task, the job's own threads included, waited
    for a CPU (psi, /proc/pressure/cpu; high while CPU is left idle: the vCPUs themselves were slow to run) and
    the nice/policy of the job's backends; printed beside the job's log lines and each window's p99
    (`windows`: (end second, p99 ms))."""

    COLUMNS = ("job", "job_db", "par", "api", "api_db", "pg", "wrk", "other", "psi")

    def __init__(self, url: str, server_pid: int, job: DailyJob) -> None:
        super().__init__(daemon=True)
        self.url, self.server_pid, self.job = url, server_pid, job
        self.rows: list[tuple[float, dict[str, float], str]] = []
        self.done = threading.Event()

    def _groups(self, conn: db.Connection) -> tuple[dict[str, set[int]], str]:
        acts = conn.execute(
            "SELECT pid, backend_type, application_name, leader_pid, datname = current_database() AS here"
            " FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        ).fetchall()
        api = {r["pid"] for r in acts if r["application_name"] == "graphrec-serve"}
        job = {r["pid"] for r in acts if r["here"] and r["backend_type"] == "client backend"} - api
        par = {r["pid"] for r in acts if r["backend_type"] == "parallel worker" and r["leader_pid"] in job}
        server = psutil.Process(self.server_pid)
        groups = {
            "job": {self.job.pid},
            "job_db": job,
            "par": par,
            "api": {self.server_pid} | {c.pid for c in server.children(recursive=True)},
            "api_db": api,
            "wrk": {c.pid for c in psutil.Process().children(recursive=True) if c.name() == "wrk"},
        }
        me = psutil.Process(conn.info.backend_pid)
        postmaster = me.parent()
        taken = set().union(*groups.values())
        groups["pg"] = (
            {postmaster.pid} | {c.pid for c in postmaster.children() if c.pid not in taken} if postmaster else set()
        )
        prio = []
        for pid in sorted(job):
            try:
                policy = os.sched_getscheduler(pid)
                name = {os.SCHED_IDLE: "idle", os.SCHED_BATCH: "batch"}.get(policy, "other")
                prio.append(f"{os.getpriority(os.PRIO_PROCESS, pid)}/{name}")
            except OSError:
                pass
        return groups, " ".join(prio)

    @staticmethod
    def _cpu_waited_us() -> float:
        try:
            with open("/proc/pressure/cpu") as f:
                return float(f.readline().split("total=")[1])
        except (OSError, IndexError, ValueError):
            return math.nan

    def run(self) -> None:
        cpu: dict[int, float] = {}
        busy = lambda t: t.user + t.nice + t.system + t.irq + t.softirq + t.steal  # noqa: E731
        with db.connect(self.url, autocommit=True) as conn:
            last_t, last_busy, last_psi = time.perf_counter(), busy(psutil.cpu_times()), self._cpu_waited_us()
            while not self.done.wait(1.0):
                groups, prio = self._groups(conn)
                now, all_busy, waited = time.perf_counter(), busy(psutil.cpu_times()), self._cpu_waited_us()
                dt = now - last_t
                row = {}
                for name, pids in groups.items():
                    spent = 0.0
                    for pid in pids:
                        try:
                            t = psutil.Process(pid).cpu_times()
                        except psutil.Error:
                            continue
                        spent += t.user + t.system - cpu.get(pid, 0.0)
                        cpu[pid] = t.user + t.system
                    row[name] = 100 * spent / dt
                row["other"] = max(0.0, 100 * (all_busy - last_busy) / dt - sum(row.values()))
                row["psi"] = (waited - last_psi) / 1e4 / dt
                self.rows.append((now - self.job.t0, row, prio))
                last_t, last_busy, last_psi = now, all_busy, waited

    def print(self, windows: list[tuple[float, float]]) -> None:
        events: list[tuple[float, str]] = [
            (t, " ".join(f"{row[c]:6.0f}" for c in self.COLUMNS) + f"  {p}") for t, row, p in self.rows
        ]
        for t, line in self.job.lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            what = (
                f"stage {rec['stage']} {rec['event']}" if rec.get("event") in ("start", "done") else rec.get("msg", "")
            )
            events.append((t, f"  {what}{' ' + str(rec['seconds']) + ' s' if 'seconds' in rec else ''}"[:110]))
        events += [(t, f"  window {i + 1}: p99 {p99:.1f} ms") for i, (t, p99) in enumerate(windows)]
        print("trace (% of one core; seconds since the job started):", file=sys.stderr)
        print("     t " + " ".join(f"{c:>6}" for c in self.COLUMNS) + "  job_db nice/policy", file=sys.stderr)
        for t, text in sorted(events, key=lambda e: e[0]):
            print(f"{t:6.1f} {text}", file=sys.stderr)


def load(tool: str, port: int, path: str, seconds: float, connections: int, users: list[int]) -> dict[str, float]:
    if tool == "wrk":
        return load_wrk(port, path, seconds, connections, users)
    # Its own process, so the threads here do not share its interpreter lock.
    queue: mp.Queue = mp.Queue()
    proc = mp.Process(target=_python_load_process, args=(port, path, seconds, connections, users, queue))
    proc.start()
    result = queue.get(timeout=seconds + 60)
    proc.join()
    return result


def fixed_rate(args: argparse.Namespace, port: int, path: str, seconds: float, users: list[int]) -> dict:
    if args.tool == "wrk":
        return load_wrk_rate(port, path, args.rate, seconds, args.rate_connections, users)
    return load_fixed_rate(port, path, args.rate, seconds, 16, users, args.load_procs)


def main() -> None:
    cfg = load_config().serve
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 10)))
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", 32)))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", cfg.workers)))
    parser.add_argument("--pool-max", type=int, default=cfg.pool_max)
    parser.add_argument("--tool", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--rate", type=float, default=float(os.environ.get("BENCH_RATE", 2000)))
    parser.add_argument("--load-procs", type=int, default=2, help="processes of the Python fixed-rate generator")
    parser.add_argument("--rate-connections", type=int, default=32, help="connections of wrk at a fixed rate")
    parser.add_argument("--window", type=float, default=5.0, help="seconds per load window during the daily job")
    parser.add_argument("--trace", action="store_true", help="print a per-second CPU timeline of phase 3")
    parser.add_argument("--swap-only", action="store_true", help="phase 3 alone (after a 2-s warm-up)")
    args = parser.parse_args()

    figures: dict[str, float | int | str] = {
        "serve_tool": args.tool,
        "serve_workers": args.workers,
        "serve_connections": args.connections,
        "serve_seconds": args.seconds,
    }
    url, env, users = world()
    figures["serve_users_requested"] = len(users)
    port = free_port()
    server = start_server(url, env["GRAPHREC_PATHS__ARTIFACTS"], port, args.workers, args.pool_max)
    for_you = "/v1/users/{id}/for-you"
    try:
        load(args.tool, port, for_you, 2, args.connections, users)  # warm up: connections, prepared statements
        if not args.swap_only:
            meter = CpuMeter(url, server.pid)
            before = meter.snapshot()
            base = load(args.tool, port, "/healthz", args.seconds, args.connections, users)
            base_app_s, base_db_s = meter.spent(before, meter.snapshot())
            before = meter.snapshot()
            steady = load(args.tool, port, for_you, args.seconds, args.connections, users)
            server_s, db_s = meter.spent(before, meter.snapshot())
            cpu_s = server_s + db_s
            fixed = fixed_rate(args, port, for_you, args.seconds, users)
        job = DailyJob(env)
        job.start()
        job.started.wait()
        trace = Trace(url, server.pid, job) if args.trace else None
        if trace:
            trace.start()
        # A wrk run's schedule covers its window, then it waits 3 s for the last answers: the next starts when
        # the schedule ends, so the load runs without a gap from the job's start to its end.
        windows: list[dict] = []
        runs: list[threading.Thread] = []

        def window(at: int) -> None:
            windows[at] = fixed_rate(args, port, for_you, args.window, users)
            windows[at]["end_s"] = time.perf_counter() - job.t0

        while job.is_alive():
            windows.append({})
            runs.append(threading.Thread(target=window, args=(len(windows) - 1,)))
            runs[-1].start()
            job.join(args.window)
        for run in runs:
            run.join()
        if trace:
            trace.done.set()
            trace.join()
            trace.print([(float(w["end_s"]), float(w["p99_ms"])) for w in windows])
        if job.status != 0:
            raise SystemExit(f"the daily job failed ({job.status}):\n{job.output[-4000:]}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    swap_requests = sum(int(w["requests"]) for w in windows)
    swap_seconds = sum(float(w["seconds"]) for w in windows)
    swap_histogram: dict[int, int] = {}
    for w in windows:
        for b, c in w.get("histogram", {}).items():
            swap_histogram[b] = swap_histogram.get(b, 0) + c
    generator = (
        f"wrk, {args.rate_connections} connections each on its own schedule"
        if args.tool == "wrk"
        else f"python asyncio, {args.load_procs} processes x 16 keep-alive connections"
    )
    if not args.swap_only:
        figures.update(
            {
                "serve_baseline_healthz_rps": base["rps"],
                "serve_baseline_healthz_p99_ms": base["p99_ms"],
                "serve_baseline_healthz_cpu_ms_per_request_app": 1e3 * base_app_s / base["requests"],
                "serve_baseline_healthz_cpu_ms_per_request_db": 1e3 * base_db_s / base["requests"],
                "serve_requests": int(steady["requests"]),
                # What one request costs in CPU (server + its Postgres backends; the load generator excluded),
                # and the rate both cores could sustain at that cost with nothing else running.
                "serve_cpu_ms_per_request": 1e3 * cpu_s / steady["requests"],
                "serve_cpu_ms_per_request_app": 1e3 * server_s / steady["requests"],
                "serve_cpu_ms_per_request_db": 1e3 * db_s / steady["requests"],
                "serve_rps_if_2_cores_free": 2 * steady["requests"] / cpu_s,
                "serve_p50_ms": steady["p50_ms"],
                "serve_fixed_rate_target_rps": fixed["target_rps"],
                "serve_fixed_rate_achieved_rps": fixed["achieved_rps"],
                "serve_fixed_rate_requests": fixed["requests"],
                "serve_fixed_rate_p50_ms": fixed["p50_ms"],
                "serve_fixed_rate_max_ms": fixed["max_ms"],
                "serve_fixed_rate_errors": fixed["errors"],
                "serve_fixed_rate_dispatch_lag_p99_ms": fixed["dispatch_lag_p99_ms"],
                "serve_fixed_rate_sustained": fixed["sustained"],
                "serve_fixed_rate_generator": generator,
                "serve_rps": steady["rps"],
                "serve_p99_ms": steady["p99_ms"],
                "serve_errors": int(steady["errors"] + base["errors"]),
                "serve_fixed_rate_p99_ms": fixed["p99_ms"],
            }
        )
    figures.update(
        {
            "serve_swap_daily_job": " ".join(DAILY_JOB_PRIORITY) + " graphrec recommend",
            "serve_swap_daily_job_s": job.seconds,
            "serve_swap_windows": len(windows),
            "serve_swap_requests": swap_requests,
            "serve_swap_errors": sum(int(w["errors"]) for w in windows),
            "serve_swap_sustained": "yes" if all(w["sustained"] == "yes" for w in windows) else "no",
            "serve_swap_p99_ms_per_window": " ".join(f"{float(w['p99_ms']):.1f}" for w in windows),
            "serve_swap_p99_ms_all": _percentile(swap_histogram, 99) if swap_histogram else float("nan"),
            "serve_swap_rps": swap_requests / max(swap_seconds, 1e-9),
            "serve_swap_p99_ms": max(float(w["p99_ms"]) for w in windows) if windows else float("nan"),
        }
    )
    report(figures)


if __name__ == "__main__":
    main()
