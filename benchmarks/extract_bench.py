"""Extraction speed and memory: seam versus the database's own client and pandas.read_sql.

Generates an order-lines-like table of N rows (default 2,000,000) in fresh PostgreSQL and MariaDB
databases (server-side: `generate_series` / the `seq_1_to_N` sequence engine), then measures, in the
same run and interleaved, each method R times (default 3) and reports medians:

* seam: `extract_table` full snapshot into Parquet (zstd), in a subprocess (MariaDB: the table's
  integer primary key lets seam read two key ranges in parallel; `seam_one_stream` is the same
  with the table setting `streams: 1`);
* seam incremental: the same table with 1% of rows changed since the previous watermark;
* the database's limit: `psql -c "\\copy (select ...) to '/dev/null'"`,
  `mariadb --quick --batch -e 'select ...' > /dev/null`;
* `pandas.read_sql` of the whole table (SQLAlchemy engine), in a subprocess;
* optionally (`--alternatives`) seam's other readers, forced with the table setting `reader:`.

`--query` measures a table defined by a query instead: the demo's `order_lines` query (from
config/demo.yml: sales order lines joined to their orders) over N generated lines (N/4 orders),
seam (`reader: auto`: COPY / the client stream) against the clients running the same query
(`psql -c "\\copy (<query>) to '/dev/null'"`, `mariadb --quick --batch -e '<query>' > /dev/null`)
and seam's generic SQLAlchemy path (`reader: generic`) for reference, each R times, interleaved.

Rows/s is rows / wall seconds of the extraction itself (for the Python methods: measured inside
the subprocess after its imports; the clients' own start-up is included in theirs); peak RSS is `ru_maxrss` of the measured process tree (os.wait4).
Needs SEAM_TEST_POSTGRES_URL and SEAM_TEST_MARIADB_URL (users that may create databases);
the benchmark databases are dropped at the end.

    eval "$(scripts/services.sh)"
    .venv/bin/python benchmarks/extract_bench.py --rows 2000000 --reps 3 --out benchmarks/results/extract.json
    # peak memory at a large row count: only seam's snapshot and the client
    .venv/bin/python benchmarks/extract_bench.py --memory-rows 10000000 --reps 1
    # a query-defined table (the demo's order_lines join)
    .venv/bin/python benchmarks/extract_bench.py --query --rows 1000000 --reps 3 --out benchmarks/results/extract_query.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = "id, order_id, line_no, order_date, customer_id, warehouse, sku, quantity, unit_price, discount, status, updated_at"
PG_FILL = """
INSERT INTO order_lines
SELECT g, 'SO' || lpad((g / 4)::text, 9, '0'), g % 4 + 1, date '2024-01-01' + (g % 1000),
       'C' || (g % 5000), 'W' || (g % 5), 'SKU-' || (g % 2000), (g % 17) + 0.5,
       ((g % 997) / 10.0)::numeric(12, 2), CASE WHEN g % 10 = 0 THEN NULL ELSE 0.0500 END,
       (ARRAY['open', 'shipped', 'returned'])[g % 3 + 1],
       CASE WHEN g % 100 = 0 THEN timestamp '2026-11-22 06:00' + (g % 3600) * interval '1 second'
            ELSE timestamp '2026-11-21 12:00' - (g % 5000000) * interval '1 second' END
FROM generate_series(1, :n) AS g
"""
MY_FILL = """
INSERT INTO order_lines
SELECT seq, CONCAT('SO', LPAD(seq DIV 4, 9, '0')), seq % 4 + 1, DATE_ADD('2024-01-01', INTERVAL seq % 1000 DAY),
       CONCAT('C', seq % 5000), CONCAT('W', seq % 5), CONCAT('SKU-', seq % 2000), (seq % 17) + 0.5,
       (seq % 997) / 10.0, IF(seq % 10 = 0, NULL, 0.0500),
       ELT(seq % 3 + 1, 'open', 'shipped', 'returned'),
       IF(seq % 100 = 0, TIMESTAMP('2026-11-22 06:00:00') + INTERVAL (seq % 3600) SECOND,
          TIMESTAMP('2026-11-21 12:00:00') - INTERVAL (seq % 5000000) SECOND)
