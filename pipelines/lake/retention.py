"""Retention: which nights of the lake may go (`lake.keep_days`, `lake.quarantine_keep_days`).

Never removed:
- any partition of an incrementally extracted table: a night's dataset is rebuilt from every
  increment up to it, so all of them are needed (the watermarks point into them);
- seam's outputs (and the exchanges between its steps, `<lake>/_exchange/`) within the accuracy
  window (the last `forecast.horizon + 7` nights and the night before, which the report compares
  with), whatever `keep_days` says;
- the newest partition of every dataset: the last good night stays, however old.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pipelines.config import Config
from pipelines.lake.store import KEY, OUTPUTS, Lake


@dataclass(frozen=True)
class Expired:
    source: str
    table: str
    night: date

    def describe(self) -> str:
        return f"source={self.source}/table={self.table}/{KEY}={self.night}"


def expired_partitions(cfg: Config, today: date) -> list[Expired]:
    """The lake's partitions older than their retention on `today` (see the module docstring)."""
    lake = Lake(cfg.lake)
    incremental = {(s.name, t.name) for s in cfg.sources for t in s.tables if t.mode == "incremental"}
    window = cfg.forecast.horizon + 8
    out = []
    for source, table in lake.datasets():
        if (source, table) in incremental:
            continue
        if table.startswith("quarantine_"):
            keep = cfg.retention.quarantine_keep_days
        elif source == OUTPUTS:
            keep = max(cfg.retention.keep_days, window)
        else:
            keep = cfg.retention.keep_days
        days = lake.partition_days(source, table)
        cutoff = today - timedelta(days=keep)
        out += [Expired(source, table, d) for d in days[:-1] if d < cutoff]
    for output in lake.exchanges():  # an exchange between steps: kept as long as seam's outputs
        days = lake.exchange_days(output)
        cutoff = today - timedelta(days=max(cfg.retention.keep_days, window))
        out += [Expired(OUTPUTS, output, d) for d in days[:-1] if d < cutoff]
    return out


def prune_lake(cfg: Config, expired: list[Expired]) -> list[Path]:
    lake = Lake(cfg.lake)
    return [lake.remove_partition(e.source, e.table, e.night) for e in expired]
