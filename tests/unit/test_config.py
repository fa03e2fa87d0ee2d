import copy
from pathlib import Path

import pytest
import yaml

from pipelines.config import load_config, parse_config, parse_duration
from pipelines.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _demo() -> dict:
    return yaml.safe_load((ROOT / "config" / "demo.yml").read_text())


def test_demo_config_loads_with_paths_relative_to_the_file():
    cfg = load_config(ROOT / "config" / "demo.yml")
    assert cfg.lake == (ROOT / "data" / "lake").resolve()
    src, table = cfg.provider("order_lines")
    assert (src.name, table.name, table.query is not None) == ("erp", "order_lines", True)
    assert src.url == f"sqlite:///{(ROOT / 'data' / 'demo' / 'erp.db').resolve()}"
    assert cfg.source("crm").table("tickets").table == "support_tickets"
    assert cfg.provider("stockouts")[1].columns == {"warehouse": "warehouse_code", "day": "stockout_date"}


def test_forecast_drivers_default_to_the_promotions_and_holidays_there_are(tmp_path):
    assert load_config(ROOT / "config" / "demo.yml").forecast.drivers == ("promotions", "holidays")
    raw = _demo()
    del raw["sources"]["erp"]["tables"]["promotions"]
    assert parse_config(raw, base=tmp_path).forecast.drivers == ("holidays",)
    raw["forecast"]["drivers"] = []
    assert parse_config(raw, base=tmp_path).forecast.drivers == ()


def test_example_config_for_postgres_and_mariadb_is_valid():
    cfg = load_config(ROOT / "config" / "example-postgres-mariadb.yml")
    assert {s.name for s in cfg.sources} == {"erp", "crm"}
    assert all(s.url is None for s in cfg.sources)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(extra=1), "config: unknown keys ['extra']"),
        (lambda c: c["sources"]["erp"].update(url="postgresql://u:secret@h/db"), "contains a password"),
        (lambda c: c["sources"]["erp"]["tables"]["products"].update(mode="full"), "expected 'snapshot' or"),
        (
            lambda c: c["sources"]["erp"]["tables"]["products"].update(columns={"colour": "x"}),
            "['colour'] are not columns of dataset 'products'",
        ),
        (
            lambda c: c["sources"]["erp"]["tables"]["products"].update(dataset="Not A Name"),
            "dataset: 'Not A Name' must be lower-case letters, digits and _",
        ),
        (lambda c: c["forecast"].update(horizon=0), "forecast.horizon must be an integer >= 1, got 0"),
        (
            lambda c: c["forecast"].update(new_product_days=0),
            "forecast.new_product_days must be an integer >= 1, got 0",
        ),
        (
            lambda c: c["forecast"].update(new_product_days="4 weeks"),
            "forecast.new_product_days must be an integer >= 1, got '4 weeks'",
        ),
        (
            lambda c: c["forecast"].update(new_product_days=800, history_days=730),
            "forecast.new_product_days must be less than forecast.history_days (730), got 800",
        ),
        (
            lambda c: c["forecast"].update(drivers=["promotions", "weather"]),
            "forecast.drivers: unknown drivers ['weather']; known: ['promotions', 'holidays']",
        ),
        (lambda c: c["forecast"].update(drivers="promotions"), "forecast.drivers: expected a list"),
        (
            lambda c: (
                c["sources"]["erp"]["tables"].pop("promotions"),
                c["forecast"].update(drivers=["promotions"]),
            ),
            "forecast.drivers lists 'promotions' but no source table has the promotions dataset",
        ),
        (
            lambda c: (c["anomaly"].pop("holidays"), c["forecast"].update(drivers=["holidays"])),
            "forecast.drivers lists 'holidays' but anomaly.holidays is empty",
        ),
        (
            lambda c: c["anomaly"].update(holiday_country="Germany"),
            "anomaly.holiday_country: 'Germany' is not a country the holidays package has a calendar for; "
            "use its ISO 3166 code (e.g. DE, US, GB, FR)",
        ),
        (
            lambda c: c["anomaly"].update(holiday_country="DE", holiday_subdivision="XY"),
            "anomaly.holiday_subdivision: 'XY' is not a subdivision of DE; its subdivisions are: BB, BE, BW, BY",
        ),
        (
            lambda c: c["anomaly"].update(holiday_subdivision="BY"),
            "anomaly.holiday_subdivision needs anomaly.holiday_country",
        ),
        (
            lambda c: c["report"].update(data_docs="no"),
            "report.data_docs: expected true or false, got 'no'",
        ),
        (
            lambda c: c.update(scale={"processes_per_task": 0}),
            "scale.processes_per_task must be an integer >= 1, got 0",
        ),
        (lambda c: c["sources"]["erp"].update(url_env="X"), "exactly one of url, url_env, conn_id"),
        (lambda c: c["results"].update(ledger="warehouse"), "results.ledger: 'warehouse' is not a source"),
        (
            lambda c: c["sources"]["erp"]["tables"]["order_lines"]["freshness"].update(max_age="soon"),
            "expected a duration like '36h'",
        ),
    ],
)
def test_bad_config_names_the_key(mutate, message, tmp_path):
    raw = _demo()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw, base=tmp_path)
    assert message in str(err.value)


