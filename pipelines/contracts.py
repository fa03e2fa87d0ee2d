"""Canonical datasets: the column names and kinds every stage after extraction relies on.

Source column names are mapped onto these once, at the extract boundary (see the
`columns:` mapping of each table in the config).  Downstream code only ever uses
the names defined here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from pipelines.errors import DataError

Kind = Literal["string", "integer", "number", "date", "timestamp", "boolean"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = True


@dataclass(frozen=True)
class Dataset:
    """A canonical dataset: its columns and its natural key."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    cursor: str | None = None  # the column that tells how fresh a row is

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _cols(*spec: str) -> tuple[Column, ...]:
    out = []
    for item in spec:
        name, kind = item.split(":")
        optional = kind.endswith("?")
        out.append(Column(name, kind.rstrip("?"), required=not optional))  # type: ignore[arg-type]
    return tuple(out)


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "order_lines",
            _cols(
                "order_id:string",
                "line_no:integer",
                "order_date:date",
                "customer_id:string",
                "warehouse:string",
                "channel:string?",
                "sku:string",
                "quantity:number",
                "returned_quantity:number?",
                "unit_price:number",
                "discount:number?",
                "currency:string",
                "status:string",
                "updated_at:timestamp",
            ),
            key=("order_id", "line_no"),
            cursor="updated_at",
        ),
        Dataset(
            "products",
            _cols(
                "sku:string", "name:string", "category:string", "list_price:number?", "updated_at:timestamp?"
            ),
            key=("sku",),
            cursor="updated_at",
        ),
        Dataset(
            "warehouses",
            _cols("warehouse:string", "name:string?", "region:string?"),
            key=("warehouse",),
        ),
        Dataset(
            "customers",
            _cols(
                "customer_id:string",
                "name:string",
                "region:string?",
                "segment:string?",
                "updated_at:timestamp?",
            ),
            key=("customer_id",),
            cursor="updated_at",
        ),
        Dataset(
            "promotions",
            _cols("promo_id:string", "sku:string", "start_date:date", "end_date:date", "discount:number?"),
            key=("promo_id",),
        ),
        Dataset(
            "stockouts",
            _cols("sku:string", "warehouse:string", "day:date"),
            key=("sku", "warehouse", "day"),
        ),
        Dataset(
            "accounts",
            _cols(
                "account_id:string",
                "name:string",
                "erp_customer_id:string?",
                "industry:string?",
                "updated_at:timestamp?",
            ),
            key=("account_id",),
            cursor="updated_at",
        ),
        Dataset(
            "opportunities",
            _cols(
                "opportunity_id:string",
                "account_id:string",
                "stage:string",
                "amount:number",
                "currency:string?",
                "close_date:date?",
                "created_at:timestamp?",
                "updated_at:timestamp?",
            ),
            key=("opportunity_id",),
            cursor="updated_at",
        ),
        Dataset(
            "tickets",
            _cols(
                "ticket_id:string",
                "account_id:string",
                "opened_at:timestamp",
                "priority:string?",
                "status:string?",
                "subject:string?",
                "updated_at:timestamp?",
            ),
            key=("ticket_id",),
            cursor="updated_at",
        ),
    )
}


def get_dataset(name: str) -> Dataset:
    """The canonical dataset called `name`, or a clear error listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown canonical dataset {name!r}; known datasets: {known}") from None


_KIND_CHECKS = {
    "string": lambda s: pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s),
    "integer": pd.api.types.is_integer_dtype,
    "number": lambda s: pd.api.types.is_numeric_dtype(s) or pd.api.types.is_object_dtype(s),
    "date": lambda s: pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_object_dtype(s),
    "timestamp": pd.api.types.is_datetime64_any_dtype,
    "boolean": pd.api.types.is_bool_dtype,
}


def check_frame(df: pd.DataFrame, dataset: str | Dataset, *, stage: str) -> None:
    """Raise `DataError` unless `df` satisfies the dataset's contract.

    Checks required columns, dtype kinds, and that the key has no nulls or duplicates.
    `stage` names the caller, so the message says who refused the data.
    """
    ds = dataset if isinstance(dataset, Dataset) else get_dataset(dataset)
    missing = [c.name for c in ds.columns if c.required and c.name not in df.columns]
    if missing:
        raise DataError(
            f"{stage}: dataset {ds.name!r} is missing required columns {missing}; got {list(df.columns)}. "
            f"Map the source columns onto these names in the config's `columns:` section."
        )
    for col in ds.columns:
        if col.name in df.columns and len(df) and not _KIND_CHECKS[col.kind](df[col.name]):
            raise DataError(
                f"{stage}: column {ds.name}.{col.name} should be {col.kind}, got dtype {df[col.name].dtype}"
            )
    key = list(ds.key)
    nulls = df[key].isna().any(axis=1)
    if nulls.any():
        raise DataError(f"{stage}: dataset {ds.name!r} has {int(nulls.sum())} rows with a null key {key}")
    dups = df.duplicated(key)
    if dups.any():
        example = df.loc[dups, key].iloc[0].to_dict()
        raise DataError(
            f"{stage}: dataset {ds.name!r} has {int(dups.sum())} duplicate keys {key}, e.g. {example}"
        )


SERIES_COLUMNS = ("unique_id", "ds", "y")


def conform_frame(df: pd.DataFrame, ds: Dataset) -> pd.DataFrame:
    """Cast compatible source types to the canonical kinds (ids to text, decimals to float).

    Values that cannot be represented (text in a number column) raise `DataError`:
    a retyped source column is reported, never silently coerced.
    """
    out = df.copy()
    for col in ds.columns:
        if col.name not in out.columns:
            continue
        s = out[col.name]
        try:
            if col.kind == "string" and not pd.api.types.is_string_dtype(s):
                out[col.name] = s.astype("string").astype(object).where(s.notna(), None)
            elif col.kind in ("number", "integer") and not pd.api.types.is_numeric_dtype(s):
                out[col.name] = pd.to_numeric(s, errors="raise").astype(float)
            elif col.kind == "number":
                out[col.name] = s.astype(float)
            elif col.kind in ("date", "timestamp") and not pd.api.types.is_datetime64_any_dtype(s):
                out[col.name] = pd.to_datetime(s, errors="raise")
        except (ValueError, TypeError) as err:
            raise DataError(
                f"dataset {ds.name!r}: column {col.name!r} should be {col.kind} but holds "
                f"{s.dtype} values that do not convert ({str(err)[:120]}); was the source column retyped?"
            ) from None
    return out


_EMPTY_DTYPES = {
    "string": "object",
    "integer": "int64",
    "number": "float64",
    "date": "datetime64[ns]",
    "timestamp": "datetime64[ns]",
    "boolean": "bool",
}


def empty_frame(dataset: str) -> pd.DataFrame:
    """A frame with no rows and every column of the dataset, typed as its contract says."""
    ds = get_dataset(dataset)
    return pd.DataFrame({c.name: pd.Series(dtype=_EMPTY_DTYPES[c.kind]) for c in ds.columns})
