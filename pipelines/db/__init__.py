"""Databases: engines, connections, retries and one adapter per SQL dialect.

Public functions:
    make_engine(url, write=False) -> Engine      the only way seam creates engines
    connect(engine, what=...)                    a connection; unreachable servers raise
                                                 `SourceUnavailableError` (transient)
    create_results_schema(url, schema, what=...) the schema of the result tables
                                                 (`results.schema`), made by `seam migrate`
    adapter_for(engine | conn | url) -> Adapter  the dialect's adapter (PostgreSQL, MariaDB/MySQL,
                                                 SQLite, or the generic one): fast readers, the
                                                 types of a query's result columns, bulk
                                                 insert, replace-night, upsert, timestamps,
                                                 migration lock
    is_transient(err), sqlstate_of, error_number transient or permanent: raised as such, retried
                                                 only by the caller (Airflow, or the CLI's exit 3)
    safe_url, describe_db_error, quote           messages without secrets

Contract: code outside this package never branches on the dialect's name; it asks the adapter.
"""

from pipelines.db.adapters import adapter_for
from pipelines.db.base import Adapter
from pipelines.db.engines import (
    connect,
    create_results_schema,
    describe_db_error,
    make_engine,
    quote,
    safe_url,
)
from pipelines.db.errors import error_number, is_transient, sqlstate_of

__all__ = [
    "Adapter",
    "adapter_for",
    "connect",
    "create_results_schema",
    "describe_db_error",
    "error_number",
    "is_transient",
    "make_engine",
    "quote",
    "safe_url",
    "sqlstate_of",
]
