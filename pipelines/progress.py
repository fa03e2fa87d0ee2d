"""Progress of a long step, in the log every ~30 seconds: done / total, rate, time left.

The CLI shows it on stderr and Airflow in the task's log, so a 25-minute forecast is never silent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def _duration(seconds: float) -> str:
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass
class Progress:
    """Count work done and log a line at most every `every` seconds (and once at the end)."""

    what: str
    total: int
    unit: str = "series"
    every: float = 30.0
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("pipelines.progress"))
    clock: Callable[[], float] = time.monotonic
    done: int = 0

    def __post_init__(self) -> None:
        self._start = self._last = self.clock()

    def add(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self._last >= self.every and self.done < self.total:
            self._last = now
            self.logger.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((self.clock() if now is None else now) - self._start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        share = self.done / self.total if self.total else 1.0
        eta = _duration(left) if left == left else "?"
        return (
            f"{self.what}: {self.done:,}/{self.total:,} {self.unit} ({share:.0%}), "
            f"{rate:,.1f} {self.unit}/s, about {eta} left"
        )

    def finish(self) -> None:
        elapsed = self.clock() - self._start
        self.logger.info("%s: %s %s in %s", self.what, f"{self.done:,}", self.unit, _duration(elapsed))
