"""When the nightly DAG runs: the config's `schedule:` and `timezone:` keys.

Light on purpose (YAML and the standard library only): the DAG file reads these at parse time,
without loading the rest of the package.

    schedule:
      cron: "0 0 * * *"       # the night's interval in `timezone`; none: manual runs only
      start_date: 2026-01-01  # the first night Airflow schedules; earlier nights are refused
      catchup: false          # true: Airflow runs every night from start_date
      max_active_runs: 1      # nights that may run at once
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import ConfigError

_CRON = re.compile(r"^\s*(\S+\s+){4}\S+\s*$")
_KEYS = {"cron", "start_date", "catchup", "max_active_runs"}


@dataclass(frozen=True)
class ScheduleSpec:
    cron: str | None = "0 0 * * *"
    start_date: date = date(2026, 1, 1)
    catchup: bool = False
    max_active_runs: int = 1


def parse_schedule(raw: Any) -> ScheduleSpec:
    """Validate the `schedule:` mapping (None: the defaults)."""
    if raw is None:
        return ScheduleSpec()
    if not isinstance(raw, dict):
        raise ConfigError(f"schedule: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"schedule: unknown keys {unknown}; allowed: {sorted(_KEYS)}")
    defaults = ScheduleSpec()
    cron = raw.get("cron", defaults.cron)
    if cron is None or str(cron).lower() == "none":
        cron = None
    elif not isinstance(cron, str) or not _CRON.match(cron):
        raise ConfigError(
            f"schedule.cron: expected a cron expression such as '0 0 * * *' or none, got {cron!r}"
        )
    start = raw.get("start_date", defaults.start_date)
    if isinstance(start, str):
        try:
            start = date.fromisoformat(start)
        except ValueError:
            start = None
    if not isinstance(start, date):
        raise ConfigError(f"schedule.start_date: expected a date YYYY-MM-DD, got {raw.get('start_date')!r}")
    catchup = raw.get("catchup", defaults.catchup)
    if not isinstance(catchup, bool):
        raise ConfigError(f"schedule.catchup: expected true or false, got {catchup!r}")
    runs = raw.get("max_active_runs", defaults.max_active_runs)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ConfigError(f"schedule.max_active_runs must be an integer >= 1, got {runs!r}")
    return ScheduleSpec(cron=cron, start_date=start, catchup=catchup, max_active_runs=runs)


def read_schedule(path: str | Path) -> tuple[ScheduleSpec, str]:
    """`(schedule, timezone)` of a config file, for the DAG file at parse time."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(
            f"cannot read the config file {p}: {err}; set SEAM_CONFIG to a readable YAML file"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return parse_schedule(raw.get("schedule")), str(raw.get("timezone", "UTC"))
