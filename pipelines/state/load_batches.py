"""`seam_load_batches`: the checksum of every night's batch per result table, written in the same
transaction as the rows, so that replaying the same batch is a no-op."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines.config import Config, results_url
from pipelines.db import adapter_for, connect, make_engine


def loaded_checksum(conn: Connection, table_name: str, run_date: date) -> str | None:
    """The checksum of the batch loaded for (table, night), or None."""
    value = conn.execute(
        sa.text("SELECT checksum FROM seam_load_batches WHERE table_name = :t AND run_date = :d"),
        {"t": table_name, "d": run_date},
    ).scalar()
    return None if value is None else str(value)


def record_batch(conn: Connection, table_name: str, run_date: date, checksum: str, rows: int) -> None:
    """Record (table, night) -> checksum on the caller's transaction."""
    at = adapter_for(conn).timestamp_param(datetime.now(UTC))
    params = {"t": table_name, "d": run_date, "c": checksum, "n": rows, "at": at}
    conn.execute(sa.text("DELETE FROM seam_load_batches WHERE table_name = :t AND run_date = :d"), params)
    conn.execute(
        sa.text(
            "INSERT INTO seam_load_batches (table_name, run_date, checksum, row_count, loaded_at) "
            "VALUES (:t, :d, :c, :n, :at)"
        ),
        params,
    )


def last_loaded_night(cfg: Config, table_name: str) -> date | None:
    """The newest night whose batch of `table_name` is in its results database (None: never)."""
    name = cfg.results.forecasts if table_name in ("seam_forecasts", "seam_actuals") else cfg.results.ledger
    engine = make_engine(results_url(cfg.source(name)), what=f"source {name!r}")
    try:
        with connect(engine, what=f"the results database of {name!r}") as conn:
            if not sa.inspect(conn).has_table("seam_load_batches"):
                return None
            value = conn.execute(
                sa.text("SELECT MAX(run_date) FROM seam_load_batches WHERE table_name = :t"),
                {"t": table_name},
            ).scalar()
    finally:
        engine.dispose()
    return None if value is None else date.fromisoformat(str(value)[:10])
