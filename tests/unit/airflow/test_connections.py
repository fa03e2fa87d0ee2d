import pytest

from pipelines.airflow.connections import connection_url
from pipelines.errors import ConfigError


def test_airflow_connection_becomes_a_sqlalchemy_url(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SEAM_CRM", "mysql://reader:p%40ss@db.internal:3306/crm")
    assert connection_url("seam_crm") == "mysql+pymysql://reader:p%40ss@db.internal:3306/crm"


def test_unknown_connection_says_how_to_define_it(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SEAM_NOWHERE", raising=False)
    with pytest.raises(ConfigError, match="set AIRFLOW_CONN_SEAM_NOWHERE"):
        connection_url("seam_nowhere")
