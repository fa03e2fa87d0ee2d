"""Load speed: seam's exactly-once load against the raw bulk-load limit and pandas.to_sql.

For PostgreSQL and MariaDB, in one run and on the same generated night of forecast rows:
  raw      psql `\\copy seam_forecasts FROM csv` / mariadb client `LOAD DATA LOCAL INFILE` into the
           empty result table (the limit: no staging, no merge, no checksum, no ledger);
  empty    `pipelines.load.load_batch` into an empty table (staging + merge + ledger);
  replay   `load_batch` of the same night with changed values into the full table;
  to_sql   `pandas.DataFrame.to_sql(method="multi")` into a table of the same shape, on a slice
           (it is too slow for the full set; rows/s is what is compared).
Each timing is the median of `--repeats`, the phases interleaved within each repeat.  The seam
phases run in a child process that reads the night from Parquet and calls `load_batch`; its peak
RSS is reported in total and as the part added by `load_batch` over the frame already in memory.
The benchmark databases are dropped at the end with the admin URL they were created with, after
every engine of the benchmark is disposed; a failure to drop is reported, not fatal (the figures
are written first), and `--drop-leftovers` removes `seam_bench_*` databases of earlier runs.

    eval "$(scripts/services.sh)"
    .venv/bin/python benchmarks/load_bench.py --rows 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.db import make_engine  # noqa: E402
from pipelines.load import load_batch  # noqa: E402
from pipelines.results import RESULT_TABLES  # noqa: E402
from pipelines.state import migrate  # noqa: E402

NIGHT = date(2026, 11, 22)
COLS = list(RESULT_TABLES["seam_forecasts"].columns)


def forecast_frame(rows: int, *, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """`rows` forecast rows of one night: skus x 5 warehouses x 100 target dates."""
    rng = np.random.default_rng(seed)
    horizon, warehouses = 100, 5
    skus = max(1, rows // (horizon * warehouses))
    n = skus * warehouses * horizon
    sku = np.repeat(np.array([f"SKU-{i:06d}" for i in range(skus)], dtype=object), warehouses * horizon)
    wh = np.tile(np.repeat(np.array([f"WH-{i}" for i in range(warehouses)], dtype=object), horizon), skus)
    target = np.tile(
        pd.date_range(pd.Timestamp(NIGHT) + pd.Timedelta(days=1), periods=horizon).values, skus * warehouses
    )
    y = rng.gamma(2.0, 10.0, n) + shift
    df = pd.DataFrame(
        {"run_date": pd.Timestamp(NIGHT), "sku": sku, "warehouse": wh, "target_date": target, "yhat": y}
    )
    df["run_date"] = df["run_date"].astype("datetime64[ns]")
    for level, width in ((80, 1.28), (95, 1.96)):
        df[f"yhat_lo_{level}"] = y - width * 4.0
        df[f"yhat_hi_{level}"] = y + width * 4.0
    df["model"] = np.where(rng.random(n) < 0.5, "ets", "arima")
    df["model_version"] = "seam-1.0"
    df["explanation"] = np.where(rng.random(n) < 0.2, None, "seasonal week, trend up")
    df["fallback"] = rng.random(n) < 0.05
    df["training_snapshot_date"] = pd.Timestamp(NIGHT)
    # the adjust step's final forecast: the statistical one where no planner override applies
    df["yhat_final"] = np.where(rng.random(n) < 0.02, np.round(y * 1.1, 1), y)
    df["override_ids"] = None
    return df[COLS]


def write_csv(df: pd.DataFrame, path: Path, *, mysql: bool) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.date32()))
        elif mysql and pa.types.is_boolean(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.int8()))
    pacsv.write_csv(
        table, path, pacsv.WriteOptions(include_header=False, null_string="NULL" if mysql else "")
    )


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- one seam phase in a child process -------------------------------------------------------------
def child(url: str, parquet: str, shift: float, truncate: bool) -> None:
    df = pd.read_parquet(parquet)
    if shift:
        for c in ("yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95", "yhat_final"):
            df[c] = df[c] + shift
    engine = make_engine(url, write=True)
    if truncate:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM seam_load_batches")
            conn.exec_driver_sql("TRUNCATE TABLE seam_forecasts")
    before = peak_mb()
    t0 = time.perf_counter()
    res = load_batch(engine, "seam_forecasts", NIGHT, df)
    seconds = time.perf_counter() - t0
    assert not res.skipped
    engine.dispose()
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb(), "peak_before_load_mb": before}))


def drop_database(kind: str, admin_url: str, name: str, attempts: int = 3) -> str | None:
    """Drop a benchmark database; returns None, or why it could not be dropped and how to do it."""
    qn = f'"{name}"' if kind == "postgresql" else f"`{name}`"
    force = " WITH (FORCE)" if kind == "postgresql" else ""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        for attempt in range(1, attempts + 1):
            try:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {qn}{force}")
                return None
            except sa.exc.DBAPIError as err:
                error = str(err.orig).strip().splitlines()[0]
                time.sleep(2 * attempt)
    finally:
        admin.dispose()
    fix = (
        f"su postgres -c 'psql -c \"DROP DATABASE {name} WITH (FORCE)\"'"
        if kind == "postgresql"
        else (f"mariadb -u root -e 'DROP DATABASE `{name}`'")
    )
    return f"could not drop {kind} database {name}: {error}; drop it with: {fix}"


def drop_leftovers(kind: str, admin_url: str) -> None:
    """Drop `seam_bench_*` databases of earlier runs that nobody is connected to.

    Never forced: a database with a session (another run of this script) is left alone.
    """
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    sql = (
        "SELECT datname FROM pg_database d WHERE datname LIKE :p "
        "AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)"
        if kind == "postgresql"
        else "SELECT schema_name FROM information_schema.schemata s WHERE schema_name LIKE :p "
        "AND NOT EXISTS (SELECT 1 FROM information_schema.processlist p WHERE p.db = s.schema_name)"
    )
    with admin.connect() as conn:
        for name in list(conn.execute(sa.text(sql), {"p": "seam\\_bench\\_%"}).scalars()):
            qn = f'"{name}"' if kind == "postgresql" else f"`{name}`"
            try:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {qn}")
                print(f"dropped leftover {kind} database {name}", file=sys.stderr, flush=True)
            except sa.exc.DBAPIError as err:
                print(f"left {kind} database {name} alone: {err.orig}", file=sys.stderr, flush=True)
    admin.dispose()


def run_child(url: str, parquet: Path, shift: float, truncate: bool) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, str(parquet), str(shift), "1" if truncate else "0"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- per server --------------------------------------------------------------------------------------
def raw_load(kind: str, url: sa.URL, csv: Path) -> float:
    cols = ", ".join(COLS)
    env = dict(os.environ)
    if kind == "postgresql":
        env["PGPASSWORD"] = url.password or ""
        cmd = [
            "psql", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "",
            "-d", url.database or "", "-v", "ON_ERROR_STOP=1", "-q",
            "-c", f"\\copy seam_forecasts ({cols}) FROM '{csv}' WITH (FORMAT csv)",
        ]  # fmt: skip
    else:
        env["MYSQL_PWD"] = url.password or ""
        cmd = [
            "mariadb", "--local-infile=1", "-h", url.host or "127.0.0.1", "-P", str(url.port or 3306),
            "-u", url.username or "", url.database or "",
            "-e", f"LOAD DATA LOCAL INFILE '{csv}' INTO TABLE seam_forecasts CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n' "
            f"({cols})",
        ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - t0


def bench_server(
    kind: str, admin_url: str, df: pd.DataFrame, parquet: Path, work: Path, args: argparse.Namespace
) -> dict:
    name = f"seam_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    qn = f'"{name}"' if kind == "postgresql" else f"`{name}`"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {qn}")
    admin.dispose()
    url = sa.make_url(admin_url).set(database=name)
    url_s = url.render_as_string(hide_password=False)
    engine = make_engine(url_s, write=True)
    try:
        migrate(engine)
        csv = work / f"{kind}.csv"
        write_csv(df, csv, mysql=kind == "mysql")
        raw, empty, replay, rss, added = [], [], [], [], []
        for rep in range(args.repeats):
            with engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE TABLE seam_forecasts")
            raw.append(raw_load(kind, url, csv))
            r = run_child(url_s, parquet, 0.0, True)
            empty.append(r["seconds"])
            rss.append(r["peak_mb"])
            added.append(r["peak_mb"] - r["peak_before_load_mb"])
            r = run_child(url_s, parquet, 1.0 + rep, False)  # changed values: the batch is not skipped
            replay.append(r["seconds"])
            rss.append(r["peak_mb"])
            added.append(r["peak_mb"] - r["peak_before_load_mb"])
            print(
                f"{kind} rep {rep}: raw {raw[-1]:.2f}s empty {empty[-1]:.2f}s replay {replay[-1]:.2f}s",
                flush=True,
            )
        small = df.head(args.to_sql_rows).copy()
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS bench_to_sql")
        t0 = time.perf_counter()
        small.to_sql("bench_to_sql", engine, index=False, method="multi", chunksize=1000)
        to_sql_s = time.perf_counter() - t0
        print(f"{kind} to_sql: {len(small)} rows in {to_sql_s:.2f}s", flush=True)
    finally:
        engine.dispose()
        problem = drop_database(kind, admin_url, name)
        if problem:
            print(problem, file=sys.stderr, flush=True)
    n = len(df)
    raw_rps = n / statistics.median(raw)
    return {
        "raw_seconds": raw, "empty_seconds": empty, "replay_seconds": replay,
        "raw_rows_per_s": raw_rps,
        "empty_rows_per_s": n / statistics.median(empty),
        "replay_rows_per_s": n / statistics.median(replay),
        "to_sql_rows_per_s": len(small) / to_sql_s,
        "empty_ratio": n / statistics.median(empty) / raw_rps,
        "replay_ratio": n / statistics.median(replay) / raw_rps,
        "to_sql_ratio": len(small) / to_sql_s / raw_rps,
        "to_sql_rows": len(small),
        "peak_rss_mb": max(rss),
        "peak_rss_added_by_load_mb": max(added),
        "database_left_over": problem,
    }  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5] == "1")
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--to-sql-rows", type=int, default=50_000)
    ap.add_argument("--only", choices=["postgresql", "mysql"], default=None)
    ap.add_argument("--drop-leftovers", action="store_true", help="drop seam_bench_* databases first")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "load.json")
    args = ap.parse_args()
    servers = {"postgresql": "SEAM_TEST_POSTGRES_URL", "mysql": "SEAM_TEST_MARIADB_URL"}
    if args.drop_leftovers:
        for kind, var in servers.items():
            drop_leftovers(kind, os.environ[var])
    df = forecast_frame(args.rows)
    out: dict = {
        "rows": len(df),
        "repeats": args.repeats,
        "loadavg_start": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        parquet = work / "night.parquet"
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), parquet)
        for kind, var in servers.items():
            if args.only and kind != args.only:
                continue
            out[kind] = bench_server(kind, os.environ[var], df, parquet, work, args)
    out["loadavg_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
