"""Telegram alerts against a local fake Bot API server: a failed job names its stage, a finished job sends
its summary, and an alert that cannot be delivered never fails the job."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from graphrec.app import jobs as pipeline
from graphrec.core import alerts, db
from graphrec.core.artifacts import Embeddings
from graphrec.core.config import Config, PathsConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from world import build_world  # noqa: E402


def _config(artifacts: Path) -> Config:
    return Config(paths=PathsConfig(artifacts=str(artifacts)))


class FakeTelegram:
    def __init__(self, status: int = 200) -> None:
        self.messages: list[tuple[str, dict]] = []
        self.status = status
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.messages.append((self.path, body))
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"ok": fake.status == 200}).encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def telegram(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    fake = FakeTelegram()
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:secret")
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "-42")
    monkeypatch.setenv("GRAPHREC_TELEGRAM_API", fake.url)
    yield fake
    fake.server.shutdown()


def test_off_without_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEGRAM_CHAT_ID", raising=False)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:secret")
    assert not alerts.enabled() and alerts.send("hello") is False


def test_finished_job_sends_summary(telegram: FakeTelegram, migrated_url: str, artifacts: Path, tmp_path: Path) -> None:
    world = build_world(migrated_url)
    emb_file = tmp_path / "emb.npz"
    world.emb.save(emb_file)
    cfg = _config(artifacts)
    result = pipeline.recommend(cfg, migrated_url, embeddings_path=emb_file)
    assert len(telegram.messages) == 1
    path, body = telegram.messages[0]
    assert path == "/bot123:secret/sendMessage" and body["chat_id"] == "-42"
    text = body["text"]
    assert f"run {result.run_id}" in text and "21 users served" in text and "420 picks" in text
    assert "20 fallbacks" in text and "model v-test" in text and "coverage" in text


def test_failed_job_names_the_stage_and_keeps_serving(
    telegram: FakeTelegram, migrated_url: str, artifacts: Path, tmp_path: Path
) -> None:
    world = build_world(migrated_url)
    cfg = _config(artifacts)
    good = tmp_path / "good.npz"
    world.emb.save(good)
    pipeline.recommend(cfg, migrated_url, embeddings_path=good)
    # User vectors of the wrong width: FAISS refuses them at retrieval.
    e = world.emb
    bad = Embeddings(
        e.model_kind,
        "v-bad",
        e.user_ids,
        np.zeros((len(e.user_ids), 3), np.float32),
        e.good_ids,
        e.good_vecs,
        e.good_known,
    )
    bad_file = tmp_path / "bad.npz"
    bad.save(bad_file)
    with pytest.raises(ValueError, match="good vectors dimension 8"):
        pipeline.recommend(cfg, migrated_url, embeddings_path=bad_file)
    text = telegram.messages[-1][1]["text"]
    assert "graphrec recommend FAILED" in text and "at stage retrieve" in text
    with db.connect(migrated_url) as conn:
        runs = conn.execute("SELECT id, status, metrics, model_version FROM graphrec_runs ORDER BY id").fetchall()
        current = conn.execute("SELECT run_id FROM graphrec_current").fetchone()["run_id"]
    assert [r["status"] for r in runs] == ["succeeded", "failed"]
    assert runs[1]["metrics"]["stage"] == "retrieve" and runs[1]["model_version"] == "v-bad"
    assert current == runs[0]["id"], "the failed run left the previous picks served"


def test_undeliverable_alert_never_fails_the_job(
    monkeypatch: pytest.MonkeyPatch, migrated_url: str, artifacts: Path, tmp_path: Path
) -> None:
    broken = FakeTelegram(status=500)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:secret")
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "-42")
    monkeypatch.setenv("GRAPHREC_TELEGRAM_API", broken.url)
    assert alerts.send("hello") is False
    world = build_world(migrated_url)
    emb_file = tmp_path / "emb.npz"
    world.emb.save(emb_file)
    cfg = _config(artifacts)
    assert pipeline.recommend(cfg, migrated_url, embeddings_path=emb_file).counts["picks"] == 420
    broken.server.shutdown()
    broken.server.server_close()
    # Nothing listening at all: still no exception.
    assert alerts.send("hello") is False