FROM seq_1_to_{n}
"""
DDL = """
CREATE TABLE order_lines (
  id bigint NOT NULL PRIMARY KEY, order_id varchar(20) NOT NULL, line_no int NOT NULL, order_date date NOT NULL,
  customer_id varchar(20) NOT NULL, warehouse varchar(10) NOT NULL, sku varchar(20) NOT NULL,
  quantity numeric(12, 3) NOT NULL, unit_price numeric(12, 2) NOT NULL, discount numeric(6, 4),
  status varchar(12) NOT NULL, updated_at {ts} NOT NULL
)"""

# The demo's ERP order tables (pipelines/demo/schema.py), generated server-side: 4 lines an order.
QUERY_DDL = [
    """CREATE TABLE sales_orders (
  order_id integer NOT NULL PRIMARY KEY, customer_id integer NOT NULL, warehouse_code varchar(8) NOT NULL,
  order_date date NOT NULL, channel varchar(16) NOT NULL, currency varchar(3) NOT NULL,
  created_at {ts} NOT NULL, updated_at {ts} NOT NULL)""",
    """CREATE TABLE sales_order_lines (
  order_id integer NOT NULL, line_no integer NOT NULL, sku varchar(16) NOT NULL, qty numeric(12, 3) NOT NULL,
  unit_price numeric(12, 2) NOT NULL, discount_rate numeric(5, 4) NOT NULL, returned_qty numeric(12, 3) NOT NULL,
  line_status varchar(16) NOT NULL, updated_at {ts} NOT NULL, PRIMARY KEY (order_id, line_no))""",
]
PG_QUERY_FILL = [
    """INSERT INTO sales_orders
SELECT g, g % 5000, 'W' || (g % 5), date '2024-01-01' + (g % 1000), (ARRAY['web', 'store', 'phone'])[g % 3 + 1],
       'EUR', timestamp '2024-01-01 08:00' + (g % 1000) * interval '1 day' + (g % 3600) * interval '1 second',
       timestamp '2026-11-21 12:00' - (g % 5000000) * interval '1 second'
FROM generate_series(1, :orders) AS g""",
    """INSERT INTO sales_order_lines
SELECT g / 4 + 1, g % 4 + 1, 'SKU-' || (g % 2000), (g % 17) + 0.5, ((g % 997) / 10.0)::numeric(12, 2),
       CASE WHEN g % 10 = 0 THEN 0 ELSE 0.0500 END, CASE WHEN g % 50 = 0 THEN 1 ELSE 0 END,
       (ARRAY['open', 'shipped', 'cancelled'])[g % 3 + 1],
       timestamp '2026-11-21 12:00' - (g % 5000000) * interval '1 second'
FROM generate_series(0, :n - 1) AS g""",
]
MY_QUERY_FILL = [
    """INSERT INTO sales_orders
SELECT seq, seq % 5000, CONCAT('W', seq % 5), DATE_ADD('2024-01-01', INTERVAL seq % 1000 DAY),
       ELT(seq % 3 + 1, 'web', 'store', 'phone'), 'EUR',
       TIMESTAMP('2024-01-01 08:00:00') + INTERVAL seq % 1000 DAY + INTERVAL seq % 3600 SECOND,
       TIMESTAMP('2026-11-21 12:00:00') - INTERVAL (seq % 5000000) SECOND
FROM seq_1_to_{orders}""",
    """INSERT INTO sales_order_lines
SELECT (seq - 1) DIV 4 + 1, (seq - 1) % 4 + 1, CONCAT('SKU-', seq % 2000), (seq % 17) + 0.5, (seq % 997) / 10.0,
       IF(seq % 10 = 0, 0, 0.0500), IF(seq % 50 = 0, 1, 0), ELT(seq % 3 + 1, 'open', 'shipped', 'cancelled'),
       TIMESTAMP('2026-11-21 12:00:00') - INTERVAL (seq % 5000000) SECOND
FROM seq_1_to_{n}""",
]
RUN_END = "2026-11-23 00:00:00"  # the end of the extracted night (2026-11-22, UTC): every order is before it


def demo_query() -> str:
    """The demo's `order_lines` query, as config/demo.yml gives it (bind `:run_end`)."""
    cfg = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
    query: str = cfg["sources"]["erp"]["tables"]["order_lines"]["query"]
    return query


