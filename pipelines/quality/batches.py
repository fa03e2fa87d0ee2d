"""Run a Great Expectations suite over a dataset in record batches, in bounded memory.

The suite (`expectations/<dataset>.json`) stays the single definition of the checks; this
module decides *how* each expectation is evaluated so that the result equals what GX reports
for the whole table at once:

* row-level expectations whose truth is per row (not null, between, in set, of type) are
  evaluated per batch with pyarrow compute, with GX's pandas semantics (nulls and NaN are
  missing, `mostly` on the totals); the counts are summed and the examples capped;
* other row-level GX expectations known to be per row run through GX on each batch, and their
  per-batch results are combined the same way;
* uniqueness of a column or a compound key is decided over the whole table from a 64-bit hash
  of each row's key kept per batch (8 bytes a row); with a `Spill`, the hashes of a table of
  more than `BUCKET_ROWS` rows go to disk in buckets of their top bits and are sorted one bucket
  at a time, so the check holds one bucket, not the table; the rows whose hash repeats are read
  again and checked exactly, so a hash collision can never report a false duplicate;
* everything else (table aggregates, row counts, distributions, unknown types) runs through
  GX once, on the whole table projected onto the columns it names.

The combined results are written as one GX validation result, so Data Docs look as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.contracts import Dataset, conform_frame
from pipelines.lake import HashBuckets, Spill
from pipelines.quality.gx import GxRunner, frame_for_gx

BATCH_ROWS = 65_536  # rows per record batch (a row group of an extracted file): BENCHMARKS.md, issue 19
BUCKET_ROWS = 1 << 20  # key hashes sorted at once (8 MB) when the hashes are spilled
SAMPLE = 20  # GX's partial_unexpected_count: examples kept per expectation
Route = Literal["arrow", "unique", "gx_rows", "gx_table"]

# GX map expectations whose verdict on a row depends on that row alone, so a batch's result
# is the table's result restricted to the batch.  (Uniqueness, monotonicity and z-scores are
# map expectations too, but depend on other rows: they are not here.)
PER_ROW_GX = frozenset(
    {
        "expect_column_values_to_be_null",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_values_to_match_regex_list",
        "expect_column_values_to_not_match_regex_list",
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern",
        "expect_column_values_to_match_like_pattern_list",
        "expect_column_values_to_not_match_like_pattern_list",
        "expect_column_values_to_match_strftime_format",
        "expect_column_values_to_be_dateutil_parseable",
        "expect_column_values_to_be_json_parseable",
        "expect_column_values_to_match_json_schema",
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_in_set",
        "expect_multicolumn_sum_to_equal",
        "expect_multicolumn_values_to_be_equal",
        "expect_select_column_values_to_be_unique_within_record",
    }
)
UNIQUE = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})
# kwargs an Arrow evaluator understands; anything else (row_condition, ...) goes to GX
ARROW_KWARGS = {
    "expect_column_values_to_not_be_null": {"column", "mostly"},
    "expect_column_values_to_be_between": {
        "column",
        "min_value",
        "max_value",
        "strict_min",
        "strict_max",
        "mostly",
    },
    "expect_column_values_to_be_in_set": {"column", "value_set", "mostly"},
    "expect_column_values_to_be_of_type": {"column", "type_", "mostly"},
    "expect_column_values_to_be_unique": {"column", "mostly"},
    "expect_compound_columns_to_be_unique": {"column_list", "mostly", "ignore_row_if"},
}
IGNORED_KWARGS = {"result_format", "catch_exceptions", "meta", "notes", "batch_id"}


# --- where the rows come from ------------------------------------------------------------------
@dataclass(frozen=True)
class BatchSource:
    """A night's rows in a fixed order: Parquet files streamed in batches, or a table in memory.

    Positions (0-based, in this order) are the row ids used for quarantine; they equal the
    positions of `read_dataset(..., exclude_quarantined=False)`.  Integer columns that hold a
    null anywhere in the table are read as float64 in every batch, as pandas converts them when
    it reads the whole table, so each batch looks like its slice of the whole-table frame.
    """

    files: tuple[Path, ...] = ()
    table: pa.Table | None = None

    @property
    def raw_schema(self) -> pa.Schema:
        if self.table is not None:
            return self.table.schema
        return pq.read_schema(self.files[0]) if self.files else pa.schema([])

    @cached_property
    def schema(self) -> pa.Schema:
        """The schema as the batches are given out (see the class docstring)."""
        raw = self.raw_schema
        for i, f in enumerate(raw):
            if pa.types.is_integer(f.type) and self._has_nulls(f.name):
                raw = raw.set(i, pa.field(f.name, pa.float64()))
        return raw

    def _has_nulls(self, column: str) -> bool:
        if self.table is not None:
            return bool(self.table.column(column).null_count)
        for path in self.files:
            meta = pq.ParquetFile(path).metadata
            i = meta.schema.to_arrow_schema().get_field_index(column)
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(i).statistics
                if stats is None or not stats.has_null_count:
                    return bool(pq.read_table(path, columns=[column]).column(0).null_count)
                if stats.null_count:
                    return True
        return False

    @property
    def num_rows(self) -> int:
        if self.table is not None:
            return int(self.table.num_rows)
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)

    def _cast(self, data: Any) -> Any:
        schema = self.schema
        for name in data.schema.names:
            want = schema.field(name).type
            if data.schema.field(name).type != want:
                i = data.schema.get_field_index(name)
                data = data.set_column(i, name, pc.cast(data.column(i), want))
        return data

    def iter_batches(self, columns: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Record batches of at most `batch_rows` rows holding only `columns`."""
        if self.table is not None:
            batches: Iterator[pa.RecordBatch] = iter(
                self.table.select(columns).to_batches(max_chunksize=batch_rows)
            )
        else:
            batches = (
                b
                for f in self.files
                for b in pq.ParquetFile(f).iter_batches(batch_size=batch_rows, columns=columns)
            )
        for b in batches:
            yield self._cast(b)

    def read_columns(self, columns: list[str]) -> pa.Table:
        """Whole-table read of a few columns (keys for uniqueness, columns of a table-level check)."""
        if self.table is not None:
            return self._cast(self.table.select(columns))
        return self._cast(pa.concat_tables([pq.read_table(f, columns=columns) for f in self.files]))

    def take(self, positions: list[int], batch_rows: int) -> pa.Table:
        """All columns of the rows at `positions` (sorted), read batch by batch."""
        wanted = np.asarray(sorted(positions), dtype=np.int64)
        parts, start = [], 0
        for batch in self.iter_batches(self.schema.names, batch_rows):
            lo, hi = np.searchsorted(wanted, [start, start + batch.num_rows])
            if hi > lo:
                parts.append(pa.Table.from_batches([batch.take(pa.array(wanted[lo:hi] - start))]))
            start += batch.num_rows
        return pa.concat_tables(parts) if parts else self.schema.empty_table()


