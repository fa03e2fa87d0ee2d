"""Write results back into the databases: migrations and exactly-once loads per night.

A load of one table for one night (`run_date`):
1. computes the batch's checksum; if the ledger already holds the same checksum for
   (table, run_date) nothing is done (replaying a batch is a no-op);
2. otherwise, in ONE transaction: replaces the night's rows of the target with the batch and
   records the batch in `seam_load_batches`.
Readers therefore see either the previous version of the night or the new one, never a mix.

A batch is always the complete night of a table, so "upsert by natural key, then delete the
night's keys the batch no longer has" and "delete the night, insert the batch" give the same
rows; the second is what runs, because it is much cheaper than a million ON CONFLICT probes.
How the batch reaches the target (bulk paths in `pipelines.load_bulk`):
- PostgreSQL: COPY into a temporary staging table without indexes, then one INSERT ... SELECT;
  SQLite: executemany into a staging table, then INSERT ... SELECT.
- MariaDB/MySQL: the night is deleted, then LOAD DATA LOCAL INFILE streams the batch straight
  into the target, inside the same transaction.  A staging table here would write every row
  twice into InnoDB (measured: staging plus INSERT ... SELECT cost about as much again as the
  load itself, see benchmarks/results/load.md) and would add nothing: the keys are unique by
  construction (checked in `_prepare`, every key holds the night, whose rows were just deleted),
  LOAD DATA's warnings and row count are checked, and any failure rolls the delete back too.
Tables without a night column (`seam_actuals`) are staged and upserted by key on every dialect.
Transient errors (dropped connections, deadlocks, lock timeouts, serialization failures) are
retried by `pipelines.retry`; permanent ones fail at once naming table and cause.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from pipelines.db import describe_db_error, dialect_of, quote
from pipelines.errors import LoadError, SourceUnavailableError
from pipelines.load_bulk import bulk_insert
from pipelines.results import DATE_COLUMNS, RESULT_TABLES, ResultTable
from pipelines.retry import RetryPolicy, is_transient, sqlstate_of, with_retry

log = logging.getLogger(__name__)
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


@dataclass(frozen=True)
class LoadResult:
    table: str
    run_date: date
    rows: int
    checksum: str
    skipped: bool  # True when the same batch was already loaded


# --- migrations ---------------------------------------------------------------------------------
def migration_files(dialect: str) -> list[Path]:
    folder = SQL_DIR / dialect
    return sorted(p for p in folder.glob("[0-9][0-9][0-9]_*.sql"))


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def migrate(engine: Engine) -> list[str]:
    """Apply the not-yet-applied numbered files of `sql/<dialect>/`; returns the versions applied.

    Files only ever add (CREATE ... IF NOT EXISTS, ADD COLUMN): a migration never drops
    analysts' data.  Each applied version is recorded in `seam_schema_migrations`.
    """
    dialect = dialect_of(engine)
    applied: list[str] = []
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS seam_schema_migrations (version VARCHAR(64) NOT NULL PRIMARY KEY, "
                "applied_at VARCHAR(40) NOT NULL)"
            )
        )
        done = {r[0] for r in conn.execute(sa.text("SELECT version FROM seam_schema_migrations"))}
    for path in migration_files(dialect):
        version = path.stem
        if version in done:
            continue
        with engine.begin() as conn:
            for stmt in _statements(path.read_text()):
                conn.exec_driver_sql(stmt)
            conn.execute(
                sa.text("INSERT INTO seam_schema_migrations (version, applied_at) VALUES (:v, :t)"),
                {"v": version, "t": datetime.now(UTC).isoformat()},
            )
        applied.append(version)
        log.info("applied migration %s", version)
    return applied


# --- checksums ---------------------------------------------------------------------------------
def batch_checksum(df: pd.DataFrame, key: Sequence[str]) -> str:
    """Order-independent SHA-256 of a batch: the sorted 64-bit hashes of its rows, plus its columns.

    Vectorised (pandas' hash_pandas_object, fixed key), so a million rows take well under a second;
    dates are hashed as day numbers so `date` objects and datetime64 give the same checksum.
    """
    del key  # the row hashes cover every column; kept for callers
    frame = df.copy(deep=False)
    for c in frame.columns:
        if c in DATE_COLUMNS:
            frame[c] = pd.to_datetime(frame[c]).to_numpy(dtype="datetime64[D]").astype("int64")
    rows = np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy())
    digest = hashlib.sha256(",".join(frame.columns).encode())
    digest.update(rows.tobytes())
    return digest.hexdigest()


DEFAULT_RETRY = RetryPolicy()


# --- the load ----------------------------------------------------------------------------------
def _prepare(df: pd.DataFrame, table: ResultTable) -> pd.DataFrame:
    missing = [c for c in table.columns if c not in df.columns]
    if missing:
        raise LoadError(f"{table.name}: the batch lacks columns {missing}; got {list(df.columns)}")
    out = df[list(table.columns)].copy(deep=False)
    for c in out.columns:
        s = out[c]
        if c in DATE_COLUMNS and not pd.api.types.is_datetime64_any_dtype(s):
            out[c] = pd.to_datetime(s)
        elif pd.api.types.is_bool_dtype(s):
            out[c] = s.astype(bool)
    keys = list(table.key)
    # A 64-bit hash per key finds duplicates fast; only a hash collision needs the exact check.
    if pd.util.hash_pandas_object(out[keys], index=False).duplicated().any() and out.duplicated(keys).any():
        dup = out[out.duplicated(keys, keep=False)][keys].head(3).to_dict("records")
        raise LoadError(f"{table.name}: the batch has duplicate keys {keys}, e.g. {dup}")
    return out


def _pause_for_tests(point: str, attempt: int) -> None:
    """Test-only hook: SEAM_LOAD_TEST_PAUSE=point:seconds sleeps there on the first attempt.

    The reliability tests kill or disconnect the load while it sleeps at `staged` (rows in staging),
    `merged` (target changed, not committed) or `committed` (before the caller hears of success).
    """
    spec = os.environ.get("SEAM_LOAD_TEST_PAUSE", "")
    if attempt != 1 or not spec.startswith(point + ":"):
        return
    log.warning("SEAM_LOAD_TEST_PAUSE at %s", point)
    for h in logging.getLogger().handlers:
        h.flush()
    time.sleep(float(spec.split(":", 1)[1]))


def load_batch(
    engine: Engine,
    table_name: str,
    run_date: date,
    df: pd.DataFrame,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> LoadResult:
    """Load one night's rows of a result table exactly once (see the module docstring).

    Returns what was loaded; raises SourceUnavailableError when transient errors outlast the retry
    policy (retry later) and LoadError for permanent ones (fix the schema, grants or data).
    """
    table = RESULT_TABLES[table_name]
    batch = _prepare(df, table)
    if table.night and len(batch):
        lo, hi = batch[table.night].min().date(), batch[table.night].max().date()
        if lo != run_date or hi != run_date:
            raise LoadError(f"{table_name}: every row's {table.night} must be {run_date}, got {lo} to {hi}")
    checksum = batch_checksum(batch, table.key)
    t0 = time.perf_counter()
    attempts = iter(range(1, 1_000))
    try:
        skipped = with_retry(
            lambda: _load_once(engine, table, run_date, batch, checksum, next(attempts)),
            what=f"loading {table_name} for {run_date}",
            policy=retry,
        )
    except DBAPIError as err:
        raise _classify(err, table_name, run_date) from err
    except engine.dialect.loaded_dbapi.Error as err:  # raw cursors (bulk paths) raise driver errors
        raise _classify(err, table_name, run_date) from err
    log.info(
        "load %s run_date=%s rows_in=%d checksum=%s skipped=%s seconds=%.2f",
        table_name,
        run_date,
        len(batch),
        checksum[:12],
        skipped,
        time.perf_counter() - t0,
    )
    return LoadResult(table_name, run_date, len(batch), checksum, skipped)


def _classify(err: Exception, table_name: str, run_date: date) -> Exception:
    cause = describe_db_error(err)
    if is_transient(err):
        return SourceUnavailableError(
            f"loading {table_name} for {run_date} was interrupted and retries ran out: {cause}; "
            f"the transaction was rolled back and the load can be retried"
        )
    code = sqlstate_of(err) or ""
    number = (getattr(getattr(err, "orig", err), "args", None) or (None,))[0]
    if code == "42501" or number in (1142, 1143, 1044, 1227):
        hint = "the load role lacks a grant; see docs/grants.md"
    elif code.startswith("23") or number in (1048, 1062, 1452):
        hint = "a constraint rejected the rows; fix the batch"
    elif code in ("42P01", "42703") or number in (1146, 1054):
        hint = "the table is missing or has the wrong columns; run `seam migrate`"
    else:
        hint = "not retryable"
    return LoadError(f"loading {table_name} for {run_date} failed: {cause} ({hint})")


def _load_once(
    engine: Engine, table: ResultTable, run_date: date, batch: pd.DataFrame, checksum: str, attempt: int
) -> bool:
    """One attempt on a fresh connection; True when the same batch was already loaded."""
    with engine.connect() as conn:
        prev = conn.execute(
            sa.text("SELECT checksum FROM seam_load_batches WHERE table_name = :t AND run_date = :d"),
            {"t": table.name, "d": run_date},
        ).scalar()
        conn.rollback()
        if prev == checksum:
            return True
        with conn.begin():
            _merge(conn, table, batch, run_date, attempt)
            _record_batch(conn, table.name, run_date, checksum, len(batch))
            _pause_for_tests("merged", attempt)
    _pause_for_tests("committed", attempt)
    return False


def _merge(
    conn: Connection, table: ResultTable, batch: pd.DataFrame, run_date: date, attempt: int = 1
) -> None:
    dialect = dialect_of(conn)
    stg = "seam_stg_" + table.name.removeprefix("seam_")
    q = lambda n: quote(conn, n)  # noqa: E731
    cols = ", ".join(q(c) for c in table.columns)
    target = q(table.name)
    if dialect == "mysql" and table.night:
        # InnoDB: no staging copy (see the module docstring); the delete and the load are in
        # the caller's transaction, so a failure anywhere rolls both back.
        conn.execute(sa.text(f"DELETE FROM {target} WHERE {q(table.night)} = :d"), {"d": run_date})
        bulk_insert(conn, target, list(table.columns), batch)
        _pause_for_tests("staged", attempt)
        return
    # Staging has the target's columns and no index: bulk loads into it are as cheap as they get.
    if dialect == "postgresql":
        conn.exec_driver_sql(f"CREATE TEMP TABLE {stg} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP")
    elif dialect == "mysql":
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {stg}")
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {stg} ENGINE=InnoDB AS SELECT * FROM {target} WHERE 1 = 0"
        )
    else:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{stg}")
        conn.exec_driver_sql(f"CREATE TEMP TABLE {stg} AS SELECT * FROM {target} WHERE 0")
    bulk_insert(conn, stg, list(table.columns), batch)
    _pause_for_tests("staged", attempt)
    if table.night:
        conn.execute(sa.text(f"DELETE FROM {target} WHERE {q(table.night)} = :d"), {"d": run_date})
        conn.exec_driver_sql(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stg}")
    else:
        _upsert(conn, table, stg)
    if dialect == "mysql":
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {stg}")
    elif dialect == "sqlite":
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{stg}")


def _upsert(conn: Connection, table: ResultTable, stg: str) -> None:
    dialect = dialect_of(conn)
    q = lambda n: quote(conn, n)  # noqa: E731
    cols = ", ".join(q(c) for c in table.columns)
    keys = ", ".join(q(c) for c in table.key)
    non_key = [c for c in table.columns if c not in table.key]
    if dialect == "mysql":
        sets = ", ".join(f"{q(c)} = VALUES({q(c)})" for c in non_key)
        conn.exec_driver_sql(
            f"INSERT INTO {q(table.name)} ({cols}) SELECT {cols} FROM {stg} ON DUPLICATE KEY UPDATE {sets}"
        )
        return
    sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in non_key)
    where = " WHERE true" if dialect == "sqlite" else ""  # SQLite's parser needs it before ON CONFLICT
    conn.exec_driver_sql(
        f"INSERT INTO {q(table.name)} ({cols}) SELECT {cols} FROM {stg}{where} "
        f"ON CONFLICT ({keys}) DO UPDATE SET {sets}"
    )


def _record_batch(conn: Connection, table_name: str, run_date: date, checksum: str, rows: int) -> None:
    now = datetime.now(UTC)
    at: object = now.isoformat() if dialect_of(conn) == "sqlite" else now
    if dialect_of(conn) == "mysql":
        at = now.replace(tzinfo=None)  # DATETIME has no zone; the ledger's times are UTC
    params = {"t": table_name, "d": run_date, "c": checksum, "n": rows, "at": at}
    conn.execute(sa.text("DELETE FROM seam_load_batches WHERE table_name = :t AND run_date = :d"), params)
    conn.execute(
        sa.text(
            "INSERT INTO seam_load_batches (table_name, run_date, checksum, row_count, loaded_at) "
            "VALUES (:t, :d, :c, :n, :at)"
        ),
        params,
    )
