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
INPUT_COLUMNS = ("sku", "warehouse", "start_date", "end_date", "value", "relative_change", "author", "reason")


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
    for c in ("sku", "warehouse", "author", "reason"):
        texts = [None if v is None or pd.isna(v) or str(v).strip() == "" else str(v) for v in out[c]]
        out[c] = pd.Series(texts, index=out.index, dtype=object)
    return out


def row_problems(rows: pd.DataFrame, *, series: pd.DataFrame) -> list[str | None]:
    """Per row (of `conform_overrides`): why it is invalid on its own, or None.

    `series`: the known series (`sku`, `warehouse`), e.g. the latest night's forecasts."""
    pairs = set(zip(series["sku"], series["warehouse"], strict=True))
    skus = set(series["sku"])
    problems: list[str | None] = []
    for r in rows.itertuples(index=False):
        why: list[str] = []
        for c in ("sku", "author", "reason"):
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
        problems.append("; ".join(why) or None)
    return problems


def _overlaps(a: Any, b: Any) -> bool:
    same_place = a.sku == b.sku and (a.warehouse is None or b.warehouse is None or a.warehouse == b.warehouse)
    return bool(same_place and a.start_date <= b.end_date and b.start_date <= a.end_date)


def in_force(stored: pd.DataFrame, night: date) -> pd.DataFrame:
    """Stored overrides still applied on `night`: not expired (expires_on >= night or none) and
    covering a target date after it."""
    day = pd.Timestamp(night)
    keep = (stored["expires_on"].isna() | (stored["expires_on"] >= day)) & (stored["end_date"] > day)
    return stored[keep]


def describe(r: Any) -> str:
    """`#7 SKU-1 x WH-A 2026-12-01..2026-12-07` (warehouse 'all' when NULL)."""
    ident = "" if pd.isna(getattr(r, "override_id", None)) else f"#{int(r.override_id)} "
    where = r.warehouse if r.warehouse is not None else "all warehouses"
    dates = (
        f"{r.start_date.date()}..{r.end_date.date()}"
        if not (pd.isna(r.start_date) or pd.isna(r.end_date))
        else "(no dates)"
    )
    return f"{ident}{r.sku} x {where} {dates}"


def check_new_overrides(
    rows: pd.DataFrame, *, series: pd.DataFrame, existing: pd.DataFrame, today: date
) -> pd.DataFrame:
    """Conform a batch of new overrides and check it whole; returns it ready to insert.

    Raises DataError listing every bad row (1-based, as in the CSV's data rows) when any row is
    invalid on its own, starts or expires before `today`, or overlaps another new row or a
    stored override still in force: nothing of the batch may be written then.
    """
    new = conform_overrides(rows).reset_index(drop=True)
    day = pd.Timestamp(today)
    stored = conform_overrides(existing)
    stored = stored[
        (stored["expires_on"].isna() | (stored["expires_on"] >= day)) & (stored["end_date"] >= day)
    ]
    problems = row_problems(new, series=series)
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
    stored: pd.DataFrame, *, series: pd.DataFrame, run_date: date
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored overrides in force on the night, checked again: (valid, skipped).

    `skipped` has the skipped rows with a `problem` column; a row that overlaps an earlier
    (lower id) valid override is skipped, the earlier one applies."""
    rows = in_force(conform_overrides(stored), run_date).sort_values("override_id").reset_index(drop=True)
    problems = row_problems(rows, series=series)
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
