"""Arrow types of extracted columns: from the database catalogue, or from the first rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.sql.sqltypes import _Binary

from pipelines.errors import DataError


def arrow_type(col_type: sa.types.TypeEngine[Any]) -> pa.DataType:
    """Arrow type for a database column type (generic SQLAlchemy type affinity)."""
    t = col_type
    if isinstance(t, sa.Boolean):
        return pa.bool_()
    if isinstance(t, sa.SmallInteger):
        return pa.int32()
    if isinstance(t, sa.Integer):
        return pa.int64()
    if isinstance(t, sa.Numeric) and not isinstance(t, sa.Float):
        if t.precision is not None and t.asdecimal:
            return pa.decimal128(t.precision, t.scale or 0)
        return pa.float64()
    if isinstance(t, sa.Float):
        return pa.float64()
    if isinstance(t, sa.DateTime):
        return pa.timestamp("us", tz="UTC" if t.timezone else None)
    if isinstance(t, sa.Date):
        return pa.date32()
    if isinstance(t, sa.Time):
        return pa.time64("us")
    if isinstance(t, _Binary):  # bytea, BLOB of every size, BINARY, VARBINARY: bytes, not text
        return pa.binary()
    return pa.string()


# the SQLAlchemy and Arrow types of a query's columns whose canonical kind is known
QUERY_TYPES: dict[str, tuple[Any, pa.DataType]] = {
    "number": (sa.Float(), pa.float64()),
    "date": (sa.Date(), pa.date32()),
    "timestamp": (sa.DateTime(), pa.timestamp("us")),
}


def schema_from(
    types: dict[str, pa.DataType | None], rows: Sequence[Any], nullable: dict[str, bool] | None = None
) -> pa.Schema:
    """Fill in the columns whose type is unknown from the first rows (all-null -> string)."""
    fields = []
    for i, (name, typ) in enumerate(types.items()):
        if typ is None:
            sample = [r[i] for r in rows[:1000] if r[i] is not None]
            typ = pa.array(sample).type if sample else pa.string()
            if pa.types.is_decimal(typ):
                typ = pa.float64()
        fields.append(pa.field(name, typ, nullable=(nullable or {}).get(name, True)))
    return pa.schema(fields)


def to_batch(rows: Sequence[Any], schema: pa.Schema) -> pa.RecordBatch:
    """Rows from the database driver as one Arrow record batch of `schema`."""
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        try:
            arrays.append(_array(values, field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as err:
            raise DataError(
                f"column {field.name!r}: values do not fit the declared type {field.type} ({err}); "
                f"the source column may have been retyped"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _array(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    """The values as an Arrow array of `typ`.  A query's DECIMAL/NUMERIC column whose kind the
    contract does not declare is typed float64 (`schema_from`) but arrives as `Decimal` objects,
    which Arrow does not convert to a float directly: they are read as decimals and cast."""
    try:
        return pa.array(values, type=typ, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        if not pa.types.is_floating(typ):
            raise
        return pc.cast(pa.array(values, from_pandas=True), typ)


def widen(low: Any, high: Any, arr: pa.Array) -> tuple[Any, Any]:
    """Extend the running [low, high] range of the cursor column with one batch."""
    mm = pc.min_max(arr)
    bmin, bmax = mm["min"].as_py(), mm["max"].as_py()
    if bmin is not None and (low is None or bmin < low):
        low = bmin
    if bmax is not None and (high is None or bmax > high):
        high = bmax
    return low, high
