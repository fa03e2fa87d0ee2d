"""Choose the dialect adapter once, from an engine, a connection or a URL."""

from __future__ import annotations

from sqlalchemy.engine import Connection, Engine, make_url

from pipelines.db.base import Adapter
from pipelines.db.mysql import MySQLAdapter
from pipelines.db.postgresql import PostgresAdapter
from pipelines.db.sqlite import SQLiteAdapter

_ADAPTERS: dict[str, Adapter] = {
    "postgresql": PostgresAdapter(),
    "mysql": MySQLAdapter(),
    "mariadb": MySQLAdapter(),
    "sqlite": SQLiteAdapter(),
}
_GENERIC = Adapter()


def adapter_for_backend(backend: str) -> Adapter:
    """The adapter of a SQLAlchemy backend name; the generic one for any other database."""
    return _ADAPTERS.get(backend, _GENERIC)


def adapter_for(target: Engine | Connection | str) -> Adapter:
    """The adapter of an engine, a connection or a URL."""
    if isinstance(target, Engine | Connection):
        return adapter_for_backend(target.dialect.name)
    return adapter_for_backend(make_url(target).get_backend_name())
