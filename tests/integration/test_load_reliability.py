"""Exactly-once loads under failure, on real PostgreSQL and MariaDB and on SQLite.

The load runs in a forked process that pauses at a named point through the `checkpoint` hook of
`pipelines.load.load_batch`; the test kills it there (SIGKILL) or
terminates its database session, then checks the target against what a clean run leaves.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.db import make_engine
from pipelines.errors import LoadError, SourceUnavailableError
from pipelines.load import batch_checksum, load_batch, load_parts
from pipelines.load.batch import _prepare
from pipelines.results import RESULT_TABLES
from pipelines.state import migrate

NIGHT_A = date(2026, 11, 22)
NIGHT_B = date(2026, 11, 23)
TABLE = RESULT_TABLES["seam_forecasts"]


def night(run_date: date, skus: int, seed: int, yhat: float | None = None) -> pd.DataFrame:
    """A night of forecasts: `skus` x 2 warehouses x 14 days; `yhat` fixed when given."""
    rng = np.random.default_rng(seed)
    grid = pd.MultiIndex.from_product(
        [
            [f"S{i:04d}" for i in range(skus)],
            ["W1", "W2"],
            pd.date_range(run_date, periods=14) + pd.Timedelta(days=1),
        ],
        names=["sku", "warehouse", "target_date"],
    ).to_frame(index=False)
    y = np.full(len(grid), yhat) if yhat is not None else rng.gamma(2.0, 5.0, len(grid))
    grid.insert(0, "run_date", pd.Timestamp(run_date))
    grid["yhat"] = y
    grid["yhat_lo_80"], grid["yhat_hi_80"] = y - 1, y + 1
    grid["yhat_lo_95"], grid["yhat_hi_95"] = y - 2, y + 2
    grid["model"] = "ets"
    grid["model_version"] = f"seam-{seed}"
    grid["explanation"] = np.where(rng.random(len(grid)) < 0.2, None, 'a "quoted", text\\n')
    grid["fallback"] = rng.random(len(grid)) < 0.3
    grid["training_snapshot_date"] = pd.Timestamp(run_date)
    grid["yhat_final"] = y
    grid["override_ids"] = None
    return grid


def dump(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        df = pd.read_sql(sa.text("SELECT * FROM seam_forecasts"), conn)
    return normalise(df)


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    out = df[list(TABLE.columns)].copy()
    for c in ("run_date", "target_date", "training_snapshot_date"):
        out[c] = pd.to_datetime(out[c]).dt.strftime("%Y-%m-%d")
    out["fallback"] = out["fallback"].astype(bool)
    out["explanation"] = out["explanation"].astype(object).where(out["explanation"].notna(), None)
    return out.sort_values(list(TABLE.key)).reset_index(drop=True)


def assert_state(engine: sa.Engine, *nights: pd.DataFrame) -> None:
    """The target holds exactly these nights, and the ledger has one matching batch per night."""
    expected = normalise(pd.concat(nights, ignore_index=True))
    got = dump(engine)
    assert len(got) == len(expected)
    assert not got.duplicated(list(TABLE.key)).any()
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False, rtol=1e-12)
    with engine.connect() as conn:
        ledger = pd.read_sql(
            sa.text("SELECT * FROM seam_load_batches WHERE table_name = 'seam_forecasts'"), conn
        )
    assert len(ledger) == len(nights)
    for df in nights:
        d = df["run_date"].iloc[0].date()
        row = ledger[pd.to_datetime(ledger.run_date).dt.date == d]
        assert len(row) == 1 and int(row.row_count.iloc[0]) == len(df)
        assert row.checksum.iloc[0] == batch_checksum(_prepare(df, TABLE), TABLE.key)


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_database")()
    elif request.param == "mysql":
        url = request.getfixturevalue("mariadb_database")()
    else:
        url = f"sqlite:///{tmp_path / 'results.db'}"
    engine = make_engine(url, write=True)
    migrate(engine)
    engine.dispose()
    return request.param, url


class _Lines(logging.Handler):
    """Collects the child's warnings (retries) for the parent."""

    def __init__(self, lines: Any) -> None:
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.put(record.getMessage())


def _child(url: str, run_date: date, skus: int, seed: int, pause: str, paused: Any, lines: Any) -> None:
    point, seconds = pause.split(":")

    def checkpoint(at: str) -> None:
        if at == point:
            paused.set()
            time.sleep(float(seconds))

    logging.getLogger("pipelines").addHandler(_Lines(lines))
    engine = make_engine(url, write=True)  # a fresh engine: nothing of the parent's pool is used
    try:
        res = load_batch(
            engine, "seam_forecasts", run_date, night(run_date, skus, seed), checkpoint=checkpoint
        )
        lines.put(f"RESULT skipped={res.skipped}")
    except SourceUnavailableError as err:
        lines.put(f"RESULT transient={err.transient} {err}")
    time.sleep(0.2)  # let the queue's feeder thread flush
    os._exit(0)


