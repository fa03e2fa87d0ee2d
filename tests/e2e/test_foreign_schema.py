"""End to end on a schema nobody shaped for seam: an ERP on PostgreSQL and a CRM on MariaDB
(tests/foreign_schema.py), mapped from config alone, run for three consecutive nights through the
`seam` CLI, a night re-run, and the same night through the nightly DAG in Airflow (`dag.test()`).

The nights are Saturday 2026-11-21, Sunday 22 and Monday 23: the ERP trades on weekdays only, its
order lines are extracted incrementally (each night reads back three days before the newest line
it had seen: the lookback).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pds
import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.foreign_schema import ForeignSize, artnr, build_crm, build_erp, lager_nr, write_config
from tests.helpers import dump_results

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

NIGHTS = (date(2026, 11, 21), date(2026, 11, 22), date(2026, 11, 23))
SIZE = ForeignSize(end=NIGHTS[-1])
HORIZON = 14
VIEWS = (
    "seam_v_latest_forecast",
    "seam_v_forecast_accuracy",
    "seam_v_forecast_accuracy_latest",
    "seam_v_open_anomalies",
    "seam_v_pipeline_health",
    "seam_v_forecast_value_added",
    "seam_v_forecast_value_added_by_level",
    "seam_v_latest_forecast_by_category",
)
# what a re-run of a night must reproduce (besides the load batches' checksums)
COMPARED = ("seam_forecasts", "seam_anomaly_scores", "seam_data_quality_results", "seam_forecast_accuracy")


@dataclass
class Scenario:
    config: Path
    erp_url: str
    crm_url: str
    env: dict[str, str]
    runs: dict[date, subprocess.CompletedProcess[str]]
    accuracy_rows: dict[date, int]  # seam_forecast_accuracy rows of each night, right after it ran


def _seam(scenario_env: dict[str, str], config: Path, night: date) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config), "--date", night.isoformat()],
        env=scenario_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _read(url: str, sql: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(sql), conn)
    finally:
        engine.dispose()


def _results(url: str, night: date) -> dict[str, pd.DataFrame]:
    """The result rows of one night (and every load batch's checksum), comparable across runs."""
    out = {}
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for table in COMPARED:
            df = pd.read_sql(sa.text(f"SELECT * FROM {table} WHERE run_date = :d"), conn, params={"d": night})
            keep = [c for c in df.columns if c != "loaded_at"]
            out[table] = df[keep].sort_values(keep[:5]).reset_index(drop=True)
    engine.dispose()
    out["seam_load_batches"] = dump_results(url)["seam_load_batches"]
    return out


def _assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for table in a:
        pd.testing.assert_frame_equal(a[table], b[table], check_dtype=False, obj=table)


@pytest.fixture(scope="module")
def scenario(pg_database_module, mariadb_database_module, tmp_path_factory) -> Iterator[Scenario]:
    erp_url, crm_url = pg_database_module(), mariadb_database_module()
    build_erp(erp_url, SIZE)
    build_crm(crm_url, SIZE)
    base = tmp_path_factory.mktemp("foreign")
    env = {**os.environ, "SEAM_FOREIGN_ERP_URL": erp_url, "SEAM_FOREIGN_CRM_URL": crm_url}
    config = write_config(
        base / "seam.yml",
        erp_env="SEAM_FOREIGN_ERP_URL",
        crm_env="SEAM_FOREIGN_CRM_URL",
        lake=base / "lake",
        reports=base / "reports",
    )
    runs, accuracy = {}, {}
    for night in NIGHTS:
        runs[night] = _seam(env, config, night)
        if runs[night].returncode != 0:
            break
        accuracy[night] = int(
            _read(erp_url, f"SELECT count(*) AS n FROM seam_forecast_accuracy WHERE run_date = '{night}'").n[
                0
            ]
        )
    yield Scenario(config, erp_url, crm_url, env, runs, accuracy)


def test_every_night_runs_through_the_cli(scenario):
    for night in NIGHTS:
        res = scenario.runs.get(night)
        assert res is not None, f"night {night} did not run: an earlier night failed"
        assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
        assert f"night {night}: done" in res.stdout


def test_the_mapping_lands_canonical_rows(scenario):
    """Line numbers derived per invoice, net prices from gross and discount, the sales area as
    region, a constant currency, the NUMERIC weight as a number, increments after the first night."""
    lake = Path(scenario.config.parent / "lake")

    def partition(table: str, night: date) -> pd.DataFrame:
        folder = lake / "source=erp" / f"table={table}" / f"run_date={night}"
        return pds.dataset(folder, format="parquet").to_table().to_pandas()

    first = partition("positionen", NIGHTS[0])
    lines = first.groupby("order_id")["line_no"].agg(list)
    assert all(nos == list(range(1, len(nos) + 1)) for nos in lines.map(sorted))
    assert set(first.currency) == {"EUR"} and first.gewicht_kg.dtype == "float64"
    assert first.discount.between(0, 0.3).all() and first.customer_id.str.startswith("5").all()
    net = _read(
        scenario.erp_url,
        "SELECT sum(p.menge * round(p.brutto_preis * (1 - p.rabatt_pct / 100), 4)) AS v, count(*) AS n "
        "FROM vertrieb.invoice_pos p JOIN vertrieb.invoice_head h USING (beleg_nr) "
        f"WHERE h.erfasst_am < '{NIGHTS[1]}'",
    )
    assert len(first) == net.n[0]
    assert (first.quantity * first.unit_price).sum() == pytest.approx(float(net.v[0]), rel=1e-9)
    # incremental: the later nights read only their window (3 days of lookback)
    later = [partition("positionen", n) for n in NIGHTS[1:]]
    assert all(0 < len(p) < len(first) / 20 for p in later)
    assert pd.to_datetime(later[-1].order_date).max().date() == NIGHTS[-1]
    warehouses = partition("lager", NIGHTS[0])
    assert list(warehouses.columns) == ["warehouse", "name", "region"]
    assert set(warehouses.region) == {"Nord", "Sued", "West", "Ost"}


def test_forecasts_are_non_negative_and_zero_at_weekends(scenario):
    fc = _read(scenario.erp_url, "SELECT * FROM seam_forecasts")
    assert sorted(pd.to_datetime(fc.run_date).dt.date.unique()) == list(NIGHTS)
    per_night = fc.groupby("run_date").size()
    assert per_night.nunique() == 1 and per_night.iloc[0] % HORIZON == 0
    assert per_night.iloc[0] // HORIZON > 0.8 * SIZE.products * SIZE.locations  # sparse, yet most pairs sold
    assert (fc.yhat_lo_95 >= 0).all() and (fc.yhat >= 0).all() and (fc.yhat_final >= 0).all()
    weekend = pd.to_datetime(fc.target_date).dt.weekday >= 5
    assert (fc.loc[weekend, ["yhat", "yhat_final", "yhat_hi_95"]] == 0).all().all()
    assert fc.loc[~weekend, "yhat"].sum() > 0


def test_a_single_ordinary_order_of_a_sparse_series_is_not_critical(scenario):
    entity = f"{artnr(SIZE.planted[0])}|{lager_nr(SIZE.planted[1])}"
    scores = _read(
        scenario.erp_url,
        f"SELECT * FROM seam_anomaly_scores WHERE metric = 'demand' AND run_date = '{NIGHTS[-1]}'",
    )
    planted = scores[(scores.entity == entity) & (pd.to_datetime(scores.ds).dt.date == NIGHTS[-1])]
    assert len(planted) == 1 and planted.value.iloc[0] == 1
    assert planted.severity.iloc[0] not in ("critical", "high")
    # nor any other sparse series (a handful of order days in its history) selling one or two units
    days = _read(
        scenario.erp_url,
        "SELECT p.artnr || '|' || h.lager_nr AS entity, count(DISTINCT h.beleg_datum) AS order_days "
        "FROM vertrieb.invoice_pos p JOIN vertrieb.invoice_head h USING (beleg_nr) GROUP BY 1",
    )
    sparse = set(days.entity[days.order_days <= 10])
    assert len(sparse) > 50
    ordinary = scores[scores.entity.isin(sparse) & scores.value.between(0.5, 2)]
    assert len(ordinary) > 0 and not (ordinary.severity == "critical").any()


def test_ordinary_days_of_sparse_warehouses_are_not_critical(scenario):
    scores = _read(
        scenario.erp_url,
        f"SELECT * FROM seam_anomaly_scores WHERE metric IN ('order_count', 'revenue') "
        f"AND run_date = '{NIGHTS[-1]}'",
    )
    inside = scores[(scores.value >= scores.lower_bound) & (scores.value <= scores.upper_bound)]
    assert len(inside) > 0 and not (inside.severity == "critical").any()


def test_accuracy_rows_from_the_second_night_on(scenario):
    assert scenario.accuracy_rows[NIGHTS[0]] == 0  # nothing forecast before the first night
    assert 0 < scenario.accuracy_rows[NIGHTS[1]] < scenario.accuracy_rows[NIGHTS[2]]
    acc = _read(scenario.erp_url, f"SELECT * FROM seam_forecast_accuracy WHERE run_date = '{NIGHTS[-1]}'")
    levels = {
        "series",
        "category",
        "all",
        "hier_total",
        "hier_category",
        "hier_cat_wh",
        "hier_sku",
        "hier_sku_wh",
    }
    assert set(acc.level) == levels and set(acc.lag_days) == {1, 2}  # hier_*: the reconciled hierarchy


def test_results_land_in_both_databases_and_the_views_are_queryable(scenario):
    erp = _read(scenario.erp_url, "SELECT DISTINCT metric FROM seam_anomaly_scores")
    crm = _read(scenario.crm_url, "SELECT DISTINCT metric FROM seam_anomaly_scores")
    assert set(erp.metric) == {"demand", "revenue", "order_count"}
    assert set(crm.metric) == {"pipeline_value", "kontakte_je_kanal"}  # CRM metrics go to the CRM
    dq = _read(scenario.erp_url, f"SELECT * FROM seam_data_quality_results WHERE run_date = '{NIGHTS[-1]}'")
    assert {"order_lines", "products", "warehouses", "customers", "accounts", "opportunities"} <= set(
        dq.dataset
    )
    assert dq.success.astype(bool).all()
    for url in (scenario.erp_url, scenario.crm_url):
        for view in VIEWS:
            _read(url, f"SELECT * FROM {view}")  # queryable on both dialects
    latest = _read(scenario.erp_url, "SELECT * FROM seam_v_latest_forecast")
    ahead = pd.to_datetime(latest.target_date).dt.date > NIGHTS[-1]  # the last night forecast these days
    assert (pd.to_datetime(latest.run_date[ahead]).dt.date == NIGHTS[-1]).all() and ahead.sum() > 0
    health = _read(scenario.erp_url, "SELECT * FROM seam_v_pipeline_health")
    assert "extract:erp.positionen" in set(health.step)


def test_rerunning_a_night_gives_the_same_results(scenario):
    night = NIGHTS[-1]
    before = {url: _results(url, night) for url in (scenario.erp_url, scenario.crm_url)}
    res = _seam(scenario.env, scenario.config, night)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    for url, was in before.items():
        _assert_same(was, _results(url, night))


def test_the_nightly_dag_gives_the_cli_results(scenario, tmp_path):
    """The last two nights again through Airflow, oldest first (a backfill of nights the CLI ran):
    green runs whose results (and load checksums) are the CLI's."""
    nights = NIGHTS[-2:]
    before = {(url, n): _results(url, n) for url in (scenario.erp_url, scenario.crm_url) for n in nights}
    airflow_home = tmp_path / "airflow"
    env = {
        **scenario.env,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
        "SEAM_CONFIG": str(scenario.config),
    }
    setup = f". {ROOT}/scripts/airflow-env.sh && {sys.executable} -m airflow db migrate"
    subprocess.run(["bash", "-c", setup], env=env, check=True, capture_output=True, timeout=300)
    for night in nights:
        res = subprocess.run(
            [
                "bash",
                "-c",
                f". {ROOT}/scripts/airflow-env.sh && {sys.executable} scripts/run_dag.py --date {night}",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
        assert f"seam_nightly {night}: success" in res.stdout
    for (url, night), was in before.items():
        _assert_same(was, _results(url, night))
