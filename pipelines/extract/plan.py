"""What to run for one table of a night: the SELECT, its binds and the Arrow types of its columns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import NoSuchTableError

from pipelines.config import SourceSpec, TableSpec
from pipelines.contracts import contract_of
from pipelines.db import adapter_for
from pipelines.errors import ConfigError
from pipelines.extract.ranges import split_key
from pipelines.extract.schema import QUERY_TYPES, arrow_type
from pipelines.run_context import NightBounds

# the bind names SQLAlchemy's text() finds (`:name`, not `::cast` or `\:`)
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?![:\w])")


@dataclass(frozen=True)
class TablePlan:
    """What to run for one table: the statement, its binds, and the Arrow types of its columns."""

    stmt: sa.Select[Any] | sa.TextClause | sa.TextualSelect
    binds: dict[str, Any]
    types: dict[str, pa.DataType | None]  # None: inferred from the first rows (queries only)
    nullable: dict[str, bool]
    missing: list[str]  # source columns of the `columns:` mapping absent from the table
    table_columns: list[str]
    split_on: sa.Column[Any] | None = None  # a single integer primary key: can be read in ranges
    # A query's columns as the database describes them: what a fast reader parses, cast to
    # `types` afterwards (None: a table, read as `types`; a None type: the database cannot say).
    described: dict[str, pa.DataType | None] | None = None
    described_nullable: dict[str, bool] | None = None  # False: the database says never NULL


def build_plan(
    conn: Connection, source: SourceSpec, spec: TableSpec, lower: datetime | None, night: NightBounds
) -> TablePlan:
    """The SELECT of one table for the night, the Arrow type of each output column and the binds.

    A table's types come from the database catalogue; its `as_of` / incremental cursor is bounded
    by the night's end in the column's own terms (wall-clock time for columns without a zone, the
    UTC instant for columns with one).  A query gets the binds `:run_start`, `:run_end` (wall
    clock), `:run_start_utc`, `:run_end_utc` and `:watermark`; its columns that the canonical
    dataset declares as number/date/timestamp get those types, the others the type the database
    describes for them (`Adapter.query_types`, without reading a row), or where it cannot say,
    the type of the first rows' values (None here).
    """
    reverse = {src: canon for canon, src in spec.columns.items()}
    if spec.query is not None:
        binds = {
            "run_start": night.start,
            "run_end": night.end,
            "run_start_utc": night.start_utc,
            "run_end_utc": night.end_utc,
            "watermark": lower,
        }
        named = set(_BIND.findall(spec.query))
        needed = {k: v for k, v in binds.items() if k in named}
        kinds = {c.name: c.kind for c in contract_of(spec.dataset).columns}
        # Described, not run: the planner sees that no row can pass.
        probe = conn.execute(sa.text(f"SELECT * FROM ({spec.query}) q WHERE 1 = 0"), needed)
        names = list(probe.keys())
        adapter = adapter_for(conn)
        described = dict(zip(names, adapter.query_types(probe.cursor), strict=True))
        not_null = adapter.query_not_null(probe.cursor)
        described_nullable = {n: not nn for n, nn in zip(names, not_null, strict=True)}
        probe.close()
        conn.rollback()
        # decimals are read as floats (SQLAlchemy's Float turns the driver's Decimal into float)
        sa_types = {n: sa.Float() for n, t in described.items() if t == pa.float64()}
        qtypes = dict(described)
        for n in names:
            if kinds.get(n) in QUERY_TYPES:
                sa_types[n], qtypes[n] = QUERY_TYPES[kinds[n]]
        stmt = sa.text(spec.query).bindparams(**needed).columns(**sa_types)
        # The partition's columns stay nullable, as they always were for queries; the described
        # nullability only spares a fast reader its NULL-safe marks.
        return TablePlan(stmt, needed, qtypes, {}, [], names, None, described, described_nullable)
    assert spec.table is not None  # the config gives a table or a query
    try:
        table = sa.Table(spec.table, sa.MetaData(), schema=source.schema, autoload_with=conn)
    except NoSuchTableError:
        raise ConfigError(
            f"sources.{source.name}.tables.{spec.name}: table {spec.table!r} does not exist in source "
            f"{source.name!r}; check the table name (and `schema:`) in the config"
        ) from None
    conn.rollback()  # end the catalogue transaction: the data is read in a fresh snapshot
    names = [c.name for c in table.columns]
    missing = sorted(set(spec.columns.values()) - set(names))
    read = [c for c in table.columns if not _renamed_over(c.name, spec.columns)]
    cols = [c.label(reverse.get(c.name, c.name)) for c in read]
    types: dict[str, pa.DataType | None] = {reverse.get(c.name, c.name): arrow_type(c.type) for c in read}
    nullable = {reverse.get(c.name, c.name): bool(c.nullable) for c in read}
    sel = sa.select(*cols)
    bound_col = spec.as_of or (spec.cursor if spec.mode == "incremental" else None)
    for setting, name in (
        ("as_of", spec.as_of),
        ("cursor", spec.cursor if spec.mode == "incremental" else None),
    ):
        if name and spec.columns.get(name, name) not in names:
            raise ConfigError(
                f"sources.{source.name}.tables.{spec.name}.{setting}: column {name!r} is not in table "
                f"{spec.table!r} (it has {names}); name a canonical column the table has, mapped with `columns:`"
            )
    if bound_col and not missing:
        column = table.c[spec.columns.get(bound_col, bound_col)]
        aware = isinstance(column.type, sa.DateTime) and bool(column.type.timezone)
        sel = sel.where(column < (night.end_utc if aware else night.end))
    if spec.mode == "incremental" and lower is not None and spec.cursor and not missing:
        sel = sel.where(table.c[spec.columns.get(spec.cursor, spec.cursor)] >= lower)
    return TablePlan(sel, {}, types, nullable, missing, names, split_key(table))


def _renamed_over(name: str, columns: dict[str, str]) -> bool:
    """A source column whose name the `columns:` mapping gives to another source column (e.g.
    `region: sales_area` on a table that has a `region` of its own) is replaced by it and not read:
    two columns of one name cannot be landed.  A column the mapping renames itself is still read."""
    return name in columns and columns[name] != name and name not in columns.values()


def check_mapping(source: str, spec: TableSpec, plan: TablePlan) -> None:
    """Every source column the `columns:` mapping names must exist in the table."""
    if plan.missing:
        raise ConfigError(
            f"sources.{source}.tables.{spec.name}: source columns {plan.missing} of the `columns:` mapping "
            f"are not in table {spec.table!r} (it has {plan.table_columns}); fix the names in `columns:`"
        )


def compiled(conn: Connection, stmt: Any) -> tuple[str, Any]:
    """SQL text with driver placeholders and its parameters."""
    comp = stmt.compile(dialect=conn.dialect)
    params: Any = comp.params
    if comp.positiontup is not None:  # 'format' paramstyle (pymysql): positional
        params = tuple(comp.params[k] for k in comp.positiontup)
    return str(comp), params
