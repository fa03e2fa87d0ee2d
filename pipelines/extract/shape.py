"""A table's `casts:` and `constants:`: simple fixes of a source without writing a `query:`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import TableSpec
from pipelines.errors import DataError

ARROW_KINDS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "boolean": pa.bool_(),
}


@dataclass(frozen=True)
class Shaper:
    """Casts columns to a kind and adds constant columns, batch by batch."""

    casts: dict[str, str]
    constants: dict[str, Any]
    where: str

    @classmethod
    def of(cls, spec: TableSpec, where: str) -> Shaper:
        return cls(dict(spec.casts), dict(spec.constants), where)

    def __bool__(self) -> bool:
        return bool(self.casts or self.constants)

    def schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema of the shaped batches."""
        empty = pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)
        return self.batch(empty)[1]

    def batch(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.Schema]:
        names, arrays = list(batch.schema.names), list(batch.columns)
        fields = list(batch.schema)
        for col, kind in self.casts.items():
            if col not in names:
                raise DataError(
                    f"{self.where}: `casts:` names {col!r}, which the table does not have; columns: {names}"
                )
            i = names.index(col)
            try:
                arrays[i] = pc.cast(arrays[i], ARROW_KINDS[kind])
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise DataError(
                    f"{self.where}: column {col!r} cannot be cast to {kind} as `casts:` asks ({err})"
                ) from None
            fields[i] = pa.field(col, ARROW_KINDS[kind], nullable=fields[i].nullable)
        for col, value in self.constants.items():
            arrays.append(pa.array([value] * batch.num_rows, type=pa.scalar(value).type))
            fields.append(pa.field(col, arrays[-1].type, nullable=False))
            names.append(col)
        shaped = pa.schema(fields)
        return pa.RecordBatch.from_arrays(arrays, schema=shaped), shaped
