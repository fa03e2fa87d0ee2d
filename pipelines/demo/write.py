"""Write the demo tables into real databases (SQLite, PostgreSQL, MariaDB/MySQL)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines.db import adapter_for, connect, make_engine, safe_url
from pipelines.demo.build import DemoSize, build_crm, build_erp
from pipelines.demo.schema import CRM, ERP
from pipelines.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerateResult:
    erp_rows: dict[str, int]
    crm_rows: dict[str, int]


def generate(
    erp_url: str, crm_url: str, size: DemoSize | None = None, *, replace: bool = False
) -> GenerateResult:
    """Create the demo ERP and CRM schemas and fill them; deterministic for a given `size`.

    Refuses to touch a database that already holds demo tables unless `replace` is set,
    in which case only the demo's own tables are dropped and rebuilt.
    """
    size = size or DemoSize()
    t0 = time.perf_counter()
    erp = build_erp(size)
    crm = build_crm(size, erp["customers"])
    for frames in (erp, crm):  # whole seconds, as most source systems store them
        for df in frames.values():
            for col in df.columns:
                if pd.api.types.is_datetime64_any_dtype(df[col]):
                    df[col] = df[col].dt.floor("s")
    log.info(
        "built demo frames in %.1fs: %s order lines", time.perf_counter() - t0, len(erp["sales_order_lines"])
    )
    erp_rows = _write(erp_url, ERP, erp, replace=replace, what="the demo ERP database")
    crm_rows = _write(crm_url, CRM, crm, replace=replace, what="the demo CRM database")
    return GenerateResult(erp_rows, crm_rows)


def _write(
    url: str, metadata: sa.MetaData, frames: dict[str, pd.DataFrame], *, replace: bool, what: str
) -> dict[str, int]:
    adapter_for(url).create_container(url)
    engine = make_engine(url, write=True)
    try:
        with connect(engine, what=what) as conn:
            existing = set(sa.inspect(conn).get_table_names()) & set(metadata.tables)
            conn.rollback()  # end the inspection's implicit transaction before the real one
            if existing and not replace:
                raise ConfigError(
                    f"{what} at {safe_url(url)} already has demo tables {sorted(existing)}; "
                    f"pass --replace to rebuild them (only the demo's own tables are dropped)"
                )
            with conn.begin():
                if existing:
                    metadata.drop_all(conn)
                metadata.create_all(conn)
                counts = {}
                for table in metadata.sorted_tables:
                    df = frames[table.name]
                    _bulk_insert(conn, table, df)
                    counts[table.name] = len(df)
            log.info("wrote %s: %s", what, counts)
            return counts
    finally:
        engine.dispose()


def _bulk_insert(conn: Connection, table: sa.Table, df: pd.DataFrame) -> None:
    """Insert a frame with the dialect's bulk path, its columns typed as the table's."""
    if df.empty:
        return
    adapter = adapter_for(conn)
    data = pa.Table.from_pandas(df[[c.name for c in table.columns]], preserve_index=False)
    for i, column in enumerate(table.columns):
        if isinstance(column.type, sa.DateTime):
            data = data.set_column(i, column.name, pc.cast(data.column(i), pa.timestamp("us")))
        elif isinstance(column.type, sa.Date):
            data = data.set_column(i, column.name, pc.cast(data.column(i), pa.date32()))
    adapter.bulk_insert(conn, adapter.quote(conn, table.name), [c.name for c in table.columns], data)
