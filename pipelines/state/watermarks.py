"""Incremental extraction watermarks: the highest cursor value each night committed, per table.

Stored as a small JSON history per table in the lake's state area; a night reads the watermark
of the newest *earlier* night, so re-running a night reads the same window.
"""

from __future__ import annotations

from datetime import date, datetime

from pipelines.lake import Lake

_KIND = "watermarks"


def watermark_before(lake: Lake, source: str, table: str, run_date: date) -> datetime | None:
    """Highest cursor committed by the newest run *before* `run_date` (re-runs are idempotent)."""
    state = lake.read_state(_KIND, source, table)
    history: dict[str, str] = (state or {}).get("history", {})
    earlier = [d for d in history if d < run_date.isoformat()]
    if not earlier:
        return None
    return datetime.fromisoformat(history[max(earlier)])


def commit_watermark(lake: Lake, source: str, table: str, run_date: date, value: datetime | None) -> None:
    """Record the night's watermark (after its partition is in place)."""
    if value is None:
        return
    state = lake.read_state(_KIND, source, table) or {"history": {}}
    state["history"][run_date.isoformat()] = value.isoformat()
    lake.write_state(_KIND, source, table, state)
