"""Which night a run covers: the run context and the business day's bounds.

A night D is the business day [D 00:00, D+1 00:00) in the config's `timezone`.  Source timestamps
without a zone are taken as wall-clock time in that zone (what most ERPs store), so they are
compared with `NightBounds.start`/`end`; timestamps with a zone are compared with the same
instants in UTC (`start_utc`/`end_utc`).  Across a daylight-saving change a night is 23 or 25
hours long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.errors import ConfigError


@dataclass(frozen=True)
class RunContext:
    """Which night, and which run of it (Airflow's run id; None from the CLI)."""

    run_date: date
    run_id: str | None = None


@dataclass(frozen=True)
class NightBounds:
    start: datetime  # naive wall-clock time in the business zone
    end: datetime
    start_utc: datetime  # the same instants, timezone-aware UTC
    end_utc: datetime


def business_zone(name: str) -> ZoneInfo:
    """The IANA zone of the config's `timezone` key."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"timezone: {name!r} is not an IANA time zone; use a name such as 'UTC', "
            f"'Europe/Berlin' or 'America/New_York'"
        ) from None


def night_bounds(run_date: date, timezone: str = "UTC") -> NightBounds:
    """[start, end) of the business day `run_date` in `timezone`."""
    zone = business_zone(timezone)
    start = datetime.combine(run_date, datetime.min.time())
    end = start + timedelta(days=1)
    return NightBounds(
        start,
        end,
        start.replace(tzinfo=zone).astimezone(UTC),
        end.replace(tzinfo=zone).astimezone(UTC),
    )


def night_of(moment: datetime, timezone: str = "UTC") -> date:
    """The business day an aware moment (e.g. Airflow's logical date) falls on in `timezone`."""
    if moment.tzinfo is None:
        raise ValueError(f"night_of needs a timezone-aware datetime, got {moment!r}")
    local = moment.astimezone(business_zone(timezone))
    return date(local.year, local.month, local.day)