# --- per-expectation tallies ------------------------------------------------------------------
@dataclass
class Tally:
    """What one expectation has seen so far, summed over batches."""

    element: int = 0
    missing: int | None = 0  # None where GX does not count missing values (not_null)
    unexpected: int = 0
    values: list[Any] = field(default_factory=list)  # the first SAMPLE unexpected values
    rows: list[int] = field(default_factory=list)
    observed: list[str] = field(default_factory=list)  # non-map results (of_type on a dtype)
    failed_batch: bool = False
    exception: str | None = None

    def add_values(self, values: list[Any]) -> None:
        self.values.extend(values[: SAMPLE - len(self.values)])


@dataclass(frozen=True)
class Planned:
    index: int
    config: dict[str, Any]
    route: Route
    columns: tuple[str, ...]

    @property
    def type(self) -> str:
        return str(self.config["type"])

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.config.get("kwargs") or {})


def expectation_columns(kwargs: dict[str, Any]) -> tuple[str, ...]:
    cols: list[str] = []
    for key in ("column", "column_A", "column_B"):
        if isinstance(kwargs.get(key), str):
            cols.append(kwargs[key])
    cols += [c for c in kwargs.get("column_list") or [] if isinstance(c, str)]
    return tuple(dict.fromkeys(cols))


def plan_suite(suite_json: dict[str, Any], schema: pa.Schema, contract: Dataset) -> list[Planned]:
    """Choose how each expectation of a (resolved) suite is evaluated; see the module docstring."""
    out = []
    for i, exp in enumerate(suite_json.get("expectations", [])):
        kwargs = dict(exp.get("kwargs") or {})
        cols = expectation_columns(kwargs)
        route: Route
        if exp["type"] in UNIQUE and _arrow_ready(exp, kwargs, cols, schema):
            route = "unique"
        elif exp["type"] in ARROW_KWARGS and _arrow_ready(exp, kwargs, cols, schema):
            route = (
                "arrow"
                if _arrow_evaluable(exp["type"], kwargs, schema.field(cols[0]).type, contract, cols[0])
                else "gx_rows"
            )
        elif exp["type"] in PER_ROW_GX and cols and all(c in schema.names for c in cols):
            route = "gx_rows"
        else:
            route = "gx_table"
        out.append(Planned(i, exp, route, cols))
    return out