def test_secret_never_echoed_in_the_password_error(tmp_path):
    raw = _demo()
    raw["sources"]["erp"]["url"] = "postgresql://u:hunter2@h/db"
    with pytest.raises(ConfigError) as err:
        parse_config(raw, base=tmp_path)
    assert "hunter2" not in str(err.value)


def test_missing_environment_variable_is_reported(tmp_path, monkeypatch):
    from pipelines.config import source_url

    raw = _demo()
    raw["sources"]["erp"].pop("url")
    raw["sources"]["erp"]["url_env"] = "SEAM_NOT_SET_ANYWHERE"
    monkeypatch.delenv("SEAM_NOT_SET_ANYWHERE", raising=False)
    cfg = parse_config(raw, base=tmp_path)
    with pytest.raises(ConfigError, match="SEAM_NOT_SET_ANYWHERE is not set"):
        source_url(cfg.source("erp"))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("sources: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(("text", "hours"), [("36h", 36), ("2d", 48), ("1w", 168), (12, 12), ("90m", 1.5)])
def test_durations(text, hours):
    assert parse_duration(text, "k").total_seconds() == hours * 3600


def test_processes_per_task_defaults_to_every_core_and_can_be_pinned(tmp_path):
    assert parse_config(_demo(), base=tmp_path).scale.processes_per_task is None
    raw = _demo()
    raw["scale"] = {"processes_per_task": 1, "series_per_shard": 500}
    scale = parse_config(raw, base=tmp_path).scale
    assert (scale.processes_per_task, scale.series_per_shard) == (1, 500)


def test_quality_rules_are_settings_with_defaults(tmp_path):
    base = {"sources": {"erp": {"url": "sqlite:///x.db", "tables": {"products": {}}}}}
    cfg = parse_config(base, base=tmp_path)
    assert (cfg.quality.volume_min_ratio, cfg.quality.volume_window, cfg.quality.future_dates) == (
        0.5,
        7,
        "error",
    )
    cfg = parse_config(
        {
            **base,
            "quality": {
                "volume": {"min_ratio": 0.8, "window": 3},
                "future_dates": "warn",
                "prices": {"max_ratio": 50},
            },
        },
        base=tmp_path,
    )
    assert (cfg.quality.volume_min_ratio, cfg.quality.volume_window, cfg.quality.price_max_ratio) == (
        0.8,
        3,
        50.0,
    )
    with pytest.raises(
        ConfigError, match=r"quality.volume.min_ratio must be a number between 0 and 1, got 5"
    ):
        parse_config({**base, "quality": {"volume": {"min_ratio": 5}}}, base=tmp_path)
    with pytest.raises(
        ConfigError, match=r"quality.future_dates: expected one of \['error', 'warn', 'off'\]"
    ):
        parse_config({**base, "quality": {"future_dates": "maybe"}}, base=tmp_path)


def test_a_table_outside_the_canonical_datasets_is_landed_as_it_is(tmp_path):
    raw = {
        "sources": {
            "erp": {
                "url": "sqlite:///x.db",
                "tables": {
                    "payments": {"columns": {"paid_at": "payment_ts"}},
                    "audit_log": {"dataset": "none", "suite": "my_suite.json"},
                },
            }
        }
    }
    cfg = parse_config(raw, base=tmp_path)
    payments, audit = cfg.source("erp").table("payments"), cfg.source("erp").table("audit_log")
    assert (payments.dataset, payments.suite, payments.cursor) == ("payments", "none", None)
    assert audit.dataset == "audit_log" and audit.suite == str(tmp_path / "my_suite.json")


def _two_erps() -> dict:
    raw = _demo()
    erp = raw["sources"].pop("erp")
    raw["sources"] = {
        "erp_eu": erp,
        "erp_us": {**copy.deepcopy(erp), "url": "sqlite:///us.db"},
        "crm": raw["sources"]["crm"],
    }
    raw["results"] = {"ledger": "erp_eu", "forecasts": "erp_eu"}
    return raw


def test_two_sources_may_feed_one_dataset(tmp_path):
    cfg = parse_config(_two_erps(), base=tmp_path)
    assert [s.name for s, _ in cfg.providers("order_lines")] == ["erp_eu", "erp_us"]
    assert cfg.provider("order_lines")[0].name == "erp_eu"  # the dataset-wide settings' table
    assert cfg.results_source("order_lines") == "erp_eu"  # a union's results: results.forecasts
    assert cfg.results_source("tickets") == "crm"
    assert cfg.union.qualify_keys == frozenset()  # by default, the same key is the same entity


@pytest.mark.parametrize(
    ("value", "qualified"),
    [(False, set()), (["sku", "order_id"], {"sku", "order_id"}), (True, {"sku", "order_id", "warehouse"})],
)
def test_union_qualify_keys(tmp_path, value, qualified):
    cfg = parse_config({**_two_erps(), "union": {"qualify_keys": value}}, base=tmp_path)
    assert qualified <= cfg.union.qualify_keys and (value is not False or not cfg.union.qualify_keys)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["sources"]["erp_us"]["tables"].update(more_lines={"dataset": "order_lines"}),
            "sources.erp_us.tables.more_lines: dataset 'order_lines' is already provided by "
            "sources.erp_us.tables.order_lines",
        ),
        (
            lambda c: c["sources"]["erp_us"].update(
                tables={**c["sources"]["erp_us"]["tables"], "products": {"quarantine": True}}
            ),
            "sources.erp_us.tables.products.quarantine: True differs from sources.erp_eu.tables.products",
        ),
        (lambda c: c.update(union={"qualify_keys": ["colour"]}), "union.qualify_keys: unknown identifiers"),
        (
            lambda c: c.update(union={"qualify_keys": "yes"}),
            "union.qualify_keys: expected true, false or a list",
        ),
        (lambda c: c.update(union={"qualify": True}), "union: unknown keys ['qualify']"),
    ],
)
def test_bad_union_names_the_key(mutate, message, tmp_path):
    raw = _two_erps()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw, base=tmp_path)
    assert message in str(err.value)


