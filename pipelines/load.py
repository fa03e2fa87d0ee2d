"""Write results back into the databases: migrations and exactly-once loads per night.

A load of one table for one night (`run_date`):
1. computes the batch's checksum; if the ledger already holds the same checksum for
   (table, run_date) nothing is done (replaying a batch is a no-op);
2. otherwise, in ONE transaction: bulk-copies the rows into a temporary staging table
   (PostgreSQL COPY, MariaDB/MySQL multi-row inserts, SQLite executemany), upserts them
   into the target by its natural key, deletes the night's rows that the batch no longer
   contains, and records the batch in `seam_load_batches`.
Readers therefore see either the previous version of the night or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from pipelines.db import describe_db_error, dialect_of, quote
from pipelines.errors import LoadError, SourceUnavailableError

log = logging.getLogger(__name__)
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


@dataclass(frozen=True)
class ResultTable:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]


RESULT_TABLES: dict[str, ResultTable] = {
    t.name: t
    for t in (
        ResultTable(
            "seam_forecasts",
            (
                "run_date",
                "sku",
                "warehouse",
                "target_date",
                "yhat",
                "yhat_lo_80",
                "yhat_hi_80",
                "yhat_lo_95",
                "yhat_hi_95",
                "model",
                "model_version",
                "explanation",
                "fallback",
                "training_snapshot_date",
            ),
            ("run_date", "sku", "warehouse", "target_date"),
        ),
        ResultTable(
            "seam_anomaly_scores",
            (
                "run_date",
                "metric",
                "entity",
                "ds",
                "value",
                "expected",
                "lower_bound",
                "upper_bound",
                "score",
                "is_anomaly",
                "severity",
                "kind",
                "reason",
                "model",
            ),
            ("run_date", "metric", "entity", "ds"),
        ),
        ResultTable(
            "seam_data_quality_results",
            (
                "run_date",
                "dataset",
                "check_name",
                "severity",
                "success",
                "observed_value",
                "expected",
                "unexpected_count",
                "unexpected_sample",
            ),
            ("run_date", "dataset", "check_name"),
        ),
    )
}


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
    """Order-independent SHA-256 of a batch (rows sorted by key, values as text)."""
    ordered = df.sort_values(list(key), kind="stable").reset_index(drop=True)
    text = ordered.to_csv(index=False, date_format="%Y-%m-%d", float_format="%.10g")
    return hashlib.sha256(text.encode()).hexdigest()


# --- the load ----------------------------------------------------------------------------------
def _prepare(df: pd.DataFrame, table: ResultTable) -> pd.DataFrame:
    missing = [c for c in table.columns if c not in df.columns]
    if missing:
        raise LoadError(f"{table.name}: the batch lacks columns {missing}; got {list(df.columns)}")
    out = df[list(table.columns)].copy()
    for c in out.columns:
        s = out[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            out[c] = s.dt.date
        elif pd.api.types.is_bool_dtype(s):
            out[c] = s.astype(bool)
    if out.duplicated(list(table.key)).any():
        dup = out[out.duplicated(list(table.key), keep=False)][list(table.key)].head(3).to_dict("records")
        raise LoadError(f"{table.name}: the batch has duplicate keys {list(table.key)}, e.g. {dup}")
    return out


def load_batch(engine: Engine, table_name: str, run_date: date, df: pd.DataFrame) -> LoadResult:
    """Load one night's rows of a result table exactly once (see the module docstring)."""
    table = RESULT_TABLES[table_name]
    batch = _prepare(df, table)
    if len(batch) and (pd.to_datetime(pd.Series(batch["run_date"])).dt.date != run_date).any():
        raise LoadError(f"{table_name}: every row's run_date must be {run_date}")
    checksum = batch_checksum(batch, table.key)
    t0 = time.perf_counter()
    try:
        with engine.connect() as conn:
            prev = conn.execute(
                sa.text("SELECT checksum FROM seam_load_batches WHERE table_name = :t AND run_date = :d"),
                {"t": table_name, "d": run_date},
            ).scalar()
            conn.rollback()
            if prev == checksum:
                log.info(
                    "load %s run_date=%s: batch %s already loaded, nothing to do",
                    table_name,
                    run_date,
                    checksum[:12],
                )
                return LoadResult(table_name, run_date, len(batch), checksum, True)
            with conn.begin():
                _merge(conn, table, batch, run_date)
                _record_batch(conn, table_name, run_date, checksum, len(batch))
    except DBAPIError as err:
        if err.connection_invalidated or _is_transient(err):
            raise SourceUnavailableError(
                f"loading {table_name} for {run_date} was interrupted: {describe_db_error(err)}; "
                f"the transaction was rolled back and the load can be retried"
            ) from err
        raise LoadError(f"loading {table_name} for {run_date} failed: {describe_db_error(err)}") from err
    log.info(
        "load %s run_date=%s rows_in=%d checksum=%s seconds=%.2f",
        table_name,
        run_date,
        len(batch),
        checksum[:12],
        time.perf_counter() - t0,
    )
    return LoadResult(table_name, run_date, len(batch), checksum, False)


