"""Fault injection: each broken night is caught with the right check, and nothing wrong goes downstream."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
import yaml

from pipelines.config import load_config, source_url
from pipelines.errors import QualityGateError, SchemaDriftError, StepSkipped
from pipelines.lake import Lake, read_dataset, read_partition
from pipelines.run_context import RunContext
from pipelines.steps import run_extract, run_forecast, run_load, run_migrate, run_validate
from tests.conftest import NIGHT

BEFORE = NIGHT - timedelta(days=1)


def _unconstrain(table: str) -> list[str]:
    """SQL that rebuilds a SQLite table without keys or constraints (so a fault can be injected)."""
    return [
        f"CREATE TABLE {table}_x AS SELECT * FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_x RENAME TO {table}",
    ]


NIGHT_END = f"'{NIGHT + timedelta(days=1)} 00:00:00'"
FAULTS = {
    # name: (database, SQL, dataset, check named in the error)
    "stale source": (
        "erp",
        [
            f"DELETE FROM sales_order_lines WHERE order_id IN (SELECT order_id FROM sales_orders "
            f"WHERE created_at >= '{NIGHT - timedelta(days=2)}')",
            "UPDATE sales_order_lines SET updated_at = (SELECT created_at FROM sales_orders o "
            "WHERE o.order_id = sales_order_lines.order_id)",
        ],
        "order_lines",
        "freshness",
    ),
    "half-loaded table": (
        "erp",
        ["DELETE FROM sales_order_lines WHERE order_id % 10 < 6"],
        "order_lines",
        "row_volume",
    ),
    "duplicate keys": (
        "erp",
        [
            *_unconstrain("sales_order_lines"),
            "INSERT INTO sales_order_lines SELECT * FROM sales_order_lines LIMIT 3",
        ],
        "order_lines",
        "expect_compound_columns_to_be_unique",
    ),
    "null keys": (
        "erp",
        [
            *_unconstrain("sales_order_lines"),
            "UPDATE sales_order_lines SET sku = NULL WHERE order_id % 50 = 0",
        ],
        "order_lines",
        "expect_column_values_to_not_be_null(sku)",
    ),
    "negative quantities": (
        "erp",
        ["UPDATE sales_order_lines SET qty = -qty WHERE order_id % 40 = 0"],
        "order_lines",
        "expect_column_values_to_be_between(quantity)",
    ),
    "prices off by 100x": (
        "erp",
        [
            "UPDATE sales_order_lines SET unit_price = unit_price * 100 WHERE order_id IN "
            f"(SELECT order_id FROM sales_orders WHERE order_date >= '{NIGHT - timedelta(days=3)}')"
        ],
        "order_lines",
        "unit_price_vs_list_price",
    ),
    "future-dated orders": (
        "erp",
        [f"UPDATE sales_orders SET order_date = '{NIGHT + timedelta(days=30)}' WHERE order_id % 97 = 0"],
        "order_lines",
        "not_in_future(order_date)",
    ),
    "unknown SKUs": (
        "erp",
        [
            *_unconstrain("sales_order_lines"),
            "UPDATE sales_order_lines SET sku = 'SKU-9999' WHERE order_id % 60 = 0",
        ],
        "order_lines",
        "expect_column_values_to_be_in_set(sku)",
    ),
    "unknown currency": (
        "erp",
        ["UPDATE sales_orders SET currency = 'XYZ' WHERE order_id % 70 = 0"],
        "order_lines",
        "expect_column_values_to_be_in_set(currency)",
    ),
    "null prices": (  # `between` ignores NULLs: a required column is checked for them on its own
        "erp",
        [
            *_unconstrain("sales_order_lines"),
            "UPDATE sales_order_lines SET unit_price = NULL WHERE order_id % 3 = 0",
        ],
        "order_lines",
        "expect_column_values_to_not_be_null(unit_price)",
    ),
    "null quantities": (
        "erp",
        [
            *_unconstrain("sales_order_lines"),
            "UPDATE sales_order_lines SET qty = NULL WHERE order_id % 30 = 0",
        ],
        "order_lines",
        "expect_column_values_to_not_be_null(quantity)",
    ),
    "empty table": ("erp", ["PRAGMA foreign_keys=OFF", "DELETE FROM products"], "products", "row_count"),
    "accounts without ERP customer": (
        "crm",
        ["UPDATE accounts SET erp_customer_id = '999999' WHERE account_id IN ('A00003', 'A00007')"],
        "accounts",
        "expect_column_values_to_be_in_set(erp_customer_id)",
    ),
}


def test_value_sets_come_from_the_config(night_before):
    """A currency the config allows passes; the default set would have refused it."""
    from dataclasses import replace

    cfg = night_before
    _inject(
        source_url(cfg.source("erp")), ["UPDATE sales_orders SET currency = 'JPY' WHERE order_id % 70 = 0"]
    )
    run_extract(cfg, RunContext(NIGHT))
    with pytest.raises(QualityGateError, match=r"expect_column_values_to_be_in_set\(currency\)"):
        run_validate(cfg, RunContext(NIGHT), dataset="order_lines")
    sets = {**cfg.value_sets, "currencies": (*cfg.value_sets["currencies"], "JPY")}
    results = run_validate(replace(cfg, value_sets=sets), RunContext(NIGHT), dataset="order_lines")
    assert not [r for r in results if not r.success and r.severity == "error"]


def _inject(url: str, statements: list[str]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for stmt in statements:
            conn.exec_driver_sql(stmt)
    engine.dispose()


@pytest.fixture
def night_before(demo_env):
    """A demo whose previous night was extracted and validated cleanly."""
    cfg = load_config(demo_env())
    run_migrate(cfg)
    run_extract(cfg, RunContext(BEFORE))
    run_validate(cfg, RunContext(BEFORE))
    return cfg


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_caught_with_the_right_check(night_before, fault):
    cfg = night_before
    db, sql, dataset, check = FAULTS[fault]
    _inject(source_url(cfg.source(db)), sql)
    run_extract(cfg, RunContext(NIGHT))
    with pytest.raises(QualityGateError) as err:
        run_validate(cfg, RunContext(NIGHT))
    message = str(err.value)
    assert f"{dataset}: check {check}" in message, message
    assert "observed" in message and "expected" in message
    if dataset == "order_lines" or fault == "empty table":
        with pytest.raises(StepSkipped, match="failed their quality gate"):
            run_forecast(cfg, RunContext(NIGHT))
        assert Lake(cfg.lake).read_output("forecasts", NIGHT) is None


def test_failed_night_loads_quality_results_but_no_forecasts(night_before):
    cfg = night_before
    _inject(source_url(cfg.source("erp")), FAULTS["negative quantities"][1])
    run_extract(cfg, RunContext(NIGHT))
    with pytest.raises(QualityGateError):
        run_validate(cfg, RunContext(NIGHT))
    with pytest.raises(StepSkipped):
        run_forecast(cfg, RunContext(NIGHT))
    run_load(cfg, RunContext(NIGHT))
    engine = sa.create_engine(source_url(cfg.source("erp")))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM seam_forecasts").scalar() == 0
        failed = conn.exec_driver_sql(
            "SELECT check_name FROM seam_data_quality_results WHERE success = 0 AND severity = 'error'"
        ).all()
        steps = dict(conn.exec_driver_sql("SELECT step, status FROM seam_run_ledger").all())
    engine.dispose()
    assert [r[0] for r in failed] == ["expect_column_values_to_be_between(quantity)"]
    assert steps["forecast:0"] == "skipped" and steps["validate:order_lines"] == "failed"
    # one GX project beside the reports: every night's results accumulate in its Data Docs site
    from pipelines.quality.gate import docs_project
    from pipelines.quality.gx import docs_index

    index = docs_index(docs_project(cfg))
    assert index.is_file()
    pages = [p.read_text() for p in (index.parent / "validations").rglob("*.html")]
    assert any("quantity" in p and str(NIGHT) in p for p in pages)
    assert any(str(NIGHT - timedelta(days=1)) in p for p in pages)  # the night before is still there
    assert str(NIGHT) in index.read_text() and str(NIGHT - timedelta(days=1)) in index.read_text()


def test_column_retyped_to_text_fails_the_table(night_before):
    cfg = night_before
    _inject(
        source_url(cfg.source("erp")),
        [
            "CREATE TABLE products_x (sku VARCHAR(16) PRIMARY KEY, product_name VARCHAR(128), category VARCHAR(32), "
            "list_price TEXT, created_at DATETIME, updated_at DATETIME)",
            "INSERT INTO products_x SELECT sku, product_name, category, CAST(list_price AS TEXT), created_at, "
            "updated_at FROM products",
            "PRAGMA foreign_keys=OFF",
            "DROP TABLE products",
            "ALTER TABLE products_x RENAME TO products",
        ],
    )
    with pytest.raises(
        SchemaDriftError, match=r"retyped columns \['list_price: decimal128\(12, 2\) -> string'\]"
    ):
        run_extract(cfg, RunContext(NIGHT), source="erp", table="products")
    assert Lake(cfg.lake).read_output("forecasts", NIGHT) is None
    assert not Lake(cfg.lake).table_partition("erp", "products", NIGHT).exists()
    assert NIGHT not in Lake(cfg.lake).table_days("erp", "products")


def test_thirty_clean_nights_raise_no_error(demo_env):
    # the gate's verdicts, without rendering thirty nights of Data Docs pages (other tests do)
    path = demo_env()
    raw = yaml.safe_load(path.read_text())
    raw["report"]["data_docs"] = False
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(path)
    run_migrate(cfg)
    warnings = 0
    for i in range(29, -1, -1):
        ctx = RunContext(NIGHT - timedelta(days=i))
        run_extract(cfg, ctx)
        results = run_validate(cfg, ctx)  # raises on any `error`-severity failure
        warnings += sum(1 for r in results if not r.success)
    assert warnings <= 3
    from pipelines.quality.gate import docs_project

    assert not docs_project(cfg).exists()  # `report.data_docs: false`: no site


def _enable_quarantine(cfg_path, max_share=None):
    raw = yaml.safe_load(cfg_path.read_text())
    raw["sources"]["erp"]["tables"]["order_lines"]["quarantine"] = True
    if max_share is not None:
        raw["sources"]["erp"]["tables"]["order_lines"]["quarantine_max_share"] = max_share
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(cfg_path)
    run_migrate(cfg)
    return cfg


def test_quarantine_moves_bad_rows_aside_and_the_rest_continue(night_before):
    cfg = _enable_quarantine(night_before.path)
    _inject(
        source_url(cfg.source("erp")), ["UPDATE sales_order_lines SET qty = -qty WHERE order_id % 200 = 0"]
    )
    run_extract(cfg, RunContext(NIGHT))
    results = run_validate(cfg, RunContext(NIGHT))  # no gate failure: the bad rows are set aside
    check = next(r for r in results if r.check_name == "expect_column_values_to_be_between(quantity)")
    assert check.severity == "warn" and "rows quarantined" in check.observed_value
    q = read_partition(Lake(cfg.lake).quarantine_partition("order_lines", NIGHT))
    assert len(q) == check.unexpected_count > 0
    assert (q["quantity"] < 0).all() and q["quarantine_reason"].str.contains("quantity").all()
    clean = read_dataset(cfg, "order_lines", NIGHT)
    raw = read_dataset(cfg, "order_lines", NIGHT, exclude_quarantined=False)
    assert len(clean) == len(raw) - len(q) and (clean["quantity"] >= 0).all()
    run_forecast(cfg, RunContext(NIGHT))
    assert len(Lake(cfg.lake).read_output("forecasts", NIGHT)) > 0


def test_quarantine_does_not_hide_a_broken_feed(night_before):
    cfg = _enable_quarantine(night_before.path, max_share=0.001)
    _inject(
        source_url(cfg.source("erp")), ["UPDATE sales_order_lines SET qty = -qty WHERE order_id % 20 = 0"]
    )
    run_extract(cfg, RunContext(NIGHT))
    with pytest.raises(QualityGateError, match=r"quantity"):
        run_validate(cfg, RunContext(NIGHT))
