"""Two versions of seam's MariaDB full-snapshot extraction, interleaved in one run.

Builds the generated order-lines table of `extract_bench.py` (N rows, default 2,000,000) once in a
fresh MariaDB database, then runs each tree's own `extract_bench.py --worker seam` (the table read
into a Parquet partition, in a subprocess) R times (default 5), with two key-range streams and with
one, alternating which tree goes first in each repetition. Prints each run and, per tree and
stream count, the medians of the extraction's wall seconds and CPU seconds (the worker and the
`mariadb` client it starts), and the median of the per-repetition ratios second tree / first tree:
on a shared machine the pairs see the same load, so their ratios say more than the raw figures.

    eval "$(scripts/services.sh)"
    git worktree add /tmp/seam-before <commit>
    .venv/bin/python benchmarks/extract_compare.py --before /tmp/seam-before --after . --rows 2000000 --reps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
import extract_bench as bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the first version")
    parser.add_argument("--after", type=Path, required=True, help="checkout of the second version")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    admin = os.environ["SEAM_TEST_MARIADB_URL"]
    name = f"seam_xbench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    runs: dict[tuple[str, str], list[dict]] = {}
    try:
        table = sa.create_engine(url)
        with table.begin() as conn:
            conn.exec_driver_sql(bench.DDL.format(ts="datetime"))
            conn.exec_driver_sql(bench.MY_FILL.format(n=args.rows).replace("%", "%%"))
        table.dispose()
        with tempfile.TemporaryDirectory(prefix="seam-compare-") as tmp:
            for rep in range(args.reps):
                for streams in ("2", "1"):
                    for label in ("before", "after") if rep % 2 == 0 else ("after", "before"):
                        tree = trees[label]
                        env = {
                            **os.environ,
                            "SEAM_BENCH_URL": url,
                            "PYTHONPATH": str(tree),
                            "SEAM_BENCH_LAKE": f"{tmp}/{label}-{streams}-{rep}/lake",
                        }
                        if streams == "1":  # the table setting, and the older versions' variable
                            env.update(SEAM_BENCH_STREAMS="1", SEAM_EXTRACT_STREAMS="1")
                        argv = [sys.executable, str(tree / "benchmarks/extract_bench.py"), "--worker", "seam"]
                        r = bench.run_measured(argv, env)
                        if r["rows"] != args.rows:
                            raise SystemExit(f"{label} read {r['rows']} rows, not {args.rows}")
                        runs.setdefault((label, streams), []).append(r)
                        print(
                            f"rep {rep} {label:6s} streams={streams} {r['inner_seconds']:6.2f} s "
                            f"cpu {r['cpu_seconds']:5.2f} s peak {r['peak_mb']:4.0f} MB "
                            f"load {os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        engine.dispose()
    for streams in ("2", "1"):
        b, a = runs[("before", streams)], runs[("after", streams)]
        for key, what in (("inner_seconds", "wall s"), ("cpu_seconds", "CPU s")):
            ratios = [x[key] / y[key] for x, y in zip(a, b, strict=True)]
            print(
                f"streams={streams} {what}: before {statistics.median(y[key] for y in b):.2f}, "
                f"after {statistics.median(x[key] for x in a):.2f}, "
                f"median ratio after/before {statistics.median(ratios):.2f}"
            )


if __name__ == "__main__":
    main()
