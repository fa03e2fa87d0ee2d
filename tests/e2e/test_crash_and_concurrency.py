"""A night killed anywhere and run again ends exactly like a clean night; two runs of one night at
once cannot both write; concurrent first migrations of an empty database do not race.

`seam run` runs in a forked child that SIGKILLs itself at a point of the night chosen by patching
one of the step's own functions (a test fixture; nothing in `pipelines` knows about it).
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines import cli
from pipelines.config import load_config, source_url
from pipelines.state import read_ledger, summarize
from tests.conftest import NIGHT
from tests.helpers import dump_results

pytestmark = pytest.mark.e2e

# point -> (module, function, the call that never returns): spread over the whole night
KILLS = {
    "extract": ("pipelines.extract.table", "widen", 3),  # the third table, mid-partition
    "validate": ("pipelines.quality.gate", "write_data_docs", 2),  # the second dataset's docs
    "forecast": ("pipelines.forecasting.rows", "build_forecast_rows", 1),  # before the shard is written
    "score": ("pipelines.anomaly.nightly", "build_score_rows", 1),  # where the score step calls it
    "load": ("pipelines.load.batch", "record_batch", 2),  # inside the second table's transaction
    "report": ("pipelines.report.render", "forecast_chart", 2),
}
# each backend is killed at three points; together they cover the whole night twice over
POINTS = {"sqlite": ("validate", "score", "report"), "postgresql+mariadb": ("extract", "forecast", "load")}


def _killed_run(config: str, point: str | None) -> None:
    """Child: patch the kill point, run the night; SIGKILL itself at the point (or exit normally)."""
    if point is not None:
        module_name, attr, at = KILLS[point]
        module = importlib.import_module(module_name)
        original, calls = getattr(module, attr), []

        def die(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == at:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        setattr(module, attr, die)
    os._exit(cli.main(["run", "--config", config, "--date", str(NIGHT)]))


def _run(config: Path, point: str | None) -> int | None:
    proc = mp.get_context("fork").Process(target=_killed_run, args=(str(config), point))
    proc.start()
    proc.join(900)
    assert proc.exitcode is not None, "the night did not end within 15 minutes"
    return proc.exitcode


def _lake_tables(lake: Path) -> dict[str, pd.DataFrame]:
    """Every Parquet dataset of the lake, read back (sorted, so that row order does not matter)."""
    out = {}
    for f in sorted(lake.rglob("*.parquet")):
        df = pd.read_parquet(f)
        key = str(f.relative_to(lake))
        out[key] = df.sort_values(list(df.columns)).reset_index(drop=True) if len(df) else df
    return out


def _results(cfg: Any) -> dict[str, pd.DataFrame]:
    tables = {}
    for name in ("erp", "crm"):
        for t, df in dump_results(source_url(cfg.source(name))).items():
            tables[f"{name}.{t}"] = df
    return tables


@pytest.fixture(params=["sqlite", "postgresql+mariadb"])
def two_nights(request: pytest.FixtureRequest, demo_env: Any, tmp_path: Path) -> tuple[Path, Path]:
    """Two identical demo environments: one for the clean reference night, one to crash."""
    configs = []
    for n in range(2):
        if request.param == "sqlite":
            erp, crm = f"sqlite:///{tmp_path / f'erp{n}.db'}", f"sqlite:///{tmp_path / f'crm{n}.db'}"
        else:
            erp, crm = request.getfixturevalue("pg_database")(), request.getfixturevalue("mariadb_database")()
        path = demo_env(erp, crm, lean=True)
        target = tmp_path / f"env{n}"
        target.mkdir()
        text = path.read_text().replace(str(tmp_path / "lake"), str(target / "lake"))
        text = text.replace(str(tmp_path / "reports"), str(target / "reports"))
        configs.append(target / "seam.yml")
        configs[-1].write_text(text)
    return configs[0], configs[1]


def test_a_night_killed_anywhere_and_run_again_equals_a_clean_night(
    two_nights: tuple[Path, Path], request: pytest.FixtureRequest
) -> None:
    clean, crashed = two_nights
    points = POINTS[request.node.callspec.params["two_nights"]]
    assert _run(clean, None) == 0
    for point in points:
        assert _run(crashed, point) == -signal.SIGKILL, f"the run was not killed at {point}"
    assert _run(crashed, None) == 0

    a, b = load_config(clean), load_config(crashed)
    want, got = _results(a), _results(b)
    assert want.keys() == got.keys()
    for table in want:
        keep = [c for c in want[table].columns if c not in ("loaded_at",)]
        pd.testing.assert_frame_equal(want[table][keep], got[table][keep], check_dtype=False, obj=table)
    lake_a, lake_b = _lake_tables(a.lake), _lake_tables(b.lake)
    assert lake_a.keys() == lake_b.keys()
    for key in lake_a:
        pd.testing.assert_frame_equal(lake_a[key], lake_b[key], check_dtype=False, obj=key)
    leftovers = [p for p in b.lake.rglob("*") if p.name.startswith((".tmp-", ".old-"))]
    assert not leftovers, leftovers
    for name in ("erp", "crm"):  # no staging table survived a kill
        engine = sa.create_engine(source_url(b.source(name)))
        assert not [t for t in sa.inspect(engine).get_table_names() if t.startswith("seam_stg_")]
        engine.dispose()
    # the ledger: every step's latest attempt succeeded; the killed attempts are kept, superseded
    ledger, locked = read_ledger(b, nights=[NIGHT])
    status = summarize(b, ledger, locked)
    assert set(status["status"]) == {"success"}, status[status["status"] != "success"]
    assert status["interrupted_before"].sum() == len(points)  # each kill left one attempt `running`
    assert not locked, "the night is still locked after its run ended"


def test_two_runs_of_one_night_at_once_one_waits_its_turn(demo_env: Any, tmp_path: Path) -> None:
    config = demo_env()
    env = {**os.environ}
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config), "--date", str(NIGHT)]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outs
    refused = next(err for (_, err), p in zip(outs, procs, strict=True) if p.returncode == 3)
    assert f"night {NIGHT} is already running (seam, pid " in refused and "on host" in refused
    cfg = load_config(config)
    once = _results(cfg)
    assert cli.main(["run", "--config", str(config), "--date", str(NIGHT)]) == 0  # and again: the same night
    again = _results(cfg)
    for table in once:
        keep = [c for c in once[table].columns if c != "loaded_at"]
        pd.testing.assert_frame_equal(once[table][keep], again[table][keep], check_dtype=False, obj=table)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_concurrent_first_migrations_of_an_empty_database(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'results.db'}"
    else:
        url = request.getfixturevalue("pg_database" if backend == "postgresql" else "mariadb_database")()
    code = (
        "import sys; from pipelines.db import make_engine; from pipelines.state import migrate; "
        "print(len(migrate(make_engine(sys.argv[1], write=True))))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err[-2000:] for _, err in outs]
    applied = sorted(int(out.strip()) for out, _ in outs)
    assert applied[-1] >= 4 and applied[:-1] == [0, 0, 0]  # one of them applied everything, once
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        versions = conn.exec_driver_sql("SELECT version FROM seam_schema_migrations").scalars().all()
    engine.dispose()
    assert len(versions) == len(set(versions)) == applied[-1]
