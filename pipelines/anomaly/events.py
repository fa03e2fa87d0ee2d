"""Known events that explain unusual days: holidays, promotions and stock-outs."""

from __future__ import annotations

import numpy as np
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
    demand = series[series["metric"] == "demand"] if "sku" in series else series.iloc[:0]
    if promotions is not None and len(promotions) and len(demand):
        ids = demand[["unique_id", "sku"]].drop_duplicates("unique_id")
        # every promotion day of every demand series of its SKU, in the promotions' order (the
        # first event of a day is the one that stays)
        promo = promotions[["sku", "start_date", "end_date"]].reset_index(drop=True)
        promo = promo[promo["sku"].isin(ids["sku"].unique())].merge(ids, on="sku", sort=False)
        start = pd.to_datetime(promo["start_date"]).to_numpy()
        n_days = (pd.to_datetime(promo["end_date"]) - pd.to_datetime(promo["start_date"])).dt.days + 1
        n_days = n_days.clip(lower=0).to_numpy(dtype="int64")
        if n_days.sum():
            offsets = np.arange(n_days.sum()) - np.repeat(np.cumsum(n_days) - n_days, n_days)
            rows.append(
                pd.DataFrame(
                    {
                        "unique_id": np.repeat(promo["unique_id"].to_numpy(), n_days),
                        "ds": pd.DatetimeIndex(np.repeat(start, n_days) + offsets.astype("timedelta64[D]")),
                        "event": "promotion",
                    }
                )
            )
    if stockouts is not None:
        ids_so = "demand:" + join_keys(stockouts["sku"], stockouts["warehouse"])
        # only the scored series' stock-outs: the others explain nothing here
        mine = ids_so.isin(series["unique_id"].unique()).to_numpy() if "unique_id" in series else slice(None)
        rows.append(
            pd.DataFrame(
                {
                    "unique_id": ids_so[mine],
                    "ds": pd.to_datetime(stockouts["day"][mine]).dt.normalize(),
                    "event": "stock-out",
                }
            )
        )
    ev = pd.concat(rows, ignore_index=True)
    return ev.drop_duplicates(["unique_id", "ds"])