def _arrow_ready(
    exp: dict[str, Any], kwargs: dict[str, Any], cols: tuple[str, ...], schema: pa.Schema
) -> bool:
    allowed = ARROW_KWARGS[exp["type"]] | IGNORED_KWARGS
    mostly = kwargs.get("mostly", 1.0)
    return (
        bool(cols)
        and set(kwargs) <= allowed
        and all(c in schema.names for c in cols)
        and isinstance(mostly, int | float)
        and not isinstance(mostly, bool)
        and kwargs.get("ignore_row_if", "all_values_are_missing")
        in ("all_values_are_missing", "any_value_is_missing", "never")
    )


def _plain(t: pa.DataType, kind: str) -> bool:
    """Arrow types whose values conform (`conform_frame`) to themselves for the canonical kind."""
    if kind == "string":
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    if kind in ("number", "integer"):
        return pa.types.is_integer(t) or pa.types.is_floating(t)
    return False


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _arrow_evaluable(
    kind_type: str, kwargs: dict[str, Any], t: pa.DataType, contract: Dataset, col: str
) -> bool:
    try:
        kind = contract.column(col).kind
    except KeyError:
        return False  # not a canonical column: GX sees it as pandas does
    if kind_type == "expect_column_values_to_not_be_null":
        # nulls stay nulls (and NaN counts as null) through conform_frame for these types
        numeric = pa.types.is_integer(t) or pa.types.is_floating(t)
        temporal = kind in ("date", "timestamp") and pa.types.is_temporal(t)
        return _plain(t, kind) or temporal or (kind == "string" and numeric)
    if kind_type == "expect_column_values_to_be_between":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        bounds_ok = (lo is not None or hi is not None) and all(v is None or _is_number(v) for v in (lo, hi))
        return (
            bounds_ok
            and kind in ("number", "integer")
            and _plain(t, kind)
            and (lo is None or hi is None or lo <= hi)
        )
    if kind_type == "expect_column_values_to_be_in_set":
        values = kwargs.get("value_set")
        # integer ids in a text column conform to their decimal digits, as Arrow casts them
        return (
            kind == "string"
            and (_plain(t, kind) or pa.types.is_integer(t))
            and isinstance(values, list)
            and all(isinstance(v, str) for v in values)
        )
    if kind_type == "expect_column_values_to_be_of_type":
        # conform_frame makes every `number` column float64: GX then checks the dtype only
        return kind == "number" and _plain(t, kind) and isinstance(kwargs.get("type_"), str)
    return False


# --- Arrow evaluators (GX pandas semantics) ---------------------------------------------------
def _missing(arr: pa.Array) -> pa.Array:
    """pandas' isnull: nulls, and NaN in float columns."""
    if pa.types.is_floating(arr.type):
        return pc.or_kleene(pc.is_null(arr), pc.fill_null(pc.is_nan(arr), False))
    return pc.is_null(arr)


def _positions(mask: pa.Array) -> np.ndarray:
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False))


def _conformed_values(
    batch: pa.RecordBatch, cols: list[str], idx: np.ndarray, contract: Dataset
) -> pd.DataFrame:
    """The rows at `idx` as GX sees them (conformed pandas), for the examples only."""
    sub = batch.select(cols).take(pa.array(idx, pa.int64()))
    return conform_frame(sub.to_pandas(date_as_object=False), contract)


