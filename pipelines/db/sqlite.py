"""SQLite: WAL journal, a long busy timeout, ISO-text timestamps, file-level migration lock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from pipelines.db.base import Adapter


class SQLiteAdapter(Adapter):
    name: ClassVar[str] = "sqlite"
    writes_results: ClassVar[bool] = True

    def connect_args(self, *, write: bool) -> dict[str, object]:
        del write
        return {"timeout": 60}

    def prepare_engine(self, engine: Engine) -> None:
        sa.event.listen(engine, "connect", _pragmas)

    def create_container(self, url: str) -> None:
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)

    def relative_to(self, url: str, base: Path) -> str:
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:" and not Path(parsed.database).is_absolute():
            return parsed.set(database=str((base / parsed.database).resolve())).render_as_string(
                hide_password=False
            )
        return url

    def create_staging(self, conn: Connection, staging: str, target: str) -> None:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{staging}")
        conn.exec_driver_sql(f"CREATE TEMP TABLE {staging} AS SELECT * FROM {target} WHERE 0")

    def drop_staging(self, conn: Connection, staging: str) -> None:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{staging}")

    def upsert_sql(self, columns: list[str], key: list[str], target: str, staging: str) -> str:
        # SQLite's parser needs a WHERE before ON CONFLICT in INSERT ... SELECT
        return (
            super()
            .upsert_sql(columns, key, target, staging)
            .replace(f"FROM {staging} ON CONFLICT", f"FROM {staging} WHERE true ON CONFLICT")
        )

    def timestamp_param(self, value: datetime) -> object:
        return value.isoformat()

    @contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        # Take the database's write lock now: a concurrent migration waits (busy timeout) until
        # this transaction ends, and then sees the versions this one applied.
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS seam_migration_lock (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("DELETE FROM seam_migration_lock")
        yield


def _pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    # Readers must never see a half-written night; WAL keeps readers and one writer apart.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