def client_query() -> str:
    """The demo query for the clients: on one line (psql's \\copy reads one), `:run_end` inlined."""
    return " ".join(demo_query().split()).replace(":run_end", f"'{RUN_END}'")


def create_databases() -> dict[str, str]:
    """Fresh empty databases; returns {'postgresql': url, 'mariadb': url}."""
    # Not seam_bench_*: load_bench.py --drop-leftovers drops those, also while this runs.
    name = f"seam_xbench_{uuid.uuid4().hex[:8]}"
    urls = {}
    pg_admin = os.environ["SEAM_TEST_POSTGRES_URL"]
    eng = sa.create_engine(pg_admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    eng.dispose()
    urls["postgresql"] = make_url(pg_admin).set(database=name).render_as_string(hide_password=False)
    my_admin = os.environ["SEAM_TEST_MARIADB_URL"]
    eng = sa.create_engine(my_admin)
    with eng.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    eng.dispose()
    urls["mariadb"] = make_url(my_admin).set(database=name).render_as_string(hide_password=False)
    return urls


def fill_query_databases(urls: dict[str, str], n: int) -> None:
    """The demo's order tables, made server-side: n lines, 4 an order."""
    orders = (n + 3) // 4
    for db, ts, fills in (
        ("postgresql", "timestamp", PG_QUERY_FILL),
        ("mariadb", "datetime", [f.format(n=n, orders=orders) for f in MY_QUERY_FILL]),
    ):
        t0 = time.perf_counter()
        eng = sa.create_engine(urls[db])
        with eng.begin() as conn:
            for ddl in QUERY_DDL:
                conn.exec_driver_sql(ddl.format(ts=ts))
            for fill in fills:
                if db == "postgresql":
                    conn.execute(sa.text(fill), {"n": n, "orders": orders})
                else:
                    conn.exec_driver_sql(fill.replace("%", "%%"))
        if db == "postgresql":
            with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE sales_orders")
                conn.exec_driver_sql("VACUUM ANALYZE sales_order_lines")
        eng.dispose()
        print(
            f"{db}: {n:,} lines of {orders:,} orders generated in {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
        )


def fill_databases(urls: dict[str, str], n: int, *, index: bool = True) -> None:
    """The generated table, made server-side, with an index on the cursor column."""
    t0 = time.perf_counter()
    eng = sa.create_engine(urls["postgresql"])
    with eng.begin() as conn:
        conn.exec_driver_sql(DDL.format(ts="timestamp"))
        conn.execute(sa.text(PG_FILL), {"n": n})
        if index:
            conn.exec_driver_sql("CREATE INDEX order_lines_updated_at ON order_lines (updated_at)")
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE order_lines")
    eng.dispose()
    print(f"postgresql: {n:,} rows generated in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    t0 = time.perf_counter()
    eng = sa.create_engine(urls["mariadb"])
    with eng.begin() as conn:
        conn.exec_driver_sql(DDL.format(ts="datetime"))
        conn.exec_driver_sql(MY_FILL.format(n=n).replace("%", "%%"))
        if index:
            conn.exec_driver_sql("CREATE INDEX order_lines_updated_at ON order_lines (updated_at)")
    eng.dispose()
    print(f"mariadb: {n:,} rows generated in {time.perf_counter() - t0:.1f}s", file=sys.stderr)


def drop_databases(urls: dict[str, str]) -> None:
    name = make_url(urls["postgresql"]).database
    eng = sa.create_engine(os.environ["SEAM_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    eng.dispose()
    eng = sa.create_engine(os.environ["SEAM_TEST_MARIADB_URL"])
    with eng.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{make_url(urls['mariadb']).database}`")
    eng.dispose()


def run_measured(argv: list[str], env: dict[str, str] | None = None, stdout: int | None = None) -> dict:
    """Run a command; wall seconds and peak RSS (MB) of its process tree, plus its JSON stdout if any."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=stdout if stdout is not None else subprocess.PIPE)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed with status {status}")
    result = json.loads(out) if out.strip() else {}
    cpu = usage.ru_utime + usage.ru_stime  # the measured process and its children (not the server)
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "cpu_seconds": cpu, **result}


def worker(kind: str, mode: str) -> None:
    """Subprocess body: one extraction; prints {'rows': n, 'inner_seconds': s} as JSON."""
    url = os.environ["SEAM_BENCH_URL"]
    # Imports are outside the timing: on a loaded 2-core machine they take seconds and are paid
    # once per Airflow task process, not per row.
    import pandas as pd

    from pipelines.config import parse_config
    from pipelines.extract import extract_table

    t0, cpu0 = time.perf_counter(), _cpu()
    if kind == "pandas":
        engine = sa.create_engine(url)
        rows = len(pd.read_sql(f"SELECT {COLUMNS} FROM order_lines", engine))
    else:
        from datetime import date

        lake = Path(os.environ["SEAM_BENCH_LAKE"])
        # the canonical order lines; the generated table has no currency column
        table: dict[str, object] = {
            "dataset": "order_lines",
            "table": "order_lines",
            "constants": {"currency": "EUR"},
        }
        if mode == "incremental":
            table.update(mode="incremental", cursor="updated_at")
        if mode == "query":  # the demo's order_lines, a join defined by a query
            table = {"dataset": "order_lines", "query": demo_query()}
        # the table settings `reader:` and `streams:`, chosen per measured variant
        table.update(reader=os.environ.get("SEAM_BENCH_READER", "auto"))
        if os.environ.get("SEAM_BENCH_STREAMS"):
            table.update(streams=int(os.environ["SEAM_BENCH_STREAMS"]))
        cfg = parse_config(
            {"lake": str(lake), "sources": {"src": {"url_env": "SEAM_BENCH_URL", "tables": {"t": table}}}},
            base=lake.parent,
        )
        rows = extract_table(cfg, "src", "t", date(2026, 11, 22)).rows
    seconds = time.perf_counter() - t0
    out = {"rows": rows, "inner_seconds": seconds, "inner_cpu_seconds": _cpu() - cpu0}
    if kind != "pandas":  # the reader seam chose, from the partition's manifest
        from pipelines.lake import Lake

        manifest = Lake(lake).table_manifest("src", "t", date(2026, 11, 22)) or {}
        out["method"] = manifest.get("method")
    print(json.dumps(out))


def _cpu() -> float:
    """User + system CPU seconds of this process and its finished children (the mariadb client)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def client_argv(db: str, url: str, tmp: Path, query: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The database's own client dumping the table (or `query`) to /dev/null (password via env /
    option file)."""
    u = make_url(url)
    env = dict(os.environ)
    select = query or f"SELECT {COLUMNS} FROM order_lines"
    if db == "postgresql":
        env["PGPASSWORD"] = u.password or ""
        sql = f"\\copy ({select}) TO '/dev/null'"
        return [
            "psql",
            "-h",
            u.host or "",
            "-p",
            str(u.port or 5432),
            "-U",
            u.username or "",
            "-d",
            u.database or "",
            "-q",
            "-c",
            sql,
        ], env
    cnf = tmp / "client.cnf"
    cnf.write_text(
        f'[client]\nuser="{u.username}"\npassword="{u.password}"\nhost="{u.host}"\nport={u.port or 3306}\n'
    )
    cnf.chmod(0o600)
    if query is not None:  # stdout to /dev/null by the caller: the query needs no shell quoting
        return [
            "mariadb",
            f"--defaults-extra-file={cnf}",
            "--quick",
            "--batch",
            "-D",
            u.database or "",
            "-e",
            query,
        ], env
    return [
        "sh",
        "-c",
        f"mariadb --defaults-extra-file={cnf} --quick --batch -D {u.database} "
        f"-e 'SELECT {COLUMNS} FROM order_lines' > /dev/null",
    ], env


def measure(urls: dict[str, str], reps: int, pandas_reps: int, alternatives: bool) -> dict:
    py = sys.executable
    me = str(Path(__file__).resolve())
    results: dict[str, dict[str, list[dict]]] = {db: {} for db in urls}
    with tempfile.TemporaryDirectory(prefix="seam-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for rep in range(reps):
            for db, url in urls.items():
                env = {**os.environ, "SEAM_BENCH_URL": url, "PYTHONPATH": str(ROOT)}
                methods: list[tuple[str, list[str], dict[str, str], int | None]] = []
                argv, cenv = client_argv(db, url, tmp)
                methods.append(("client", argv, cenv, subprocess.DEVNULL))
                lake = tmp / f"lake-{db}-{rep}"
                methods.append(
                    ("seam", [py, me, "--worker", "seam"], {**env, "SEAM_BENCH_LAKE": str(lake)}, None)
                )
                if db == "mariadb":  # the same reader on one stream instead of two key ranges
                    one = {
                        **env,
                        "SEAM_BENCH_LAKE": str(tmp / f"lake-{db}-one-{rep}"),
                        "SEAM_BENCH_STREAMS": "1",
                    }
                    methods.append(("seam_one_stream", [py, me, "--worker", "seam"], one, None))
                if rep < pandas_reps:
                    methods.append(("pandas", [py, me, "--worker", "pandas"], env, None))
                if alternatives and rep == 0:
                    alts = ["generic"] + (["sscursor"] if db == "mariadb" else [])
                    for alt in alts:
                        alt_env = {
                            **env,
                            "SEAM_BENCH_LAKE": str(tmp / f"lake-{db}-{alt}"),
                            "SEAM_BENCH_READER": alt,
                        }
                        methods.append((f"seam_{alt}", [py, me, "--worker", "seam"], alt_env, None))
                for name, argv, menv, out in methods:
                    r = run_measured(argv, menv, out)
                    results[db].setdefault(name, []).append(r)
                    print(
                        f"rep {rep} {db:10s} {name:14s} {r.get('inner_seconds', r['seconds']):7.2f}s (process {r['seconds']:.1f}s) {r['peak_mb']:7.0f} MB "
                        f"load={os.getloadavg()[0]:.2f}",
                        file=sys.stderr,
                    )
                # Incremental: the previous night's watermark, then 1% of rows changed since.
                from pipelines.lake import Lake

                Lake(lake).write_state(
                    "watermarks", "src", "t", {"history": {"2026-11-21": "2026-11-21T23:59:59"}}
                )
                ienv = {**env, "SEAM_BENCH_LAKE": str(lake)}
                r = run_measured([py, me, "--worker", "seam", "--mode", "incremental"], ienv)
                results[db].setdefault("seam_incremental_1pct", []).append(r)
                print(
                    f"rep {rep} {db:10s} incremental    {r['inner_seconds']:7.2f}s (process {r['seconds']:.1f}s) {r['peak_mb']:7.0f} MB "
                    f"rows={r['rows']}",
                    file=sys.stderr,
                )
    return results


def measure_query(urls: dict[str, str], reps: int, generic_reps: int) -> dict:
    """The demo's order_lines query: the clients, seam's fast path and its generic path, interleaved."""
    py = sys.executable
    me = str(Path(__file__).resolve())
    query = client_query()
    results: dict[str, dict[str, list[dict]]] = {db: {} for db in urls}
    with tempfile.TemporaryDirectory(prefix="seam-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for rep in range(reps):
            for db, url in urls.items():
                env = {**os.environ, "SEAM_BENCH_URL": url, "PYTHONPATH": str(ROOT)}
                argv, cenv = client_argv(db, url, tmp, query)
                methods: list[tuple[str, list[str], dict[str, str], int | None]] = [
                    ("client", argv, cenv, subprocess.DEVNULL)
                ]
                for name, reader in (("seam", "auto"), ("seam_generic", "generic"))[
                    : 2 if rep < generic_reps else 1
                ]:
                    lake = tmp / f"lake-{db}-{name}-{rep}"
                    wenv = {**env, "SEAM_BENCH_LAKE": str(lake), "SEAM_BENCH_READER": reader}
                    methods.append((name, [py, me, "--worker", "seam", "--mode", "query"], wenv, None))
                for name, cmd, menv, out in methods:
                    r = run_measured(cmd, menv, out)
                    results[db].setdefault(name, []).append(r)
                    print(
                        f"rep {rep} {db:10s} {name:14s} {r.get('inner_seconds', r['seconds']):7.2f}s "
                        f"(process {r['seconds']:.1f}s) {r['peak_mb']:7.0f} MB load={os.getloadavg()[0]:.2f}",
                        file=sys.stderr,
                    )
                for path in tmp.glob(f"lake-{db}-*-{rep}"):
                    shutil.rmtree(path, ignore_errors=True)
    return results


def measure_memory(urls: dict[str, str], reps: int) -> dict:
    """Only seam's full snapshot and the client (no pandas): peak RSS at a large row count."""
    py = sys.executable
    me = str(Path(__file__).resolve())
    results: dict[str, dict[str, list[dict]]] = {db: {} for db in urls}
    with tempfile.TemporaryDirectory(prefix="seam-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for rep in range(reps):
            for db, url in urls.items():
                argv, cenv = client_argv(db, url, tmp)
                lake = tmp / f"lake-{db}-{rep}"
                env = {
                    **os.environ,
                    "SEAM_BENCH_URL": url,
                    "PYTHONPATH": str(ROOT),
                    "SEAM_BENCH_LAKE": str(lake),
                }
                for name, cmd, menv, out in (
                    ("client", argv, cenv, subprocess.DEVNULL),
                    ("seam", [py, me, "--worker", "seam"], env, None),
                ):
                    r = run_measured(cmd, menv, out)
                    if name == "seam":
                        files = list(lake.rglob("*.parquet"))
                        r["parquet_mb"] = round(sum(f.stat().st_size for f in files) / 2**20, 1)
                    results[db].setdefault(name, []).append(r)
                    print(
                        f"rep {rep} {db:10s} {name:14s} {r.get('inner_seconds', r['seconds']):7.2f}s "
                        f"(process {r['seconds']:.1f}s) {r['peak_mb']:7.0f} MB load={os.getloadavg()[0]:.2f}",
                        file=sys.stderr,
                    )
                shutil.rmtree(lake, ignore_errors=True)
    return results


def summarise(results: dict, n: int) -> dict:
    out: dict[str, dict] = {}
    for db, methods in results.items():
        client = statistics.median(r["seconds"] for r in methods["client"])
        out[db] = {}
        for name, runs in methods.items():
            sec = statistics.median(r.get("inner_seconds", r["seconds"]) for r in runs)
            rows = runs[0].get("rows", n)
            out[db][name] = {
                "runs": len(runs),
                "median_seconds": round(sec, 2),
                "rows": rows,
                "rows_per_s": round(rows / sec),
                "x_client": round((rows / sec) / (n / client), 3),
                "median_peak_mb": round(statistics.median(r["peak_mb"] for r in runs)),
                "seconds_each": [round(r.get("inner_seconds", r["seconds"]), 2) for r in runs],
                "process_wall_seconds_each": [round(r["seconds"], 2) for r in runs],
                "peak_mb_each": [round(r["peak_mb"]) for r in runs],
                "median_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in runs), 2),
            }
            if "method" in runs[0]:
                out[db][name]["method"] = runs[0]["method"]
            if "parquet_mb" in runs[0]:
                out[db][name]["parquet_mb"] = runs[0]["parquet_mb"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pandas-reps", type=int, default=3)
    ap.add_argument(
        "--alternatives", action="store_true", help="also time seam's generic/SSCursor readers once"
    )
    ap.add_argument(
        "--memory-rows",
        type=int,
        help="instead: a table of this many rows, only seam's snapshot and the client (peak RSS), --reps times",
    )
    ap.add_argument(
        "--query",
        action="store_true",
        help="instead: the demo's order_lines query (a join) over --rows lines: seam, its generic path, the clients",
    )
    ap.add_argument(
        "--generic-reps",
        type=int,
        default=3,
        help="--query: repetitions of seam's generic path (the slow reference), at most --reps",
    )
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", choices=["seam", "pandas"], help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="snapshot", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.mode)
        return
    load_before = os.getloadavg()
    rows = args.memory_rows or args.rows
    urls = create_databases()
    try:
        if args.query:
            fill_query_databases(urls, rows)
        else:
            fill_databases(urls, rows, index=not args.memory_rows)
        if args.query:
            results = measure_query(urls, args.reps, args.generic_reps)
        elif args.memory_rows:
            results = measure_memory(urls, args.reps)
        else:
            results = measure(urls, args.reps, args.pandas_reps, args.alternatives)
    finally:
        drop_databases(urls)
    summary = {
        "mode": "query" if args.query else "memory" if args.memory_rows else "full",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": rows,
        "reps": args.reps,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "summary": summarise(results, rows),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