def evaluate_arrow(
    p: Planned, batch: pa.RecordBatch, offset: int, tally: Tally, contract: Dataset, *, with_rows: bool
) -> None:
    """Add one batch to the tally of an Arrow-evaluated row-level expectation."""
    kw = p.kwargs
    col = p.columns[0]
    arr = batch.column(col)
    missing = _missing(arr)
    n_missing = int(pc.sum(missing).as_py() or 0)
    tally.element += batch.num_rows
    if p.type == "expect_column_values_to_be_of_type":
        import great_expectations as gx

        check = gx.expectations.ExpectColumnValuesToBeOfType(column=col, type_=kw["type_"])
        res = check._validate_pandas(actual_column_type=np.dtype("float64"), expected_type=kw["type_"])
        tally.observed.append(str(res["result"]["observed_value"]))
        tally.failed_batch |= not res["success"]
        tally.missing = None
        return
    if p.type == "expect_column_values_to_not_be_null":
        tally.missing = None
        bad = missing
    else:
        assert tally.missing is not None
        tally.missing += n_missing
        if p.type == "expect_column_values_to_be_between":
            x = pc.cast(arr, pa.float64(), safe=False)
            lo, hi = kw.get("min_value"), kw.get("max_value")
            ok = pa.array(np.ones(len(x), dtype=bool))
            if lo is not None:
                ok = pc.and_(ok, pc.greater(x, lo) if kw.get("strict_min") else pc.greater_equal(x, lo))
            if hi is not None:
                ok = pc.and_(ok, pc.less(x, hi) if kw.get("strict_max") else pc.less_equal(x, hi))
        else:  # in set
            text = (
                arr
                if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
                else pc.cast(arr, pa.string())
            )
            ok = pc.is_in(text, value_set=pa.array(kw["value_set"], text.type))
        bad = pc.and_(pc.invert(pc.fill_null(ok, True)), pc.invert(missing))
    idx = _positions(bad)
    tally.unexpected += len(idx)
    if len(tally.values) < SAMPLE and len(idx):
        frame = _conformed_values(batch, [col], idx[: SAMPLE - len(tally.values)], contract)
        tally.add_values(list(frame[col]))
    if with_rows:
        tally.rows.extend((idx + offset).tolist())


def _ignored_keys(p: Planned, keys: pa.Table | pa.RecordBatch) -> tuple[list[pa.Array], pa.Array]:
    """Per key column its missing mask, and the rows GX leaves out of the uniqueness check."""
    cols = list(p.columns)
    missing = [_missing(_combined(keys.column(c))) for c in cols]
    if p.type == "expect_column_values_to_be_unique":
        return missing, missing[0]
    how = p.kwargs.get("ignore_row_if", "all_values_are_missing")
    if how == "never":
        return missing, pa.array(np.zeros(keys.num_rows, dtype=bool))
    combine = pc.and_ if how == "all_values_are_missing" else pc.or_
    ignore = missing[0]
    for m in missing[1:]:
        ignore = combine(ignore, m)
    return missing, ignore


