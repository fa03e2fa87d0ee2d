"""What makes an override valid: checked when a planner writes one, and again every night (a row
written with plain SQL may break what the database's CHECK constraints cannot see)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from pipelines.errors import DataError
from pipelines.results import FORECAST_OVERRIDES

OVERRIDE_COLUMNS = tuple(c.name for c in FORECAST_OVERRIDES.columns)
# what a planner gives (the id and created_at are the database's)
INPUT_COLUMNS = (
    "sku",
    "category",
    "warehouse",
    "start_date",
    "end_date",
    "value",
    "relative_change",
    "author",
    "reason",
)


def level_of(r: Any) -> str:
    """An override's level: `series` (sku set), `category` (category set) or `total` (neither)."""
    if r.sku is not None:
        return "series"
    return "category" if r.category is not None else "total"


def conform_overrides(rows: pd.DataFrame) -> pd.DataFrame:
    """Override rows with typed columns: dates as Timestamps (NaT: missing), numbers as floats
    (NaN: missing), empty warehouse as None; missing optional columns added."""
    out = rows.copy()
    for c in OVERRIDE_COLUMNS:
        if c not in out.columns:
            out[c] = None
    for c in ("start_date", "end_date", "expires_on"):
        out[c] = pd.to_datetime(out[c], errors="coerce").dt.normalize()
    for c in ("value", "relative_change"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    for c in ("sku", "category", "warehouse", "author", "reason"):
        texts = [None if v is None or pd.isna(v) or str(v).strip() == "" else str(v) for v in out[c]]
        out[c] = pd.Series(texts, index=out.index, dtype=object)
    return out


def row_problems(
    rows: pd.DataFrame, *, series: pd.DataFrame, categories: pd.DataFrame | None = None
) -> list[str | None]:
    """Per row (of `conform_overrides`): why it is invalid on its own, or None.

    `series`: the known series (`sku`, `warehouse`), e.g. the latest night's forecasts.
    `categories`: the products' `sku, category` (None: unknown, so no category override is valid)."""
    pairs = set(zip(series["sku"], series["warehouse"], strict=True))
    skus = set(series["sku"])
    warehouses = set(series["warehouse"])
    cat_of = {} if categories is None else dict(zip(categories["sku"], categories["category"], strict=True))
    cat_pairs = {(cat_of[s], w) for s, w in pairs if s in cat_of and cat_of[s] is not None}
    cats = {c for c, _ in cat_pairs}
    problems: list[str | None] = []
    for r in rows.itertuples(index=False):
        why: list[str] = []
        if r.sku is not None and r.category is not None:
            why.append("give a sku (series override) or a category (category override), not both")
        for c in ("author", "reason"):
            if getattr(r, c) is None:
                why.append(f"{c} is empty")
        if pd.isna(r.start_date) or pd.isna(r.end_date):
            why.append("start_date and end_date must be dates (YYYY-MM-DD)")
        elif r.end_date < r.start_date:
            why.append(f"end_date {r.end_date.date()} is before start_date {r.start_date.date()}")
        has_value, has_change = not pd.isna(r.value), not pd.isna(r.relative_change)
        if has_value == has_change:
            why.append("give exactly one of value (units/day) and relative_change (e.g. 0.2 = +20 %)")
        elif has_value and r.value < 0:
            why.append(f"value must be a quantity >= 0, got {r.value:g}")
        elif has_change and r.relative_change < -1:
            why.append(
                f"relative_change {r.relative_change:g} would make the forecast negative; it must be >= -1"
            )
        if r.sku is not None:
            if r.warehouse is None and r.sku not in skus:
                why.append(f"unknown SKU {r.sku!r}: no forecast series has it")
            elif r.warehouse is not None and (r.sku, r.warehouse) not in pairs:
                why.append(f"unknown series SKU {r.sku!r} x warehouse {r.warehouse!r}: it has no forecast")
        elif r.category is not None:
            if categories is None:
                why.append(f"category {r.category!r} cannot be checked: no products' categories are known")
            elif r.category not in cats:
                why.append(f"unknown category {r.category!r}: no forecast series has a product of it")
            elif r.warehouse is not None and (r.category, r.warehouse) not in cat_pairs:
                why.append(f"category {r.category!r} has no forecast series in warehouse {r.warehouse!r}")
        elif r.warehouse is not None and r.warehouse not in warehouses:
            why.append(f"unknown warehouse {r.warehouse!r}: no forecast series is in it")
        problems.append("; ".join(why) or None)
    return problems


def _overlaps(a: Any, b: Any) -> bool:
    """Two overrides conflict when their dates overlap and they cover a common series at the same
    kind of level without one holding the other: two series overrides of one SKU (one of them in
    every warehouse, or both in the same), two aggregate overrides of the same scope, or two whose
    scopes cross (a warehouse's total and a category in every warehouse): which should win is not
    clear.  Nested ones do not conflict: a series override inside an aggregate one, or an aggregate
    inside a wider one (a category inside the total, a category in one warehouse inside the
    category or the warehouse's total); the more specific is kept and the wider one's other
    children make up its total (`build_final_forecast`)."""
    if not (a.start_date <= b.end_date and b.start_date <= a.end_date):
        return False
    if (a.sku is None) != (b.sku is None):
        return False
    if a.sku is not None:
        same_wh = a.warehouse is None or b.warehouse is None or a.warehouse == b.warehouse
        return bool(a.sku == b.sku and same_wh)
    if not _scopes_meet(a, b):
        return False
    return not (_holds(a, b) or _holds(b, a)) or _scope(a) == _scope(b)


def _scope(r: Any) -> tuple[Any, Any]:
    return (r.category, r.warehouse)


def _scopes_meet(a: Any, b: Any) -> bool:
    """Whether two aggregate scopes (category or all, warehouse or all) share a series."""
    same_wh = a.warehouse is None or b.warehouse is None or a.warehouse == b.warehouse
    same_cat = a.category is None or b.category is None or a.category == b.category
    return same_wh and same_cat


def _holds(a: Any, b: Any) -> bool:
    """Whether aggregate scope `a` holds every series of aggregate scope `b`."""
    return (a.category is None or a.category == b.category) and (
        a.warehouse is None or a.warehouse == b.warehouse
    )


def specificity(r: Any) -> int:
    """0 for a series override in one warehouse, 1 in every warehouse, 2 for a category in one
    warehouse, 3 for a category in every warehouse or a warehouse's total, 4 for the total: an
    override nested in another has a lower number, and applies first."""
    if r.sku is not None:
        return 0 if r.warehouse is not None else 1
    return 2 + (r.category is None) + (r.warehouse is None)


def in_force(stored: pd.DataFrame, night: date) -> pd.DataFrame:
    """Stored overrides still applied on `night`: not expired (expires_on >= night or none) and
    covering a target date after it."""
    day = pd.Timestamp(night)
    keep = (stored["expires_on"].isna() | (stored["expires_on"] >= day)) & (stored["end_date"] > day)
    return stored[keep]


def describe(r: Any) -> str:
    """`#7 SKU-1 x WH-A 2026-12-01..2026-12-07`, `#8 category Dairy x all warehouses ...`,
    `#9 total x WH-A ...` (warehouse 'all' when NULL)."""
    ident = "" if pd.isna(getattr(r, "override_id", None)) else f"#{int(r.override_id)} "
    where = r.warehouse if r.warehouse is not None else "all warehouses"
    level = level_of(r)
    what = r.sku if level == "series" else ("total" if level == "total" else f"category {r.category}")
    dates = (
        f"{r.start_date.date()}..{r.end_date.date()}"
        if not (pd.isna(r.start_date) or pd.isna(r.end_date))
        else "(no dates)"
    )
    return f"{ident}{what} x {where} {dates}"


def check_new_overrides(
    rows: pd.DataFrame,
    *,
    series: pd.DataFrame,
    existing: pd.DataFrame,
    today: date,
    categories: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Conform a batch of new overrides and check it whole; returns it ready to insert.

    Raises DataError listing every bad row (1-based, as in the CSV's data rows) when any row is
    invalid on its own, starts or expires before `today`, or overlaps another new row or a
    stored override still in force: nothing of the batch may be written then.  `categories`:
    the products' `sku, category`, needed by category overrides (`row_problems`).
    """
    new = conform_overrides(rows).reset_index(drop=True)
    day = pd.Timestamp(today)
    stored = conform_overrides(existing)
    stored = stored[
        (stored["expires_on"].isna() | (stored["expires_on"] >= day)) & (stored["end_date"] >= day)
    ]
    problems = row_problems(new, series=series, categories=categories)
    for i, r in enumerate(new.itertuples(index=False)):
        own = problems[i]
        why = [own] if own is not None else []
        if not pd.isna(r.start_date) and r.start_date < day:
            why.append(f"start_date {r.start_date.date()} is in the past (today is {today})")
        if not pd.isna(r.expires_on) and r.expires_on < day:
            why.append(f"expires_on {r.expires_on.date()} is in the past (today is {today})")
        if not why:
            for other in stored.itertuples(index=False):
                if _overlaps(r, other):
                    why.append(f"overlaps override {describe(other)} by {other.author}")
            for j, other in enumerate(new.itertuples(index=False)):
                if j < i and problems[j] is None and _overlaps(r, other):
                    why.append(f"overlaps row {j + 1} of this batch")
        problems[i] = "; ".join(why) or None
    bad = [
        (i + 1, p, r) for i, (p, r) in enumerate(zip(problems, new.itertuples(index=False), strict=True)) if p
    ]
    if bad:
        lines = "\n".join(f"  row {n} ({describe(r)}): {p}" for n, p, r in bad)
        raise DataError(
            f"{len(bad)} of {len(new)} override(s) refused, nothing was written:\n{lines}\n"
            f"fix these rows and submit them again"
        )
    return new


def split_stored_overrides(
    stored: pd.DataFrame, *, series: pd.DataFrame, run_date: date, categories: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored overrides in force on the night, checked again: (valid, skipped).

    `skipped` has the skipped rows with a `problem` column; a row that overlaps an earlier
    (lower id) valid override is skipped, the earlier one applies."""
    rows = in_force(conform_overrides(stored), run_date).sort_values("override_id").reset_index(drop=True)
    problems = row_problems(rows, series=series, categories=categories)
    accepted: list[Any] = []
    for i, r in enumerate(rows.itertuples(index=False)):
        if problems[i] is None:
            clash = next((o for o in accepted if _overlaps(r, o)), None)
            if clash is not None:
                problems[i] = f"overlaps override {describe(clash)}, which applies instead"
            else:
                accepted.append(r)
    rows["problem"] = problems
    ok = rows["problem"].isna()
    return rows[ok].drop(columns="problem").reset_index(drop=True), rows[~ok].reset_index(drop=True)