class Load:
    """The load in a forked process (fork: no interpreter start-up, pandas already imported)."""

    def __init__(self, url: str, run_date: date, skus: int, seed: int, pause: str) -> None:
        ctx = mp.get_context("fork")
        self.paused, self.lines = ctx.Event(), ctx.Queue()
        self.proc = ctx.Process(
            target=_child, args=(url, run_date, skus, seed, pause, self.paused, self.lines)
        )
        self.proc.start()

    def wait_paused(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.paused.wait(0.1):
            assert self.proc.is_alive(), f"the load exited (rc={self.proc.exitcode}) before its pause point"
            assert time.monotonic() < deadline, "the load never reached its pause point"

    def kill(self) -> None:
        assert self.proc.pid is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join(30)

    def finish(self, timeout: float = 60) -> list[str]:
        self.proc.join(timeout)
        assert self.proc.exitcode == 0, f"the load failed (rc={self.proc.exitcode})"
        out = []
        while not self.lines.empty():
            out.append(self.lines.get(timeout=1))
        return out


@pytest.mark.parametrize("point", ["staged", "merged", "committed"])
def test_sigkill_then_retry_equals_clean_run(target: tuple[str, str], point: str) -> None:
    _, url = target
    engine = make_engine(url, write=True)
    old = night(NIGHT_A, skus=30, seed=1)
    load_batch(engine, "seam_forecasts", NIGHT_A, old)
    load = Load(url, NIGHT_A, 20, 2, f"{point}:60")  # fewer rows, other values
    load.wait_paused()
    load.kill()
    new = night(NIGHT_A, skus=20, seed=2)
    if point == "committed":
        assert_state(engine, new)  # committed before the kill: the retry must find it done
    else:
        assert_state(engine, old)  # killed inside the transaction: nothing of it is visible
    result = load_batch(engine, "seam_forecasts", NIGHT_A, new)
    assert result.skipped == (point == "committed")
    assert_state(engine, new)
    engine.dispose()


def test_replays_and_interleaved_nights(target: tuple[str, str]) -> None:
    _, url = target
    engine = make_engine(url, write=True)
    a, b = night(NIGHT_A, 12, seed=3), night(NIGHT_B, 10, seed=4)
    skipped = [
        load_batch(engine, "seam_forecasts", d, df).skipped for d, df in ((NIGHT_A, a), (NIGHT_B, b)) * 3
    ]
    assert skipped == [False, False, True, True, True, True]
    assert_state(engine, a, b)
    smaller = night(NIGHT_A, 5, seed=5)  # a re-run that produces fewer rows drops the others
    load_batch(engine, "seam_forecasts", NIGHT_A, smaller)
    assert_state(engine, smaller, b)
    engine.dispose()


def test_a_night_in_parts_loads_as_the_whole_night(target: tuple[str, str]) -> None:
    """A batch given in parts (a night's output read a record batch at a time) loads the rows of
    every part in one transaction, with the checksum of the whole batch: the same night given whole
    or in other parts is a no-op; a key repeated in two parts fails and keeps nothing."""
    _, url = target
    engine = make_engine(url, write=True)
    a = night(NIGHT_A, 12, seed=3)
    cuts = [0, 100, 101, 250, len(a)]
    parts = [a.iloc[i:j] for i, j in itertools.pairwise(cuts)]
    reads = []

    def given() -> list[pd.DataFrame]:
        reads.append(1)
        return parts

    result = load_parts(engine, "seam_forecasts", NIGHT_A, given)
    assert not result.skipped and result.rows == len(a) and len(reads) == 2  # checked, then written
    assert result.checksum == batch_checksum(_prepare(a, TABLE), TABLE.key)
    assert_state(engine, a)
    assert load_batch(engine, "seam_forecasts", NIGHT_A, a).skipped
    assert load_parts(engine, "seam_forecasts", NIGHT_A, lambda: [a.iloc[::2], a.iloc[1::2]]).skipped
    b = night(NIGHT_A, 12, seed=4)
    twice = [b.iloc[:200], b.iloc[150:]]  # rows 150..199 in both parts
    with pytest.raises(LoadError, match="duplicate keys"):
        load_parts(engine, "seam_forecasts", NIGHT_A, lambda: twice)
    assert_state(engine, a)  # nothing of the refused batch
    engine.dispose()


def test_a_large_night_in_parts_keeps_its_hashes_in_the_spill(
    target: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond `SPILL_HASHES` rows (here 100), the rows' and keys' hashes wait in the spill in
    buckets: the same checksum as the batch held whole, the same refusal of a key in two parts,
    and a re-run is still a no-op."""
    from pipelines.lake import Lake
    from pipelines.load import batch as load_batch_module

    monkeypatch.setattr(load_batch_module, "SPILL_HASHES", 100)
    _, url = target
    engine = make_engine(url, write=True)
    a = night(NIGHT_A, 12, seed=3)  # 336 rows
    parts = [a.iloc[i:j] for i, j in itertools.pairwise([0, 90, 200, len(a)])]
    with Lake(tmp_path / "lake").spill() as spill:
        result = load_parts(engine, "seam_forecasts", NIGHT_A, lambda: parts, spill=spill)
        assert {p.name.split("-")[0].rsplit("_", 1)[0] for p in spill.folder.glob("*.arrow")} == {
            "load_rows",
            "load_keys",
        }
        assert len(list(spill.folder.glob("*.arrow"))) == 32  # 16 buckets each
        assert result.checksum == batch_checksum(_prepare(a, TABLE), TABLE.key) and not result.skipped
        assert_state(engine, a)
        assert load_parts(engine, "seam_forecasts", NIGHT_A, lambda: parts[::-1], spill=spill).skipped
        b = night(NIGHT_A, 12, seed=4)
        twice = [b.iloc[:200], b.iloc[150:]]
        with pytest.raises(LoadError, match="duplicate keys"):
            load_parts(engine, "seam_forecasts", NIGHT_A, lambda: twice, spill=spill)
    assert_state(engine, a)
    engine.dispose()


def _kill_other_sessions(kind: str, url: str) -> int:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    db = sa.make_url(url).database
    with engine.connect() as conn:
        if kind == "postgresql":
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": db},
            ).scalar()
        else:
            ids = conn.execute(
                sa.text(
                    "SELECT id FROM information_schema.processlist WHERE db = :db AND id <> CONNECTION_ID()"
                ),
                {"db": db},
            ).scalars()
            killed = 0
            for i in list(ids):
                conn.exec_driver_sql(f"KILL {int(i)}")
                killed += 1
    engine.dispose()
    return int(killed or 0)


def test_dropped_connection_is_transient_and_a_retry_completes(target: tuple[str, str]) -> None:
    kind, url = target
    if kind == "sqlite":
        pytest.skip("SQLite has no server session to terminate")
    engine = make_engine(url, write=True)
    old = night(NIGHT_A, skus=15, seed=6)
    load_batch(engine, "seam_forecasts", NIGHT_A, old)
    engine.dispose()
    load = Load(url, NIGHT_A, 25, 7, "staged:2")
    load.wait_paused()
    assert _kill_other_sessions(kind, url) >= 1
    lines = load.finish()
    assert lines[-1].startswith("RESULT transient=True loading seam_forecasts"), lines
    engine = make_engine(url, write=True)
    assert_state(engine, old)  # the interrupted load left nothing of itself
    new = night(NIGHT_A, skus=25, seed=7)
    assert not load_batch(
        engine, "seam_forecasts", NIGHT_A, new
    ).skipped  # the retry (Airflow's, or the CLI's)
    assert_state(engine, new)
    engine.dispose()


def test_concurrent_reader_never_sees_a_mix(target: tuple[str, str]) -> None:
    _, url = target
    engine = make_engine(url, write=True)
    versions = [night(NIGHT_A, 40, seed=8, yhat=1.0), night(NIGHT_A, 25, seed=9, yhat=2.0)]
    allowed = {(len(versions[0]), 1.0, 1.0), (len(versions[1]), 2.0, 2.0)}
    load_batch(engine, "seam_forecasts", NIGHT_A, versions[0])
    seen: set[tuple[int, float, float]] = set()
    done = threading.Event()

    def read() -> None:
        reader = make_engine(url)
        while not done.is_set():
            with reader.connect() as conn:
                n, lo, hi = conn.execute(
                    sa.text("SELECT COUNT(*), MIN(yhat), MAX(yhat) FROM seam_forecasts WHERE run_date = :d"),
                    {"d": NIGHT_A},
                ).one()
            seen.add((int(n), float(lo), float(hi)))
        reader.dispose()

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(6):
            load_batch(engine, "seam_forecasts", NIGHT_A, versions[(i + 1) % 2])
    finally:
        done.set()
        thread.join(timeout=60)
    assert seen and seen <= allowed, f"a reader saw a mix: {seen - allowed}"
    assert_state(engine, versions[0])
    engine.dispose()