def _combined(col: Any) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def hash_keys(p: Planned, keys: pa.Table | pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit hash of each row's key (missing values hash alike) and the mask of considered rows.

    Equal keys get equal hashes; different keys rarely do, and `evaluate_unique` settles every
    candidate exactly, so a collision costs time, never a wrong result.
    """
    missing, ignore = _ignored_keys(p, keys)
    h = np.zeros(keys.num_rows, dtype=np.uint64)
    for c, m in zip(p.columns, missing, strict=True):
        arr = _combined(keys.column(c))
        arr = pc.if_else(m, pa.scalar(None, arr.type), arr)
        values = arr.to_pandas().to_numpy()
        h = h * np.uint64(0x9E3779B97F4A7C15) ^ pd.util.hash_array(values, categorize=False)
    return h, ~ignore.to_numpy(zero_copy_only=False)


def evaluate_unique(p: Planned, keys: pa.Table, contract: Dataset, *, with_rows: bool) -> Tally:
    """Uniqueness of a column or compound key over the whole table, as pandas `duplicated(keep=False)`."""
    cols = list(p.columns)
    missing, ignore = _ignored_keys(p, keys)
    codes = np.zeros(keys.num_rows, dtype=np.int64)
    size = 1
    for c, m in zip(cols, missing, strict=True):
        arr = keys.column(c).combine_chunks()
        # missing values are one value for pandas' duplicated(): null and NaN alike
        arr = pc.if_else(m, pa.scalar(None, arr.type), arr)
        enc = pc.dictionary_encode(arr, null_encoding="encode")
        width = len(enc.dictionary) + 1
        if size * width >= 2**62:  # keep the composite code in int64
            _, codes = np.unique(codes, return_inverse=True)
            size = int(codes.max()) + 1 if len(codes) else 1
        codes = codes * width + enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        size *= width
    if size > 4 * max(keys.num_rows, 1):  # sparse codes: renumber before counting
        _, codes = np.unique(codes, return_inverse=True)
    considered = ~ignore.to_numpy(zero_copy_only=False)
    kept = np.flatnonzero(considered)
    counts = np.bincount(codes[kept]) if len(kept) else np.zeros(0, dtype=np.int64)
    dup = kept[counts[codes[kept]] > 1] if len(kept) else kept
    tally = Tally(element=keys.num_rows, missing=keys.num_rows - len(kept), unexpected=len(dup))
    if len(dup):
        frame = conform_frame(keys.take(pa.array(dup[:SAMPLE])).to_pandas(date_as_object=False), contract)
        if p.type == "expect_column_values_to_be_unique":
            tally.add_values(list(frame[cols[0]]))
        else:
            tally.add_values(frame[cols].to_dict("records"))
    if with_rows:
        tally.rows = dup.tolist()
    return tally


def add_gx_result(tally: Tally, res: Any, offset: int, *, with_rows: bool) -> None:
    """Add GX's result for one batch (a map expectation) to the tally."""
    result = res.result or {}
    if not res.success and res.exception_info and res.exception_info.get("raised_exception"):
        tally.exception = tally.exception or res.exception_info.get("exception_message")
    element = int(result.get("element_count") or 0)
    tally.element += element
    if "unexpected_count" not in result:  # a non-map result (e.g. of_type on a dtype)
        tally.missing = None
        tally.failed_batch |= not res.success
        if "observed_value" in result:
            tally.observed.append(str(result["observed_value"]))
        return
    if result.get("missing_count") is None:
        tally.missing = None
    elif tally.missing is not None:
        tally.missing += int(result["missing_count"])
    tally.unexpected += int(result.get("unexpected_count") or 0)
    tally.add_values(list(result.get("partial_unexpected_list") or []))
    if with_rows:
        tally.rows.extend(int(i) for i in result.get("unexpected_index_list") or [])


def tally_result(p: Planned, tally: Tally, *, with_rows: bool) -> tuple[bool, dict[str, Any], str | None]:
    """(success, GX-style result dict, exception message) of a finished tally.

    `mostly` is applied to the totals: (considered - unexpected) / considered >= mostly, where
    considered is every row for not_null and the non-missing rows otherwise (GX's rules).
    """
    from great_expectations.core.result_format import ResultFormat
    from great_expectations.expectations.expectation import _format_map_output, parse_result_format

    if tally.exception:
        return False, {}, tally.exception
    if tally.missing is None and tally.observed:
        observed = ", ".join(dict.fromkeys(tally.observed))
        return not tally.failed_batch, {"observed_value": observed}, None
    considered = tally.element - (tally.missing or 0)
    mostly = float(p.kwargs.get("mostly", 1.0))
    success = (
        considered <= 0 or tally.unexpected == 0 or (considered - tally.unexpected) / considered >= mostly
    )
    # GX's own formatter: the same keys and percentages as a whole-table run
    fmt = parse_result_format(ResultFormat.COMPLETE if with_rows else ResultFormat.SUMMARY)
    result = _format_map_output(
        result_format=fmt,
        success=success,
        element_count=tally.element,
        nonnull_count=None if tally.missing is None else considered,
        unexpected_count=tally.unexpected,
        unexpected_list=tally.values,
        unexpected_index_list=tally.rows if with_rows else None,
    )
    return bool(success), dict(result.get("result") or {}), None


# --- the suite over batches -------------------------------------------------------------------
@dataclass
class SuiteRun:
    """Streams batches through the planned expectations; `finish` returns one result per expectation."""

    dataset: str
    suite_json: dict[str, Any]
    source: BatchSource
    contract: Dataset
    with_rows: bool = False
    batch_rows: int = BATCH_ROWS
    # where the key hashes of a large table wait, in buckets (None: in memory)
    spill: Spill | None = None
    bucket_rows: int = BUCKET_ROWS
    plan: list[Planned] = field(init=False)
    tallies: dict[int, Tally] = field(init=False)
    gx_rows: GxRunner | None = field(init=False, default=None)
    key_hashes: dict[int, HashBuckets] = field(init=False)  # per unique check: considered rows' hashes
    key_ignored: dict[int, int] = field(init=False)
    key_bits: int = field(init=False)  # the hashes' top bits that name their bucket (0: one bucket)

    def __post_init__(self) -> None:
        self.plan = plan_suite(self.suite_json, self.source.schema, self.contract)
        self.tallies = {p.index: Tally() for p in self.plan if p.route in ("arrow", "gx_rows")}
        per_row = [p.config for p in self.plan if p.route == "gx_rows"]
        if per_row:
            self.gx_rows = GxRunner(self.dataset, per_row, with_rows=self.with_rows)
        self.key_ignored = {p.index: 0 for p in self.plan if p.route == "unique"}
        buckets = -(-self.source.num_rows // self.bucket_rows) if self.spill is not None else 1
        self.key_bits = max(0, buckets - 1).bit_length()
        spill = self.spill if self.key_bits else None
        self.key_hashes = {
            p.index: HashBuckets(spill, f"key_hashes_{p.index}", bits=self.key_bits)
            for p in self.plan
            if p.route == "unique"
        }

    @property
    def columns(self) -> list[str]:
        """Columns the per-batch expectations read."""
        return list(
            dict.fromkeys(
                c for p in self.plan if p.route in ("arrow", "gx_rows", "unique") for c in p.columns
            )
        )

    def add_batch(self, batch: pa.RecordBatch, offset: int) -> None:
        for p in self.plan:
            if p.route == "arrow":
                evaluate_arrow(
                    p, batch, offset, self.tallies[p.index], self.contract, with_rows=self.with_rows
                )
            elif p.route == "unique":
                h, considered = hash_keys(p, batch)
                self.key_hashes[p.index].add(h[considered])
                self.key_ignored[p.index] += int((~considered).sum())
        if self.gx_rows is not None:
            cols = list(dict.fromkeys(c for p in self.plan if p.route == "gx_rows" for c in p.columns))
            frame = frame_for_gx(batch.select(cols), offset, self.contract)
            per_row = [p for p in self.plan if p.route == "gx_rows"]
            for p, res in zip(per_row, self.gx_rows.run(frame), strict=True):
                add_gx_result(self.tallies[p.index], res, offset, with_rows=self.with_rows)

    def repeated_hashes(self, p: Planned) -> np.ndarray:
        """The key hashes of `p` that occur more than once, each once (sorted)."""
        return self.key_hashes[p.index].repeated()

    def finish(self, rows: int) -> list[tuple[bool, dict[str, Any], str | None]]:
        """(success, result, exception) per expectation, in suite order."""
        out: dict[int, tuple[bool, dict[str, Any], str | None]] = {}
        for p in self.plan:
            if p.route in ("arrow", "gx_rows"):
                out[p.index] = tally_result(p, self.tallies[p.index], with_rows=self.with_rows)
        unique = [p for p in self.plan if p.route == "unique"]
        for p in unique:
            out[p.index] = tally_result(p, _settle_unique(self, p, rows), with_rows=self.with_rows)
        whole = [p for p in self.plan if p.route == "gx_table"]
        if whole:
            names = self.source.schema.names
            cols = [c for c in dict.fromkeys(c for p in whole for c in p.columns) if c in names]
            if any(not p.columns for p in whole):
                cols = names  # table-level expectations (column sets, counts) see every column
            frame = frame_for_gx(self.source.read_columns(cols), 0, self.contract)
            runner = GxRunner(self.dataset, [p.config for p in whole], with_rows=self.with_rows)
            for p, res in zip(whole, runner.run(frame), strict=True):
                exc = (res.exception_info or {}).get("exception_message") if not res.success else None
                out[p.index] = (bool(res.success), dict(res.result or {}), exc)
        return [out[p.index] for p in self.plan]


def _settle_unique(run: SuiteRun, p: Planned, rows: int) -> Tally:
    """Uniqueness from the per-batch key hashes (8 bytes per row, sorted a bucket at a time),
    then an exact check of the few rows whose hash occurs more than once (read again from the
    source)."""
    candidates = run.repeated_hashes(p)
    ignored = run.key_ignored[p.index]
    if not len(candidates):
        return Tally(element=rows, missing=ignored)
    parts, positions = [], []
    for batch, offset in iter_positions(run.source, list(p.columns), run.batch_rows):
        h, considered = hash_keys(p, batch)
        idx = np.flatnonzero(considered & np.isin(h, candidates))
        if len(idx):
            parts.append(pa.Table.from_batches([batch]).take(pa.array(idx)))
            positions.append(idx + offset)
    exact = evaluate_unique(p, pa.concat_tables(parts), run.contract, with_rows=True)
    at = np.concatenate(positions)
    exact.rows = at[exact.rows].tolist() if run.with_rows else []
    exact.element, exact.missing = rows, ignored
    return exact


def iter_positions(
    source: BatchSource, columns: list[str], batch_rows: int
) -> Iterator[tuple[pa.RecordBatch, int]]:
    """(batch, position of its first row) over the whole source."""
    offset = 0
    for batch in source.iter_batches(columns, batch_rows):
        yield batch, offset
        offset += batch.num_rows
