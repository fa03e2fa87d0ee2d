"""Engines and connections: created once per URL through the dialect's adapter.

Every function takes a URL or an Engine.  Error messages show URLs with the password masked;
nothing here ever logs a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from pipelines.db.adapters import adapter_for_backend
from pipelines.errors import ConfigError, SourceUnavailableError

log = logging.getLogger(__name__)


def safe_url(url: str | sa.URL) -> str:
    """The URL with its password masked, fit for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def make_engine(url: str, *, write: bool = False) -> Engine:
    """Create an engine for `url`; raises ConfigError for a malformed URL.

    `write` marks the login that writes results back: only it gets the bulk-load options
    (MariaDB's LOCAL INFILE), a reading login never does.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise ConfigError(f"not a valid SQLAlchemy URL: {err}") from None
    adapter = adapter_for_backend(parsed.get_backend_name())
    kwargs: dict[str, object] = {"pool_pre_ping": True, "connect_args": adapter.connect_args(write=write)}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as err:
        raise ConfigError(f"cannot create an engine for {safe_url(url)}: {err}") from None
    adapter.prepare_engine(engine)
    return engine


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
