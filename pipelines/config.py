"""Load and validate the project configuration (one YAML file) into frozen objects.

Every error names the offending key.  Secrets never live in the file: a source's
URL comes from `url` (only without a password), `url_env` (an environment variable
holding the URL) or `conn_id` (an Airflow connection, resolved through the optional
adapter `pipelines.airflow.connections`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from pipelines.contracts import DATASETS, IDENTIFIERS, VALUE_SETS
from pipelines.errors import ConfigError
from pipelines.schedule import ScheduleSpec, parse_schedule

Mode = Literal["snapshot", "incremental"]
Severity = Literal["error", "warn"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
READERS = ("auto", "generic", "copy", "mysql_client", "sscursor")
CASTS = ("string", "integer", "number", "date", "timestamp", "boolean")
FORECAST_LEVELS = (80, 95)  # the interval columns of seam_forecasts: yhat_lo_80 ... yhat_hi_95


@dataclass(frozen=True)
class Freshness:
    max_age: timedelta
    severity: Severity = "error"


@dataclass(frozen=True)
class TableSpec:
    """One extracted table (or SQL query) of a source, mapped onto a canonical dataset."""

    name: str  # lake folder name, unique within the source
    dataset: str
    table: str | None
    query: str | None
    mode: Mode
    columns: dict[str, str]  # canonical name -> source name
    cursor: str | None  # canonical name of the cursor column (incremental, freshness)
    as_of: str | None  # canonical column bounding a snapshot to the run's date
    lookback: timedelta
    freshness: Freshness | None
    quarantine: bool = False  # row-level `error` failures go to a quarantine file, the rest continue
    quarantine_max_share: float = 0.05  # more bad rows than this is a broken feed: the gate fails
    suite: str = "default"  # "default" (the packaged suite), "none", or the path of a suite file
    constants: dict[str, Any] = field(default_factory=dict)  # canonical column -> a value for every row
    casts: dict[str, str] = field(default_factory=dict)  # canonical column -> the kind it is cast to
    reader: str = "auto"  # auto | generic | a dialect's fast reader (copy, mysql_client, sscursor)
    streams: int | None = None  # parallel key-range streams where the reader supports them; None: auto


@dataclass(frozen=True)
class SourceSpec:
    name: str
    url: str | None
    url_env: str | None
    conn_id: str | None
    schema: str | None
    tables: tuple[TableSpec, ...]
    # The login that writes seam's results back (least privilege: the one above only reads).
    write_url: str | None = None
    write_url_env: str | None = None
    write_conn_id: str | None = None
    # `results.schema`: where seam's result tables live in this source's database (None: the
    # results login's own default schema or database)
    results_schema: str | None = None

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise ConfigError(f"source {self.name!r} has no table {name!r}")


@dataclass(frozen=True)
class ForecastSpec:
    horizon: int = 28
    freq: Literal["D", "W"] = "D"
    levels: tuple[int, int] = (80, 95)
    history_days: int = 730
    max_fallback_share: float = 0.2
    # the first N target dates after the night keep last night's final forecast (planners' overrides
    # made since do not move them); 0: no fence
    time_fence_days: int = 0
    # a series with less history than this (days since its SKU first sold) is a new product,
    # forecast from its category's established series (pipelines.forecasting.peers)
    new_product_days: int = 28
    # known-future demand drivers the forecast includes (pipelines.forecasting.drivers); the
    # default, resolved on load: promotions when a promotions dataset exists, holidays when
    # anomaly.holidays lists some or anomaly.holiday_country names a calendar
    drivers: tuple[Literal["promotions", "holidays"], ...] = ()


FORECAST_DRIVERS = ("promotions", "holidays")


@dataclass(frozen=True)
class CustomMetric:
    """An anomaly metric of the config's own (`anomaly.custom_metrics`): per entity and day, an
    aggregate of one dataset."""

    name: str
    dataset: str
    date: str  # the column whose day a row counts on
    aggregate: Literal["count", "sum", "mean", "nunique"]
    column: str | None  # what is summed, averaged or counted distinctly (None for count)
    entity: tuple[str, ...]  # the columns that make a series (empty: one series)


@dataclass(frozen=True)
class AnomalySpec:
    metrics: tuple[str, ...] = ("demand", "revenue", "order_count", "tickets", "pipeline_value")
    custom: tuple[CustomMetric, ...] = ()
    window_days: int = 7
    history_days: int = 730
    thresholds: dict[str, float] = field(
        default_factory=lambda: {"critical": 0.99999, "high": 0.9999, "medium": 0.9995}
    )
    holidays: tuple[tuple[str, str], ...] = ()  # (YYYY-MM-DD, name)
    # public holidays of a country (ISO 3166 code) and optionally one of its subdivisions, from
    # the `holidays` package, for every year a night looks at
    holiday_country: str | None = None
    holiday_subdivision: str | None = None

    @property
    def has_holidays(self) -> bool:
        return bool(self.holidays) or self.holiday_country is not None

    def holidays_between(self, start: date, end: date) -> tuple[tuple[str, str], ...]:
        """The holidays from `start` to `end` (inclusive), `(YYYY-MM-DD, name)` by date: the
        listed ones and the country calendar's (a listed day keeps its listed name)."""
        days = {d: name for d, name in self.holidays if start.isoformat() <= d <= end.isoformat()}
        if self.holiday_country is not None:
            import holidays as calendars

            country = calendars.country_holidays(
                self.holiday_country,
                subdiv=self.holiday_subdivision,
                years=range(start.year, end.year + 1),
            )
            for day, name in country.items():
                if start <= day <= end:
                    days.setdefault(day.isoformat(), name)
        return tuple(sorted(days.items()))


