"""The Airflow adapter: the only code of `pipelines` that imports Airflow.

Public functions:
    connection_url(conn_id)   a source's SQLAlchemy URL from an Airflow connection

Everything else here is used by the DAG files (`dags/`): reading the night of a running task,
failing fast on permanent errors, alerting once per failed run.
"""

from pipelines.airflow.connections import connection_url

__all__ = ["connection_url"]
