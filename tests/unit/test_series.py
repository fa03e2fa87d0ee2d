import numpy as np
import pandas as pd
import pytest

from pipelines.errors import DataError
from pipelines.series import build_demand_series, build_metric_series


def _lines(rows):
    cols = [
        "order_id",
        "line_no",
        "order_date",
        "customer_id",
        "warehouse",
        "sku",
        "quantity",
        "returned_quantity",
        "unit_price",
        "currency",
        "status",
        "updated_at",
    ]
    df = pd.DataFrame(rows, columns=cols)
    df["order_date"] = pd.to_datetime(df["order_date"])
    df["updated_at"] = pd.to_datetime(df["updated_at"])
    return df


LINES = _lines(
    [
        ("1", 1, "2026-11-01", "c1", "W1", "A", 5.0, 1.0, 2.0, "EUR", "returned", "2026-11-01"),
        ("1", 2, "2026-11-01", "c1", "W1", "A", 3.0, 0.0, 2.0, "EUR", "shipped", "2026-11-01"),
        ("2", 1, "2026-11-03", "c2", "W1", "A", 4.0, 0.0, 2.0, "EUR", "cancelled", "2026-11-03"),
        ("3", 1, "2026-11-04", "c2", "W2", "B", 2.0, 0.0, 10.0, "EUR", "shipped", "2026-11-04"),
    ]
)


def test_no_order_lines_give_no_demand_series():
    """The report of a night whose order lines could not be read builds its demand from none."""
    from pipelines.contracts import empty_frame

    for empty in (LINES.iloc[:0], empty_frame("order_lines")):
        s = build_demand_series(empty, None, end=pd.Timestamp("2026-11-05").date(), history_days=30)
        assert s.empty and {"unique_id", "ds", "y", "sku", "warehouse"} <= set(s.columns)


def test_demand_is_net_of_returns_and_cancellations_and_zero_filled():
    s = build_demand_series(LINES, None, end=pd.Timestamp("2026-11-05").date(), history_days=30)
    a = s[s.unique_id == "A|W1"].set_index("ds")["y"]
    assert a[pd.Timestamp("2026-11-01")] == 7.0  # 5 - 1 returned + 3
    assert a[pd.Timestamp("2026-11-03")] == 0.0  # cancelled line does not count
    assert list(a.index) == list(pd.date_range("2026-11-01", "2026-11-05"))
    b = s[s.unique_id == "B|W2"]
    assert b.ds.min() == pd.Timestamp("2026-11-04")  # a new SKU starts at its first sale
    assert set(s.columns) >= {"unique_id", "ds", "y", "censored", "sku", "warehouse"}


def test_stockout_days_are_censored():
    so = pd.DataFrame({"sku": ["A"], "warehouse": ["W1"], "day": pd.to_datetime(["2026-11-02"])})
    s = build_demand_series(LINES, so, end=pd.Timestamp("2026-11-05").date(), history_days=30)
    flagged = s[s.censored]
    assert list(zip(flagged.unique_id, flagged.ds, strict=True)) == [("A|W1", pd.Timestamp("2026-11-02"))]


def test_contract_is_checked_first():
    with pytest.raises(DataError, match="missing required columns"):
        build_demand_series(
            LINES.drop(columns=["sku"]), None, end=pd.Timestamp("2026-11-05").date(), history_days=30
        )
    dup = pd.concat([LINES, LINES.iloc[[0]]])
    with pytest.raises(DataError, match="duplicate keys"):
        build_demand_series(dup, None, end=pd.Timestamp("2026-11-05").date(), history_days=30)


def test_order_count_is_zero_on_days_others_sold_and_missing_on_days_without_rows():
    s = build_metric_series("order_count", LINES, end=pd.Timestamp("2026-11-04").date(), history_days=30)
    w1 = s[s.unique_id == "order_count:W1"].set_index("ds")["y"]
    assert w1[pd.Timestamp("2026-11-01")] == 1
    assert np.isnan(w1[pd.Timestamp("2026-11-02")])  # no rows at all: missing, not zero
    assert w1[pd.Timestamp("2026-11-04")] == 0  # rows of another warehouse only: W1 sold nothing
    revenue_w1 = build_metric_series("revenue", LINES, end=pd.Timestamp("2026-11-04").date(), history_days=30)
    revenue_w1 = revenue_w1[revenue_w1.unique_id == "revenue:W1"].set_index("ds")["y"]
    assert revenue_w1[pd.Timestamp("2026-11-04")] == 0 and np.isnan(revenue_w1[pd.Timestamp("2026-11-02")])
    revenue = build_metric_series("revenue", LINES, end=pd.Timestamp("2026-11-04").date(), history_days=30)
    assert revenue.set_index("unique_id").loc["revenue:W2", "y"] == 20.0
    with pytest.raises(DataError, match="unknown anomaly metric"):
        build_metric_series("weather", LINES, end=pd.Timestamp("2026-11-04").date(), history_days=30)


SPREAD = _lines(
    [
        ("10", 1, "2026-10-01", "c1", "W1", "A", 5.0, 0.0, 2.0, "EUR", "shipped", "2026-10-01"),
        ("11", 1, "2026-10-20", "c2", "W2", "A", 70.0, 0.0, 2.0, "EUR", "shipped", "2026-10-20"),
        ("12", 1, "2026-10-25", "c2", "W3", "A", 3.0, 0.0, 2.0, "EUR", "cancelled", "2026-10-25"),
        ("13", 1, "2026-10-28", "c3", "W1", "B", 1.0, 0.0, 9.0, "EUR", "shipped", "2026-10-28"),
    ]
)


def test_series_start_at_the_skus_first_sale_in_any_warehouse():
    s = build_demand_series(SPREAD, None, end=pd.Timestamp("2026-11-05").date(), history_days=60)
    a_w2 = s[s.unique_id == "A|W2"].set_index("ds")["y"]
    # A first sold on 1 October (in W1): W2's one order is one order in 36 days, not on day one
    assert a_w2.index.min() == pd.Timestamp("2026-10-01")
    assert a_w2.sum() == 70.0 and (a_w2 > 0).sum() == 1
    assert s[s.unique_id == "A|W1"].ds.min() == pd.Timestamp("2026-10-01")
    assert "A|W3" not in set(s.unique_id)  # a cancelled line is not a sale
    assert s[s.unique_id == "B|W1"].ds.min() == pd.Timestamp("2026-10-28")  # B is new
    assert (s.groupby("unique_id").ds.max() == pd.Timestamp("2026-11-05")).all()


def test_series_start_is_clipped_to_the_history_window():
    s = build_demand_series(SPREAD, None, end=pd.Timestamp("2026-11-05").date(), history_days=25)
    # A sold before the window (1 October), so every A series starts at the window's first day
    assert s[s.unique_id == "A|W2"].ds.min() == pd.Timestamp("2026-10-12")
    assert "A|W1" not in set(s.unique_id)  # its only sale is before the window
    assert len(s[s.unique_id == "A|W2"]) == 25
