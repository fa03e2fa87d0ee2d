"""Keys with any character survive to the result tables: SKUs and warehouse codes travel as columns
and are never joined into a string that is split again.

The demo's SKUs and warehouse codes are renamed, in every ERP table that holds them, to codes with
`|`, `;`, quotes, emoji, a backslash and leading/trailing spaces, including two pairs that a join
on "|" could not tell apart: SKU `AB|01` at `WH01` and SKU `AB` at `01|WH01`.
"""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.config import load_config, source_url
from pipelines.run_context import RunContext
from pipelines.steps import run_all
from tests.conftest import NIGHT

NEW_SKUS = ["AB|01", "AB", " q\"u'ote ", "Ünï😀;x", "back\\slash", "plain"]
# the demo's three products launching without a sale yet (SKU-0007 to SKU-0009)
LAUNCH_SKUS = ["new|01", 'la;unch "x"', " é|launch "]
NEW_WAREHOUSES = ["WH01", "01|WH01"]
# (table, column) pairs holding a SKU or a warehouse code in the demo ERP
SKU_COLUMNS = [
    ("products", "sku"),
    ("sales_order_lines", "sku"),
    ("promotions", "sku"),
    ("stock_outs", "sku"),
]
WAREHOUSE_COLUMNS = [
    ("warehouses", "warehouse_code"),
    ("sales_orders", "warehouse_code"),
    ("stock_outs", "warehouse_code"),
]


def _without_foreign_keys(conn: sa.Connection) -> None:
    """Let the keys be renamed table by table (the test owns the database)."""
    name = conn.dialect.name
    if name == "postgresql":
        inspector = sa.inspect(conn)
        for table in inspector.get_table_names():
            for fk in inspector.get_foreign_keys(table):
                conn.exec_driver_sql(f'ALTER TABLE "{table}" DROP CONSTRAINT "{fk["name"]}"')
    elif name in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")


def _rename_keys(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """Rename every SKU and warehouse code of the ERP; returns old -> new for each."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _without_foreign_keys(conn)
        skus = sorted(conn.exec_driver_sql("SELECT sku FROM products").scalars())
        whs = sorted(conn.exec_driver_sql("SELECT warehouse_code FROM warehouses").scalars())
        sku_map = dict(zip(skus, NEW_SKUS + LAUNCH_SKUS, strict=True))
        wh_map = dict(zip(whs, NEW_WAREHOUSES, strict=True))
        for mapping, columns in ((sku_map, SKU_COLUMNS), (wh_map, WAREHOUSE_COLUMNS)):
            for table, column in columns:
                for old, new in mapping.items():
                    conn.execute(
                        sa.text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old"),
                        {"new": new, "old": old},
                    )
    engine.dispose()
    return sku_map, wh_map


def _check(config) -> None:
    cfg = load_config(config)
    sku_map, wh_map = _rename_keys(source_url(cfg.source("erp")))
    run_all(cfg, RunContext(NIGHT))
    engine = sa.create_engine(source_url(cfg.source("erp")))
    with engine.connect() as conn:
        fc = pd.read_sql(sa.text("SELECT sku, warehouse, yhat FROM seam_forecasts"), conn)
        actuals = pd.read_sql(sa.text("SELECT sku, warehouse, actual FROM seam_actuals"), conn)
        sold = pd.read_sql(
            sa.text(
                "SELECT l.sku, o.warehouse_code AS warehouse, l.qty, l.returned_qty, l.line_status "
                "FROM sales_order_lines l JOIN sales_orders o ON o.order_id = l.order_id"
            ),
            conn,
        )
        entities = set(
            conn.exec_driver_sql(
                "SELECT DISTINCT entity FROM seam_anomaly_scores WHERE metric = 'demand'"
            ).scalars()
        )
    engine.dispose()
    pairs = {(s, w) for s in sku_map.values() for w in wh_map.values()}
    sold_pairs = set(zip(sold["sku"], sold["warehouse"], strict=True))
    # every key exactly as typed, and only keys that exist: the sold pairs, and the launches in
    # the warehouses of their categories
    forecast_pairs = set(zip(fc["sku"], fc["warehouse"], strict=True))
    assert {p for p in forecast_pairs if p[0] not in LAUNCH_SKUS} == sold_pairs & pairs
    launched = {p for p in forecast_pairs if p[0] in LAUNCH_SKUS}
    assert launched <= pairs and {s for s, _ in launched} == set(LAUNCH_SKUS)
    assert set(zip(actuals["sku"], actuals["warehouse"], strict=True)) <= sold_pairs
    assert {("AB|01", "WH01"), ("AB", "01|WH01")} <= sold_pairs
    # the two pairs a "|"-join confuses are two series, each with its own actuals
    assert {("AB|01", "WH01"), ("AB", "01|WH01")} <= set(
        zip(actuals["sku"], actuals["warehouse"], strict=True)
    )
    # one demand anomaly entity per sold pair: no two pairs collapse into one
    assert len(entities) == len(sold_pairs)


def test_hostile_keys_on_sqlite(demo_env):
    _check(demo_env(lean=True))


@pytest.mark.integration
def test_hostile_keys_on_postgres_and_mariadb(demo_env, pg_database, mariadb_database):
    _check(demo_env(pg_database(), mariadb_database(), lean=True))