@dataclass(frozen=True)
class ResultsSpec:
    ledger: str  # source whose database holds the run ledger and quality results
    forecasts: str
    schema: str | None = None


@dataclass(frozen=True)
class ReportSpec:
    directory: Path
    title: str = "Nightly demand and anomaly report"
    top_anomalies: int = 10
    top_skus: int = 6
    keep_days: int = 90  # nights of reports kept
    data_docs_keep_days: int = 90  # nights of validation results in the Data Docs
    data_docs: bool = True  # render each validation into the Great Expectations Data Docs site


@dataclass(frozen=True)
class RetentionSpec:
    """How long the lake keeps nights (`lake: {path, keep_days, quarantine_keep_days}`)."""

    keep_days: int = 90
    quarantine_keep_days: int = 30


@dataclass(frozen=True)
class QualitySpec:
    """The rules seam checks besides the GX suites (`quality:` in the config), with their defaults."""

    volume_min_ratio: float = 0.5  # a snapshot below this share of the trailing median is half-loaded
    volume_window: int = 7  # snapshots in that median
    future_dates: Literal["error", "warn", "off"] = "error"  # rows dated after the night
    price_max_ratio: float = 20.0  # an order line priced this many times above or below list price...
    price_max_share: float = 0.001  # ...is a unit or currency error; more such lines fail the gate
    price_severity: Literal["error", "warn", "off"] = "error"


@dataclass(frozen=True)
class ScaleSpec:
    """How the night's forecasting and scoring are split into Airflow mapped tasks."""

    shards: int | None = None  # a fixed number of shards, or None: one per `series_per_shard` series
    series_per_shard: int = 2000
    # Processes one forecasting or scoring task uses; None: forecasting uses every core of the
    # worker, scoring one process.  Set 1 when a worker runs several tasks at once (Celery
    # concurrency), so that its task slots share the cores instead of each claiming all of them.
    processes_per_task: int | None = None
    # Task slots of the deployment (Celery workers x concurrency): the shard count is rounded up
    # to a multiple of it, so each round of tasks fills every slot.  None: no rounding.
    worker_slots: int | None = None


@dataclass(frozen=True)
class SmtpSpec:
    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    user_env: str | None = None  # environment variables holding the login; never in the file
    password_env: str | None = None
    timeout: float = 30.0


AlertChannelKind = Literal["email", "slack", "teams"]


@dataclass(frozen=True)
class AlertChannel:
    """One place alerts go: e-mail (through `notifications.smtp`, or an Airflow SMTP connection),
    a Slack incoming webhook or a Microsoft Teams webhook (Airflow connections by id)."""

    channel: AlertChannelKind
    to: tuple[str, ...] = ()  # e-mail only
    conn_id: str | None = None


@dataclass(frozen=True)
class IncidentAlertRule:
    """Where incidents of one severity go (`notifications.incident_alerts`): a channel as for alerts."""

    severity: str
    target: AlertChannel


@dataclass(frozen=True)
class NotifySpec:
    """Who gets the nightly report and the alerts, and through which servers."""

    smtp: SmtpSpec = field(default_factory=SmtpSpec)
    sender: str = "seam@localhost"
    report_to: tuple[str, ...] = ()
    alerts: tuple[AlertChannel, ...] = ()
    incident_alerts: tuple[IncidentAlertRule, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.report_to or self.alerts)


