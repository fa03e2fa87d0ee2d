"""The run ledger: one row per night, step and attempt (what ran, how long, rows, outcome)."""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from pipelines.db import adapter_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepRecord:
    run_date: date
    step: str
    attempt: int
    run_id: str | None
    started_at: datetime
    finished_at: datetime | None
    status: str  # running | success | failed | skipped
    rows_in: int | None = None
    rows_out: int | None = None
    checksum: str | None = None
    error: str | None = None


def record_step(engine: Engine, rec: StepRecord) -> None:
    """Insert or replace the ledger row of (run_date, step, attempt).

    A ledger that cannot be written is logged, never allowed to fail a data step that succeeded.
    """
    adapter = adapter_for(engine)
    params = dict(rec.__dict__)
    for k in ("started_at", "finished_at"):
        if params[k] is not None:
            params[k] = adapter.timestamp_param(params[k])
    if params["error"]:
        params["error"] = str(params["error"])[:4000]
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "DELETE FROM seam_run_ledger WHERE run_date = :run_date AND step = :step "
                    "AND attempt = :attempt"
                ),
                params,
            )
            conn.execute(
                sa.text(
                    "INSERT INTO seam_run_ledger (run_date, step, attempt, run_id, started_at, finished_at, status, "
                    "rows_in, rows_out, checksum, error) VALUES (:run_date, :step, :attempt, :run_id, :started_at, "
                    ":finished_at, :status, :rows_in, :rows_out, :checksum, :error)"
                ),
                params,
            )
        if rec.status != "running":
            log.info(
                "step %s run_date=%s attempt=%d status=%s rows_in=%s rows_out=%s seconds=%.1f peak_rss_mb=%.0f",
                rec.step,
                rec.run_date,
                rec.attempt,
                rec.status,
                rec.rows_in,
                rec.rows_out,
                (rec.finished_at - rec.started_at).total_seconds() if rec.finished_at else float("nan"),
                peak_rss_mb(),
            )
    except SQLAlchemyError as err:
        log.warning(
            "could not write the run ledger for %s/%s: %s",
            rec.run_date,
            rec.step,
            str(getattr(err, "orig", err))[:200],
        )


def peak_rss_mb() -> float:
    """The highest resident memory this process has used so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
