"""The nightly steps end to end without a scheduler, on SQLite and on real PostgreSQL + MariaDB."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.config import load_config, source_url
from pipelines.errors import ConfigError, SourceUnavailableError
from pipelines.lake import Lake
from pipelines.run_context import RunContext
from pipelines.steps import run_all, run_extract, run_load, run_migrate
from tests.conftest import NIGHT
from tests.helpers import check_results, dump_results


def _run_twice_identical(config_path, monkeypatch) -> None:
    cfg = load_config(config_path)
    report = run_all(cfg, RunContext(NIGHT))
    assert report.is_file() and "Top anomalies" in report.read_text()
    check_results(cfg)
    # what the forecast knows ahead: the demo's planned promotions and its launches
    text = (report.parent / "report.txt").read_text()
    assert "KNOWN AHEAD (2 SKUs with a promotion or holiday in the horizon, 3 new products)" in text
    assert "SKU-0006 Orion Crisps 6 2026-11-27..2026-12-06: promotion 23% off: x1." in text
    assert "new product SKU-0008 New Crisps 8, launches on 2026-11-27:" in text
    assert "Known ahead: promotions, holidays and new products" in report.read_text()
    first = (dump_results(source_url(cfg.source("erp"))), dump_results(source_url(cfg.source("crm"))))
    run_all(cfg, RunContext(NIGHT))
    second = (dump_results(source_url(cfg.source("erp"))), dump_results(source_url(cfg.source("crm"))))
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for t in a:
            pd.testing.assert_frame_equal(a[t], b[t], check_dtype=False)
    # the load reads the lake's outputs in record batches: in small ones (several per output), the
    # night loads again with the same checksums and gives the same tables
    import pipelines.load.night as night_load

    recorded = {}
    for name in ("erp", "crm"):
        engine = sa.create_engine(source_url(cfg.source(name)))
        with engine.begin() as conn:
            recorded[name] = dict(
                conn.exec_driver_sql(
                    f"SELECT table_name, checksum FROM seam_load_batches WHERE run_date = '{NIGHT}'"
                ).all()
            )
            conn.exec_driver_sql(f"DELETE FROM seam_load_batches WHERE run_date = '{NIGHT}'")
        engine.dispose()
    monkeypatch.setattr(night_load, "BATCH_ROWS", 100)
    loaded = run_load(cfg, RunContext(NIGHT))
    assert not any(r.skipped for r in loaded)
    assert sorted((r.table, r.checksum) for r in loaded) == sorted(
        (t, c) for db in recorded.values() for t, c in db.items()
    )
    assert {r.table for r in loaded if r.rows > 100} >= {"seam_forecasts", "seam_forecasts_hierarchy"}
    third = (dump_results(source_url(cfg.source("erp"))), dump_results(source_url(cfg.source("crm"))))
    for a, b in zip(first, third, strict=True):
        for t in a:
            pd.testing.assert_frame_equal(a[t], b[t], check_dtype=False)


def test_sqlite_run_twice_gives_identical_results(demo_env, monkeypatch):
    _run_twice_identical(demo_env(), monkeypatch)


@pytest.mark.integration
def test_postgres_erp_and_mariadb_crm(demo_env, pg_database, mariadb_database, monkeypatch):
    _run_twice_identical(demo_env(pg_database(), mariadb_database()), monkeypatch)


def test_missing_table_is_a_clear_error_and_writes_nothing(demo_env, tmp_path):
    path = demo_env()
    text = path.read_text().replace("table: products", "table: produkts")
    path.write_text(text)
    cfg = load_config(path)
    run_migrate(cfg)
    with pytest.raises(ConfigError, match="table 'produkts' does not exist in source 'erp'"):
        run_extract(cfg, RunContext(NIGHT), source="erp", table="products")
    assert Lake(cfg.lake).table_days("erp", "products") == []
    assert not Lake(cfg.lake).table_partition("erp", "products", NIGHT).exists()


def test_unreachable_database_is_retryable_and_hides_the_password(demo_env, monkeypatch):
    cfg = load_config(demo_env())
    run_migrate(cfg)
    env = cfg.source("crm").url_env
    monkeypatch.setenv(env, "postgresql+psycopg://seam:s3cr3t-pw@127.0.0.1:1/crm")
    with pytest.raises(SourceUnavailableError) as err:
        run_extract(cfg, RunContext(NIGHT), source="crm")
    assert "s3cr3t-pw" not in str(err.value) and "cannot connect" in str(err.value)
    assert not any(cfg.lake.rglob("*.parquet"))


def test_forecast_archive_and_accuracy_by_lag(demo_env):
    cfg = load_config(demo_env())
    before = NIGHT - pd.Timedelta(days=1)
    for night in (before, NIGHT):
        run_all(cfg, RunContext(night))
    engine = sa.create_engine(source_url(cfg.source("erp")))
    with engine.connect() as conn:
        nights = (
            conn.exec_driver_sql("SELECT DISTINCT run_date FROM seam_forecasts ORDER BY 1").scalars().all()
        )
        acc = pd.read_sql(sa.text("SELECT * FROM seam_v_forecast_accuracy"), conn)
        actual = conn.exec_driver_sql(f"SELECT sum(actual) FROM seam_actuals WHERE ds = '{NIGHT}'").scalar()
    engine.dispose()
    assert [str(n)[:10] for n in nights] == [str(before), str(NIGHT)]  # every night is kept
    lag1 = acc[acc["lag_days"] == 1]
    assert len(lag1) == 1 and lag1["wape"].iloc[0] >= 0 and actual > 0
    _assert_accuracy_table(cfg, before)

    from pipelines.state import format_status, read_status

    status = read_status(cfg, days=7)
    assert sorted(status["run_date"].astype(str).unique()) == [str(before), str(NIGHT)]
    assert (status["status"] == "success").all()
    text = format_status(status)
    assert f"{NIGHT}: OK" in text and "forecast:0" in text and "load" in text

    # Re-running the night's load scores the same forecasts again: the same rows, a no-op batch.
    table = _read(cfg, "SELECT * FROM seam_forecast_accuracy ORDER BY run_date, level, entity, lag_days")
    results = run_load(cfg, RunContext(NIGHT))
    again = _read(cfg, "SELECT * FROM seam_forecast_accuracy ORDER BY run_date, level, entity, lag_days")
    pd.testing.assert_frame_equal(table, again)
    assert [r.skipped for r in results if r.table == "seam_forecast_accuracy"] == [True]


def _read(cfg, sql: str) -> pd.DataFrame:
    engine = sa.create_engine(source_url(cfg.source("erp")))
    with engine.connect() as conn:
        df = pd.read_sql(sa.text(sql), conn)
    engine.dispose()
    return df


def _assert_accuracy_table(cfg, before) -> None:
    """seam_forecast_accuracy agrees with a recomputation from seam_forecasts + seam_actuals."""
    from pipelines.lake import read_dataset
    from pipelines.series import build_demand_series

    acc = _read(cfg, "SELECT * FROM seam_forecast_accuracy")
    batches = _read(
        cfg, "SELECT run_date, row_count FROM seam_load_batches WHERE table_name = 'seam_forecast_accuracy'"
    )
    # The first night has no archived forecast whose day has happened: an empty batch.
    assert dict(zip(batches.run_date.astype(str), batches.row_count, strict=True)) == {
        str(before): 0,
        str(NIGHT): len(acc),
    }
    assert (acc.run_date.astype(str) == str(NIGHT)).all()
    # the reconciled levels (seam_forecasts_hierarchy) are scored beside: every level scores the
    # same units (last night's forecasts of tonight), the total as one entity
    hier = acc[acc.level.str.startswith("hier_")]
    assert set(hier.level) == {"hier_total", "hier_category", "hier_cat_wh", "hier_sku", "hier_sku_wh"}
    units = hier.groupby("level")["sum_actual"].sum()
    assert units.to_numpy() == pytest.approx(acc[acc.level == "all"]["sum_actual"].sum())
    assert (hier[hier.level == "hier_total"]["n_points"] == 1).all()
    assert (hier.groupby("level")["sum_forecast"].sum().to_numpy() > 0).all()
    acc = acc[~acc.level.str.startswith("hier_")]
    start = NIGHT - pd.Timedelta(days=cfg.forecast.horizon + 6)
    points = _read(
        cfg,
        "SELECT f.run_date, f.sku, f.warehouse, f.target_date, f.yhat, f.yhat_lo_80, f.yhat_hi_80, "
        "f.yhat_lo_95, f.yhat_hi_95, a.actual FROM seam_forecasts f JOIN seam_actuals a "
        "ON a.sku = f.sku AND a.warehouse = f.warehouse AND a.ds = f.target_date "
        f"WHERE f.target_date BETWEEN '{start}' AND '{NIGHT}'",
    )
    assert len(points) == 6 * 2  # last night's forecast of tonight, for every series
    points["lag_days"] = (pd.to_datetime(points.target_date) - pd.to_datetime(points.run_date)).dt.days
    products = read_dataset(cfg, "products", NIGHT)
    points["category"] = points.sku.map(dict(zip(products.sku, products.category, strict=True)))
    # MASE scale: mean |y(t) - y(t-7)| of each series' demand before the window
    lines = read_dataset(cfg, "order_lines", NIGHT)
    demand = build_demand_series(lines, None, end=start - pd.Timedelta(days=1), history_days=730)
    y = demand.set_index(["sku", "warehouse", "ds"])["y"]
    week_ago = y.rename(lambda d: d + pd.Timedelta(days=7), level="ds")
    diff = (y - week_ago).dropna().abs()
    scale = diff.groupby(level=["sku", "warehouse"]).mean()
    points["scaled"] = [
        abs(r.actual - r.yhat) / scale[(r.sku, r.warehouse)] for r in points.itertuples(index=False)
    ]
    groups = {
        "series": points.sku + "|" + points.warehouse,
        "category": points.category,
        "all": pd.Series("all", index=points.index),
    }
    assert set(acc.level) == set(groups)
    assert len(acc) == sum(g.nunique() for g in groups.values())  # one lag only
    for level, entity in groups.items():
        for (name, lag), p in points.groupby([entity, "lag_days"]):
            row = acc[(acc.level == level) & (acc.entity == name) & (acc.lag_days == lag)]
            assert len(row) == 1, (level, name, lag)
            row = row.iloc[0]
            denom = p.actual.abs().sum()
            assert row.n_points == len(p) and row.mase_points == len(p)
            assert row.sum_actual == pytest.approx(p.actual.sum())
            assert row.sum_forecast == pytest.approx(p.yhat.sum())
            if denom > 0:
                assert row.wape == pytest.approx((p.actual - p.yhat).abs().sum() / denom)
                assert row.bias == pytest.approx((p.yhat.sum() - p.actual.sum()) / denom)
            else:
                assert pd.isna(row.wape) and pd.isna(row.bias)
            assert row.mase == pytest.approx(p.scaled.mean())
            inside80 = p.actual.between(p.yhat_lo_80, p.yhat_hi_80)
            inside95 = p.actual.between(p.yhat_lo_95, p.yhat_hi_95)
            assert row.coverage_80 == pytest.approx(inside80.mean())
            assert row.coverage_95 == pytest.approx(inside95.mean())
            assert str(row.first_run_date)[:10] == str(row.last_run_date)[:10] == str(before)
    latest = _read(cfg, "SELECT * FROM seam_v_forecast_accuracy_latest WHERE level NOT LIKE 'hier%'")
    assert len(latest) == len(acc) and (latest.run_date.astype(str) == str(NIGHT)).all()


def test_sharded_night_equals_the_single_shard_night(demo_env, tmp_path):
    from dataclasses import replace

    from pipelines.config import ScaleSpec
    from pipelines.lake import Lake
    from pipelines.sharding import night_skus
    from pipelines.state import record_cutoffs, shard_assignment
    from pipelines.steps import run_forecast, run_score, run_validate, window_start

    one = replace(load_config(demo_env()), scale=ScaleSpec(shards=1))
    # two mispriced order lines of the night's window to find
    with sa.create_engine(f"sqlite:///{tmp_path / 'erp.db'}").begin() as erp:
        recent = erp.execute(
            sa.text(
                "SELECT l.order_id, l.line_no FROM sales_order_lines l JOIN sales_orders o "
                "ON o.order_id = l.order_id WHERE o.order_date >= :since ORDER BY l.order_id, l.line_no"
            ),
            {"since": str(NIGHT - pd.Timedelta(days=3))},
        ).all()
        for order_id, line_no in recent[5:7]:
            erp.execute(
                sa.text(
                    "UPDATE sales_order_lines SET unit_price = unit_price * 10 WHERE order_id = :o AND line_no = :n"
                ),
                {"o": order_id, "n": line_no},
            )
    run_migrate(one)
    run_extract(one, RunContext(NIGHT))
    run_validate(one, RunContext(NIGHT))
    results = {}
    for shards in (1, 3):
        # three shards of SKUs, two partitions of customers (one per worker slot)
        cfg = replace(one, scale=ScaleSpec(shards=shards, worker_slots=2))
        run_forecast(cfg, RunContext(NIGHT))
        run_score(cfg, RunContext(NIGHT))
        results[shards] = [Lake(cfg.lake).read_output(out, NIGHT) for out in ("forecasts", "anomalies")]
        if shards == 3:
            assigned = shard_assignment(Lake(cfg.lake), NIGHT)
            assert assigned is not None and all(assigned)  # every SKU in one shard, none empty
            assert sorted(s for skus in assigned for s in skus) == night_skus(cfg, NIGHT)
            for k in range(3):  # each shard holds exactly its own SKUs
                part = Lake(cfg.lake).read_shard("forecasts", NIGHT, k)
                assert set(part["sku"]) == set(assigned[k])
    # Point forecasts and anomaly scores are per series, so sharding cannot change them.  (Forecast
    # intervals are calibrated on the backtest errors of the series computed together, so they
    # depend on the shard's composition; the DAG and `seam run` use the same plan.)
    same = {0: ["run_date", "sku", "warehouse", "target_date", "yhat", "model"], 1: None}
    for i, (single, sharded) in enumerate(zip(results[1], results[3], strict=True)):
        cols = same[i] or list(single.columns)
        a = single[cols].sort_values(cols[:4]).reset_index(drop=True)
        b = sharded[cols].sort_values(cols[:4]).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    # ... nor the order lines' anomalies (fitted per shard of SKUs, scored per partition of
    # customers), nor the warehouses' revenue and order counts (summed shard by shard)
    scores = results[3][1]
    mispriced = scores[scores["metric"] == "order_line_unit_price"]
    assert set(mispriced["entity"]) == {f"{o}-{n}" for o, n in recent[5:7]}
    assert set(scores["metric"]) >= {"demand", "revenue", "order_count", "tickets"}
    plan = Lake(one.lake).read_shard_plan("anomalies", NIGHT)
    assert plan == 3 + 2 and all(Lake(one.lake).shard_manifest("anomalies", NIGHT, k) for k in range(5))
    assert [Lake(one.lake).shard_manifest("anomalies", NIGHT, 3 + p)["partition"] for p in (0, 1)] == [0, 1]
    # the plan counted the customers' cut-offs, and the score shards sent the older lines apart
    lake = Lake(one.lake)
    cutoffs = record_cutoffs(lake, NIGHT, window_start(one, RunContext(NIGHT)))
    assert cutoffs is not None and cutoffs.num_rows > 0
    assert sum(lake.read_exchange_table("record_fits", NIGHT, [0, 1, 2], 2 + p).num_rows for p in (0, 1)) > 0
    # the demo's planned promotions are in the horizon, the panel's uplift on them in both
    promoted = [
        {
            tuple(r)
            for r in f.loc[
                f["explanation"].str.contains("expected uplift"), ["sku", "target_date", "explanation"]
            ].to_numpy()
        }
        for f in (results[1][0], results[3][0])
    ]
    assert promoted[0] and promoted[0] == promoted[1]


def test_a_landed_table_and_custom_metrics_run_through_the_night(demo_env):
    import yaml

    path = demo_env(lean=True)
    raw = yaml.safe_load(path.read_text())
    # a raw ERP table none of the canonical datasets describes, landed as it is
    raw["sources"]["erp"]["tables"]["sales_orders"] = {"dataset": "none", "freshness": None}
    raw["sources"]["erp"]["tables"]["sales_orders"].pop("freshness")
    raw["anomaly"]["custom_metrics"] = {
        "orders_by_channel": {
            "dataset": "sales_orders",
            "date": "created_at",
            "value": "count",
            "entity": "channel",
        },
        "tickets_by_priority": {"dataset": "tickets", "date": "opened_at", "entity": ["priority"]},
    }
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    run_all(cfg, RunContext(NIGHT))
    assert NIGHT in Lake(cfg.lake).table_days("erp", "sales_orders")
    erp = dump_results(source_url(cfg.source("erp")))["seam_anomaly_scores"]
    crm = dump_results(source_url(cfg.source("crm")))["seam_anomaly_scores"]
    channels = set(erp.loc[erp.metric == "orders_by_channel", "entity"])
    in_source = set(_read(cfg, "SELECT DISTINCT channel FROM sales_orders")["channel"])
    assert channels and channels <= in_source  # one series per channel of the raw table
    assert len(crm[crm.metric == "tickets_by_priority"]) > 0  # scores go to the dataset's own database
    quality = dump_results(source_url(cfg.source("erp")))["seam_data_quality_results"]
    assert {"row_count"} <= set(quality.loc[quality.dataset == "sales_orders", "check_name"])


def test_new_products_get_the_same_forecast_in_one_or_two_shards(demo_env):
    """SKUs launched in the last 20 days are forecast from their category's established series,
    explained as `new_product`; the plan step's peers make two shards forecast them as one does."""
    import json
    from dataclasses import replace

    from pipelines.config import ScaleSpec
    from pipelines.lake import Lake
    from pipelines.state import shard_assignment
    from pipelines.steps import run_forecast, run_validate
    from tests.conftest import SMALL

    size = replace(SMALL, skus=14, days=120, late_launches=0.3, launch_days=20)
    one = replace(load_config(demo_env(size=size)), scale=ScaleSpec(shards=1))
    run_migrate(one)
    run_extract(one, RunContext(NIGHT))
    run_validate(one, RunContext(NIGHT))
    results = {}
    for shards in (1, 2):
        # three shards of SKUs, two partitions of customers (one per worker slot)
        cfg = replace(one, scale=ScaleSpec(shards=shards, worker_slots=2))
        run_forecast(cfg, RunContext(NIGHT))
        results[shards] = Lake(cfg.lake).read_output("forecasts", NIGHT)
    assigned = shard_assignment(Lake(one.lake), NIGHT)
    assert assigned is not None and len(assigned) == 2 and all(assigned)
    single = results[1]
    notes = single["explanation"].map(lambda e: json.loads(e).get("new_product"))
    from_peers = single[notes.str.contains("median level", na=False)]
    assert from_peers["sku"].nunique() >= 2 and (from_peers["yhat"] > 0).any()
    assert (single.loc[notes.isna(), "model"] != "new_product").all()
    cols = ["run_date", "sku", "warehouse", "target_date", "yhat", "model", "explanation"]
    a = single[cols].sort_values(cols[:4]).reset_index(drop=True)
    b = results[2][cols].sort_values(cols[:4]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_weekly_forecasts_run_through_the_night(demo_env):
    """`forecast.freq: W`: Sunday-ending weeks of the daily demand, forecast and loaded."""
    from dataclasses import replace

    cfg = load_config(demo_env(lean=True))
    cfg = replace(cfg, forecast=replace(cfg.forecast, freq="W", horizon=4))
    run_all(cfg, RunContext(NIGHT))
    forecasts = dump_results(source_url(cfg.source("erp")))["seam_forecasts"]
    targets = pd.to_datetime(forecasts["target_date"])
    assert len(forecasts) and (targets.dt.dayofweek == 6).all()  # weeks end on Sunday
    assert targets.nunique() == 4 and targets.min() > pd.Timestamp(NIGHT)
    assert (forecasts["yhat"] >= 0).all()
