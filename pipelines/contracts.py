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
    meaning: str = ""
    values: str | None = None  # the config key (value_sets.<name>) of its allowed values


# Allowed values of the columns that have a closed set, by their `value_sets:` config key, with
# the defaults a config may replace (`value_sets: {currencies: [EUR, USD]}`).
VALUE_SETS: dict[str, tuple[str, ...]] = {
    "currencies": ("EUR", "GBP", "USD", "CHF", "SEK", "DKK", "NOK", "PLN"),
    "order_statuses": ("open", "shipped", "returned", "cancelled"),
    "opportunity_stages": (
        "prospecting",
        "qualification",
        "proposal",
        "negotiation",
        "closed_won",
        "closed_lost",
    ),
    "ticket_priorities": ("low", "normal", "high", "urgent"),
}

# What each column means, for the people mapping a source onto it (the README's reference).
MEANINGS: dict[str, dict[str, str]] = {
    "order_lines": {
        "order_id": "the order's identifier",
        "line_no": "the line's number within its order (with order_id, the key)",
        "order_date": "the day the order was placed",
        "customer_id": "the ordering customer (customers.customer_id)",
        "warehouse": "the warehouse (or store, or ship-from location) that fulfils the line",
        "channel": "sales channel (web, store, phone, ...)",
        "sku": "the product (products.sku)",
        "quantity": "units ordered",
        "returned_quantity": "units returned (net demand = quantity - returned_quantity)",
        "unit_price": "price charged per unit, NET of any discount, in the line's currency",
        "discount": "the discount given, as a share of the list price in [0, 1] (informational)",
        "currency": "ISO 4217 code of unit_price",
        "status": "the line's state; cancelled lines are not demand",
        "updated_at": "when the line last changed (the extraction cursor and freshness)",
    },
    "products": {
        "sku": "the product's identifier",
        "name": "its name, as planners know it",
        "category": "the product group the report and accuracy totals use",
        "list_price": "list price per unit (to catch lines priced 20x off)",
        "launch_date": "first day it is on sale (optional): a product with a launch date that has "
        "not sold anywhere yet is forecast from its category's peers from that day, in every "
        "warehouse its category sells in",
        "updated_at": "when the product last changed",
    },
    "warehouses": {"warehouse": "the location's code", "name": "its name", "region": "its region"},
    "customers": {
        "customer_id": "the customer's identifier",
        "name": "its name",
        "region": "its region",
        "segment": "its segment",
        "updated_at": "when the customer last changed",
    },
    "promotions": {
        "promo_id": "the promotion's identifier",
        "sku": "the promoted product (products.sku)",
        "start_date": "first day of the promotion",
        "end_date": "last day of the promotion (inclusive)",
        "discount": "its discount, as a share of the list price in [0, 1]",
    },
    "stockouts": {
        "sku": "the product out of stock",
        "warehouse": "where",
        "day": "the day it was out of stock (demand that day is censored)",
    },
    "accounts": {
        "account_id": "the CRM account's identifier",
        "name": "its name",
        "erp_customer_id": "the same company's customers.customer_id in the ERP, if known",
        "industry": "its industry",
        "updated_at": "when the account last changed",
    },
    "opportunities": {
        "opportunity_id": "the opportunity's identifier",
        "account_id": "its account (accounts.account_id)",
        "stage": "its sales stage",
        "amount": "its value",
        "currency": "ISO 4217 code of amount",
        "close_date": "expected or actual close day",
        "created_at": "when it was created (the pipeline-value metric counts it that day)",
        "updated_at": "when it last changed",
    },
    "tickets": {
        "ticket_id": "the support ticket's identifier",
        "account_id": "its account (accounts.account_id)",
        "opened_at": "when it was opened (the tickets metric counts it that day)",
        "priority": "its priority",
        "status": "its state",
        "subject": "its subject line",
        "updated_at": "when it last changed",
    },
}
_VALUES = {
    ("order_lines", "currency"): "currencies",
    ("order_lines", "status"): "order_statuses",
    ("opportunities", "stage"): "opportunity_stages",
    ("tickets", "priority"): "ticket_priorities",
}


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


