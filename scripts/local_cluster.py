"""A real Airflow deployment on loopback: API server, scheduler, DAG processor and Celery workers.

Used by the distributed end-to-end test and by the scale benchmark.  The metadata database is
PostgreSQL (a SQLAlchemy URL of a database the caller created), the broker is Redis.  Every
component runs as its own process group, so stopping the cluster stops everything it started.

    with LocalCluster(home, meta_url=..., broker_url=..., config=..., workers=2) as cluster:
        cluster.trigger("seam_nightly", "2026-11-22")
        state = cluster.wait("seam_nightly", "2026-11-22", timeout=900)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """Start Airflow's components with the CeleryExecutor; `stop()` (or leaving the block) ends them.

    `workers` Celery workers are named worker-a, worker-b, ...; each records that name as the
    task instances' hostname, so a caller can see which worker ran what.  `concurrency` is the
    number of task slots per worker; `extra_env` is added to every component's environment.
    """

    def __init__(
        self,
        home: Path,
        *,
        meta_url: str,
        broker_url: str,
        config: Path,
        workers: int = 2,
        concurrency: int = 2,
        pool_slots: int = 4,
        extra_env: dict[str, str] | None = None,
        extra_dags: tuple[Path, ...] = (),
    ) -> None:
        meta = make_url(meta_url).set(drivername="postgresql+psycopg")
        self.meta_url = meta.render_as_string(hide_password=False)
        self.home = home
        self.logs = home / "component-logs"
        self.workers = [f"worker-{chr(ord('a') + i)}" for i in range(workers)]
        self.concurrency = concurrency
        self.pool_slots = pool_slots
        port = free_port()
        self.port = port
        # the project's DAGs (and the caller's, e.g. a consumer of seam's Assets) in a folder of its own
        self.dags = home / "dags"
        self.dags.mkdir(parents=True, exist_ok=True)
        for dag_file in (*sorted((ROOT / "dags").glob("*.py")), *extra_dags):
            shutil.copy(dag_file, self.dags / dag_file.name)
        # only triggered nights run, no scheduled one beside them (see backfills_only for backfills)
        raw = yaml.safe_load(Path(config).read_text())
        raw["schedule"] = {**(raw.get("schedule") or {}), "cron": "none"}
        self.raw_config = raw
        # beside the original, so that its relative paths mean the same
        config = Path(config).parent / f".{Path(config).stem}-cluster-{port}.yml"
        config.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.config = config
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.meta_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": meta.set(
                drivername="postgresql+psycopg_async"
            ).render_as_string(hide_password=False),
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            # a queue of its own: workers of another deployment on the same broker (another test
            # run, a leftover of a killed one) never take this one's tasks
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"seam_cluster_{port}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.meta_url,
            # seam's libraries imported once per worker, as docker-compose.yml configures it
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "pipelines.airflow.celery.CELERY_CONFIG",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "SEAM_CONFIG": str(config),
            "PYTHONPATH": str(ROOT),
            **(extra_env or {}),
        }
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # --- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def airflow(self, *args: str, timeout: float = 300) -> str:
        """Run an `airflow` CLI command against this deployment; raise with its stderr on failure."""
        res = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if res.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} exited {res.returncode}: {res.stderr[-2000:]}")
        return res.stdout

    def _spawn(self, name: str, *args: str, extra: dict[str, str] | None = None) -> None:
        out = (self.logs / f"{name}.log").open("a")
        self._procs[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env={**self.env, **(extra or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _halt(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)

    def backfills_only(self, cron: str = "0 0 * * *") -> None:
        """Give the nightly DAG its daily timetable (a backfill needs one) without scheduled nights.

        The scheduler is restarted with `[scheduler] use_job_schedule = False`: from now on it creates
        no run of its own (neither scheduled nor Asset-triggered), and only triggered and backfilled
        nights run. The DAG processor re-parses the DAG with the new config within seconds; call
        `backfill`, which waits for that.
        """
        self._halt([self._procs.pop("scheduler")])
        self._spawn("scheduler", "scheduler", extra={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"})
        self.raw_config["schedule"] = {**self.raw_config["schedule"], "cron": cron, "catchup": False}
        self.config.write_text(yaml.safe_dump(self.raw_config, sort_keys=False))
        for dag_file in self.dags.glob("*.py"):
            dag_file.touch()

    def backfill(
        self, dag_id: str, first: str, last: str, max_active_runs: int = 1, timeout: float = 180
    ) -> None:
        """`airflow backfill create` as the README writes it, once the DAG's timetable allows backfills."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.airflow(
                    "backfill",
                    "create",
                    "--dag-id",
                    dag_id,
                    "--from-date",
                    first,
                    "--to-date",
                    last,
                    "--max-active-runs",
                    str(max_active_runs),
                )
                return
            except RuntimeError as err:
                # only the DAG processor not having re-parsed the new timetable yet is waited for
                if "non-periodic schedule" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(5)

    def start(self, parse_timeout: float = 240) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.airflow("db", "migrate")
        self.airflow("pools", "set", "source_databases", str(self.pool_slots), "source connections")
        self._spawn("api-server", "api-server", "--port", str(self.port))
        self._spawn("scheduler", "scheduler")
        self._spawn("dag-processor", "dag-processor")
        for w in self.workers:
            self._spawn(
                w,
                "celery",
                "worker",
                "--concurrency",
                str(self.concurrency),
                "-H",
                f"{w}@%h",
                extra={
                    "SEAM_WORKER_NAME": w,
                    # each worker serves its task logs on a port of its own (one host)
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "scripts.local_cluster.worker_hostname",
                },
            )
        deadline = time.monotonic() + parse_timeout
        while "seam_nightly" not in self.airflow("dags", "list", "-o", "plain"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the DAG processor did not parse the DAGs in time; logs: {self.tail()}")
            time.sleep(5)

    def sessions(self) -> dict[str, int]:
        """Each running component's session id (its first process's pid; its children keep it)."""
        return {name: p.pid for name, p in self._procs.items()}

    def stop(self) -> None:
        self._halt(list(self._procs.values()))
        self._procs.clear()

    def tail(self, chars: int = 1500) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace")[-chars:] for p in self.logs.iterdir()}

    # --- runs --------------------------------------------------------------------------------------
    def trigger(self, dag_id: str, night: str) -> None:
        self.airflow("dags", "unpause", dag_id)
        self.airflow("dags", "trigger", dag_id, "--logical-date", f"{night}T00:00:00+00:00")

    def wait(self, dag_id: str, night: str, timeout: float = 900) -> str | None:
        """Poll the run of `night` until it succeeds or fails (or `timeout` passes); its state."""
        deadline = time.monotonic() + timeout
        state = None
        engine = sa.create_engine(self.meta_url)
        try:
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    state = conn.exec_driver_sql(
                        "SELECT state FROM dag_run WHERE dag_id = %(dag)s AND logical_date = %(d)s",
                        {"dag": dag_id, "d": f"{night}T00:00:00+00:00"},
                    ).scalar()
                if state in ("success", "failed"):
                    break
                time.sleep(5)
        finally:
            engine.dispose()
        return state

    def wait_any(self, dag_id: str, timeout: float = 300) -> str | None:
        """Poll until some run of `dag_id` (e.g. one an Asset triggered) succeeds or fails; its state."""
        deadline = time.monotonic() + timeout
        state = None
        engine = sa.create_engine(self.meta_url)
        try:
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    state = conn.exec_driver_sql(
                        "SELECT state FROM dag_run WHERE dag_id = %(dag)s ORDER BY id DESC LIMIT 1",
                        {"dag": dag_id},
                    ).scalar()
                if state in ("success", "failed"):
                    break
                time.sleep(5)
        finally:
            engine.dispose()
        return state

    def run_spans(self, dag_id: str, nights: list[str]) -> list[tuple[Any, Any]]:
        """(start, end) of the run of each night, in the order given."""
        engine = sa.create_engine(self.meta_url)
        try:
            with engine.connect() as conn:
                return [
                    tuple(
                        conn.exec_driver_sql(
                            "SELECT start_date, end_date FROM dag_run WHERE dag_id = %(dag)s AND logical_date = %(d)s",
                            {"dag": dag_id, "d": f"{night}T00:00:00+00:00"},
                        ).one()
                    )
                    for night in nights
                ]
        finally:
            engine.dispose()

    def task_instances(self, dag_id: str) -> list[dict[str, Any]]:
        """Every task instance of `dag_id`: task_id, map_index, hostname, state, start, end, duration."""
        engine = sa.create_engine(self.meta_url)
        try:
            with engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT task_id, map_index, hostname, state, start_date, end_date, duration "
                    "FROM task_instance WHERE dag_id = %(dag)s ORDER BY start_date",
                    {"dag": dag_id},
                ).mappings()
                return [dict(r) for r in rows]
        finally:
            engine.dispose()


def worker_hostname() -> str:
    """Airflow's hostname callable for the workers: the name the cluster gave the worker."""
    return os.environ.get("SEAM_WORKER_NAME") or socket.getfqdn()
