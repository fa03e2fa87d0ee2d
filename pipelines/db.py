"""Database engines, connection checks and dialect helpers.

Every function takes a URL or an Engine.  Error messages show URLs with the
password masked; nothing here ever logs a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from pipelines.errors import ConfigError, SourceUnavailableError

log = logging.getLogger(__name__)

Dialect = Literal["postgresql", "mysql", "sqlite"]


def safe_url(url: str | sa.URL) -> str:
    """The URL with its password masked, fit for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def dialect_of(engine_or_url: Engine | Connection | str) -> Dialect:
    """'postgresql', 'mysql' (MariaDB too) or 'sqlite'; anything else goes the generic way."""
    if isinstance(engine_or_url, Engine | Connection):
        name = engine_or_url.dialect.name
    else:
        name = make_url(engine_or_url).get_backend_name()
    if name in ("mariadb", "mysql"):
        return "mysql"
    return name  # type: ignore[return-value]


def make_engine(url: str) -> Engine:
    """Create an engine for `url`; raises ConfigError for a malformed URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise ConfigError(f"not a valid SQLAlchemy URL: {err}") from None
    kwargs: dict[str, object] = {"pool_pre_ping": True}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        # Readers must never see a half-written night; WAL keeps readers and one writer apart.
        kwargs["connect_args"] = {"timeout": 60}
    elif backend in ("mysql", "mariadb"):
        kwargs["connect_args"] = {"local_infile": True, "connect_timeout": 10}
    elif backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as err:
        raise ConfigError(f"cannot create an engine for {safe_url(url)}: {err}") from None
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def describe_db_error(err: BaseException) -> str:
    """One line saying what the driver said, without the URL or parameters."""
    orig = getattr(err, "orig", None) or err
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return text[:300]


@contextmanager
def connect(engine: Engine, *, what: str) -> Iterator[Connection]:
    """A connection, turning connection failures into `SourceUnavailableError` (retryable)."""
    try:
        conn = engine.connect()
    except (OperationalError, DBAPIError) as err:
        raise SourceUnavailableError(
            f"cannot connect to {what} at {safe_url(engine.url)}: {describe_db_error(err)}. "
            f"Check that the server is running and the credentials in the URL's environment "
            f"variable or Airflow connection are right."
        ) from None
    try:
        yield conn
    finally:
        conn.close()


def quote(conn: Connection | Engine, name: str) -> str:
    """Quote an identifier for the connection's dialect."""
    return conn.dialect.identifier_preparer.quote(name)
