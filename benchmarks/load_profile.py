"""Where a MariaDB/PostgreSQL load of one night spends its time, phase by phase, plus cProfile.

Phases of `pipelines.load.load_batch`, timed one by one on a fresh database: prepare (contract
checks), checksum, then in one transaction the delete of the night, the bulk load (MariaDB: LOAD
DATA LOCAL INFILE streamed into the target; PostgreSQL: COPY into staging), the INSERT ... SELECT
from staging (PostgreSQL), the ledger row and the commit.  `--staging` times, for MariaDB, the
previous way (LOAD DATA into an InnoDB temporary table, then INSERT ... SELECT) for comparison.
Each round is run for an empty table and then for a replay with changed values; `--cprofile`
also profiles one replay through `load_batch` and prints the top functions by cumulative time.

    eval "$(scripts/services.sh)"
    .venv/bin/python benchmarks/load_profile.py mysql --rows 1000000 [--staging] [--cprofile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from load_bench import NIGHT, drop_database, forecast_frame  # noqa: E402

from pipelines.db import adapter_for, make_engine  # noqa: E402
from pipelines.load import batch_checksum, load_batch  # noqa: E402
from pipelines.load.batch import _prepare, to_arrow  # noqa: E402
from pipelines.results import RESULT_TABLES  # noqa: E402
from pipelines.state import migrate, record_batch  # noqa: E402

TABLE = RESULT_TABLES["seam_forecasts"]


def timed(phases: dict[str, float], name: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    phases[name] = round(time.perf_counter() - t0, 2)
    return out


def one_round(engine: sa.Engine, kind: str, df: Any, staging: bool) -> dict[str, float]:
    phases: dict[str, float] = {}
    batch = timed(phases, "prepare", lambda: _prepare(df, TABLE))
    checksum = timed(phases, "checksum", lambda: batch_checksum(batch, TABLE.key))
    data = timed(phases, "to_arrow", lambda: to_arrow(batch))
    adapter = adapter_for(engine)
    cols = ", ".join(TABLE.columns)
    with engine.connect() as conn:
        tx = conn.begin()
        delete = sa.text("DELETE FROM seam_forecasts WHERE run_date = :d")
        timed(phases, "delete_night", lambda: conn.execute(delete, {"d": NIGHT}))
        if kind == "mysql" and not staging:
            timed(
                phases,
                "load_data_into_target",
                lambda: adapter.bulk_insert(conn, "seam_forecasts", list(TABLE.columns), data),
            )
        else:
            adapter.create_staging(conn, "stg", "seam_forecasts")
            timed(
                phases,
                "bulk_into_staging",
                lambda: adapter.bulk_insert(conn, "stg", list(TABLE.columns), data),
            )
            insert = f"INSERT INTO seam_forecasts ({cols}) SELECT {cols} FROM stg"
            timed(phases, "insert_from_staging", lambda: conn.exec_driver_sql(insert))
        timed(phases, "ledger", lambda: record_batch(conn, TABLE.name, NIGHT, checksum, len(batch)))
        timed(phases, "commit", tx.commit)
    phases["total"] = round(sum(phases.values()), 2)
    return phases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["postgresql", "mysql"])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--staging", action="store_true", help="MariaDB: time the InnoDB staging table way")
    ap.add_argument("--cprofile", action="store_true")
    args = ap.parse_args()
    admin_url = os.environ["SEAM_TEST_MARIADB_URL" if args.kind == "mysql" else "SEAM_TEST_POSTGRES_URL"]
    name = f"seam_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(
            f'CREATE DATABASE "{name}"' if args.kind == "postgresql" else f"CREATE DATABASE `{name}`"
        )
    admin.dispose()
    engine = make_engine(
        sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False), write=True
    )
    try:
        migrate(engine)
        df = forecast_frame(args.rows)
        print(json.dumps({"round": "empty", **one_round(engine, args.kind, df, args.staging)}), flush=True)
        df["yhat"] = df["yhat"] + 1.0
        print(json.dumps({"round": "replay", **one_round(engine, args.kind, df, args.staging)}), flush=True)
        if args.cprofile:
            df["yhat"] = df["yhat"] + 1.0
            prof = cProfile.Profile()
            prof.runcall(load_batch, engine, "seam_forecasts", NIGHT, df)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(18)
    finally:
        engine.dispose()
        problem = drop_database(args.kind, admin_url, name)
        if problem:
            print(problem, file=sys.stderr)


if __name__ == "__main__":
    main()
