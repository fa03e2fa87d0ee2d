"""Extract one configured table for a night into its lake partition: streamed, typed, atomic,
drift-checked.

The rows of the night are streamed from the database (the dialect's fast reader where it has
one, SQLAlchemy streaming otherwise), converted to Arrow with a schema derived from the database
column types (decimals, dates, timestamps and nullability kept), written to a staged partition
and renamed into place with a manifest.  Source columns are renamed to the canonical names of
the config's `columns:` mapping here, and nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from pipelines import __version__
from pipelines.config import Config, TableSpec, source_url
from pipelines.contracts import DATASETS
from pipelines.db import Adapter, adapter_for, connect, describe_db_error, is_transient, make_engine
from pipelines.errors import ConfigError, DataError, SourceUnavailableError
from pipelines.extract.cluster import PartitionWriter, clustered_by
from pipelines.extract.drift import check_drift, schema_to_json
from pipelines.extract.plan import TablePlan, build_plan, check_mapping, compiled
from pipelines.extract.ranges import build_ranges
from pipelines.extract.schema import schema_from, to_batch, widen
from pipelines.extract.shape import Shaper
from pipelines.lake import Lake
from pipelines.lake.store import COMPRESSION
from pipelines.run_context import night_bounds
from pipelines.state import commit_watermark, watermark_before

log = logging.getLogger(__name__)
CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class ExtractResult:
    source: str
    table: str
    dataset: str
    snapshot_date: date
    rows: int
    path: Path
    seconds: float
    warnings: tuple[str, ...] = ()


def extract_table(cfg: Config, source_name: str, table_name: str, run_date: date) -> ExtractResult:
    """Extract one configured table for `run_date` into its lake partition; returns what was written.

    Snapshot tables are read whole (bounded by `as_of` if set); incremental tables read the rows
    whose cursor is in [watermark of the newest earlier night - lookback, end of the night).
    The partition appears atomically with its manifest; only then is the watermark advanced, so a
    re-run of a night reads the same window and a killed run changes nothing.
    """
    source = cfg.source(source_name)
    spec = source.table(table_name)
    where = f"{source.name}.{spec.name}"
    lake = Lake(cfg.lake)
    t0 = time.perf_counter()
    started = datetime.now().astimezone()
    night = night_bounds(run_date, cfg.timezone)
    lower = None
    if spec.mode == "incremental":
        wm = watermark_before(lake, source.name, spec.name, run_date)
        lower = wm - spec.lookback if wm is not None else None
    engine = make_engine(source_url(source), what=f"source {source.name!r}")
    adapter = adapter_for(engine)
    rows = 0
    warnings: list[str] = []
    cursor_min: Any = None
    cursor_max: Any = None
    reader = "generic"
    try:
        with connect(engine, what=f"source {source.name!r}") as conn:
            plan = build_plan(conn, source, spec, lower, night)
            check_mapping(source.name, spec, plan)
            _check_required(where, spec, [*plan.types, *spec.constants])
            shaper = Shaper.of(spec, where)
            previous = _previous_schema(lake, source.name, spec.name, run_date)
            known = all(t is not None for t in plan.types.values())
            schema: pa.Schema | None = schema_from(plan.types, [], plan.nullable) if known else None
            # what a fast reader parses: the table's types, or the query's columns as described
            wire_types = plan.types if plan.described is None else plan.described
            wire_nullable = plan.nullable if plan.described_nullable is None else plan.described_nullable
            wire: pa.Schema | None = None
            if schema is not None and all(t is not None for t in wire_types.values()):
                wire = schema_from(wire_types, [], wire_nullable)
                reader = adapter.choose_reader(conn, wire, spec.reader)
            if schema is not None:
                schema = shaper.schema(schema) if shaper else schema
                # Before a single row is read: drift fails the table with nothing written.
                warnings = check_drift(previous, schema, where=where)
            ranges: list[Any] = [plan.stmt]
            if (
                adapter.parallel_streams(reader)
                and spec.streams != 1
                and plan.split_on is not None
                and isinstance(plan.stmt, sa.Select)
            ):
                ranges = build_ranges(conn, plan.stmt, plan.split_on)
            with lake.stage_table(source.name, spec.name, run_date) as staged:
                # Writing on a separate thread was measured (400k rows, PG and MariaDB): no gain.
                writer: PartitionWriter | None = None
                try:
                    read_schema = schema_from(plan.types, [], plan.nullable) if known else None
                    for batch in _batches(conn, adapter, plan, (read_schema, wire), reader, ranges):
                        if shaper:
                            batch = shaper.batch(batch)[0]
                        if writer is None:
                            if schema is None:
                                schema = batch.schema
                                warnings = check_drift(previous, schema, where=where)
                            writer = _writer(staged.data_file, schema)
                        rows += batch.num_rows
                        assert schema is not None
                        if spec.cursor in schema.names:
                            cursor_min, cursor_max = widen(cursor_min, cursor_max, batch.column(spec.cursor))
                        writer.write_batch(batch)
                    if writer is None:  # no rows at all: still a valid, empty partition
                        if schema is None:
                            schema = schema_from(plan.types, [], plan.nullable)
                            schema = shaper.schema(schema) if shaper else schema
                            warnings = check_drift(previous, schema, where=where)
                        writer = _writer(staged.data_file, schema)
                except BaseException:
                    if writer is not None:
                        writer.abort()
                    raise
                writer.close()  # sorted by SKU (`pipelines.extract.cluster`) where the table has one
                staged.write_manifest(
                    {
                        "source": source.name,
                        "table": spec.name,
                        "dataset": spec.dataset,
                        "snapshot_date": run_date.isoformat(),
                        "mode": spec.mode,
                        "method": reader,
                        "streams": len(ranges),
                        "clustered_by": writer.cluster,
                        "rows": rows,
                        "schema": schema_to_json(schema),
                        "query": str(plan.stmt.compile(dialect=conn.dialect)),
                        "bounds": {"lower": lower, "upper": night.end, "timezone": cfg.timezone},
                        "watermark": {"column": spec.cursor, "min": cursor_min, "max": cursor_max},
                        "started_at": started.isoformat(),
                        "seconds": round(time.perf_counter() - t0, 3),
                        "seam_version": __version__,
                    }
                )
    except DBAPIError as err:
        if is_transient(err):  # only a lost connection, a restart or contention: worth a retry
            raise SourceUnavailableError(f"extracting {where} failed: {describe_db_error(err)}") from None
        what = "query" if spec.query is not None else "table"
        raise ConfigError(
            f"extracting {where} failed: the database refused the {what}: {describe_db_error(err)}"
            f"{adapter.query_error_hint(err) if spec.query is not None else ''}; "
            f"fix sources.{source.name}.tables.{spec.name}.{what} (or its `columns:`) in the config"
        ) from None
    finally:
        engine.dispose()
    if spec.mode == "incremental":
        commit_watermark(
            lake,
            source.name,
            spec.name,
            run_date,
            cursor_max if cursor_max is not None else (lower + spec.lookback if lower else None),
        )
    seconds = time.perf_counter() - t0
    log.info(
        "extract %s snapshot_date=%s mode=%s method=%s rows_out=%d seconds=%.2f",
        where,
        run_date,
        spec.mode,
        reader,
        rows,
        seconds,
    )
    return ExtractResult(
        source.name,
        spec.name,
        spec.dataset,
        run_date,
        rows,
        lake.table_partition(source.name, spec.name, run_date),
        seconds,
        tuple(warnings),
    )


def _writer(path: Path, schema: pa.Schema) -> PartitionWriter:
    """The staged partition's writer: rows sorted by SKU where the table has one."""
    return PartitionWriter(path, schema, compression=COMPRESSION, cluster=clustered_by(schema))