_TRANSIENT_CODES = {"40001", "40P01", "55P03", "57P01", "08006", "08003", "08001"}
_TRANSIENT_MYSQL = {1205, 1213, 2006, 2013}


def _is_transient(err: DBAPIError) -> bool:
    orig = err.orig
    code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
    if code in _TRANSIENT_CODES:
        return True
    args = getattr(orig, "args", ())
    return bool(args) and args[0] in _TRANSIENT_MYSQL


def _merge(conn: Connection, table: ResultTable, batch: pd.DataFrame, run_date: date) -> None:
    dialect = dialect_of(conn)
    stg = "seam_stg_" + table.name.removeprefix("seam_")
    q = lambda n: quote(conn, n)  # noqa: E731
    cols = ", ".join(q(c) for c in table.columns)
    target = q(table.name)
    keys_sql = ", ".join(q(c) for c in table.key)
    if dialect == "postgresql":
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {stg} (LIKE {target} INCLUDING DEFAULTS INCLUDING INDEXES) ON COMMIT DROP"
        )
    elif dialect == "mysql":
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {stg}")
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {stg} LIKE {target}")
    else:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{stg}")
        conn.exec_driver_sql(f"CREATE TEMP TABLE {stg} AS SELECT * FROM {target} WHERE 0")
    bulk_insert(conn, stg, list(table.columns), batch)
    if dialect == "sqlite":  # the anti-join below needs the key indexed on the staging side too
        conn.exec_driver_sql(f"CREATE UNIQUE INDEX temp.{stg}_key ON {stg} ({keys_sql})")
    non_key = [c for c in table.columns if c not in table.key]
    keys = keys_sql
    if dialect == "postgresql":
        sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in non_key)
        conn.exec_driver_sql(
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stg} "
            f"ON CONFLICT ({keys}) DO UPDATE SET {sets}"
        )
    elif dialect == "mysql":
        sets = ", ".join(f"{q(c)} = VALUES({q(c)})" for c in non_key)
        conn.exec_driver_sql(
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stg} ON DUPLICATE KEY UPDATE {sets}"
        )
    else:
        sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in non_key)
        conn.exec_driver_sql(
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stg} WHERE true "
            f"ON CONFLICT ({keys}) DO UPDATE SET {sets}"
        )
    # Rows of this night that the new batch no longer produces are removed, not left behind.
    if dialect == "mysql":
        match = " AND ".join(f"s.{q(c)} = t.{q(c)}" for c in table.key)
        conn.exec_driver_sql(
            f"DELETE t FROM {target} t LEFT JOIN {stg} s ON {match} WHERE t.run_date = %s AND s.run_date IS NULL",
            (run_date,),
        )
    else:
        match = " AND ".join(f"{stg}.{q(c)} = {target}.{q(c)}" for c in table.key)
        conn.execute(
            sa.text(
                f"DELETE FROM {target} WHERE run_date = :d AND NOT EXISTS (SELECT 1 FROM {stg} WHERE {match})"
            ),
            {"d": run_date},
        )
    if dialect == "mysql":
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {stg}")
    elif dialect == "sqlite":
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{stg}")


def _record_batch(conn: Connection, table_name: str, run_date: date, checksum: str, rows: int) -> None:
    params = {"t": table_name, "d": run_date, "c": checksum, "n": rows, "at": datetime.now(UTC)}
    if dialect_of(conn) == "sqlite":
        params["at"] = params["at"].isoformat()  # type: ignore[assignment]
    conn.execute(sa.text("DELETE FROM seam_load_batches WHERE table_name = :t AND run_date = :d"), params)
    conn.execute(
        sa.text(
            "INSERT INTO seam_load_batches (table_name, run_date, checksum, row_count, loaded_at) "
            "VALUES (:t, :d, :c, :n, :at)"
        ),
        params,
    )


def _plain_rows(df: pd.DataFrame) -> list[tuple[Any, ...]]:
    obj = df.astype(object).where(df.notna(), None)
    rows = []
    for r in obj.itertuples(index=False, name=None):
        rows.append(tuple(v.item() if isinstance(v, np.generic) else v for v in r))
    return rows


def bulk_insert(conn: Connection, table: str, columns: list[str], df: pd.DataFrame) -> None:
    """Fast insert of a frame into a (staging) table on the connection's transaction."""
    if df.empty:
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    names = ", ".join(quote(conn, c) for c in columns)
    dialect = dialect_of(conn)
    if dialect == "postgresql":
        buf = io.StringIO()
        df.to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d")
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy,
        ):
            copy.write(buf.getvalue())
        return
    marks = ", ".join(["%s" if dialect == "mysql" else "?"] * len(columns))
    rows = _plain_rows(df)
    cur = raw.cursor()
    try:
        for i in range(0, len(rows), 10_000):
            cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows[i : i + 10_000])
    finally:
        cur.close()