@dataclass(frozen=True)
class UnionSpec:
    """How a dataset fed by several sources is read (`union:` in the config).

    `qualify_keys`: the identifiers (`sku`, `order_id`, ...; see `pipelines.contracts.IDENTIFIERS`)
    whose values are local to each source.  Their columns are read as `<source>:<value>`, so the
    same code in two sources is two entities.  Identifiers not named are global: the same SKU in
    two sources is one product, and its demand adds up.
    """

    qualify_keys: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Config:
    path: Path
    lake: Path
    timezone: str
    sources: tuple[SourceSpec, ...]
    forecast: ForecastSpec
    anomaly: AnomalySpec
    results: ResultsSpec
    report: ReportSpec
    notifications: NotifySpec = field(default_factory=NotifySpec)
    scale: ScaleSpec = field(default_factory=ScaleSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    quality: QualitySpec = field(default_factory=QualitySpec)
    retention: RetentionSpec = field(default_factory=RetentionSpec)
    value_sets: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(VALUE_SETS))
    union: UnionSpec = field(default_factory=UnionSpec)

    def source(self, name: str) -> SourceSpec:
        for s in self.sources:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.sources)
        raise ConfigError(f"unknown source {name!r}; the config defines: {known}")

    def providers(self, dataset: str) -> tuple[tuple[SourceSpec, TableSpec], ...]:
        """Every (source, table) that feeds a dataset, in config order (at most one per source).

        A dataset fed by several sources is read as their union (`pipelines.lake.read_dataset`)."""
        found = tuple((s, t) for s in self.sources for t in s.tables if t.dataset == dataset)
        if not found:
            raise ConfigError(
                f"no table in the config provides dataset {dataset!r}; add one under sources.<name>.tables "
                f"with `dataset: {dataset}`"
            )
        return found

    def provider(self, dataset: str) -> tuple[SourceSpec, TableSpec]:
        """The first (source, table) feeding a dataset: the one whose dataset-wide settings (`suite`,
        `quarantine`) hold for the union.  Readers use `providers`, which gives them all."""
        return self.providers(dataset)[0]

    def results_source(self, dataset: str) -> str:
        """The source whose database receives the results derived from a dataset (its anomaly
        scores): its only source, or `results.forecasts` when several sources feed it."""
        found = self.providers(dataset)
        return found[0][0].name if len(found) == 1 else self.results.forecasts

    def result_databases(self) -> list[str]:
        """The sources whose databases receive results (every source: anomaly scores go to their
        owner)."""
        return sorted({s.name for s in self.sources})

    def anomaly_database(self, metric: str) -> str:
        """The source whose database holds a metric's anomaly scores, incidents and labels (the one
        that feeds its dataset, `results.forecasts` for a union of several; order-line checks go
        with the order lines)."""
        dataset = self.metric_datasets().get(metric)
        if dataset is not None and self.has_dataset(dataset):
            return self.results_source(dataset)
        return self.results_source("order_lines")

    def has_dataset(self, dataset: str) -> bool:
        return any(t.dataset == dataset for s in self.sources for t in s.tables)

    def metric_datasets(self) -> dict[str, str]:
        """Every anomaly metric scored tonight (built-in ones of `anomaly.metrics`, and the custom
        ones) and the dataset it comes from."""
        from pipelines.series import METRIC_DATASETS

        out = {m: METRIC_DATASETS[m] for m in self.anomaly.metrics}
        out.update({c.name: c.dataset for c in self.anomaly.custom})
        return out


