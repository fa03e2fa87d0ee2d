"""Read canonical datasets of a night from the lake, conformed to their contracts.

This is the one owner of the union: a dataset fed by several sources (`Config.providers`) is read
as the union of every source's partitions of the night, each row carrying the `source` it came
from (the lake's own partition key).  Before anything is read as one table:

* every source must have its partition of the night, or the read fails naming the source (a
  night never goes on with half the data);
* the sources' column types must agree (integers and decimals unify as numbers; text against a
  number, a date against a timestamp, ... is a `SchemaConflictError` naming both sources);
* identifiers named in `union.qualify_keys` are read as `<source>:<value>` in every dataset.

Rows of different sources are never merged: a union's rows are keyed by `(source, key)`.  An entity
dataset (`products`, `warehouses`, `customers`, `accounts`) whose identifier is not qualified holds
one row per entity: the same key in two sources is the same entity, described by the first source
in config order that lists it.  A single-source dataset reads exactly as before, plus `source`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.config import Config, SourceSpec, TableSpec
from pipelines.contracts import (
    ENTITIES,
    SOURCE,
    Dataset,
    conform_frame,
    contract_of,
    identifier_columns,
    is_canonical,
)
from pipelines.errors import ConfigError, MissingInputError, SchemaConflictError
from pipelines.lake.store import Lake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceNights:
    """One source's part of a dataset: its table, and the nights read (snapshot: tonight;
    incremental: every night up to tonight), each with `source` and qualified identifiers."""

    source: str
    spec: TableSpec
    nights: tuple[pa.Table, ...]

    @property
    def table(self) -> pa.Table:
        if len(self.nights) == 1:
            return self.nights[0]
        return pa.concat_tables(self.nights, promote_options="default")


def read_source_nights(
    cfg: Config,
    dataset: str,
    run_date: date,
    *,
    filters: Any = None,
    columns: list[str] | None = None,
) -> list[SourceNights]:
    """Every source's rows of `dataset` for the night, in config order, with types that agree.

    Raises `MissingInputError` naming the source whose partition is missing, and
    `SchemaConflictError` when two sources give a column different types (nothing is read as one
    table then).  `filters` (pyarrow DNF conjunction, e.g. `[("sku", "in", [...])]`) are pushed
    down to each source's files; values of a qualified column are matched without their prefix.
    """
    lake = Lake(cfg.lake)
    providers = cfg.providers(dataset)
    qualified = identifier_columns(dataset, cfg.union.qualify_keys) if is_canonical(dataset) else ()
    wanted = [c for c in columns if c != SOURCE] if columns is not None else None
    raw: list[tuple[SourceSpec, TableSpec, list[pa.Table]]] = []
    for source, spec in providers:
        nights = _nights(lake, source, spec, dataset, run_date, len(providers))
        mine = _source_filters(filters, source.name, qualified)
        raw.append(
            (source, spec, [_read_night(lake, source.name, spec.name, d, mine, wanted) for d in nights])
        )
    if len(raw) > 1:
        raw = _unify(dataset, raw)
    return [
        SourceNights(
            source.name,
            spec,
            tuple(
                _with_source(t, source.name, qualified, several=len(raw) > 1, dataset=dataset) for t in tables
            ),
        )
        for source, spec, tables in raw
    ]


def iter_source_batches(
    cfg: Config, dataset: str, run_date: date, *, columns: list[str], batch_rows: int = 65_536
) -> Iterator[pa.Table]:
    """The rows `read_source_nights` gives of the night (every source, its night or nights, with
    `source` and qualified identifiers, the sources' types unified), a record batch of up to
    `batch_rows` rows at a time, for a reader that reduces the night as it goes: it holds one
    batch, not the night.  Raises as `read_source_nights` does."""
    lake = Lake(cfg.lake)
    providers = cfg.providers(dataset)
    qualified = identifier_columns(dataset, cfg.union.qualify_keys) if is_canonical(dataset) else ()
    wanted = [c for c in columns if c != SOURCE]
    found: list[tuple[SourceSpec, TableSpec, list[tuple[Path, ...]]]] = []
    for source, spec in providers:
        days = _nights(lake, source, spec, dataset, run_date, len(providers))
        found.append((source, spec, [lake.table_files(source.name, spec.name, d) for d in days]))
    schemas = [
        (source, spec, [pq.read_schema(files[0]).empty_table().select(wanted) for files in nights if files])
        for source, spec, nights in found
    ]
    several = len(found) > 1
    if several:  # the types every source's batches take
        schemas = _unify(dataset, schemas)
    for (source, _, nights), (_, _, empties) in zip(found, schemas, strict=True):
        for files, empty in zip([f for f in nights if f], empties, strict=True):
            for path in files:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=wanted):
                    table = pa.Table.from_batches([batch])
                    if several:
                        table = table.cast(empty.schema)
                    yield _with_source(table, source.name, qualified, several=several, dataset=dataset)


def _nights(
    lake: Lake, source: SourceSpec, spec: TableSpec, dataset: str, run_date: date, providers: int
) -> list[date]:
    """The nights of a source's table read as of `run_date` (a snapshot: that night; an increment:
    every night up to it); MissingInputError when that night is missing."""
    days = [d for d in lake.table_days(source.name, spec.name) if d <= run_date]
    if run_date not in days:
        what = "snapshot" if spec.mode == "snapshot" else "increment"
        others = f" (dataset {dataset!r} is the union of {providers} sources)" if providers > 1 else ""
        raise MissingInputError(
            f"no {what} of {source.name}.{spec.name} for {run_date}{others}; run "
            f"`seam extract --date {run_date} --source {source.name}` first"
        )
    return [run_date] if spec.mode == "snapshot" else days


def _read_night(
    lake: Lake, source: str, table: str, day: date, filters: Any, columns: list[str] | None
) -> pa.Table:
    if filters is _NOTHING:  # a filter on a qualified column names none of this source's values
        schema = pq.read_schema(lake.table_files(source, table, day)[0])
        empty = schema.empty_table()
        return empty.select(columns) if columns is not None else empty
    return lake.read_table(source, table, day, filters=filters, columns=columns)


def read_dataset(
    cfg: Config,
    dataset: str,
    run_date: date,
    *,
    conform: bool = True,
    exclude_quarantined: bool = True,
    filters: Any = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """The canonical dataset as of `run_date`: the union of its sources, with a `source` column.

    Per source, snapshot tables give that night's partition; incremental tables every partition
    up to `run_date`, keeping the newest version of each key (by the cursor column).  `filters`
    (pyarrow DNF) are pushed down to the Parquet files, so a shard reads only its rows.
    """
    ds = contract_of(dataset)
    parts = read_source_nights(cfg, dataset, run_date, filters=filters, columns=columns)
    frames = []
    for part in parts:
        df = part.table.to_pandas(date_as_object=False)
        if (
            part.spec.mode == "incremental" and len(df) and ds.key
        ):  # a landed table has no key: every row stays
            df = df.sort_values(ds.cursor or list(ds.key), kind="stable").drop_duplicates(
                list(ds.key), keep="last"
            )
        frames.append(df.reset_index(drop=True))
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if len(parts) > 1:
        df = _one_row_per_entity(df, ds, [p.source for p in parts], cfg.union.qualify_keys)
    if exclude_quarantined:
        bad = Lake(cfg.lake).read_quarantine(dataset, run_date)
        if bad is not None and len(bad) and ds.key:
            key = [SOURCE, *ds.key] if SOURCE in bad.columns and SOURCE in df.columns else list(ds.key)
            bad_keys = pd.MultiIndex.from_frame(bad[key].astype(str))
            df = df[~pd.MultiIndex.from_frame(df[key].astype(str)).isin(bad_keys)].reset_index(drop=True)
    return conform_frame(df, ds) if conform else df


def dataset_files(cfg: Config, dataset: str, run_date: date) -> tuple[Path, ...]:
    """The Parquet files of a single-source snapshot dataset's night (for readers that stream them
    in batches; a union is read with `read_dataset`)."""
    providers = cfg.providers(dataset)
    if len(providers) > 1:
        raise ConfigError(
            f"dataset {dataset!r} is the union of sources {[s.name for s, _ in providers]}; read it with "
            f"read_dataset, not file by file"
        )
    source, spec = providers[0]
    lake = Lake(cfg.lake)
    if run_date not in lake.table_days(source.name, spec.name):
        raise MissingInputError(
            f"no snapshot of {source.name}.{spec.name} for {run_date}; run `seam extract --date {run_date}` first"
        )
    return lake.table_files(source.name, spec.name, run_date)


# --- the union's rules ----------------------------------------------------------------------------
_NOTHING = object()  # filters no row of a source can pass


def _source_filters(filters: Any, source: str, qualified: tuple[str, ...]) -> Any:
    """`filters` as one source's files see them: a qualified column's values lose their
    `<source>:` prefix, and values of other sources are dropped."""
    if filters is None or not qualified:
        return filters
    prefix = f"{source}:"
    out = []
    for column, op, value in filters:
        if column in qualified:
            if op not in ("in", "==", "="):
                raise ConfigError(
                    f"filter {(column, op)!r} on a qualified column: only `in` and `==` are supported"
                )
            values = value if op == "in" else [value]
            local = [v[len(prefix) :] for v in values if str(v).startswith(prefix)]
            if not local:
                return _NOTHING
            out.append((column, "in", local))
        else:
            out.append((column, op, value))
    return out


def _family(t: pa.DataType) -> str:
    """The kind of an Arrow type, as far as a union is concerned."""
    if pa.types.is_dictionary(t):
        return _family(t.value_type)
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz is None else f"timestamp with time zone {t.tz}"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    return str(t)


_UNITS = ("s", "ms", "us", "ns")


def _common_type(types: list[pa.DataType], family: str) -> pa.DataType:
    if family == "string":
        return pa.string()
    if family == "integer":
        return pa.int64()
    if family == "number":
        return pa.float64()
    if family == "date":
        return pa.date32()
    if family == "binary":
        return pa.binary()
    if family.startswith("timestamp"):
        unit = max((t.unit for t in types if pa.types.is_timestamp(t)), key=_UNITS.index)
        return pa.timestamp(unit, next(t.tz for t in types if pa.types.is_timestamp(t)))
    return types[0]


def _unify(
    dataset: str, raw: list[tuple[SourceSpec, TableSpec, list[pa.Table]]]
) -> list[tuple[SourceSpec, TableSpec, list[pa.Table]]]:
    """Check that the sources' column types agree, and cast them to one type per column.

    Integers and numbers (floats, decimals) unify as numbers, except in a text column (an id read
    as 1 and as 1.0 would not match); anything else that differs is a `SchemaConflictError`."""
    contract = contract_of(dataset)
    seen: dict[str, list[tuple[str, str, pa.DataType]]] = {}  # column -> (where, family, type)
    for source, spec, tables in raw:
        for table in tables:
            for f in table.schema:
                fam = _family(f.type)
                if fam != "null":
                    seen.setdefault(f.name, []).append(
                        (f"sources.{source.name}.tables.{spec.name}", fam, f.type)
                    )
    target: dict[str, pa.DataType] = {}
    for column, found in seen.items():
        families = {fam for _, fam, _ in found}
        text = column in contract.names and contract.column(column).kind == "string"
        if families == {"integer", "number"} and not text:
            families = {"number"}
        if len(families) > 1:
            (w1, f1, t1) = found[0]
            # name another source's table where there is one (a source may also drift between nights)
            w2, f2, t2 = min((x for x in found if x[1] != f1), key=lambda x: x[0] == w1)
            raise SchemaConflictError(
                f"dataset {dataset!r}: column {column!r} is {t1} ({f1}) in {w1} but {t2} ({f2}) in {w2}; "
                f"the union of the sources needs one type: cast it in one of them (`casts: {{{column}: ...}}` "
                f"under {w2}), or map the column in the source's `query:`"
            )
        family = families.pop()
        types = [t for _, _, t in found]
        if len({str(t) for t in types}) > 1:
            target[column] = _common_type(types, family)
    out = []
    for source, spec, tables in raw:
        cast = []
        for table in tables:
            for i, f in enumerate(table.schema):
                want = target.get(f.name) or (
                    seen[f.name][0][2] if pa.types.is_null(f.type) and f.name in seen else None
                )
                if want is not None and f.type != want:
                    table = table.set_column(i, f.name, pc.cast(table.column(i), want))
            cast.append(table)
        out.append((source, spec, cast))
    return out


def _with_source(
    table: pa.Table, source: str, qualified: tuple[str, ...], *, several: bool, dataset: str
) -> pa.Table:
    """`table` with its identifiers qualified and a `source` column last."""
    for column in qualified:
        if column in table.column_names:
            i = table.column_names.index(column)
            values = pc.cast(table.column(i), pa.string())
            table = table.set_column(
                i, column, pc.binary_join_element_wise(pa.scalar(f"{source}:"), values, "")
            )
    if SOURCE in table.column_names:
        if several:  # only a landed table can have one (no canonical dataset does)
            raise ConfigError(
                f"dataset {dataset!r} has a column named {SOURCE!r} in source {source!r}, which a union "
                f"adds to tell the sources apart; rename it in the table's `query:`"
            )
        return table  # a single source's own column is kept as it is
    return table.append_column(SOURCE, pa.repeat(pa.scalar(source, pa.string()), table.num_rows))


def _one_row_per_entity(
    df: pd.DataFrame, ds: Dataset, order: list[str], qualified: frozenset[str]
) -> pd.DataFrame:
    """An entity listed by several sources under the same (unqualified) key is one entity: keep
    the rows of the first source in config order that lists it."""
    ident = ENTITIES.get(ds.name)
    if ident is None or ident in qualified or not len(df):
        return df
    rank = df[SOURCE].map({s: i for i, s in enumerate(order)})
    first = rank.groupby(df[ident].astype(str), dropna=False).transform("min")
    keep = (rank == first).to_numpy()
    if not keep.all():
        log.info(
            "union %s: %d rows describe entities a source earlier in the config already lists; kept the first",
            ds.name,
            int((~keep).sum()),
        )
    return df[keep].reset_index(drop=True)
