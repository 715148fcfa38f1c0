"""Telegram alerts for the scheduled jobs: a failed job says what failed and at which stage; a finished job
sends a short summary. Off unless TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID are set (environment only, never
config files). GRAPHREC_TELEGRAM_API overrides the API base URL (a test points it at a local server).
Sending never raises: a failing alert is logged and the job's own outcome stands."""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_API = "https://api.telegram.org"
TIMEOUT_S = 10.0
# Telegram rejects messages longer than this.
MAX_CHARS = 4096


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("TELEGRAM_BOT_TOKEN") and env.get("TELEGRAM_CHAT_ID"))


def send(text: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `text` to the configured chat. True when Telegram accepted it; False when alerts are off or
    sending failed (logged, never raised)."""
    env = os.environ if environ is None else environ
    if not enabled(env):
        return False
    base = env.get("GRAPHREC_TELEGRAM_API", DEFAULT_API).rstrip("/")
    url = f"{base}/bot{env['TELEGRAM_BOT_TOKEN']}/sendMessage"
    body = json.dumps({"chat_id": env["TELEGRAM_CHAT_ID"], "text": text[:MAX_CHARS]}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            ok = bool(json.loads(resp.read() or b"{}").get("ok"))
    except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts, bad JSON
        # The token is part of the URL: log the base only.
        log.warning("telegram alert not sent: %s", _redact(str(e), env), extra={"alert_api": base})
        return False
    if not ok:
        log.warning("telegram alert refused", extra={"alert_api": base})
    return ok


def _redact(text: str, env: Mapping[str, str]) -> str:
    token = env.get("TELEGRAM_BOT_TOKEN", "")
    return text.replace(token, "***") if token else text


def failure_text(job: str, stage: str, error: BaseException | str, run_id: int | None = None) -> str:
    where = f" (run {run_id})" if run_id is not None else ""
    what = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return f"graphrec {job} FAILED{where} at stage {stage}:\n{what}"


def recommend_summary_text(summary: Mapping[str, Any]) -> str:
    return (
        f"graphrec recommend ok (run {summary.get('run_id')}): "
        f"{summary.get('users_served', 0)} users served, {summary.get('picks', 0)} picks, "
        f"{summary.get('fallback_picks', 0)} fallbacks, coverage {float(summary.get('coverage', 0.0)):.1%}, "
        f"{float(summary.get('duration_s', 0.0)):.1f} s, model {summary.get('model_version')}"
    )


def notify_failure(job: str, stage: str, error: BaseException | str, run_id: int | None = None) -> bool:
    return send(failure_text(job, stage, error, run_id))


def notify_summary(text: str) -> bool:
    return send(text)
