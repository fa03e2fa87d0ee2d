"""The forecast-accuracy table and views on real PostgreSQL and MariaDB, written by the load login
of docs/grants.md: the migration applies, the archive is read back by window, NULLs survive the
load, and the views answer."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.db import make_engine
from pipelines.forecasting.accuracy import ACCURACY_COLUMNS, build_forecast_accuracy
from pipelines.load import load_batch, read_forecast_archive
from pipelines.state import migrate
from tests.integration.test_load import grant_block
from tests.unit.forecasting.test_accuracy import ACTUALS, CATEGORIES, FORECASTS, NIGHT, _history

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "mariadb"])
def load_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database and the URL of a load login holding exactly the documented grants."""
    suffix = uuid.uuid4().hex[:8]
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_database")()
        parsed = sa.make_url(url)
        role = f"seam_load_{suffix}"
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'pw_{suffix}'")
            conn.exec_driver_sql(f"GRANT {role} TO CURRENT_USER")  # for CREATE SCHEMA AUTHORIZATION
            for stmt in grant_block(
                "postgresql-load", db=parsed.database or "", suffix=suffix, owner=parsed.username or ""
            ):
                if not stmt.startswith("CREATE ROLE"):
                    conn.exec_driver_sql(stmt)
        admin.dispose()
        yield parsed.set(username=role, password=f"pw_{suffix}").render_as_string(hide_password=False)
        server = sa.create_engine(os.environ["SEAM_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
        with server.connect() as conn:  # the role owns objects in the database: drop that first
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        server.dispose()
    else:
        url = request.getfixturevalue("mariadb_database")()
        parsed = sa.make_url(url)
        user = f"seam_load_{suffix}"
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for stmt in grant_block("mysql-load", db=parsed.database or "", suffix=suffix, owner=""):
                conn.exec_driver_sql(stmt.replace("'change-me'", f"'pw_{suffix}'").replace("%", "%%"))
        yield parsed.set(username=user, password=f"pw_{suffix}").render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'%%'")
        admin.dispose()


def _archive_rows(forecasts: pd.DataFrame) -> pd.DataFrame:
    return forecasts.assign(
        model="ets",
        model_version="seam-test",
        explanation=None,
        fallback=False,
        training_snapshot_date=forecasts["run_date"],
        yhat_final=forecasts["yhat"],
        override_ids=None,
    )


def _read(engine: sa.Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(sql), conn)


def test_accuracy_table_and_views_with_the_load_grants(load_url: str) -> None:
    engine = make_engine(load_url, write=True)
    try:
        assert "003_forecast_accuracy" in migrate(engine)
        assert migrate(engine) == []  # applied once
        archive = _archive_rows(FORECASTS)
        for night, rows in archive.groupby("run_date"):
            load_batch(engine, "seam_forecasts", night.date(), rows)
        load_batch(engine, "seam_actuals", NIGHT, ACTUALS)

        read = read_forecast_archive(engine, date(2026, 1, 15), date(2026, 1, 16))
        assert len(read) == 9  # the forecast of Jan 17 has no actual yet
        assert read["target_date"].between(pd.Timestamp("2026-01-15"), pd.Timestamp("2026-01-16")).all()
        acc = build_forecast_accuracy(read, ACTUALS, _history(), CATEGORIES, run_date=NIGHT)
        assert len(acc) == 12
        # an older night scored only Jan 15, so the "latest" view must not show it
        older = build_forecast_accuracy(
            read_forecast_archive(engine, date(2026, 1, 15), date(2026, 1, 15)),
            ACTUALS[ACTUALS["ds"] == pd.Timestamp("2026-01-15")],
            _history(),
            CATEGORIES,
            run_date=date(2026, 1, 15),
        )
        assert not load_batch(engine, "seam_forecast_accuracy", date(2026, 1, 15), older).skipped
        assert not load_batch(engine, "seam_forecast_accuracy", NIGHT, acc).skipped
        assert load_batch(engine, "seam_forecast_accuracy", NIGHT, acc).skipped  # a replay is a no-op

        order = " ORDER BY level, entity, lag_days"
        stored = _read(engine, f"SELECT * FROM seam_forecast_accuracy WHERE run_date = '{NIGHT}'" + order)
        latest = _read(engine, "SELECT * FROM seam_v_forecast_accuracy_latest" + order)
        overall = _read(engine, "SELECT * FROM seam_v_forecast_accuracy ORDER BY lag_days")
    finally:
        engine.dispose()
    assert list(stored.columns) == list(ACCURACY_COLUMNS)
    expected = acc.sort_values(["level", "entity", "lag_days"]).reset_index(drop=True)
    for frame in (stored, latest):
        assert len(frame) == 12 and (pd.to_datetime(frame["run_date"]) == pd.Timestamp(NIGHT)).all()
        for c in ("n_points", "mase_points", "lag_days"):
            assert frame[c].astype(int).tolist() == expected[c].tolist()
        for c in ("sum_actual", "wape", "bias", "mase", "coverage_80", "coverage_95"):
            got, want = frame[c].astype(float).tolist(), expected[c].astype(float).tolist()
            for g, w in zip(got, want, strict=True):
                assert (math.isnan(g) and math.isnan(w)) or g == pytest.approx(w), (c, got, want)
        assert frame["entity"].tolist() == expected["entity"].tolist()
    # constant history -> MASE NULL; zero actuals -> WAPE and bias NULL (not infinite)
    b = stored[(stored["level"] == "series") & (stored["entity"] == "B|W1")]
    c = stored[(stored["level"] == "series") & (stored["entity"] == "C|W1")]
    assert b["mase"].isna().all() and c["wape"].isna().all() and c["bias"].isna().all()
    # the overall view of 002 still answers over every run (lag 1 and 2 of the archive)
    assert overall["lag_days"].astype(int).tolist() == [1, 2]
    assert overall["n_points"].astype(int).tolist() == [6, 3]
