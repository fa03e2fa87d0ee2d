"""`seam_anomaly_incidents` kept by three nights' loads, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.db import make_engine
from pipelines.load.incidents import load_incidents
from pipelines.state import migrate
from tests.unit.test_incidents_tracking import TH, _scores


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def results_db(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'r.db'}"
    else:
        url = request.getfixturevalue(
            "pg_database" if request.param == "postgresql" else "mariadb_database"
        )()
    engine = make_engine(url, write=True)
    migrate(engine)
    yield engine
    engine.dispose()


def _incidents(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text("SELECT * FROM seam_anomaly_incidents"), conn)


def test_an_incident_opens_extends_and_closes_and_the_view_lists_open_ones(results_db: sa.Engine) -> None:
    n1, n2, n3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
    for night, days in ((n1, [n1]), (n2, [n1, n2])):
        load_incidents(results_db, night, _scores(night, days), thresholds=TH, window_days=7)
    (row,) = _incidents(results_db).to_dict("records")
    assert (
        row["status"] == "open"
        and str(row["end_ds"])[:10] == str(n2)
        and str(row["first_night"])[:10] == str(n1)
    )
    with results_db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM seam_v_open_incidents")).scalar() == 1
    first = load_incidents(results_db, n3, _scores(n3, [n1, n2]), thresholds=TH, window_days=7)
    again = load_incidents(results_db, n3, _scores(n3, [n1, n2]), thresholds=TH, window_days=7)
    assert not first.skipped and again.skipped  # a re-run of the night is a no-op
    (closed,) = _incidents(results_db).to_dict("records")
    assert closed["incident_id"] == row["incident_id"] and closed["status"] == "closed"
    with results_db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM seam_v_open_incidents")).scalar() == 0
