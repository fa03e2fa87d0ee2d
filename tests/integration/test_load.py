"""Loads with the least-privilege grants of docs/grants.md, permanent errors, retry classification."""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

import pipelines.db.mysql as mysql_adapter
from pipelines.db import adapter_for, make_engine
from pipelines.errors import LoadError
from pipelines.load import load_batch
from pipelines.state import migrate, migration_files
from tests.integration.test_load_reliability import NIGHT_A, assert_state, night

GRANTS = Path(__file__).resolve().parents[2] / "docs" / "grants.md"


def grant_block(name: str, *, db: str, suffix: str, owner: str) -> list[str]:
    text = re.search(rf"```sql {name}\n(.*?)```", GRANTS.read_text(), re.S)
    assert text, f"docs/grants.md has no `sql {name}` block"
    sql = re.sub(r"\berp\b", db, text.group(1)).replace("erp_owner", owner)
    sql = re.sub(r"\bseam_load\b", f"seam_load_{suffix}", sql)  # not seam_load_batches
    sql = re.sub(r"\bseam_extract\b", f"seam_extract_{suffix}", sql)
    sql = re.sub(r"\bseam_planner\b", f"seam_planner_{suffix}", sql)
    return [s.strip() for s in sql.split(";") if s.strip()]


def use_as_load_role(url: str) -> None:
    engine = make_engine(url, write=True)
    expected = [p.name.removesuffix(".sql") for p in migration_files(adapter_for(engine).name)]
    assert expected[:2] == ["001_results", "002_views"] and migrate(engine) == expected
    df = night(NIGHT_A, 5, seed=1)
    assert not load_batch(engine, "seam_forecasts", NIGHT_A, df).skipped
    assert load_batch(engine, "seam_forecasts", NIGHT_A, df).skipped
    actuals = df[["sku", "warehouse"]].assign(ds=df["target_date"], actual=df["yhat"] + 1.0)
    load_batch(engine, "seam_actuals", date(2026, 12, 7), actuals)
    with engine.connect() as conn:
        acc = pd.read_sql(sa.text("SELECT * FROM seam_v_forecast_accuracy ORDER BY lag_days"), conn)
        latest = pd.read_sql(sa.text("SELECT * FROM seam_v_latest_forecast"), conn)
    assert list(acc.lag_days) == list(range(1, 15)) and (acc.bias < 0).all()
    assert len(latest) == len(df)
    engine.dispose()


def test_load_with_documented_grants_postgresql(pg_database: Callable[[], str]) -> None:
    url = pg_database()
    parsed = sa.make_url(url)
    suffix = uuid.uuid4().hex[:8]
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    role = f"seam_load_{suffix}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE public.erp_orders (id int)")  # an ERP table it must not touch
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'pw_{suffix}'")
            conn.exec_driver_sql(
                f"GRANT {role} TO CURRENT_USER"
            )  # CREATE SCHEMA AUTHORIZATION needs membership
            for stmt in grant_block(
                "postgresql-load", db=parsed.database or "", suffix=suffix, owner=parsed.username or ""
            ):
                if stmt.startswith("CREATE ROLE"):
                    continue  # created above
                conn.exec_driver_sql(stmt)
        load_url = parsed.set(username=role, password=f"pw_{suffix}").render_as_string(hide_password=False)
        use_as_load_role(load_url)
        engine = sa.create_engine(load_url)
        with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.exec_driver_sql("SELECT * FROM public.erp_orders")
        engine.dispose()
    finally:
        admin.dispose()
        server = sa.create_engine(os.environ["SEAM_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
        with server.connect() as conn:  # the role owns objects in the database: drop that first
            _end_sessions(conn, role)
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        server.dispose()


def _end_sessions(conn: sa.Connection, role: str, timeout: float = 30.0) -> None:
    """End the role's sessions and wait until their backends are gone.

    A client's close returns before its server process exits; DROP DATABASE ... WITH (FORCE) must
    then terminate that process itself, which the test user may do only while it is a member of the
    role.  Ending them here, while the membership exists, leaves FORCE nothing of the role's to end.
    """
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE usename = :r")
    conn.execute(
        sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"), {"r": role}
    )
    deadline = time.monotonic() + timeout
    while conn.execute(query, {"r": role}).scalar():
        assert time.monotonic() < deadline, f"sessions of {role} did not end within {timeout}s"
        time.sleep(0.05)


def test_load_with_documented_grants_mariadb(mariadb_database: Callable[[], str]) -> None:
    url = mariadb_database()
    parsed = sa.make_url(url)
    suffix = uuid.uuid4().hex[:8]
    user = f"seam_load_{suffix}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE erp_orders (id int)")
            for stmt in grant_block("mysql-load", db=parsed.database or "", suffix=suffix, owner=""):
                conn.exec_driver_sql(stmt.replace("'change-me'", f"'pw_{suffix}'").replace("%", "%%"))
        load_url = parsed.set(username=user, password=f"pw_{suffix}").render_as_string(hide_password=False)
        use_as_load_role(load_url)
        engine = sa.create_engine(load_url)
        with engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match="denied"):
            conn.exec_driver_sql("SELECT * FROM erp_orders")
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'%%'")
        admin.dispose()


