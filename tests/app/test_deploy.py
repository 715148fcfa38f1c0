"""What can be checked of the deployment files without Docker or systemd: the Dockerfile copies files that
exist and runs the graphrec CLI; the timers and crontab start real graphrec commands; no secrets in files."""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from graphrec.app.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
JOBS = {"recommend": "graphrec-recommend", "retrain": "graphrec-retrain"}


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_dockerfile_copies_existing_files_and_runs_the_cli() -> None:
    steps = _instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    copies = [shlex.split(arg)[:-1] for op, arg in steps if op == "COPY"]
    assert copies
    for sources in copies:
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"
    # Every package setuptools installs is copied in.
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {s for sources in copies for s in sources}
    assert {p.rstrip("*") for p in packages} <= copied
    assert ("ENTRYPOINT", '["graphrec"]') in steps
    # The torch it installs is the one pyproject pins.
    pin = next(
        d
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if d.startswith("torch==")
    )
    assert any(op == "RUN" and pin in arg and "download.pytorch.org/whl/cpu" in arg for op, arg in steps)


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / name).read_text())
    return parser


@pytest.mark.parametrize("command", sorted(JOBS))
def test_systemd_units_start_real_commands(command: str) -> None:
    service = _unit(f"{JOBS[command]}.service")
    exec_start = shlex.split(service["Service"]["ExecStart"])
    assert exec_start[0].endswith("/graphrec") and exec_start[1] == command and command in cli.commands
    assert service["Service"]["Type"] == "oneshot"
    assert "75" in service["Service"]["SuccessExitStatus"].split()
    timer = _unit(f"{JOBS[command]}.timer")
    assert timer["Timer"]["Unit"] == f"{JOBS[command]}.service"
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"


def test_crontab_schedules_both_jobs() -> None:
    jobs = {}
    for line in (DEPLOY / "crontab").read_text().splitlines():
        if not line.strip() or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, f"not a crontab line: {line}"
        m = re.search(r"graphrec (\w+)", fields[5])
        assert m and m.group(1) in cli.commands
        jobs[m.group(1)] = fields[:5]
    assert set(jobs) == set(JOBS)
    assert jobs["retrain"][4] != "*", "retrain is weekly"
    assert jobs["recommend"][2:] == ["*", "*", "*"], "recommend is daily"


def test_no_secrets_in_deploy_files() -> None:
    for path in [*DEPLOY.iterdir(), ROOT / "Dockerfile"]:
        for line in path.read_text().splitlines():
            m = re.match(r"^\s*(?:export\s+|ENV\s+)?(\w*(?:TOKEN|PASSWORD|SECRET|DATABASE_URL|CHAT_ID)\w*)=(\S+)", line)
            assert not m, f"{path.name} sets {m.group(1) if m else ''} in the file"


def test_recommend_yields_the_cpu_to_the_api() -> None:
    # The daily job shares the API's machine: it runs on idle CPU and disk time only (bench-serve phase 3).
    service = _unit("graphrec-recommend.service")["Service"]
    assert (service["CPUSchedulingPolicy"], service["IOSchedulingClass"], service["Nice"]) == ("idle", "idle", "19")
    line = next(ln for ln in (DEPLOY / "crontab").read_text().splitlines() if "graphrec recommend" in ln)
    assert "chrt --idle 0 ionice -c 3 nice -n 19 .venv/bin/graphrec recommend" in line
