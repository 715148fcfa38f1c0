"""Wall time and memory per stage of a job, for the run row, the summary log line and the benchmark."""

from __future__ import annotations

import logging
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class Stages:
    """Times named stages; `current` names the stage running (what a failure alert reports)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        self.current = "start"
        self._start = time.perf_counter()

    @contextmanager
    def stage(self, name: str, **fields: Any) -> Iterator[None]:
        self.current = name
        log.info("stage %s", name, extra={"stage": name, "event": "start", **fields})
        t0 = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
        self.peak_mb[name] = peak_rss_mb()
        log.info(
            "stage %s done in %.2fs",
            name,
            self.seconds[name],
            extra={
                "stage": name,
                "event": "done",
                "seconds": round(self.seconds[name], 3),
                "peak_mb": round(self.peak_mb[name]),
            },
        )

    @property
    def total_s(self) -> float:
        return time.perf_counter() - self._start
