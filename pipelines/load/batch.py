"""Exactly-once loads of a night's result rows into a database.

A load of one table for one night (`run_date`):
1. computes the batch's checksum; if `seam_load_batches` already holds the same checksum for
   (table, run_date) nothing is done (replaying a batch is a no-op);
2. otherwise, in ONE transaction: replaces the night's rows of the target with the batch and
   records the batch in `seam_load_batches`.
Readers therefore see either the previous version of the night or the new one, never a mix.

A batch is always the complete night of a table, so "upsert by natural key, then delete the
night's keys the batch no longer has" and "delete the night, insert the batch" give the same
rows; the second is what runs, because it is much cheaper than a million ON CONFLICT probes.
How the rows reach the target is the dialect adapter's business (`pipelines.db`): COPY into
staging and one INSERT ... SELECT on PostgreSQL, LOAD DATA LOCAL INFILE straight into the target
on MariaDB (see `pipelines.db.mysql`), executemany into staging on SQLite.  Tables without a
night column (`seam_actuals`) are staged and upserted by key on every dialect.
A transient error (dropped connection, deadlock, lock timeout, serialization failure) rolls the
transaction back and is raised as `SourceUnavailableError`: the caller's retry (Airflow's task
retries, or running `seam load` again) replays the night, and tables already loaded are no-ops.
Permanent errors fail at once naming table and cause.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from pipelines.db import adapter_for, describe_db_error, error_number, is_transient, sqlstate_of
from pipelines.errors import ConfigError, LoadError, SeamError, SourceUnavailableError
from pipelines.lake import HashBuckets, Spill
from pipelines.results import DATE_COLUMNS, RESULT_TABLES, ResultTable
from pipelines.state import loaded_checksum, record_batch

log = logging.getLogger(__name__)

#: Row and key hashes a load holds before it moves them to its spill (8 bytes each): BENCHMARKS.md
SPILL_HASHES = 1 << 20
_SCRATCH = itertools.count()  # spill names of this process's loads


@dataclass(frozen=True)
class LoadResult:
    table: str
    run_date: date
    rows: int
    checksum: str
    skipped: bool  # True when the same batch was already loaded


# --- checksums ---------------------------------------------------------------------------------
#: A batch given in parts: a function that gives its parts, again on every call (the load reads them
#: twice: to check and checksum them, then to write them).
Parts = Callable[[], Iterable[pd.DataFrame]]


def row_hashes(df: pd.DataFrame) -> np.ndarray:
    """The 64-bit hash of each row (pandas' hash_pandas_object, fixed key); dates are hashed as day
    numbers so `date` objects and datetime64 give the same hash."""
    frame = df.copy(deep=False)
    for c in frame.columns:
        if c in DATE_COLUMNS:
            frame[c] = pd.to_datetime(frame[c]).to_numpy(dtype="datetime64[D]").astype("int64")
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def digest(columns: Sequence[str], hashes: Sequence[np.ndarray]) -> str:
    """SHA-256 of a batch's columns and the sorted hashes of its rows (in one part or several)."""
    rows = np.sort(np.concatenate(hashes)) if len(hashes) else np.array([], dtype=np.uint64)
    return sorted_digest(columns, [rows])


def sorted_digest(columns: Sequence[str], sorted_hashes: Iterable[np.ndarray]) -> str:
    """`digest` of row hashes given sorted, in pieces whose concatenation is sorted."""
    out = hashlib.sha256(",".join(columns).encode())
    for piece in sorted_hashes:
        out.update(np.ascontiguousarray(piece, dtype=np.uint64).tobytes())
    return out.hexdigest()


def _hash_buckets(spill: Spill | None, what: str) -> HashBuckets:
    return HashBuckets(spill, f"load_{what}_{next(_SCRATCH)}", in_memory=SPILL_HASHES)


def batch_checksum(df: pd.DataFrame, key: Sequence[str]) -> str:
    """Order-independent SHA-256 of a batch: the sorted 64-bit hashes of its rows, plus its columns.

    Vectorised, so a million rows take well under a second.  A batch split into parts has the
    checksum of its rows together (`parts_checksum`)."""
    del key  # the row hashes cover every column; kept for callers
    return digest(list(df.columns), [row_hashes(df)])


def parts_checksum(parts: Iterable[pd.DataFrame], spill: Spill | None = None) -> str | None:
    """`batch_checksum` of the rows of every part together, holding one part at a time (None
    when there is no part); with `spill`, the rows' hashes beyond `SPILL_HASHES` wait there."""
    columns: list[str] | None = None
    hashes = _hash_buckets(spill, "rows")
    for part in parts:
        columns = columns or list(part.columns)
        hashes.add(row_hashes(part))
    return None if columns is None else sorted_digest(columns, hashes.sorted_buckets())


# --- the load ----------------------------------------------------------------------------------
def _conform(df: pd.DataFrame, table: ResultTable) -> pd.DataFrame:
    """The table's columns in its order, dates as datetime64 and booleans as bool."""
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
    return out


def _prepare(df: pd.DataFrame, table: ResultTable) -> pd.DataFrame:
    """`_conform`, and LoadError when two rows have the same key."""
    out = _conform(df, table)
    keys = list(table.key)
    # A 64-bit hash per key finds duplicates fast; only a hash collision needs the exact check.
    if pd.util.hash_pandas_object(out[keys], index=False).duplicated().any() and out.duplicated(keys).any():
        dup = out[out.duplicated(keys, keep=False)][keys].head(3).to_dict("records")
        raise LoadError(f"{table.name}: the batch has duplicate keys {keys}, e.g. {dup}")
    return out


Checkpoint = Callable[[str], None]


def no_checkpoint(point: str) -> None:
    del point


def to_arrow(batch: pd.DataFrame) -> pa.Table:
    """A prepared batch as Arrow, its date columns as DATE (not timestamps) for the bulk paths."""
    table = pa.Table.from_pandas(batch, preserve_index=False)
    for i, field in enumerate(table.schema):
        if field.name in DATE_COLUMNS and pa.types.is_timestamp(field.type):
            table = table.set_column(i, field.name, pc.cast(table.column(i), pa.date32()))
    return table


def load_batch(
    engine: Engine,
    table_name: str,
    run_date: date,
    df: pd.DataFrame,
    *,
    checkpoint: Checkpoint = no_checkpoint,
) -> LoadResult:
    """Load one night's rows of a result table exactly once (see the module docstring).

    Returns what was loaded; raises SourceUnavailableError on a transient error (retry later),
    ConfigError when the database refuses for want of a grant or a migration, and LoadError when it
    refuses the rows; in every case nothing of the batch is kept.  `checkpoint(point)` is called at
    "staged" (rows in staging), "merged" (target changed, not committed) and "committed" (before the
    caller hears of success): the reliability tests stop the load there.
    """
    batch = _conform(df, RESULT_TABLES[table_name])  # once, not on each of the two passes
    return load_parts(engine, table_name, run_date, lambda: [batch], checkpoint=checkpoint)


def load_parts(
    engine: Engine,
    table_name: str,
    run_date: date,
    parts: Parts,
    *,
    checkpoint: Checkpoint = no_checkpoint,
    spill: Spill | None = None,
) -> LoadResult:
    """`load_batch` of a batch given in parts (e.g. a night's output, one shard or record batch of
    the lake at a time), holding one part in memory: the parts are read once to check them (columns,
    night, keys unique across all parts) and compute the batch's checksum, and once more to write
    them, in one transaction.  With `spill`, the rows' and keys' hashes (8 bytes each) of a batch
    beyond `SPILL_HASHES` rows wait there in buckets, and are sorted a bucket at a time."""
    table = RESULT_TABLES[table_name]
    rows, n_parts = 0, 0
    hashes, keys = _hash_buckets(spill, "rows"), _hash_buckets(spill, "keys")
    for part in parts():
        batch = _prepare(part, table)
        if table.night and len(batch):
            lo, hi = batch[table.night].min().date(), batch[table.night].max().date()
            if lo != run_date or hi != run_date:
                raise LoadError(
                    f"{table_name}: every row's {table.night} must be {run_date}, got {lo} to {hi}"
                )
        rows += len(batch)
        n_parts += 1
        hashes.add(row_hashes(batch))
        keys.add(pd.util.hash_pandas_object(batch[list(table.key)], index=False).to_numpy())
    if n_parts > 1:
        _check_keys_across(parts, table, keys.repeated())
    checksum = sorted_digest(list(table.columns), hashes.sorted_buckets())
    del hashes, keys
    data = (to_arrow(_conform(part, table)) for part in parts())
    t0 = time.perf_counter()
    try:
        skipped = _load_once(engine, table, run_date, data, rows, checksum, checkpoint)
    except SeamError:
        raise
    except DBAPIError as err:
        raise _classify(err, table_name, run_date) from err
    except engine.dialect.loaded_dbapi.Error as err:  # raw cursors (bulk paths) raise driver errors
        raise _classify(err, table_name, run_date) from err
    log.info(
        "load %s run_date=%s database=%s rows_in=%d checksum=%s skipped=%s seconds=%.2f",
        table_name,
        run_date,
        engine.url.database,
        rows,
        checksum[:12],
        skipped,
        time.perf_counter() - t0,
    )
    return LoadResult(table_name, run_date, rows, checksum, skipped)


def _check_keys_across(parts: Parts, table: ResultTable, repeats: np.ndarray) -> None:
    """Raise LoadError when two parts hold the same key (each part was checked on its own):
    `repeats` are the key hashes seen more than once (sorted hashes, 8 bytes a row, where a hash
    table costs several times that); their keys are read again and compared exactly (a hash
    collision is not a duplicate)."""
    if not len(repeats):
        return
    suspects = set(repeats.tolist())
    keys = list(table.key)
    found = []
    for part in parts():
        batch = _conform(part, table)
        mine = pd.util.hash_pandas_object(batch[keys], index=False).isin(suspects).to_numpy()
        found.append(batch.loc[mine, keys])
    both = pd.concat(found, ignore_index=True)
    if both.duplicated(keys).any():
        dup = both[both.duplicated(keys, keep=False)].head(3).to_dict("records")
        raise LoadError(f"{table.name}: the batch has duplicate keys {keys}, e.g. {dup}")


def _classify(err: Exception, table_name: str, run_date: date) -> Exception:
    cause = describe_db_error(err)
    if is_transient(err):
        return SourceUnavailableError(
            f"loading {table_name} for {run_date} was interrupted: {cause}; the transaction was rolled "
            f"back and the load can be retried"
        )
    code = sqlstate_of(err) or ""
    number = error_number(err)
    if code == "42501" or number in (1142, 1143, 1044, 1227):
        return ConfigError(
            f"loading {table_name} for {run_date} failed: {cause} (the load role lacks a grant; see docs/grants.md)"
        )
    if code in ("42P01", "42703") or number in (1146, 1054):
        return ConfigError(
            f"loading {table_name} for {run_date} failed: {cause} (the table is missing or has the wrong "
            f"columns; run `seam migrate`)"
        )
    hint = (
        "a constraint rejected the rows; fix the batch"
        if code.startswith("23") or number in (1048, 1062, 1452)
        else "not retryable"
    )
    return LoadError(f"loading {table_name} for {run_date} failed: {cause} ({hint})")


def _load_once(
    engine: Engine,
    table: ResultTable,
    run_date: date,
    data: Iterable[pa.Table],
    rows: int,
    checksum: str,
    checkpoint: Checkpoint,
) -> bool:
    """The load on a fresh connection; True when the same batch was already loaded."""
    adapter = adapter_for(engine)
    at = checkpoint
    with engine.connect() as conn:
        prev = loaded_checksum(conn, table.name, run_date)
        conn.rollback()
        if prev == checksum:
            return True
        with conn.begin():
            if table.night:
                adapter.replace_night(conn, table.name, table.columns, table.night, run_date, data, at)
            else:
                adapter.upsert(conn, table.name, table.columns, table.key, data, at)
            record_batch(conn, table.name, run_date, checksum, rows)
            at("merged")
    at("committed")
    return False
