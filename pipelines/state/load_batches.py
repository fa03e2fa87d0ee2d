"""`seam_load_batches`: the checksum of every night's batch per result table, written in the same
transaction as the rows, so that replaying the same batch is a no-op."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines.db import adapter_for


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
