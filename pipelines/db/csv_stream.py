"""CSV as the bulk wire format of the fast paths: parsing a server's output into Arrow record
batches, and writing Arrow tables as CSV for a server's bulk load."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from pipelines.errors import DataError

BLOCK_BYTES = 8 << 20  # ~8 MB of CSV per parsed block: tens of thousands of rows, flat memory
CSV_TYPES = (
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_decimal,
    pa.types.is_string,
    pa.types.is_boolean,
    pa.types.is_date32,
    pa.types.is_timestamp,
)


def csv_readable(schema: pa.Schema) -> bool:
    """True when every column has a type the CSV parser can produce exactly."""
    return all(any(check(f.type) for check in CSV_TYPES) for f in schema)


def parse_csv(
    stream: Any,
    schema: pa.Schema,
    *,
    delimiter: str,
    quoted: bool,
    fix: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of `schema` parsed from `stream` in blocks (bounded memory).

    `quoted`: PostgreSQL's CSV, where NULL is an empty unquoted field and '' a quoted empty one.
    Otherwise tab-separated client output where NULL is the word NULL and strings are read as
    text (`fix` then turns each batch's marked strings back into values).  Empty lines are rows
    (a one-column row that is NULL, or '' where no mark is needed), never skipped.
    """
    if quoted:
        null_values = [""]
        parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=False)
    else:
        null_values = ["NULL"]
        parse = pcsv.ParseOptions(
            delimiter=delimiter, quote_char=False, escape_char=False, ignore_empty_lines=False
        )
    convert = pcsv.ConvertOptions(
        column_types={f.name: f.type for f in schema},
        null_values=null_values,
        true_values=["t", "1"],
        false_values=["f", "0"],
        strings_can_be_null=quoted,
        quoted_strings_can_be_null=False,
    )
    read = pcsv.ReadOptions(column_names=schema.names, block_size=BLOCK_BYTES, use_threads=True)
    try:
        reader = pcsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            if fix is not None:
                batch = fix(batch)
            yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    except pa.ArrowInvalid as err:
        if "Empty CSV file" in str(err):
            return
        raise DataError(
            f"a value does not fit the column types read from the database catalogue ({err}); "
            f"the source column may have been retyped during the run"
        ) from None


def csv_chunks(data: pa.Table, *, null: str, bools_as_int: bool, rows: int = 100_000) -> Iterator[bytes]:
    """The table as CSV in slices (no header; strings always quoted, so an unquoted `null` is NULL).

    Slicing keeps memory flat: never more than one slice's CSV text at a time.
    """
    if bools_as_int:
        for i, field in enumerate(data.schema):
            if pa.types.is_boolean(field.type):
                data = data.set_column(i, field.name, pc.cast(data.column(i), pa.int8()))
    options = pcsv.WriteOptions(include_header=False, null_string=null, batch_size=16 * 1024)
    for i in range(0, data.num_rows, rows):
        buf = io.BytesIO()
        pcsv.write_csv(data.slice(i, rows), buf, options)
        yield buf.getvalue()
