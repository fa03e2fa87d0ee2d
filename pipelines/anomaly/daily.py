"""A metric's aggregate per entity and day, gathered one shard of a dataset at a time.

The revenue and order count of a warehouse, and a custom metric over the order lines, aggregate
the whole night's lines; the score step reads those lines one shard of SKUs at a time and adds
each shard to a `DailyTotals`, so no process holds the night's lines.  Sums and counts add up
across shards (a running total of `entity x day` rows); a distinct count does not (an order holds
lines of several shards), so its distinct `entity, day, value` rows go to an on-disk DuckDB table,
which counts them within a fixed memory limit and spills what does not fit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.series import Aggregate, DailyRows

# DuckDB's working memory for the distinct rows; beyond it, it spills to its temporary directory
MEMORY_LIMIT = "256MB"


class DailyTotals:
    """The aggregate per entity and day of the rows `build` makes of each frame `add`ed (what
    `pipelines.series.aggregate_daily` gives for all of them at once).  Use as a context manager:
    a distinct count keeps its rows in a temporary directory until `finish` or the exit."""

    def __init__(self, build: Callable[[pd.DataFrame], DailyRows]) -> None:
        self._build = build
        self._aggregate: Aggregate | None = None
        self._total: pd.DataFrame | None = None
        self._reported: pd.DatetimeIndex | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._db: Any = None
        self._day_dtype: Any = "datetime64[ns]"

    def __enter__(self) -> DailyTotals:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def add(self, frame: pd.DataFrame) -> None:
        """Add one shard's rows."""
        rows = self._build(frame)
        if self._aggregate is not None and rows.aggregate != self._aggregate:
            raise ValueError(f"DailyTotals: aggregate {rows.aggregate!r} after {self._aggregate!r}")
        self._aggregate = rows.aggregate
        if rows.reported is not None:
            self._reported = rows.reported if self._reported is None else self._reported.union(rows.reported)
        # groupby leaves out rows without an entity or a day, and the aggregates missing values
        data = rows.rows.dropna(subset=["entity", "day"])
        self._day_dtype = data["day"].dtype
        if rows.aggregate == "nunique":
            self._add_distinct(data[data["value"].notna()])
            return
        grouped = data.groupby(["entity", "day"])
        if rows.aggregate == "count":
            part = grouped.size().rename("n").to_frame()
        elif rows.aggregate == "sum":
            part = grouped["value"].sum().rename("sum").to_frame()
        else:
            part = grouped["value"].agg(["sum", "count"]).rename(columns={"count": "n"})
        total = part if self._total is None else pd.concat([self._total, part])
        self._total = total.groupby(level=["entity", "day"]).sum()

    def _add_distinct(self, rows: pd.DataFrame) -> None:
        import duckdb

        if self._db is None:
            self._dir = tempfile.TemporaryDirectory(prefix="seam-daily-")
            self._db = duckdb.connect(str(Path(self._dir.name) / "daily.duckdb"))
            self._db.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            self._db.execute("SET threads = 1")
            self._db.execute(f"SET temp_directory = '{Path(self._dir.name) / 'spill'}'")
        part = rows[["entity", "day", "value"]].drop_duplicates()
        self._db.register("part", part)
        try:
            tables = {r[0] for r in self._db.execute("SHOW TABLES").fetchall()}
            if "rows" not in tables:
                self._db.execute("CREATE TABLE rows AS SELECT entity, day, value FROM part")
            else:
                self._db.execute("INSERT INTO rows SELECT entity, day, value FROM part")
        finally:
            self._db.unregister("part")

    def finish(self) -> tuple[pd.DataFrame, Aggregate, pd.DatetimeIndex | None]:
        """The `entity, day, y` totals, their aggregate and the days the source reported anything
        (what `pipelines.series.series_from_daily` takes)."""
        how: Aggregate = self._aggregate or "sum"
        if how == "nunique":
            daily = (
                self._db.execute(
                    "SELECT entity, day, count(DISTINCT value) AS y FROM rows GROUP BY entity, day"
                ).df()
                if self._db is not None
                else pd.DataFrame({"entity": [], "day": [], "y": []})
            )
            self.close()
        elif self._total is None:
            daily = pd.DataFrame({"entity": [], "day": [], "y": []})
        else:
            t = self._total
            y = t["n"] if how == "count" else t["sum"] if how == "sum" else t["sum"] / t["n"]
            daily = y.rename("y").reset_index()
        daily = daily.astype({"day": self._day_dtype}).sort_values(["entity", "day"], kind="stable")
        return daily.reset_index(drop=True), how, self._reported