def parse_duration(value: Any, key: str) -> timedelta:
    """'36h', '2d', '1w' or a number of hours -> timedelta."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(hours=float(value))
    m = _DURATION.match(str(value))
    if not m:
        raise ConfigError(f"{key}: expected a duration like '36h', '2d' or '1w', got {value!r}")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


class _Reader:
    """Small helper that reads a mapping and reports unknown keys with their full path."""

    def __init__(self, data: Any, key: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(data).__name__}")
        self.data = data
        self.key = key
        self.used: set[str] = set()

    def get(self, name: str, default: Any = None, *, required: bool = False) -> Any:
        self.used.add(name)
        if name not in self.data or self.data[name] is None:
            if required:
                raise ConfigError(f"{self.key}.{name} is required")
            return default
        return self.data[name]

    def sub(self, name: str) -> str:
        return f"{self.key}.{name}"

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"{self.key}: unknown keys {unknown}; allowed: {sorted(self.used)}")


def _name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(f"{key}: {value!r} must be lower-case letters, digits and _ (start with a letter)")
    return value


def _check_url(url: str, key: str) -> None:
    from pipelines.db.engines import parse_url

    parsed = parse_url(url, what=key)
    if parsed.password or any(
        k.lower() in ("password", "passwd", "pwd", "sslpassword") for k in parsed.query
    ):
        raise ConfigError(
            f"{key}: the URL contains a password; never put secrets in the config file. "
            f"Use `url_env: SOME_VARIABLE` (an environment variable holding the URL) or `conn_id`."
        )


def _table(name: str, data: Any, key: str, base: Path) -> TableSpec:
    r = _Reader(data, key)
    dataset = r.get("dataset", name)
    if dataset == "none":  # landed as it is, under the table's own name
        dataset = name
    _name(dataset, r.sub("dataset"))
    canonical = dataset in DATASETS
    table, query = r.get("table"), r.get("query")
    if table and query:
        raise ConfigError(f"{key}: give either `table` or `query`, not both")
    if not table and not query:
        table = name
    mode = r.get("mode", "snapshot")
    if mode not in ("snapshot", "incremental"):
        raise ConfigError(f"{r.sub('mode')}: expected 'snapshot' or 'incremental', got {mode!r}")
    columns = r.get("columns", {})
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise ConfigError(f"{r.sub('columns')}: expected a mapping canonical_name: source_column")
    spec_cols = set(DATASETS[dataset].names) if canonical else set(columns)
    bad = sorted(set(columns) - spec_cols)
    if bad:
        raise ConfigError(
            f"{r.sub('columns')}: {bad} are not columns of dataset {dataset!r}; its columns are "
            f"{sorted(spec_cols)}"
        )
    cursor = r.get("cursor", DATASETS[dataset].cursor if canonical else None)
    if mode == "incremental" and not cursor:
        raise ConfigError(f"{key}: mode 'incremental' needs `cursor` (e.g. updated_at)")
    fresh = r.get("freshness")
    freshness = None
    if fresh is not None:
        fr = _Reader(fresh, r.sub("freshness"))
        sev = fr.get("severity", "error")
        if sev not in ("error", "warn"):
            raise ConfigError(f"{fr.sub('severity')}: expected 'error' or 'warn', got {sev!r}")
        freshness = Freshness(parse_duration(fr.get("max_age", required=True), fr.sub("max_age")), sev)
        fr.done()
        if not cursor:
            raise ConfigError(f"{key}: `freshness` needs a `cursor` column to measure the age of the data")
    suite = r.get("suite", "default" if canonical else "none")  # a landed table: its own suite, if any
    if not isinstance(suite, str) or not suite:
        raise ConfigError(
            f"{r.sub('suite')}: expected 'default', 'none' or the path of a suite file, got {suite!r}"
        )
    if suite not in ("default", "none"):
        suite = str((base / suite).resolve())
    reader = r.get("reader", "auto")
    if reader not in READERS:
        raise ConfigError(f"{r.sub('reader')}: expected one of {list(READERS)}, got {reader!r}")
    streams = r.get("streams", "auto")
    if streams not in ("auto", 1, 2):
        raise ConfigError(f"{r.sub('streams')}: expected 'auto', 1 or 2, got {streams!r}")
    constants = r.get("constants", {})
    if not isinstance(constants, dict) or not all(
        isinstance(v, str | int | float | bool) for v in constants.values()
    ):
        raise ConfigError(
            f"{r.sub('constants')}: expected a mapping canonical_column: value (a string or a number)"
        )
    casts = r.get("casts", {})
    if not isinstance(casts, dict) or not all(v in CASTS for v in casts.values()):
        raise ConfigError(
            f"{r.sub('casts')}: expected a mapping canonical_column: kind, kinds {sorted(CASTS)}"
        )
    for what, names in (("constants", constants), ("casts", casts)):
        unknown = sorted(set(names) - spec_cols) if canonical else []
        if unknown:
            raise ConfigError(
                f"{r.sub(what)}: {unknown} are not columns of dataset {dataset!r}; its columns are {sorted(spec_cols)}"
            )
    both = sorted(set(constants) & set(columns))
    if both:
        raise ConfigError(
            f"{key}: {both} are given both a source column (`columns:`) and a constant; keep one"
        )
    spec = TableSpec(
        name=_name(name, key),
        dataset=dataset,
        table=table,
        query=query,
        mode=mode,
        columns=dict(columns),
        cursor=cursor,
        as_of=r.get("as_of"),
        lookback=parse_duration(r.get("lookback", "0h"), r.sub("lookback")),
        freshness=freshness,
        quarantine=bool(r.get("quarantine", False)),
        quarantine_max_share=float(r.get("quarantine_max_share", 0.05)),
        suite=suite,
        constants=dict(constants),
        casts=dict(casts),
        reader=reader,
        streams=None if streams == "auto" else int(streams),
    )
    r.done()
    if not 0 <= spec.quarantine_max_share <= 1:
        raise ConfigError(
            f"{key}.quarantine_max_share must be between 0 and 1, got {spec.quarantine_max_share}"
        )
    return spec


def _source(name: str, data: Any, key: str, base: Path) -> SourceSpec:
    r = _Reader(data, key)
    url, url_env, conn_id = r.get("url"), r.get("url_env"), r.get("conn_id")
    given = [k for k, v in (("url", url), ("url_env", url_env), ("conn_id", conn_id)) if v]
    if len(given) != 1:
        raise ConfigError(f"{key}: give exactly one of url, url_env, conn_id (got {given or 'none'})")
    if url:
        _check_url(url, r.sub("url"))
        url = _resolve_sqlite(url, base)
    tables_raw = r.get("tables", required=True)
    if not isinstance(tables_raw, dict) or not tables_raw:
        raise ConfigError(f"{r.sub('tables')}: expected a non-empty mapping of table name -> settings")
    tables = tuple(_table(t, v or {}, f"{r.sub('tables')}.{t}", base) for t, v in tables_raw.items())
    write = {k: r.get(k) for k in ("write_url", "write_url_env", "write_conn_id")}
    if sum(1 for v in write.values() if v) > 1:
        raise ConfigError(f"{key}: give at most one of write_url, write_url_env, write_conn_id")
    if write["write_url"]:
        _check_url(write["write_url"], r.sub("write_url"))
        write["write_url"] = _resolve_sqlite(write["write_url"], base)
    spec = SourceSpec(_name(name, key), url, url_env, conn_id, r.get("schema"), tables, **write)
    r.done()
    return spec


def _resolve_sqlite(url: str, base: Path) -> str:
    """Relative file paths in a URL (SQLite) are relative to the config file, not the working directory."""
    from pipelines.db import adapter_for

    return adapter_for(url).relative_to(url, base)


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML configuration at `path`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist; pass --config PATH (see config/demo.yml)")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    return parse_config(raw, base=p.resolve().parent, path=p.resolve())


def parse_config(raw: Any, *, base: Path, path: Path | None = None) -> Config:
    """Validate an already-parsed mapping; relative paths resolve against `base`."""
    r = _Reader(raw, "config")
    sources_raw = r.get("sources", required=True)
    if not isinstance(sources_raw, dict) or not sources_raw:
        raise ConfigError("config.sources: expected a mapping of source name -> settings")
    sources = tuple(_source(n, v, f"sources.{n}", base) for n, v in sources_raw.items())
    _check_unions(sources)

    def source_of(dataset: str, default: str) -> str:
        for s in sources:
            if any(t.dataset == dataset for t in s.tables):
                return s.name
        return default

    first = sources[0].name
    fr = _Reader(r.get("forecast", {}), "forecast")
    forecast = ForecastSpec(
        horizon=_positive_int(fr.get("horizon", 28), "forecast.horizon"),
        freq=_choice(fr.get("freq", "D"), ("D", "W"), "forecast.freq"),
        levels=tuple(fr.get("levels", [80, 95])) if isinstance(fr.get("levels", []), list) else (0, 0),
        history_days=_positive_int(fr.get("history_days", 730), "forecast.history_days"),
        max_fallback_share=float(fr.get("max_fallback_share", 0.2)),
        time_fence_days=_non_negative_int(fr.get("time_fence_days", 0), "forecast.time_fence_days"),
        new_product_days=_positive_int(fr.get("new_product_days", 28), "forecast.new_product_days"),
    )
    drivers_raw = fr.get("drivers")
    fr.done()
    if forecast.new_product_days >= forecast.history_days:
        raise ConfigError(
            f"forecast.new_product_days must be less than forecast.history_days "
            f"({forecast.history_days}), got {forecast.new_product_days}: with it every series would be "
            "forecast as a new product; lower forecast.new_product_days (default 28)"
        )
    if tuple(forecast.levels) != FORECAST_LEVELS:
        raise ConfigError(
            f"forecast.levels: seam_forecasts stores the 80% and 95% intervals (columns yhat_lo_80 ... "
            f"yhat_hi_95), so levels must be {list(FORECAST_LEVELS)}, got {list(forecast.levels)}; remove "
            f"the key or set it to {list(FORECAST_LEVELS)}"
        )
    ar = _Reader(r.get("anomaly", {}), "anomaly")
    defaults = AnomalySpec()
    holidays_raw = ar.get("holidays", {}) or {}
    if not isinstance(holidays_raw, dict):
        raise ConfigError("anomaly.holidays: expected a mapping YYYY-MM-DD: name")
    country, subdivision = _holiday_calendar(ar.get("holiday_country"), ar.get("holiday_subdivision"))
    anomaly = AnomalySpec(
        metrics=tuple(ar.get("metrics", list(defaults.metrics))),
        window_days=_positive_int(ar.get("window_days", 7), "anomaly.window_days"),
        history_days=_positive_int(ar.get("history_days", 730), "anomaly.history_days"),
        thresholds=dict(ar.get("thresholds", defaults.thresholds)),
        holidays=tuple((str(k), str(v)) for k, v in holidays_raw.items()),
        holiday_country=country,
        holiday_subdivision=subdivision,
        custom=_custom_metrics(ar.get("custom_metrics", {}), sources),
    )
    ar.done()
    forecast = replace(forecast, drivers=_forecast_drivers(drivers_raw, sources, anomaly))
    from pipelines.series import METRIC_DATASETS

    unknown = sorted(set(anomaly.metrics) - set(METRIC_DATASETS))
    if unknown:
        raise ConfigError(
            f"anomaly.metrics: unknown metrics {unknown}; known: {sorted(METRIC_DATASETS)} "
            f"(define others under anomaly.custom_metrics)"
        )
    res = _Reader(r.get("results", {}), "results")
    results = ResultsSpec(
        ledger=res.get("ledger", source_of("order_lines", first)),
        forecasts=res.get("forecasts", source_of("order_lines", first)),
        schema=res.get("schema"),
    )
    res.done()
    if results.schema is not None:
        if not isinstance(results.schema, str) or not re.fullmatch(
            r"[A-Za-z_][A-Za-z0-9_]{0,62}", results.schema
        ):
            raise ConfigError(
                f"results.schema: {results.schema!r} is not a plain schema name; use letters, digits "
                f"and _ (e.g. seam), starting with a letter"
            )
        sources = tuple(replace(s, results_schema=results.schema) for s in sources)
    names = {s.name for s in sources}
    for key, value in (("results.ledger", results.ledger), ("results.forecasts", results.forecasts)):
        if value not in names:
            raise ConfigError(f"{key}: {value!r} is not a source; choose one of {sorted(names)}")
    rep = _Reader(r.get("report", {}), "report")
    report = ReportSpec(
        directory=(base / rep.get("directory", "data/reports")).resolve(),
        title=str(rep.get("title", ReportSpec.title)),
        top_anomalies=_positive_int(rep.get("top_anomalies", 10), "report.top_anomalies"),
        top_skus=_positive_int(rep.get("top_skus", 6), "report.top_skus"),
        keep_days=_positive_int(rep.get("keep_days", 90), "report.keep_days"),
        data_docs_keep_days=_positive_int(rep.get("data_docs_keep_days", 90), "report.data_docs_keep_days"),
        data_docs=_flag(rep.get("data_docs", True), "report.data_docs"),
    )
    rep.done()
    lake_raw = r.get("lake", "data/lake")
    if isinstance(lake_raw, dict):
        lk = _Reader(lake_raw, "lake")
        lake_path = lk.get("path", required=True)
        retention = RetentionSpec(
            keep_days=_positive_int(lk.get("keep_days", 90), "lake.keep_days"),
            quarantine_keep_days=_positive_int(
                lk.get("quarantine_keep_days", 30), "lake.quarantine_keep_days"
            ),
        )
        lk.done()
    else:
        lake_path, retention = lake_raw, RetentionSpec()
    notifications = _notifications(r.get("notifications", {}))
    severities = [*anomaly.thresholds, "low"]
    for i, rule in enumerate(notifications.incident_alerts):
        if rule.severity not in severities:
            raise ConfigError(
                f"notifications.incident_alerts[{i}].severity: expected one of {severities} (the names of "
                f"anomaly.thresholds, or low), got {rule.severity!r}"
            )
    sc = _Reader(r.get("scale", {}), "scale")
    shards = sc.get("shards", "auto")
    scale = ScaleSpec(
        shards=None if shards == "auto" else _positive_int(shards, "scale.shards"),
        series_per_shard=_positive_int(sc.get("series_per_shard", 2000), "scale.series_per_shard"),
        processes_per_task=(
            None
            if sc.get("processes_per_task", "auto") == "auto"
            else _positive_int(sc.get("processes_per_task"), "scale.processes_per_task")
        ),
        worker_slots=(
            None
            if sc.get("worker_slots", None) is None
            else _positive_int(sc.get("worker_slots"), "scale.worker_slots")
        ),
    )
    sc.done()
    cfg = Config(
        path=path or base / "config.yml",
        lake=(base / str(lake_path)).resolve(),
        retention=retention,
        timezone=_timezone(r.get("timezone", "UTC")),
        sources=sources,
        forecast=forecast,
        anomaly=anomaly,
        results=results,
        report=report,
        notifications=notifications,
        scale=scale,
        schedule=parse_schedule(r.get("schedule")),
        quality=_quality(r.get("quality", {})),
        value_sets=_value_sets(r.get("value_sets", {})),
        union=_union(r.get("union", {})),
    )
    r.done()
    return cfg


# Settings of a table that hold for its whole dataset: every source of a union must agree on them.
_DATASET_WIDE = ("suite", "quarantine", "quarantine_max_share")


def _check_unions(sources: tuple[SourceSpec, ...]) -> None:
    """A dataset may be fed by several sources (read as their union), by at most one table of each;
    the sources must agree on the dataset-wide settings."""
    first: dict[str, tuple[SourceSpec, TableSpec]] = {}
    for s in sources:
        mine: dict[str, str] = {}
        for t in s.tables:
            if t.dataset in mine:
                raise ConfigError(
                    f"sources.{s.name}.tables.{t.name}: dataset {t.dataset!r} is already provided by "
                    f"sources.{s.name}.tables.{mine[t.dataset]}; a source feeds a dataset with one table "
                    f"(union two tables in its `query:`)"
                )
            mine[t.dataset] = t.name
            if t.dataset not in first:
                first[t.dataset] = (s, t)
                continue
            s0, t0 = first[t.dataset]
            for key in _DATASET_WIDE:
                if getattr(t, key) != getattr(t0, key):
                    raise ConfigError(
                        f"sources.{s.name}.tables.{t.name}.{key}: {getattr(t, key)!r} differs from "
                        f"sources.{s0.name}.tables.{t0.name}.{key} ({getattr(t0, key)!r}); both feed "
                        f"dataset {t.dataset!r}, which is checked as one union: give them the same {key}"
                    )


def _union(raw: Any) -> UnionSpec:
    """`union: {qualify_keys: false | true | [identifier, ...]}`."""
    u = _Reader(raw, "union")
    value = u.get("qualify_keys", False)
    u.done()
    if value is True:
        return UnionSpec(frozenset(IDENTIFIERS))
    if value is False:
        return UnionSpec()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"union.qualify_keys: expected true, false or a list of identifiers, got {value!r}; "
            f"identifiers: {sorted(IDENTIFIERS)}"
        )
    unknown = sorted(set(value) - set(IDENTIFIERS))
    if unknown:
        raise ConfigError(f"union.qualify_keys: unknown identifiers {unknown}; known: {sorted(IDENTIFIERS)}")
    return UnionSpec(frozenset(value))


def _addresses(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and "@" in v for v in value):
        raise ConfigError(f"{key}: expected a list of e-mail addresses, got {value!r}")
    return tuple(value)


def _notifications(raw: Any) -> NotifySpec:
    n = _Reader(raw, "notifications")
    sm = _Reader(n.get("smtp", {}), "notifications.smtp")
    smtp = SmtpSpec(
        host=str(sm.get("host", "localhost")),
        port=_positive_int(sm.get("port", 25), "notifications.smtp.port"),
        starttls=bool(sm.get("starttls", False)),
        ssl=bool(sm.get("ssl", False)),
        user_env=sm.get("user_env"),
        password_env=sm.get("password_env"),
        timeout=float(sm.get("timeout", 30)),
    )
    for k in ("user", "password"):
        if k in sm.data:
            raise ConfigError(f"notifications.smtp.{k}: never put credentials in the file; use {k}_env")
    sm.used.update({"user", "password"})
    sm.done()
    alerts = [
        _alert_channel(c, f"notifications.alerts[{i}]") for i, c in enumerate(n.get("alerts", []) or [])
    ]
    incident_alerts = [
        _incident_alert(c, f"notifications.incident_alerts[{i}]")
        for i, c in enumerate(n.get("incident_alerts", []) or [])
    ]
    legacy = _addresses(n.get("alerts_to", []), "notifications.alerts_to")
    if legacy:
        alerts.append(AlertChannel("email", legacy))
    for key in ("retries", "retry_wait_seconds"):
        if key in n.data:
            raise ConfigError(
                f"notifications.{key}: no longer used; a failed send is retried by the send_report task's "
                f"Airflow retries (or by running `seam send-report` again). Remove the key."
            )
    spec = NotifySpec(
        smtp=smtp,
        sender=str(n.get("sender", "seam@localhost")),
        report_to=_addresses(n.get("report_to", []), "notifications.report_to"),
        alerts=tuple(alerts),
        incident_alerts=tuple(incident_alerts),
    )
    n.done()
    return spec


def _timezone(value: Any) -> str:
    from pipelines.run_context import business_zone

    business_zone(str(value))  # raises ConfigError naming the key
    return str(value)


_AGGREGATES = ("count", "sum", "mean", "nunique")


def _custom_metrics(raw: Any, sources: tuple[SourceSpec, ...]) -> tuple[CustomMetric, ...]:
    """`anomaly.custom_metrics: {name: {dataset, date, value, entity}}`; value is `count` or
    `{sum|mean|nunique: column}`."""
    from pipelines.series import METRIC_DATASETS

    if not isinstance(raw, dict):
        raise ConfigError("anomaly.custom_metrics: expected a mapping name: {dataset, date, value, entity}")
    datasets = {t.dataset for s in sources for t in s.tables}
    out = []
    for name, spec in raw.items():
        key = f"anomaly.custom_metrics.{name}"
        _name(name, key)
        if name in METRIC_DATASETS:
            raise ConfigError(f"{key}: {name!r} is a built-in metric; choose another name")
        m = _Reader(spec, key)
        dataset = m.get("dataset", required=True)
        if dataset not in datasets:
            raise ConfigError(
                f"{key}.dataset: {dataset!r} is not a configured dataset; configured: {sorted(datasets)}"
            )
        value = m.get("value", "count")
        aggregate: Literal["count", "sum", "mean", "nunique"]
        if value == "count":
            aggregate, column = "count", None
        elif isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _AGGREGATES[1:]:
            aggregate, column = next(iter(value.items()))
        else:
            raise ConfigError(
                f"{key}.value: expected count, or one of {{sum|mean|nunique: column}}, got {value!r}"
            )
        entity = m.get("entity", [])
        entity = [entity] if isinstance(entity, str) else entity
        if not isinstance(entity, list) or not all(isinstance(e, str) for e in entity):
            raise ConfigError(f"{key}.entity: expected a column or a list of columns")
        out.append(
            CustomMetric(name, dataset, str(m.get("date", required=True)), aggregate, column, tuple(entity))
        )
        m.done()
    return tuple(out)


def _value_sets(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise ConfigError("value_sets: expected a mapping name: [allowed values]")
    unknown = sorted(set(raw) - set(VALUE_SETS))
    if unknown:
        raise ConfigError(f"value_sets: unknown sets {unknown}; known: {sorted(VALUE_SETS)}")
    out = dict(VALUE_SETS)
    for name, values in raw.items():
        if not isinstance(values, list) or not values or not all(isinstance(v, str | int) for v in values):
            raise ConfigError(f"value_sets.{name}: expected a non-empty list of values, got {values!r}")
        out[name] = tuple(str(v) for v in values)
    return out


def _quality(raw: Any) -> QualitySpec:
    q = _Reader(raw, "quality")
    d = QualitySpec()
    vol = _Reader(q.get("volume", {}), "quality.volume")
    price = _Reader(q.get("prices", {}), "quality.prices")
    spec = QualitySpec(
        volume_min_ratio=_share(vol.get("min_ratio", d.volume_min_ratio), "quality.volume.min_ratio"),
        volume_window=_positive_int(vol.get("window", d.volume_window), "quality.volume.window"),
        future_dates=_choice(
            q.get("future_dates", d.future_dates), ("error", "warn", "off"), "quality.future_dates"
        ),
        price_max_ratio=_above_one(price.get("max_ratio", d.price_max_ratio), "quality.prices.max_ratio"),
        price_max_share=_share(price.get("max_share", d.price_max_share), "quality.prices.max_share"),
        price_severity=_choice(
            price.get("severity", d.price_severity), ("error", "warn", "off"), "quality.prices.severity"
        ),
    )
    for reader in (vol, price, q):
        reader.done()
    return spec


def _share(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{key} must be a number between 0 and 1, got {value!r}")
    return float(value)


def _above_one(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 1:
        raise ConfigError(f"{key} must be a number above 1, got {value!r}")
    return float(value)


def _alert_channel(raw: Any, key: str) -> AlertChannel:
    c = _Reader(raw, key)
    kind = _choice(c.get("channel", required=True), ("email", "slack", "teams"), f"{key}.channel")
    conn_id = c.get("conn_id")
    to = _addresses(c.get("to", []), f"{key}.to") if kind == "email" else ()
    if kind == "email" and not to:
        raise ConfigError(f"{key}: an email channel needs `to`, a list of addresses")
    if kind != "email" and not conn_id:
        raise ConfigError(
            f"{key}: a {kind} channel needs `conn_id`, the Airflow connection holding its webhook "
            f"(e.g. AIRFLOW_CONN_{kind.upper()}_ALERTS); never put the webhook URL in the file"
        )
    c.done()
    return AlertChannel(kind, to, conn_id)


def _incident_alert(raw: Any, key: str) -> IncidentAlertRule:
    if not isinstance(raw, dict) or "severity" not in raw:
        raise ConfigError(
            f"{key}: expected a mapping with `severity` and a channel, e.g. "
            f"{{severity: critical, channel: slack, conn_id: slack_incidents}}"
        )
    severity = raw["severity"]
    if not isinstance(severity, str):
        raise ConfigError(f"{key}.severity: expected a severity name, got {severity!r}")
    return IncidentAlertRule(severity, _alert_channel({k: v for k, v in raw.items() if k != "severity"}, key))


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
    return value


def _non_negative_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key} must be an integer >= 0 (0: none), got {value!r}")
    return value


def _holiday_calendar(country: Any, subdivision: Any) -> tuple[str | None, str | None]:
    """`anomaly.holiday_country` and `anomaly.holiday_subdivision`, checked against the calendars
    the `holidays` package has."""
    if country is None:
        if subdivision is not None:
            raise ConfigError(
                "anomaly.holiday_subdivision needs anomaly.holiday_country (the subdivision's country, "
                "e.g. holiday_country: DE with holiday_subdivision: BY)"
            )
        return None, None
    import holidays as calendars

    supported = calendars.list_supported_countries()
    if not isinstance(country, str) or country.upper() not in supported:
        raise ConfigError(
            f"anomaly.holiday_country: {country!r} is not a country the holidays package has a calendar "
            f"for; use its ISO 3166 code (e.g. DE, US, GB, FR) or remove the key"
        )
    code = country.upper()
    if subdivision is None:
        return code, None
    subdivisions = supported[code]
    # codes (BY) and names (Flemish) alike, in any case; the package's own spelling is kept
    known = {s.casefold(): s for s in subdivisions}
    if not isinstance(subdivision, str) or subdivision.casefold() not in known:
        listed = ", ".join(subdivisions[:40]) or "none"
        raise ConfigError(
            f"anomaly.holiday_subdivision: {subdivision!r} is not a subdivision of {code}; its "
            f"subdivisions are: {listed}"
        )
    return code, known[subdivision.casefold()]


def _forecast_drivers(raw: Any, sources: tuple[SourceSpec, ...], anomaly: AnomalySpec) -> tuple[Any, ...]:
    """`forecast.drivers`, validated; absent: promotions when a source has the promotions
    dataset, holidays when anomaly.holidays lists some or anomaly.holiday_country is set."""
    has_promotions = any(t.dataset == "promotions" for s in sources for t in s.tables)
    if raw is None:
        default = (["promotions"] if has_promotions else []) + (["holidays"] if anomaly.has_holidays else [])
        return tuple(default)
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(
            f"forecast.drivers: expected a list of {list(FORECAST_DRIVERS)} (or [] for none), got {raw!r}"
        )
    unknown = sorted(set(raw) - set(FORECAST_DRIVERS))
    if unknown:
        raise ConfigError(f"forecast.drivers: unknown drivers {unknown}; known: {list(FORECAST_DRIVERS)}")
    if "promotions" in raw and not has_promotions:
        raise ConfigError(
            "forecast.drivers lists 'promotions' but no source table has the promotions dataset; add "
            "one (columns sku, start_date, end_date, discount) or remove 'promotions' from forecast.drivers"
        )
    if "holidays" in raw and not anomaly.has_holidays:
        raise ConfigError(
            "forecast.drivers lists 'holidays' but anomaly.holidays is empty and no "
            "anomaly.holiday_country is set; list the holidays there (YYYY-MM-DD: name), name the "
            "country (e.g. holiday_country: DE) or remove 'holidays' from forecast.drivers"
        )
    return tuple(dict.fromkeys(raw))


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _choice(value: Any, allowed: tuple[str, ...], key: str) -> Any:
    if value not in allowed:
        raise ConfigError(f"{key}: expected one of {list(allowed)}, got {value!r}")
    return value


def source_url(source: SourceSpec) -> str:
    """The SQLAlchemy URL of a source, resolved from the file, the environment or Airflow."""
    if source.url:
        return source.url
    if source.url_env:
        value = os.environ.get(source.url_env)
        if not value:
            raise ConfigError(
                f"sources.{source.name}.url_env: environment variable {source.url_env} is not set; "
                f"export it with the database's SQLAlchemy URL"
            )
        return value
    from pipelines.airflow.connections import connection_url  # imports Airflow lazily

    assert source.conn_id is not None
    return connection_url(source.conn_id)


def results_url(source: SourceSpec, *, in_schema: bool = True) -> str:
    """URL of the login that writes results into this source's database (default: the reading one),
    in `results.schema` when the config sets one (`in_schema=False`: outside it, to create it)."""
    if source.write_url or source.write_url_env or source.write_conn_id:
        url = source_url(
            SourceSpec(
                source.name,
                source.write_url,
                source.write_url_env,
                source.write_conn_id,
                source.schema,
                source.tables,
            )
        )
    else:
        url = source_url(source)
    if not in_schema or source.results_schema is None:
        return url
    from sqlalchemy.engine import make_url

    from pipelines.db.engines import SCHEMA_PARAM, parse_url

    parse_url(url, what=f"source {source.name!r}")  # a malformed URL says so, naming nothing of it
    parsed = make_url(url).update_query_dict({SCHEMA_PARAM: source.results_schema})
    return parsed.render_as_string(hide_password=False)
