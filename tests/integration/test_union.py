"""Two ERPs feed the same datasets: the night reads their union (a `source` column) end to end."""

from __future__ import annotations

import copy
import uuid
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from pipelines.config import Config, load_config, source_url
from pipelines.demo import generate
from pipelines.errors import RunFailedError, SchemaConflictError
from pipelines.lake import Lake, read_dataset
from pipelines.run_context import RunContext
from pipelines.steps import run_all, run_extract, run_migrate, run_validate
from tests.conftest import NIGHT, SMALL, write_config

# erp_us sells the six SKUs erp_eu sells (SKU-0001..6, the same products) and two of its own
US = replace(SMALL, skus=8, seed=11)
ERP_TABLES = ("order_lines", "products", "customers", "warehouses")


def _two_erps(tmp_path: Path, monkeypatch, eu_url: str, us_url: str, union: dict | None = None) -> Path:
    """The demo's ERP generated twice (erp_eu, erp_us: other seed, more SKUs) and the CRM once."""
    crm_url = f"sqlite:///{tmp_path / 'crm.db'}"
    generate(eu_url, crm_url, SMALL)
    generate(us_url, f"sqlite:///{tmp_path / 'crm_unused.db'}", US)
    tag = uuid.uuid4().hex[:6].upper()
    for name, url in (("EU", eu_url), ("US", us_url), ("CRM", crm_url)):
        monkeypatch.setenv(f"SEAM_{name}_{tag}", url)
    path = write_config(
        tmp_path / "seam.yml",
        erp_env=f"SEAM_EU_{tag}",
        crm_env=f"SEAM_CRM_{tag}",
        lake=tmp_path / "lake",
        reports=tmp_path / "reports",
        lean=True,
    )
    raw = yaml.safe_load(path.read_text())
    full = yaml.safe_load((Path(__file__).parents[2] / "config" / "demo.yml").read_text())
    erp = raw["sources"].pop("erp")
    erp["tables"] = {t: v for t, v in full["sources"]["erp"]["tables"].items() if t in ERP_TABLES}
    us = copy.deepcopy(erp)
    us["url_env"] = f"SEAM_US_{tag}"
    raw["sources"] = {"erp_eu": erp, "erp_us": us, "crm": raw["sources"]["crm"]}
    raw["results"] = {"ledger": "erp_eu", "forecasts": "erp_eu"}
    if union is not None:
        raw["union"] = union
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _results(cfg: Config, table: str) -> pd.DataFrame:
    engine = sa.create_engine(source_url(cfg.source("erp_eu")))
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(f"SELECT * FROM {table}"), conn)
    finally:
        engine.dispose()


def _night_of_two_erps(cfg: Config, *, qualified: bool) -> None:
    run_all(cfg, RunContext(NIGHT))
    lines = read_dataset(cfg, "order_lines", NIGHT)
    assert set(lines["source"]) == {"erp_eu", "erp_us"}
    forecasts = _results(cfg, "seam_forecasts")
    skus = set(forecasts["sku"])
    if qualified:  # the same code in two sources is two products, each forecast on its own
        assert {"erp_eu:SKU-0001", "erp_us:SKU-0001", "erp_us:SKU-0008"} <= skus
        assert not any(s.startswith("SKU-") for s in skus)
    else:  # one product sold by both: its demand adds up; erp_us's own SKUs are forecast too
        assert {"SKU-0001", "SKU-0007", "SKU-0008"} <= skus
        actuals = _results(cfg, "seam_actuals")
        day = pd.to_datetime(actuals["ds"]) == pd.Timestamp(NIGHT)
        net = lines[
            (lines["status"] != "cancelled") & (lines["order_date"].dt.normalize() == pd.Timestamp(NIGHT))
        ]
        expected = (net["quantity"] - net["returned_quantity"].fillna(0)).sum()
        assert actuals.loc[day, "actual"].sum() == pytest.approx(expected)
        assert set(net["source"]) == {"erp_eu", "erp_us"}
    quality = _results(cfg, "seam_data_quality_results")
    checks = set(quality.loc[quality["dataset"] == "order_lines", "check_name"])
    assert {"row_count(erp_eu)", "row_count(erp_us)", "freshness(erp_eu)", "freshness(erp_us)"} <= checks
    demand = _results(cfg, "seam_anomaly_scores")  # a union's scores go to results.forecasts
    assert (demand["metric"] == "demand").any()


@pytest.mark.parametrize("qualified", [False, True], ids=["shared-keys", "qualified-keys"])
def test_two_sqlite_erps_feed_one_night(tmp_path, monkeypatch, qualified):
    union = {"qualify_keys": True} if qualified else None
    path = _two_erps(
        tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'eu.db'}", f"sqlite:///{tmp_path / 'us.db'}", union
    )
    _night_of_two_erps(load_config(path), qualified=qualified)


@pytest.mark.integration
def test_postgres_and_mariadb_erps_feed_one_night(tmp_path, monkeypatch, pg_database, mariadb_database):
    path = _two_erps(tmp_path, monkeypatch, pg_database(), mariadb_database())
    _night_of_two_erps(load_config(path), qualified=False)


def test_a_type_conflict_between_the_sources_is_clear_and_writes_nothing(tmp_path, monkeypatch):
    path = _two_erps(
        tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'eu.db'}", f"sqlite:///{tmp_path / 'us.db'}"
    )
    raw = yaml.safe_load(path.read_text())
    raw["sources"]["erp_us"]["tables"]["products"]["casts"] = {"list_price": "string"}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(path)
    run_migrate(cfg)
    ctx = RunContext(NIGHT)
    run_extract(cfg, ctx, source="erp_eu", table="products")
    run_extract(cfg, ctx, source="erp_us", table="products")
    with pytest.raises(SchemaConflictError) as err:
        run_validate(cfg, ctx, dataset="products")
    for part in ("'list_price'", "sources.erp_eu.tables.products", "sources.erp_us.tables.products"):
        assert part in str(err.value)
    assert Lake(cfg.lake).read_quality("products", NIGHT) is None  # nothing half-written


def test_a_missing_source_partition_fails_the_night_and_forecasts_nothing(tmp_path, monkeypatch):
    path = _two_erps(
        tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'eu.db'}", f"sqlite:///{tmp_path / 'us.db'}"
    )
    cfg = load_config(path)
    us = sa.create_engine(source_url(cfg.source("erp_us")))
    with us.begin() as conn:  # erp_us's order lines cannot be extracted tonight
        conn.exec_driver_sql("ALTER TABLE sales_order_lines RENAME TO sales_order_lines_gone")
    us.dispose()
    with pytest.raises(RunFailedError) as err:
        run_all(cfg, RunContext(NIGHT))
    message = str(err.value)
    assert "extract:erp_us.order_lines" in message
    assert "validate:order_lines" in message and "no snapshot of erp_us.order_lines" in message
    assert "plan" in message  # no shards: the night's order lines are not all there
    assert Lake(cfg.lake).table_days("erp_eu", "order_lines") == [NIGHT]  # erp_eu's half is in the lake...
    assert Lake(cfg.lake).read_output("forecasts", NIGHT) is None  # ...and nothing is forecast from it
    assert _results(cfg, "seam_forecasts").empty
    assert _results(cfg, "seam_actuals").empty
