"""Seam's own row checks (beyond the GX suites), accumulated batch by batch.

Freshness (the newest cursor value), event dates after the night, and order-line prices far from
the product's list price.  Each batch adds to running totals; the results equal those of the
same checks on the whole table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import QualitySpec
from pipelines.contracts import Dataset, conform_frame
from pipelines.quality.gx import CheckResult, jsonable

# The column that dates each row's business event: none may lie after the night being processed.
EVENT_DATES = {"order_lines": "order_date", "tickets": "opened_at", "opportunities": "created_at"}
PRICE_COLUMNS = ["order_id", "line_no", "sku", "unit_price"]


def _conformed(batch: pa.RecordBatch, cols: list[str], contract: Dataset, idx: Any = None) -> pd.DataFrame:
    sub = batch.select(cols)
    if idx is not None:
        sub = sub.take(pa.array(idx, pa.int64()))
    return conform_frame(sub.to_pandas(date_as_object=False), contract)


@dataclass
class RowChecks:
    """Running state of the freshness, event-date and price checks of one dataset."""

    dataset: str
    contract: Dataset
    run_end: pd.Timestamp
    cursor: str | None = None
    event_col: str | None = None
    prices: pd.Series | None = None  # list_price by sku (order lines only)
    rules: QualitySpec = field(default_factory=QualitySpec)
    rows: int = 0
    newest: Any = None
    latest_event: Any = pd.NaT
    future: int = 0
    future_sample: list[Any] = field(default_factory=list)
    off: int = 0
    off_sample: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        cols = [c for c in (self.cursor, self.event_col) if c]
        if self.prices is not None:
            cols += PRICE_COLUMNS
        return list(dict.fromkeys(cols))

    def add_batch(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        if not batch.num_rows:
            return
        if self.cursor:
            newest = pd.to_datetime(_conformed(batch, [self.cursor], self.contract)[self.cursor]).max()
            if not pd.isna(newest) and (self.newest is None or newest > self.newest):
                self.newest = newest
        if self.event_col:
            self._add_events(batch)
        if self.prices is not None:
            self._add_prices(batch)

    def _add_events(self, batch: pa.RecordBatch) -> None:
        col = str(self.event_col)
        frame = _conformed(batch, [col], self.contract)
        values = pd.to_datetime(frame[col])
        latest = values.max()
        if not pd.isna(latest) and (pd.isna(self.latest_event) or latest > self.latest_event):
            self.latest_event = latest
        future = frame.loc[values >= self.run_end, col]
        self.future += len(future)
        self.future_sample += [jsonable(v) for v in future.head(10 - len(self.future_sample))]

    def _add_prices(self, batch: pa.RecordBatch) -> None:
        assert self.prices is not None
        sku, price = batch.column("sku"), batch.column("unit_price")
        if pa.types.is_string(sku.type) and (
            pa.types.is_floating(price.type) or pa.types.is_integer(price.type)
        ):
            # list price by SKU, looked up in Arrow (unknown SKUs give null: never "off", as NaN in pandas)
            skus = pa.array(self.prices.index.astype(object), pa.string())
            list_price = pa.array(self.prices.to_numpy(dtype=float), pa.float64())
            lp = pc.take(list_price, pc.index_in(sku, value_set=skus))
            ratio = pc.divide(pc.cast(price, pa.float64(), safe=False), lp).to_numpy(zero_copy_only=False)
        else:
            frame = _conformed(batch, ["sku", "unit_price"], self.contract)
            ratio = (frame["unit_price"] / frame["sku"].map(self.prices)).to_numpy(
                dtype=float, na_value=np.nan
            )
        with np.errstate(invalid="ignore"):
            limit = self.rules.price_max_ratio
            idx = np.flatnonzero((ratio > limit) | (ratio < 1 / limit))
        self.off += len(idx)
        if len(idx) and len(self.off_sample) < 10:
            rows = _conformed(batch, PRICE_COLUMNS, self.contract, idx[: 10 - len(self.off_sample)])
            self.off_sample += [f"{r.order_id}-{r.line_no}: {r.unit_price}" for r in rows.itertuples()]

    def event_results(self, run_date: date) -> list[CheckResult]:
        """No row may be dated after the night (future-dated orders, tickets, ...)."""
        col = self.event_col
        if col is None or not self.rows or self.rules.future_dates == "off":
            return []
        return [
            CheckResult(
                self.dataset,
                f"not_in_future({col})",
                self.rules.future_dates,
                self.future == 0,
                f"{self.future} rows after {run_date}, latest {self.latest_event:%Y-%m-%d}",
                f"{col} <= {run_date}",
                self.future,
                json.dumps(self.future_sample),
            )
        ]

    def price_results(self) -> list[CheckResult]:
        """Order-line prices against the product's list price: catches 100x unit/currency errors."""
        if self.prices is None or not self.rows or self.rules.price_severity == "off":
            return []
        share = self.off / self.rows
        return [
            CheckResult(
                self.dataset,
                "unit_price_vs_list_price",
                self.rules.price_severity,
                share <= self.rules.price_max_share,
                f"{self.off} lines ({share:.2%}) priced over {self.rules.price_max_ratio:g}x away from list price",
                f"at most {self.rules.price_max_share:.1%} of lines (quality.prices)",
                self.off,
                json.dumps(self.off_sample),
            )
        ]