def _described(d: Dataset) -> Dataset:
    cols = tuple(
        Column(
            c.name,
            c.kind,
            c.required,
            MEANINGS.get(d.name, {}).get(c.name, ""),
            _VALUES.get((d.name, c.name)),
        )
        for c in d.columns
    )
    return Dataset(d.name, cols, d.key, d.cursor)


DATASETS: dict[str, Dataset] = {
    d.name: _described(d)
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
                "sku:string",
                "name:string",
                "category:string",
                "list_price:number?",
                "launch_date:date?",
                "updated_at:timestamp?",
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


# The column every union read carries: the source a row came from (the lake's own partition key).
SOURCE = "source"

# Identifiers: the entity ids a dataset column holds, and every (dataset, column) holding them.
# `union.qualify_keys` names identifiers whose values are local to each source; those columns are
# read as `<source>:<value>` everywhere, so references between datasets still match.
# (`accounts.erp_customer_id` links the CRM to the ERP, another source: it is never qualified.)
IDENTIFIERS: dict[str, tuple[tuple[str, str], ...]] = {
    "sku": (("products", "sku"), ("order_lines", "sku"), ("promotions", "sku"), ("stockouts", "sku")),
    "warehouse": (("warehouses", "warehouse"), ("order_lines", "warehouse"), ("stockouts", "warehouse")),
    "customer_id": (("customers", "customer_id"), ("order_lines", "customer_id")),
    "order_id": (("order_lines", "order_id"),),
    "promo_id": (("promotions", "promo_id"),),
    "account_id": (("accounts", "account_id"), ("opportunities", "account_id"), ("tickets", "account_id")),
    "opportunity_id": (("opportunities", "opportunity_id"),),
    "ticket_id": (("tickets", "ticket_id"),),
}

# Entity datasets: one row per identifier (their key).  In a union whose identifier is not qualified,
# the same key in two sources is the same entity, described once (by the first source listing it).
ENTITIES: dict[str, str] = {
    "products": "sku",
    "warehouses": "warehouse",
    "customers": "customer_id",
    "accounts": "account_id",
}


def identifier_columns(dataset: str, qualified: frozenset[str]) -> tuple[str, ...]:
    """The columns of `dataset` that hold one of the `qualified` identifiers."""
    return tuple(col for ident in sorted(qualified) for ds, col in IDENTIFIERS[ident] if ds == dataset)


def source_local_ids(df: pd.DataFrame, column: str) -> pd.Series:
    """The values of an id column as one text id across a union: `<source>:<value>` when the frame
    holds rows of several sources (order 1001 of two ERPs is two orders), the values as they are
    otherwise.  Values a qualified read already prefixed (`union.qualify_keys`) are kept."""
    values = df[column].astype(str)
    if SOURCE not in df.columns or df[SOURCE].nunique() < 2:
        return df[column]
    prefix = df[SOURCE].astype(str) + ":"
    done = pd.Series(
        [v.startswith(p) for v, p in zip(values, prefix, strict=True)], index=df.index, dtype=bool
    )
    return values.where(done, prefix + values)


def row_key(df: pd.DataFrame, ds: Dataset) -> list[str]:
    """The columns that identify a row of `df`: the dataset's key, preceded by `source` when the frame
    is a union of several sources (two sources may each have an order 1001: two different rows)."""
    key = list(ds.key)
    return [SOURCE, *key] if key and SOURCE in df.columns and df[SOURCE].nunique() > 1 else key


def contract_of(name: str) -> Dataset:
    """The contract of a dataset: the canonical one, or, for a table landed under a name of its own
    (`dataset: payments`, `dataset: none`), an open one: no columns required, no key."""
    return DATASETS.get(name) or Dataset(name, (), ())


def is_canonical(name: str) -> bool:
    return name in DATASETS


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
    key = row_key(df, ds)
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
