"""The demo's sparse order book (`DemoSize(demand="sparse")`) and its canonical order lines."""

import pandas as pd
import pytest

from pipelines.contracts import check_frame
from pipelines.demo import DemoSize, build_erp, build_order_lines
from pipelines.errors import ConfigError

SPARSE = DemoSize(days=400, skus=30, warehouses=12, customers=60, seed=5, demand="sparse", anomalies=False)


def test_sparse_order_book_has_many_series_with_a_handful_of_weekday_orders():
    lines = build_order_lines(build_erp(SPARSE))
    check_frame(lines, "order_lines", stage="test")
    assert set(lines.order_date.dt.day_of_week) <= {0, 1, 2, 3, 4}  # no weekend trading
    per_series = lines.groupby(["sku", "warehouse"]).size()
    assert len(per_series) > 0.5 * 30 * 12  # most SKU x warehouse pairs sell at all
    assert 1 <= per_series.median() <= 10  # ... a handful of times
    assert (per_series == 1).sum() > 10
    assert lines.quantity.max() > 5 * lines.quantity.median()  # lumpy sizes
    first_sale = lines.groupby("sku").order_date.min()
    assert (first_sale > pd.Timestamp(SPARSE.start_date) + pd.Timedelta(days=60)).any()  # launches


def test_sparse_order_book_is_reproducible_and_scales_with_its_density():
    a, b = build_erp(SPARSE), build_erp(SPARSE)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    denser = DemoSize(**{**SPARSE.__dict__, "sparse_orders_per_series": 24.0})
    assert len(build_erp(denser)["sales_order_lines"]) > 2.5 * len(a["sales_order_lines"])
    assert a["stock_outs"].empty and a["promotions"].empty


def test_the_default_demo_is_unchanged():
    # figures of this size's demo before the sparse option existed
    erp = build_erp(DemoSize(days=200, skus=8, warehouses=2, customers=30, seed=3))
    lines = erp["sales_order_lines"]
    assert (len(lines), len(erp["sales_orders"])) == (3971, 2122)
    assert float(lines.qty.sum()) == 7886.0
    assert float(lines.unit_price.sum()) == pytest.approx(124842.73, abs=1e-6)
    promotions = erp["promotions"]
    past = promotions[pd.to_datetime(promotions.start_date) <= pd.Timestamp(DemoSize.end_date)]
    assert (len(erp["stock_outs"]), len(past), len(erp["seam_demo_labels"])) == (71, 18, 29)
    # besides, the promotions the ERP has planned for the next weeks (the forecast's drivers)
    assert len(promotions) - len(past) == 4


def test_order_lines_match_the_demo_query_columns():
    erp = build_erp(DemoSize(days=90, skus=4, warehouses=2, customers=20, seed=1))
    lines = build_order_lines(erp)
    assert len(lines) == len(erp["sales_order_lines"])
    assert {"order_id", "line_no", "order_date", "warehouse", "sku", "quantity", "status"} <= set(lines)
    assert lines.order_id.map(type).eq(str).all()


def test_unknown_demand_kind_is_refused():
    with pytest.raises(ConfigError, match="demand must be 'dense' or 'sparse'"):
        DemoSize(demand="lumpy")  # type: ignore[arg-type]
