"""Create and upgrade seam's result tables from the numbered SQL files shipped in the package.

The files live in `pipelines/sql/<dialect>/NNN_*.sql` (the repository's top-level `sql/` is the
same folder) and are read with `importlib.resources`, so an installed wheel migrates exactly as
a checkout does.  Files only ever add (CREATE ... IF NOT EXISTS, ADD COLUMN): a migration never
drops analysts' data.  Each applied version is recorded in `seam_schema_migrations`; concurrent
migrations of one database are serialised by the dialect's migration lock.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.db import adapter_for, connect, safe_url
from pipelines.errors import ConfigError

log = logging.getLogger(__name__)
MIGRATIONS_TABLE = "seam_schema_migrations"


def migration_files(dialect: str) -> list[Traversable]:
    """The numbered SQL files of a dialect, in order."""
    folder = files("pipelines") / "sql" / dialect
    if not folder.is_dir():
        raise ConfigError(
            f"seam writes results to PostgreSQL, MariaDB/MySQL or SQLite only; there are no "
            f"migrations for {dialect!r} (choose another source under `results:`)"
        )
    return sorted(
        (f for f in folder.iterdir() if f.name.endswith(".sql") and f.name[:3].isdigit()),
        key=lambda f: f.name,
    )


def _version(f: Traversable) -> str:
    return f.name.removesuffix(".sql")


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def migrate(engine: Engine) -> list[str]:
    """Apply the not-yet-applied migrations of the engine's dialect; returns the versions applied."""
    adapter = adapter_for(engine)
    pending = migration_files(adapter.name)
    applied: list[str] = []
    with connect(engine, what="the results database") as conn, conn.begin(), adapter.migration_lock(conn):
        conn.execute(
            sa.text(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version VARCHAR(64) NOT NULL PRIMARY KEY, "
                "applied_at VARCHAR(40) NOT NULL)"
            )
        )
        done = {r[0] for r in conn.execute(sa.text(f"SELECT version FROM {MIGRATIONS_TABLE}"))}
        for path in pending:
            version = _version(path)
            if version in done:
                continue
            for stmt in _statements(path.read_text(encoding="utf-8")):
                conn.exec_driver_sql(stmt)
            conn.execute(
                sa.text(f"INSERT INTO {MIGRATIONS_TABLE} (version, applied_at) VALUES (:v, :t)"),
                {"v": version, "t": datetime.now(UTC).isoformat()},
            )
            applied.append(version)
            log.info("applied migration %s to %s", version, safe_url(engine.url))
    return applied


def pending_migrations(engine: Engine) -> list[str]:
    """Versions not yet applied to the database (all of them when it was never migrated)."""
    wanted = [_version(f) for f in migration_files(adapter_for(engine).name)]
    with connect(engine, what="the results database") as conn:
        if not sa.inspect(conn).has_table(MIGRATIONS_TABLE):
            return wanted
        done = {r[0] for r in conn.execute(sa.text(f"SELECT version FROM {MIGRATIONS_TABLE}"))}
    return [v for v in wanted if v not in done]


def require_migrated(engine: Engine, *, what: str) -> None:
    """Raise `ConfigError` naming the fix when the database lacks migrations of this version."""
    missing = pending_migrations(engine)
    if missing:
        raise ConfigError(
            f"the result tables of {what} ({safe_url(engine.url)}) are not up to date: migrations "
            f"{missing} are not applied; run `seam migrate --config FILE` (the nightly DAG's first task does)"
        )
