"""What anyone can type into an ERP or CRM, or into a URL, stops nothing and leaks nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.config import parse_config
from pipelines.db.engines import make_engine, parse_url, safe_url
from pipelines.errors import ConfigError
from pipelines.report.charts import anomaly_chart, forecast_chart

SECRET = "Pw9Xy"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://seam:{SECRET}@w0rd@127.0.0.1:5432/erp",  # an unencoded @ in the password
        f"mysql+pymysql://seam:{SECRET}@x@127.0.0.1:3306/crm",
        f"postgresql+psycopg://seam:{SECRET}@127.0.0.1:port/erp",  # a port that is not a number
    ],
)
def test_an_unparsable_url_is_named_without_any_of_it(url):
    with pytest.raises(ConfigError) as err:
        make_engine(url, what="source 'erp'")
    text = str(err.value)
    assert "the URL for source 'erp' cannot be parsed; percent-encode special characters" in text
    assert SECRET not in text and "127.0.0.1" not in text


def test_a_password_in_the_query_string_is_refused_like_one_in_the_url(tmp_path):
    raw = {
        "sources": {
            "erp": {"url": "postgresql+psycopg://seam@db/erp?password=SECRET", "tables": {"products": {}}}
        }
    }
    with pytest.raises(ConfigError, match="the URL contains a password") as err:
        parse_config(raw, base=tmp_path)
    assert "SECRET" not in str(err.value)
    assert "SECRET" not in safe_url("postgresql+psycopg://seam@db/erp?password=SECRET&sslmode=require")
    assert parse_url("postgresql+psycopg://seam:p%40ss@db/erp", what="x").password == "p@ss"  # encoded: fine


@pytest.mark.parametrize(
    "name", ["Bundle 2x$5_$10", "Gift card $25 or $50", "a^b \\frac{1}{2} $x$", "50% off"]
)
def test_charts_show_names_as_text_not_mathtext(name):
    days = pd.date_range("2026-10-01", periods=60)
    history = pd.DataFrame({"ds": days, "y": range(60)})
    fc = pd.DataFrame(
        {
            "target_date": pd.date_range("2026-12-01", periods=5),
            **{c: 1.0 for c in ("yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95")},
        }
    )
    assert forecast_chart(history, fc, name).startswith("data:image/png;base64,")
    assert anomaly_chart(history, days[10], 0.0, 5.0, name).startswith("data:image/png;base64,")