def _check_required(where: str, spec: TableSpec, names: list[str]) -> None:
    """Every column the dataset's contract requires must be there (mapped, or a constant), before
    anything is read: a missing one is a mapping to add, not a quality failure tomorrow."""
    if spec.dataset not in DATASETS:
        return
    missing = [c.name for c in DATASETS[spec.dataset].columns if c.required and c.name not in names]
    if missing:
        example = missing[0]
        raise ConfigError(
            f"{where} ({spec.dataset}): required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(f'`{m}`' for m in missing)} {'are' if len(missing) > 1 else 'is'} missing; map "
            f"{'them' if len(missing) > 1 else 'it'} with `columns:` ({example}: <source column>), alias "
            f"{'them' if len(missing) > 1 else 'it'} in the `query:`, or give a constant "
            f"(`constants: {{{example}: ...}}`). The columns of {spec.dataset} are in the README's contract reference."
        )


def _batches(
    conn: Connection,
    adapter: Adapter,
    plan: TablePlan,
    schemas: tuple[pa.Schema | None, pa.Schema | None],
    reader: str,
    ranges: list[Any],
) -> Iterator[pa.RecordBatch]:
    """Record batches of the plan's rows: the dialect's fast reader (over key ranges on parallel
    streams when there are several), or SQLAlchemy streaming.

    `schemas`: the batches' schema (None: from the first rows) and what a fast reader parses
    (a query's columns as the database describes them), cast to the former."""
    schema, wire = schemas
    if reader != "generic":
        assert schema is not None and wire is not None
        if len(ranges) > 1:
            statements = [compiled(conn, stmt) for stmt in ranges]
            batches = adapter.stream_parallel(conn, statements, wire, reader)
        else:
            sql, params = compiled(conn, plan.stmt)
            batches = adapter.stream(conn, sql, params, wire, reader)
        for batch in batches:
            yield batch if wire == schema else _cast(batch, schema)
        return
    result = conn.execution_options(stream_results=True, yield_per=CHUNK_ROWS).execute(plan.stmt, plan.binds)
    batch_schema = schema
    for chunk in result.partitions(CHUNK_ROWS):
        if batch_schema is None:
            batch_schema = schema_from(plan.types, chunk, plan.nullable)
        yield to_batch(chunk, batch_schema)


def _cast(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A batch of a query's described types as the types the dataset declares (number, date,
    timestamp), as the generic path converts them."""
    try:
        return batch.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise DataError(
            f"the query's columns do not convert to the types the dataset declares ({err}); "
            f"cast them in the `query:`, or read it with `reader: generic`"
        ) from None


def _previous_schema(lake: Lake, source: str, table: str, run_date: date) -> list[dict[str, Any]] | None:
    earlier = [d for d in lake.table_days(source, table) if d < run_date]
    if not earlier:
        return None
    manifest = lake.table_manifest(source, table, earlier[-1])
    return manifest.get("schema") if manifest else None


def table_list(cfg: Config) -> list[dict[str, str]]:
    """[{'source':..., 'table':...}] for every configured table: what the DAG maps over."""
    return [{"source": s.name, "table": t.name} for s in cfg.sources for t in s.tables]
