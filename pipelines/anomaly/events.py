"""Known events that explain unusual days: holidays, promotions and stock-outs."""

from __future__ import annotations

import pandas as pd

from pipelines.series import join_keys


def build_events(
    series: pd.DataFrame,
    *,
    holidays: tuple[tuple[str, str], ...] = (),
    promotions: pd.DataFrame | None = None,
    stockouts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """`unique_id, ds, event` rows for `score(events=...)`.

    Holidays apply to every series (`unique_id` None); promotions (`sku, start_date, end_date`) to
    the demand series of their SKU; stock-outs (`sku, warehouse, day`) to that demand series, whose
    low sales on such a day are censored, not anomalous.  `series` holds the scored series'
    `unique_id, metric` and, for demand, `sku` (as `pipelines.series.build_metric_series` builds them).
    """
    rows = [
        pd.DataFrame(
            {
                "unique_id": None,
                "ds": pd.to_datetime([d for d, _ in holidays]),
                "event": [f"holiday: {n}" for _, n in holidays],
            }
        )
    ]
    if promotions is not None and len(promotions):
        demand = series[series["metric"] == "demand"] if "sku" in series else series.iloc[:0]
        ids = demand[["unique_id", "sku"]].drop_duplicates("unique_id") if len(demand) else None
        for p in promotions.itertuples(index=False):
            days = pd.date_range(p.start_date, p.end_date, freq="D")
            for_sku = ids.loc[ids["sku"] == p.sku, "unique_id"].to_numpy() if ids is not None else []
            if len(for_sku) and len(days):
                rows.append(
                    pd.DataFrame(
                        {
                            "unique_id": pd.Series(for_sku).repeat(len(days)).to_numpy(),
                            "ds": pd.DatetimeIndex(list(days) * len(for_sku)),
                            "event": "promotion",
                        }
                    )
                )
    if stockouts is not None:
        rows.append(
            pd.DataFrame(
                {
                    "unique_id": "demand:" + join_keys(stockouts["sku"], stockouts["warehouse"]),
                    "ds": pd.to_datetime(stockouts["day"]).dt.normalize(),
                    "event": "stock-out",
                }
            )
        )
    ev = pd.concat(rows, ignore_index=True)
    return ev.drop_duplicates(["unique_id", "ds"])
