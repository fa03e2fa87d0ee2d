"""Resolve an Airflow connection id to a SQLAlchemy URL."""

from __future__ import annotations

from pipelines.errors import ConfigError

_SCHEMES = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}


def connection_url(conn_id: str) -> str:
    """SQLAlchemy URL of the Airflow connection `conn_id` (e.g. from AIRFLOW_CONN_<ID>)."""
    try:
        from airflow.sdk import Connection
    except ImportError as err:  # pragma: no cover - Airflow is a dependency, but keep the message clear
        raise ConfigError(f"conn_id {conn_id!r} needs Apache Airflow installed") from err
    try:
        conn = Connection.get(conn_id)
    except Exception as err:
        raise ConfigError(
            f"Airflow connection {conn_id!r} is not defined; set AIRFLOW_CONN_{conn_id.upper()} "
            f"or create it with `airflow connections add`"
        ) from err
    from sqlalchemy.engine import URL

    scheme = _SCHEMES.get(conn.conn_type or "", conn.conn_type or "")
    if scheme == "sqlite":
        return f"sqlite:///{conn.host or conn.schema}"
    url = URL.create(
        scheme,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )
    return url.render_as_string(hide_password=False)
