"""`results.schema`: seam's result tables and views in a schema of their own, made by `seam migrate`."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
import yaml

from pipelines.config import load_config, results_url, source_url
from pipelines.db import make_engine
from pipelines.errors import ConfigError, SeamError
from pipelines.run_context import RunContext
from pipelines.steps import run_all, run_extract, run_migrate
from tests.conftest import NIGHT

SCHEMA = "seam_results"


def _with_schema(path, schema: object) -> None:
    raw = yaml.safe_load(path.read_text())
    raw["results"] = {**(raw.get("results") or {}), "schema": schema}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def _seam(names: set[str]) -> set[str]:
    """seam's result tables and views among `names` (not the demo's own `seam_demo_*` tables)."""
    return {t for t in names if t.startswith("seam_") and not t.startswith("seam_demo_")}


def _tables(url: str, schema: str | None) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            return set(inspector.get_table_names(schema=schema)) | set(
                inspector.get_view_names(schema=schema)
            )
    finally:
        engine.dispose()


@pytest.fixture
def schema(mariadb_database):
    """A schema name of this test's own; on MariaDB a database beside the test's, dropped after."""
    name = f"seam_r_{uuid.uuid4().hex[:8]}"
    yield name
    engine = sa.create_engine(mariadb_database())
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    engine.dispose()


def test_result_tables_and_views_go_into_the_configured_schema(
    demo_env, pg_database, mariadb_database, schema
):
    erp_url, crm_url = pg_database(), mariadb_database()
    path = demo_env(erp_url, crm_url, lean=True)
    _with_schema(path, schema)
    cfg = load_config(path)
    with pytest.raises(SeamError, match=r"not up to date.*run `seam migrate"):
        run_extract(cfg, RunContext(NIGHT))  # extraction never creates them
    for url in (erp_url, crm_url):
        assert not _seam(_tables(url, None))
    assert set(run_migrate(cfg)) == {"erp", "crm"}
    assert run_migrate(cfg) == {"erp": [], "crm": []}  # idempotent, the schema already there
    run_all(cfg, RunContext(NIGHT))
    for url in (erp_url, crm_url):
        inside = _tables(url, schema)
        assert {"seam_forecasts", "seam_anomaly_scores", "seam_schema_migrations"} <= inside
        assert "seam_v_forecast_accuracy" in inside or "seam_v_open_incidents" in inside
        assert not _seam(_tables(url, None))  # nothing in the default schema
    engine = make_engine(results_url(cfg.source("erp")))
    try:
        with engine.connect() as conn:  # seam's own engine finds them unqualified
            n = conn.execute(sa.text("SELECT count(*) FROM seam_forecasts")).scalar()
    finally:
        engine.dispose()
    qualified = sa.create_engine(erp_url)
    try:
        with qualified.connect() as conn:  # analysts read them qualified
            assert conn.execute(sa.text(f"SELECT count(*) FROM {schema}.seam_forecasts")).scalar() == n > 0
    finally:
        qualified.dispose()
    assert source_url(cfg.source("erp")) == erp_url  # extraction reads the ERP where it is


def test_sqlite_has_no_schemas_for_results(demo_env):
    path = demo_env(lean=True)
    _with_schema(path, SCHEMA)
    with pytest.raises(ConfigError, match=r"results\.schema: sqlite has no schemas"):
        run_migrate(load_config(path))


@pytest.mark.parametrize("bad", ["seam results", "seam;drop", "1seam", ""])
def test_a_schema_name_must_be_plain(demo_env, bad):
    path = demo_env(lean=True)
    _with_schema(path, bad)
    with pytest.raises(ConfigError, match=r"results\.schema: .* is not a plain schema name"):
        load_config(path)
