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


_SECRET_PARAMS = ("password", "passwd", "pwd", "secret", "token", "sslpassword")


def safe_url(url: str | sa.URL) -> str:
    """The URL with its password (and any password-like query parameter) masked, for logs and errors."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<a URL that cannot be parsed>"
    query = {k: ("***" if k.lower() in _SECRET_PARAMS else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def parse_url(url: str, *, what: str) -> sa.URL:
    """Parse a SQLAlchemy URL; a failure, or a password with an unencoded `@` or `:` that made the
    parser split it wrongly, is a ConfigError that shows nothing of the URL."""
    fix = (
        f"the URL for {what} cannot be parsed; percent-encode special characters in the password "
        f"(@ as %40, : as %3A, / as %2F) and check the form dialect+driver://user:password@host:port/database"
    )
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(fix) from None
    if any(ch in (parsed.host or "") for ch in "@:/") or "@" in (parsed.username or ""):
        raise ConfigError(fix)
    return parsed


# A URL query parameter naming the schema of seam's result tables (`results.schema`); `make_engine`
# takes it out and asks the dialect's adapter how its login gets there.
SCHEMA_PARAM = "seam_schema"


def make_engine(url: str, *, write: bool = False, what: str = "a database") -> Engine:
    """Create an engine for `url`; raises ConfigError for a malformed URL (naming nothing of it).

    `write` marks the login that writes results back: only it gets the bulk-load options
    (MariaDB's LOCAL INFILE), a reading login never does.
    """
    parsed = parse_url(url, what=what)
    adapter = adapter_for_backend(parsed.get_backend_name())
    schema = parsed.query.get(SCHEMA_PARAM)
    if isinstance(schema, str):  # results.schema (pipelines.config.results_url)
        parsed = adapter.in_schema(parsed.difference_update_query([SCHEMA_PARAM]), schema)
    kwargs: dict[str, object] = {"pool_pre_ping": True, "connect_args": adapter.connect_args(write=write)}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError, ValueError) as err:
        raise ConfigError(f"cannot create an engine for {safe_url(url)}: {type(err).__name__}") from None
    adapter.prepare_engine(engine)
    return engine


def create_results_schema(url: str, schema: str, *, what: str) -> None:
    """Create the schema of seam's result tables (`results.schema`) through the results login of
    `url` (outside that schema), if it does not exist.  A refusal is a ConfigError saying how to
    create it instead; a lost connection is transient."""
    from pipelines.db.errors import is_transient

    engine = make_engine(url, write=True, what=what)
    adapter = adapter_for_backend(engine.dialect.name)
    try:
        adapter.create_schema(engine, schema)
    except DBAPIError as err:
        if is_transient(err):
            raise SourceUnavailableError(
                f"cannot connect to {what} at {safe_url(engine.url)}: {describe_db_error(err)}"
            ) from None
        raise ConfigError(
            f"results.schema: cannot create {schema!r} in {what}: {describe_db_error(err)}; create it "
            f"as the database's owner and give the results login its use (docs/grants.md), or let "
            f"the results login create it"
        ) from None
    finally:
        engine.dispose()


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
