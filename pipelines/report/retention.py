"""Retention of the nightly reports (`report.keep_days`): the newest report always stays."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from pipelines.config import Config


def expired_reports(cfg: Config, today: date) -> list[Path]:
    """Report folders (`<report.directory>/<night>/`) older than `report.keep_days` on `today`."""
    base = cfg.report.directory
    nights = []
    for p in base.iterdir() if base.is_dir() else []:
        try:
            nights.append((date.fromisoformat(p.name), p))
        except ValueError:
            continue  # not a night's folder (the GX project, for one)
    nights.sort()
    cutoff = today - timedelta(days=cfg.report.keep_days)
    return [p for night, p in nights[:-1] if night < cutoff]
