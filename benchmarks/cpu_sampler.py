"""Where a machine's CPU went during a benchmark: per component, sampled from /proc.

A component is a process session (`setsid`: each of `scripts.local_cluster.LocalCluster`'s
processes starts one, and its children stay in it) or every process of one command name (the
database servers).  A component's CPU time is the user + system time of its live processes plus
what they reaped of their exited children, so a Celery worker's finished task processes count.
The machine's busy time (everything but idle and I/O wait, all cores) comes from /proc/stat.

    sampler = CpuSampler(sessions={"scheduler": pid}, commands={"postgres": "postgres"})
    with sampler:
        ...
    sampler.used(start, end)  # {"scheduler": cpu_s, ..., "machine": busy_s}

Linux only; elsewhere the samples are empty and `used` returns nothing.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
MACHINE = "machine"


def _stat_fields(pid: str) -> tuple[str, list[str]] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces; the fields after it are numbers
    close = raw.rfind(")")
    return raw[raw.find("(") + 1 : close], raw[close + 2 :].split()


def _machine_busy() -> float:
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    ticks = [int(v) for v in first[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / _TICK


def snapshot(sessions: dict[str, int], commands: dict[str, str]) -> dict[str, float]:
    """CPU seconds so far of each component, and the machine's busy seconds."""
    by_session = {sid: name for name, sid in sessions.items()}
    out: dict[str, float] = defaultdict(float)
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not pid.isdigit():
            continue
        parsed = _stat_fields(pid)
        if parsed is None:
            continue
        comm, fields = parsed
        # fields[0] is the state (field 3 of stat): the session is field 6, the times 14-17
        sid = int(fields[3])
        cpu = sum(int(v) for v in fields[11:15]) / _TICK
        name = by_session.get(sid) or next((n for n, c in commands.items() if comm.startswith(c)), None)
        if name is not None:
            out[name] += cpu
    out[MACHINE] = _machine_busy()
    return dict(out)


class CpuSampler:
    """Samples `snapshot` every `interval` seconds on a thread while the block runs."""

    def __init__(
        self,
        sessions: dict[str, int] | None = None,
        commands: dict[str, str] | None = None,
        interval: float = 1.0,
    ) -> None:
        self.sessions = dict(sessions or {})
        self.commands = dict(commands or {})
        self.interval = interval
        self.samples: list[tuple[datetime, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        self.samples.append((datetime.now(UTC), snapshot(self.sessions, self.commands)))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> CpuSampler:
        self._sample()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def used(self, start: datetime, end: datetime) -> dict[str, float]:
        """CPU seconds of each component between the samples nearest `start` and `end` (a
        component's processes that ended in between are counted up to their last sample)."""
        if len(self.samples) < 2 or end <= start:
            return {}
        first = min(self.samples, key=lambda s: abs((s[0] - start).total_seconds()))
        last = min(self.samples, key=lambda s: abs((s[0] - end).total_seconds()))
        names = set(first[1]) | set(last[1])
        return {n: round(max(0.0, last[1].get(n, 0.0) - first[1].get(n, 0.0)), 1) for n in sorted(names)}