def test_permanent_errors_fail_at_once_naming_table_and_cause(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    with engine.begin() as conn:  # a schema the load does not expect
        conn.exec_driver_sql("DROP TABLE seam_forecasts")
        conn.exec_driver_sql("CREATE TABLE seam_forecasts (run_date date, sku text)")
    with pytest.raises(LoadError, match=r"seam_forecasts.*(no column|has no column|yhat)") as err:
        load_batch(engine, "seam_forecasts", NIGHT_A, night(NIGHT_A, 2, seed=1))
    assert not err.value.transient and err.value.exit_code == 4  # no retry layer will repeat it
    engine.dispose()


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary files of the load go here, so other processes' files do not count."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _pipe_leftovers(tmp: Path) -> tuple[list[str], list[str]]:
    threads = [t.name for t in threading.enumerate() if t.name == "seam-load-csv"]
    return threads, sorted(p.name for p in tmp.glob("seam_load_*"))


def test_mariadb_rejected_values_roll_back_the_whole_night(
    mariadb_database: Callable[[], str], private_tmp: Path
) -> None:
    engine = make_engine(mariadb_database(), write=True)
    migrate(engine)
    old = night(NIGHT_A, 10, seed=1)
    load_batch(engine, "seam_forecasts", NIGHT_A, old)
    bad = night(NIGHT_A, 12, seed=2)
    bad.loc[7, "sku"] = "S" * 100  # VARCHAR(64): LOAD DATA LOCAL truncates with a warning
    with pytest.raises(LoadError, match=r"seam_forecasts.*warnings.*column types"):
        load_batch(engine, "seam_forecasts", NIGHT_A, bad)
    assert_state(engine, old)  # the delete of the night was rolled back with the load
    assert _pipe_leftovers(private_tmp) == ([], [])
    engine.dispose()


def test_mariadb_csv_writer_failure_rolls_back(
    mariadb_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch, private_tmp: Path
) -> None:
    engine = make_engine(mariadb_database(), write=True)
    migrate(engine)
    old = night(NIGHT_A, 10, seed=1)
    load_batch(engine, "seam_forecasts", NIGHT_A, old)
    real = mysql_adapter.csv_chunks

    def half(data: pa.Table, **kw: Any) -> Iterator[bytes]:
        yield from real(data.slice(0, data.num_rows // 2), **kw)  # half the rows, then EOF
        raise OSError("disk full")

    monkeypatch.setattr(mysql_adapter, "csv_chunks", half)
    with pytest.raises(
        LoadError, match=r"writing the CSV for LOAD DATA into seam_forecasts failed: disk full"
    ):
        load_batch(engine, "seam_forecasts", NIGHT_A, night(NIGHT_A, 12, seed=2))
    assert_state(engine, old)
    assert _pipe_leftovers(private_tmp) == ([], [])
    engine.dispose()


def test_mariadb_statement_refused_before_reading_leaves_nothing(
    mariadb_database: Callable[[], str], private_tmp: Path
) -> None:
    engine = make_engine(mariadb_database(), write=True)
    df = night(NIGHT_A, 3, seed=1)
    with engine.connect() as conn, pytest.raises(Exception, match="1146"), conn.begin():
        adapter_for(conn).bulk_insert(conn, "no_such_table", list(df.columns), pa.Table.from_pandas(df))
    assert _pipe_leftovers(private_tmp) == ([], [])  # the writer thread was unblocked and the pipe removed
    engine.dispose()


def test_mariadb_without_local_infile_falls_back_to_inserts(
    mariadb_database: Callable[[], str], private_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = sa.create_engine(mariadb_database(), connect_args={"local_infile": False})
    migrate(engine)
    old, new = night(NIGHT_A, 10, seed=1), night(NIGHT_A, 8, seed=2)
    load_batch(engine, "seam_forecasts", NIGHT_A, old)
    with caplog.at_level("INFO", logger="pipelines.db.mysql"):
        assert not load_batch(engine, "seam_forecasts", NIGHT_A, new).skipped
    assert "LOAD DATA LOCAL INFILE refused" in caplog.text
    assert_state(engine, new)  # the night replaced, old rows not in the batch gone
    assert load_batch(engine, "seam_forecasts", NIGHT_A, new).skipped
    assert _pipe_leftovers(private_tmp) == ([], [])
    engine.dispose()