def test_a_country_calendar_gives_the_public_holidays_of_every_year_a_night_looks_at(tmp_path):
    from datetime import date

    raw = _demo()
    raw["anomaly"].update(holiday_country="de", holiday_subdivision="by")
    cfg = parse_config(raw, base=tmp_path)
    assert (cfg.anomaly.holiday_country, cfg.anomaly.holiday_subdivision) == ("DE", "BY")
    days = dict(cfg.anomaly.holidays_between(date(2025, 12, 1), date(2026, 1, 31)))
    # the listed days keep their names; the country adds its own, the state its own (Epiphany
    # is a holiday in Bavaria, not in Berlin)
    assert days["2025-12-25"] == "Christmas Day" and days["2026-01-01"] == "New Year's Day"
    assert "2025-12-26" in days and "2026-01-06" in days
    assert all("2025-12-01" <= d <= "2026-01-31" for d in days)
    assert list(days) == sorted(days)
    raw["anomaly"]["holiday_subdivision"] = "BE"
    assert "2026-01-06" not in dict(
        parse_config(raw, base=tmp_path).anomaly.holidays_between(date(2026, 1, 1), date(2026, 1, 31))
    )
    # a subdivision that is a name, not a code, in any case
    raw["anomaly"].update(holiday_country="BE", holiday_subdivision="flemish")
    assert parse_config(raw, base=tmp_path).anomaly.holiday_subdivision == "Flemish"
    raw["anomaly"].update(holiday_country="DE", holiday_subdivision="BY")
    # a country alone is enough for the holidays driver
    del raw["anomaly"]["holidays"]
    del raw["anomaly"]["holiday_subdivision"]
    assert "holidays" in parse_config(raw, base=tmp_path).forecast.drivers
    raw["forecast"]["drivers"] = ["holidays"]
    assert parse_config(raw, base=tmp_path).forecast.drivers == ("holidays",)
