from datetime import UTC, date, datetime, timedelta

import pytest

from pipelines.config import parse_config
from pipelines.errors import ConfigError
from pipelines.run_context import night_bounds, night_of


@pytest.mark.parametrize(
    ("night", "hours"),
    [(date(2026, 3, 28), 24), (date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 10, 26), 24)],
)
def test_a_berlin_night_is_23_or_25_hours_across_daylight_saving(night, hours):
    b = night_bounds(night, "Europe/Berlin")
    assert b.end_utc - b.start_utc == timedelta(hours=hours)
    assert (b.start, b.end) == (datetime(night.year, night.month, night.day), b.start + timedelta(days=1))
    assert b.start_utc.tzinfo is UTC


def test_utc_bounds_are_the_local_midnights():
    b = night_bounds(date(2026, 11, 22), "America/New_York")
    assert b.start_utc == datetime(2026, 11, 22, 5, tzinfo=UTC)  # EST is UTC-5
    assert b.end_utc == datetime(2026, 11, 23, 5, tzinfo=UTC)


def test_night_of_a_logical_date_is_its_local_calendar_day():
    assert night_of(datetime(2026, 11, 22, tzinfo=UTC), "UTC") == date(2026, 11, 22)
    assert night_of(datetime(2026, 11, 21, 23, tzinfo=UTC), "Europe/Berlin") == date(2026, 11, 22)
    assert night_of(datetime(2026, 11, 22, 5, tzinfo=UTC), "America/New_York") == date(2026, 11, 22)
    with pytest.raises(ValueError, match="timezone-aware"):
        night_of(datetime(2026, 11, 22), "UTC")


def test_unknown_timezone_is_a_config_error_naming_the_key(tmp_path):
    raw = {
        "timezone": "Mars/Olympus",
        "sources": {"erp": {"url": "sqlite:///x.db", "tables": {"products": {}}}},
    }
    with pytest.raises(ConfigError, match="timezone: 'Mars/Olympus' is not an IANA time zone"):
        parse_config(raw, base=tmp_path)
