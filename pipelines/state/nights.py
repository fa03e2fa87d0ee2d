"""Night locks and attempt numbers: one run of a night at a time, every attempt kept.

A run of night D (`seam run`, a `seam` step command, or one Airflow run of the DAG) takes the
lock of D in the ledger's database before writing anything.  A second holder waits or fails with
"night D is already running (who, where, since)".  A lock whose holder is gone (a `seam` process
that no longer exists on this host, or any holder older than `STALE_AFTER`) is taken over.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from pipelines.db import adapter_for
from pipelines.errors import SourceUnavailableError

STALE_AFTER = timedelta(hours=6)  # the DAG's dagrun_timeout: no live run holds a night longer


class NightRunningError(SourceUnavailableError):
    """Another run holds the night; transient: retry when it has finished."""


@dataclass(frozen=True)
class Holder:
    """Who runs a night: `seam` (this process) or `airflow:<run_id>` (every task of one DAG run)."""

    name: str
    host: str
    pid: int

    @classmethod
    def here(cls, run_id: str | None = None) -> Holder:
        return cls(f"airflow:{run_id}" if run_id else "seam", socket.gethostname(), os.getpid())

    def same_run(self, other: Holder) -> bool:
        if self.name.startswith("airflow:"):
            return self.name == other.name
        return (self.name, self.host, self.pid) == (other.name, other.host, other.pid)

    def describe(self) -> str:
        who = f"Airflow run {self.name.split(':', 1)[1]}" if self.name.startswith("airflow:") else "seam"
        return f"{who}, pid {self.pid} on host {self.host}"


def _alive(holder: Holder, since: datetime) -> bool:
    if datetime.now(UTC) - since > STALE_AFTER:
        return False
    if holder.name == "seam" and holder.host == socket.gethostname():
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def _as_utc(value: object) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def acquire_night(engine: Engine, run_date: date, holder: Holder) -> bool:
    """Take the lock of `run_date` for `holder`: True when taken now, False when this run already
    held it (re-entrant); raises `NightRunningError` naming the holder when another live run has it."""
    adapter = adapter_for(engine)
    now = adapter.timestamp_param(datetime.now(UTC))
    row = {"d": run_date, "holder": holder.name, "host": holder.host, "pid": holder.pid, "since": now}
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO seam_night_locks (run_date, holder, host, pid, since) "
                    "VALUES (:d, :holder, :host, :pid, :since)"
                ),
                row,
            )
        return True
    except IntegrityError:
        pass
    with engine.begin() as conn:
        found = conn.execute(
            sa.text("SELECT holder, host, pid, since FROM seam_night_locks WHERE run_date = :d"),
            {"d": run_date},
        ).one_or_none()
        if found is None:  # released in the meantime
            conn.execute(
                sa.text(
                    "INSERT INTO seam_night_locks (run_date, holder, host, pid, since) "
                    "VALUES (:d, :holder, :host, :pid, :since)"
                ),
                row,
            )
            return True
        other, since = Holder(found.holder, found.host, int(found.pid)), _as_utc(found.since)
        if holder.same_run(other):
            return False
        if not _alive(other, since):
            taken = conn.execute(
                sa.text(
                    "UPDATE seam_night_locks SET holder = :holder, host = :host, pid = :pid, since = :since "
                    "WHERE run_date = :d AND holder = :old AND host = :old_host AND pid = :old_pid"
                ),
                {**row, "old": other.name, "old_host": other.host, "old_pid": other.pid},
            ).rowcount
            if taken == 1:
                return True
    raise NightRunningError(
        f"night {run_date} is already running ({other.describe()}, since {since:%Y-%m-%d %H:%M:%S} UTC); "
        f"wait for it to finish, or if that run is gone, release the night with `seam unlock --date {run_date}`"
    )


def release_night(engine: Engine, run_date: date, holder: Holder | None = None) -> bool:
    """Release the lock of `run_date` (only `holder`'s, when given); True if a lock was removed."""
    where = "run_date = :d"
    params: dict[str, object] = {"d": run_date}
    if holder is not None:
        where += " AND holder = :holder"
        params["holder"] = holder.name
        if not holder.name.startswith("airflow:"):
            where += " AND host = :host AND pid = :pid"
            params.update(host=holder.host, pid=holder.pid)
    with engine.begin() as conn:
        return bool(conn.execute(sa.text(f"DELETE FROM seam_night_locks WHERE {where}"), params).rowcount)


def next_attempt(engine: Engine, run_date: date, step: str) -> int:
    """The attempt number of a new try of a step: one more than any recorded, so every try is kept."""
    with engine.connect() as conn:
        latest = conn.execute(
            sa.text("SELECT MAX(attempt) FROM seam_run_ledger WHERE run_date = :d AND step = :s"),
            {"d": run_date, "s": step},
        ).scalar()
    return int(latest or 0) + 1
