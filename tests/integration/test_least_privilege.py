"""The whole night with exactly the grants of docs/grants.md: a read-only login extracts, a second
login that owns only seam's schema writes the results back."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa
import yaml

from pipelines.config import load_config
from pipelines.run_context import RunContext
from pipelines.steps import run_all
from tests.conftest import NIGHT, SMALL_SERIES
from tests.integration.test_load import grant_block

pytestmark = pytest.mark.integration


def test_night_runs_with_the_documented_postgres_grants(pg_database, demo_env, tmp_path, monkeypatch):
    url = pg_database()
    parsed = sa.make_url(url)
    config = demo_env(url)  # the ERP's tables, owned by the admin login; the CRM on SQLite
    suffix = uuid.uuid4().hex[:8]
    extract_role, load_role = f"seam_extract_{suffix}", f"seam_load_{suffix}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for block in ("postgresql-extract", "postgresql-load"):
                for stmt in grant_block(
                    block, db=parsed.database or "", suffix=suffix, owner=parsed.username or ""
                ):
                    conn.exec_driver_sql(stmt.replace("'change-me'", f"'pw_{suffix}'"))
                    if stmt.startswith("CREATE ROLE seam_load"):
                        conn.exec_driver_sql(f"GRANT {load_role} TO CURRENT_USER")  # for AUTHORIZATION
        raw = yaml.safe_load(config.read_text())
        monkeypatch.setenv(
            "SEAM_LP_READ",
            parsed.set(username=extract_role, password=f"pw_{suffix}").render_as_string(hide_password=False),
        )
        monkeypatch.setenv(
            "SEAM_LP_WRITE",
            parsed.set(username=load_role, password=f"pw_{suffix}").render_as_string(hide_password=False),
        )
        raw["sources"]["erp"]["url_env"] = "SEAM_LP_READ"
        raw["sources"]["erp"]["write_url_env"] = "SEAM_LP_WRITE"
        config.write_text(yaml.safe_dump(raw, sort_keys=False))
        cfg = load_config(config)
        run_all(cfg, RunContext(NIGHT))
        reader = sa.create_engine(os.environ["SEAM_LP_READ"])
        with reader.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=r"read-only|permission denied"):
            conn.exec_driver_sql("UPDATE products SET list_price = 0")
        reader.dispose()
        with admin.connect() as conn:
            owners = dict(
                conn.execute(
                    sa.text(
                        "SELECT tablename, schemaname FROM pg_tables WHERE tablename LIKE 'seam_%' AND tablename <> 'seam_demo_labels'"
                    )
                ).all()
            )
            forecasts = conn.exec_driver_sql("SELECT count(*) FROM seam.seam_forecasts").scalar()
        assert set(owners.values()) == {"seam"}  # the results are in seam's own schema only
        assert forecasts == SMALL_SERIES * cfg.forecast.horizon
    finally:
        admin.dispose()
        server = sa.create_engine(os.environ["SEAM_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {load_role}")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {extract_role}")
        server.dispose()
