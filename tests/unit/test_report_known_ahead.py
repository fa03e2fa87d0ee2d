"""The report's "known ahead" section (`pipelines.report.outputs.known_ahead_items` and
`known_ahead_section`)."""

from __future__ import annotations

import json

import pandas as pd

from pipelines.report.outputs import known_ahead_items, known_ahead_section


def build_known_ahead(forecasts, names, top=10):
    """The section of a night's forecast rows, as the report builds it (a shard at a time)."""
    return known_ahead_section(*known_ahead_items(forecasts, names), top)


def _row(sku: str, wh: str, day: str, yhat: float, **explained: str) -> dict[str, object]:
    return {
        "sku": sku,
        "warehouse": wh,
        "target_date": pd.Timestamp(day),
        "yhat": yhat,
        "explanation": json.dumps({"weights": {"ets": 1.0}, **explained}),
    }


def test_promotions_and_new_products_are_listed_by_units_with_what_the_forecast_expects():
    promo = "promotion 20% off: x1.70 expected uplift"
    forecasts = pd.DataFrame(
        [
            _row("A", "W1", "2026-11-23", 5.0),
            _row("A", "W1", "2026-11-25", 9.0, drivers=promo),
            _row("A", "W2", "2026-11-26", 8.0, drivers=promo),
            _row("B", "W1", "2026-11-24", 3.0, drivers="holiday: x0.40 expected"),
            _row("N", "W1", "2026-11-23", 0.0, new_product="launches on 2026-11-24; new product: peers"),
            _row("N", "W2", "2026-11-24", 4.0, new_product="launches on 2026-11-24; new product: peers"),
            _row("Y", "W1", "2026-11-23", 6.0, new_product="new product: 5 periods of history"),
        ]
    )
    out = build_known_ahead(forecasts, {"A": "Apples"}, top=10)
    assert out["n_drivers"] == 2 and out["n_new"] == 2
    a, b = out["drivers"]
    assert (a["sku"], a["name"], str(a["first"]), str(a["last"])) == (
        "A",
        "Apples",
        "2026-11-25",
        "2026-11-26",
    )
    assert (a["what"], a["warehouses"], a["units"]) == (promo, 2, 17.0)  # the promoted days only
    assert (b["sku"], b["units"]) == ("B", 3.0)
    y, n = out["new"]  # by units: Y sells 6, N 4
    assert (y["sku"], y["launch"], n["sku"], n["launch"], n["warehouses"]) == (
        "Y",
        None,
        "N",
        "2026-11-24",
        2,
    )
    # the top few, and how many there are
    few = build_known_ahead(forecasts, {}, top=1)
    assert [x["sku"] for x in few["drivers"]] == ["A"] and few["n_drivers"] == 2


def test_no_forecast_means_nothing_known_ahead():
    assert build_known_ahead(pd.DataFrame(), {}) == {"drivers": [], "n_drivers": 0, "new": [], "n_new": 0}
