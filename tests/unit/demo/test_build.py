import pandas as pd
import pytest

from pipelines.demo import DemoSize, build_crm, build_erp
from pipelines.errors import ConfigError

SIZE = DemoSize(days=200, skus=8, warehouses=2, customers=30, seed=3)


def test_same_seed_same_data_and_labels_exist():
    a, b = build_erp(SIZE), build_erp(SIZE)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    labels = a["seam_demo_labels"]
    assert {"spike", "dip", "level_shift", "missing", "mispriced"} <= set(labels.kind)
    assert (labels.start_date <= labels.end_date).all()


def test_erp_is_consistent():
    erp = build_erp(SIZE)
    lines, orders = erp["sales_order_lines"], erp["sales_orders"]
    assert not lines.duplicated(["order_id", "line_no"]).any()
    assert set(lines.order_id) == set(orders.order_id)
    assert set(lines.sku) <= set(erp["products"].sku)
    assert (lines.returned_qty <= lines.qty).all()
    assert (
        lines.updated_at >= orders.set_index("order_id").loc[lines.order_id, "created_at"].to_numpy()
    ).all()
    assert orders.order_date.max() <= SIZE.end_date
    daily = orders.groupby(pd.to_datetime(orders.order_date).dt.dayofweek).size()
    assert daily.max() / daily.min() > 1.05  # a weekly pattern exists


def test_crm_links_to_erp_customers():
    erp = build_erp(SIZE)
    crm = build_crm(SIZE, erp["customers"])
    linked = crm["accounts"].erp_customer_id.dropna()
    assert set(linked) <= {str(c) for c in erp["customers"].customer_id}
    assert crm["accounts"].erp_customer_id.isna().any()  # prospects without an ERP customer
    assert set(crm["support_tickets"].account_id) <= set(crm["accounts"].account_id)


def test_too_small_a_demo_is_refused():
    with pytest.raises(ConfigError, match="--days must be >= 60"):
        DemoSize(days=10)
