"""The nightly report: a self-contained HTML page (charts embedded as PNG data URIs).

Everything that comes from source data is escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from pipelines import __version__
from pipelines.config import Config
from pipelines.errors import MissingInputError
from pipelines.inputs import flagged_scores, lines_by_shard
from pipelines.lake import Lake, read_dataset
from pipelines.lake.store import writable
from pipelines.quality import blocked_datasets, read_quality
from pipelines.quality.gate import docs_project
from pipelines.quality.gx import docs_index
from pipelines.report.charts import anomaly_chart, forecast_chart
from pipelines.report.history import ReportHistory, reduce_history
from pipelines.report.outputs import (
    ForecastSummary,
    hierarchy_levels,
    known_ahead_section,
    reduce_forecasts,
    summarize_forecasts,
)
from pipelines.report.problems import build_problems
from pipelines.run_context import RunContext
from pipelines.state import last_loaded_night, read_ledger, summarize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Headline:
    label: str
    value: float
    last_week: float | None
    forecast: float | None

    @property
    def change(self) -> float | None:
        if not self.last_week:
            return None
        return (self.value - self.last_week) / self.last_week


def build_headlines(lines: pd.DataFrame, forecasts: pd.DataFrame | None, run_date: date) -> list[Headline]:
    """Orders, units and revenue of the night versus the same weekday last week (and the forecast),
    from the night's `pipelines.report.history.headline_lines`."""
    day = pd.Timestamp(run_date)
    week_ago = day - pd.Timedelta(days=7)

    def figures(d: pd.Timestamp) -> tuple[float, float, float]:
        x = lines[lines["order_date"] == d]
        return (
            float(x["order_id"].nunique()),
            float(x["quantity"].sum()),
            float((x["quantity"] * x["unit_price"]).sum()),
        )

    now, before = figures(day), figures(week_ago)
    fc_units = None
    if forecasts is not None and len(forecasts):
        prior = forecasts[pd.to_datetime(forecasts["target_date"]) == day]
        fc_units = float(prior["yhat"].sum()) if len(prior) else None
    return [
        Headline("Orders", now[0], before[0], None),
        Headline("Units sold", now[1], before[1], fc_units),
        Headline("Revenue", now[2], before[2], None),
    ]


def build_override_section(notes: dict[str, Any] | None) -> dict[str, Any] | None:
    """The report's planner-overrides section from the adjust step's notes (None: no final
    forecast for the night): totals statistical versus final, each active override with its
    effect, and the overrides skipped as invalid."""
    if notes is None:
        return None
    stat, final = notes["units_statistical"], notes["units_final"]
    active = sorted(notes["active"], key=lambda o: -abs(o.get("units_change") or 0.0))
    return {
        "units_statistical": stat,
        "units_final": final,
        "change": (final - stat) / stat if stat else None,
        "rows_overridden": notes["rows_overridden"],
        "fenced_rows": notes["fenced_rows"],
        "active": [
            {
                **o,
                "what": f"= {o['value']:g} units/day"
                if o.get("value") is not None
                else f"{o['relative_change']:+.0%}",
                "where": o["warehouse"] or "all warehouses",
                "target": _override_target(o),
            }
            for o in active
        ],
        "skipped": [{**o, "target": _override_target(o)} for o in notes["skipped"]],
        "shortfalls": list(notes.get("shortfalls") or []),
    }


def _override_target(o: dict[str, Any]) -> str:
    """What an override covers: its SKU, `category C` or `total` (the warehouse is apart)."""
    if o.get("sku") is not None:
        return str(o["sku"])
    return f"category {o['category']}" if o.get("category") is not None else "total"


def write_report(cfg: Config, ctx: RunContext) -> Path:
    """Render the report of one night into `<report.directory>/<run_date>/report.html`."""
    d = ctx.run_date
    lake = Lake(cfg.lake)
    quality = read_quality(cfg, d)
    products = _optional(lambda: read_dataset(cfg, "products", d)) if cfg.has_dataset("products") else None
    names = dict(zip(products["sku"], products["name"], strict=True)) if products is not None else {}
    category = dict(zip(products["sku"], products["category"], strict=True)) if products is not None else {}
    # tonight's forecasts and scores (or the last good night's), one shard at a time
    forecasts_from = lake.latest_complete_night("forecasts", d)
    forecasts = (
        summarize_forecasts(lake, forecasts_from, top=cfg.report.top_skus, categories=category, names=names)
        if forecasts_from
        else ForecastSummary()
    )
    top = forecasts.top(cfg.report.top_skus)
    previous_fc = None
    if lake.complete_shards("forecasts", d - timedelta(days=1)) is not None:
        previous_fc = reduce_forecasts(
            lake.iter_output("forecasts", d - timedelta(days=1)), categories=category, skus=top, known=False
        )
    anomalies_from = lake.latest_complete_night("anomalies", d)
    anomalies = flagged_scores(lake, anomalies_from) if anomalies_from else pd.DataFrame()

    ledger, locked = read_ledger(cfg, nights=[d])
    problems = build_problems(
        summarize(cfg, ledger, locked - {d}) if len(ledger) else pd.DataFrame(),
        run_date=d,
        results_night=last_loaded_night(cfg, "seam_forecasts"),
    )
    flagged = anomalies[anomalies["metric"] == "demand"] if len(anomalies) else None
    history = _history(
        cfg,
        d,
        skus=top,
        entities=set(flagged["entity"]) if flagged is not None else set(),
        categories=category,
    )
    demand = history.demand
    demand_keys = demand.drop_duplicates("unique_id")
    labels = entity_labels(
        cfg,
        d,
        names,
        dict(
            zip(
                demand_keys["unique_id"],
                zip(demand_keys["sku"], demand_keys["warehouse"], strict=True),
                strict=True,
            )
        ),
    )
    charts: list[dict[str, Any]] = []
    category_charts: list[dict[str, Any]] = []
    reconciled = False  # category bands of their own (the reconcile step) or sums of SKU bands
    if forecasts.rows:
        for sku in top:
            charts.append(
                group_chart(
                    forecasts.sku_rows,
                    previous_fc.sku_rows if previous_fc is not None else None,
                    history.sku_hist,
                    "sku",
                    sku,
                    f"{sku} {names.get(sku, '')} (all warehouses, units/day)",
                    name=names.get(sku, sku),
                )
            )
        hierarchy = hierarchy_levels(lake, forecasts_from) if forecasts_from else None
        if hierarchy is not None:
            category_charts = _category_charts(
                hierarchy,
                hierarchy_levels(lake, d - timedelta(days=1)),
                history.category_hist,
                history.total_hist,
            )
            reconciled = True
        elif products is not None:
            by_cat = forecasts.category_bands
            for cat in sorted(by_cat["category"].unique()):
                category_charts.append(
                    group_chart(
                        by_cat,
                        previous_fc.category_bands if previous_fc is not None else None,
                        history.category_hist,
                        "category",
                        cat,
                        f"{cat} (all SKUs and warehouses, units/day)",
                        name=cat,
                    )
                )
    feedback = _feedback(cfg, d)
    top_anomalies, n_quiet = _top_incidents(
        cfg, anomalies, anomalies_from or d, demand, labels, feedback["labels"] if feedback else None
    )
    context = dict(
        problems=problems,
        title=cfg.report.title,
        run_date=d,
        run_id=ctx.run_id or "cli",
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        headlines=build_headlines(history.headline_lines, previous_fc.by_date if previous_fc else None, d),
        charts=charts,
        category_charts=category_charts,
        reconciled=reconciled,
        anomalies=top_anomalies,
        n_anomalies=int(anomalies["is_anomaly"].sum()) if len(anomalies) else 0,
        n_incidents=len(top_anomalies),
        n_quiet=n_quiet,
        feedback=feedback,
        quality=quality.to_dict("records"),
        checks_failed=int((~quality["success"].astype(bool)).sum()),
        models=forecasts.models,
        model_version=forecasts.model_version,
        n_series=forecasts.series,
        version=__version__,
        forecasts_from=forecasts_from,
        anomalies_from=anomalies_from,
        blocked=blocked_datasets(cfg, d, sorted({t.dataset for s in cfg.sources for t in s.tables})),
        docs=_docs_link(cfg, d),
        value_added=_value_added(cfg),
        known_ahead=known_ahead_section(forecasts.drivers, forecasts.new, cfg.report.top_skus),
        overrides=build_override_section(lake.output_notes("final_forecasts", forecasts_from))
        if forecasts_from
        else None,
    )
    out_dir = cfg.report.directory / d.isoformat()
    path = out_dir / "report.html"
    with writable(cfg.report.directory, "the report (`report.directory` in the config)"):
        out_dir.mkdir(parents=True, exist_ok=True)
        _render(out_dir, context)
    log.info("report run_date=%s path=%s", d, path)
    return path


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _plain(value: Any) -> Any:
    """The text report's finalizer: control characters from the source data are dropped."""
    return _CONTROL.sub("", value) if isinstance(value, str) else value


def _render(out_dir: Path, context: dict[str, Any]) -> None:
    for name, autoescape in (("report.html", True), ("report.txt", False)):
        env = jinja2.Environment(
            loader=jinja2.PackageLoader("pipelines.report", "templates"),
            autoescape=autoescape,
            undefined=jinja2.StrictUndefined,
            finalize=None if autoescape else _plain,
        )
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(env.get_template(f"{name}.j2").render(**context), encoding="utf-8")
        tmp.replace(out_dir / name)


def _feedback(cfg: Config, d: date) -> dict[str, Any] | None:
    """Analysts' labels in force on night `d`: counts, precision from labels, the confirmed problems
    not yet fixed.  None (the report says labels are unavailable) when a results database cannot
    be read: the report goes out whatever failed."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipelines.anomaly.feedback import summarize_labels
    from pipelines.errors import SeamError
    from pipelines.load.feedback import read_all_labels

    try:
        labels = read_all_labels(cfg, d)
    except (SeamError, SQLAlchemyError) as err:
        log.warning("report: analysts' labels unavailable: %s", err)
        return None
    confirmed = labels[labels["label"] == "confirmed"] if len(labels) else labels
    return {
        "labels": labels,
        "summary": summarize_labels(labels) if len(labels) else None,
        "confirmed": [
            {
                "metric": r.metric,
                "entity": r.entity,
                "start": r.start_ds,
                "end": r.end_ds,
                "author": r.author,
                "incident_id": r.incident_id,
            }
            for r in confirmed.itertuples(index=False)
        ],
    }


def _top_incidents(
    cfg: Config,
    anomalies: pd.DataFrame,
    night: date,
    demand: pd.DataFrame,
    labels: Any,
    feedback: pd.DataFrame | None,
) -> tuple[list[dict[str, Any]], int]:
    """Tonight's incidents (consecutive anomalous days of a series), worst first: severity, then peak
    score; each with its peak day's value, band and reason, and a chart for demand series.  Incidents
    analysts labelled expected or false positive are left out (and counted: the second value);
    others carry their label."""
    if not len(anomalies) or not anomalies["is_anomaly"].astype(bool).any():
        return [], 0
    from pipelines.anomaly.feedback import QUIET_LABELS, match_labels
    from pipelines.anomaly.tracking import tonight_incidents

    incidents = tonight_incidents(anomalies, run_date=night, thresholds=cfg.anomaly.thresholds)
    said = (
        match_labels(incidents, feedback)
        if feedback is not None and len(feedback)
        else pd.Series(None, index=incidents.index, dtype=object)
    )
    quiet = said.isin(QUIET_LABELS)
    incidents = incidents.assign(feedback=said)[~quiet]
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    incidents = incidents.assign(rank=incidents["severity"].map(rank).fillna(4))
    incidents = incidents.sort_values(["rank", "peak_score", "end_ds"], ascending=[True, False, False])
    peaks = anomalies.assign(ds=pd.to_datetime(anomalies["ds"])).set_index(["metric", "entity", "ds"])
    out = []
    for inc in incidents.head(cfg.report.top_anomalies).itertuples(index=False):
        peak = peaks.loc[(inc.metric, inc.entity, pd.Timestamp(inc.peak_ds))]
        if isinstance(peak, pd.DataFrame):
            peak = peak.iloc[0]
        img = None
        if inc.metric == "demand":
            s = demand[demand["unique_id"] == inc.entity][["ds", "y"]].tail(60)
            if len(s) and pd.notna(peak["lower_bound"]) and pd.notna(peak["upper_bound"]):
                img = anomaly_chart(
                    s, pd.Timestamp(inc.peak_ds), peak["lower_bound"], peak["upper_bound"], inc.entity
                )
        days = (pd.Timestamp(inc.end_ds) - pd.Timestamp(inc.start_ds)).days + 1
        out.append(
            {
                "severity": inc.severity,
                "metric": inc.metric,
                "entity": inc.entity,
                "label": labels(inc.metric, inc.entity),
                "start": pd.Timestamp(inc.start_ds),
                "end": pd.Timestamp(inc.end_ds),
                "days": days,
                "status": inc.status,
                "ds": pd.Timestamp(inc.peak_ds),
                "value": float(peak["value"]) if pd.notna(peak["value"]) else float("nan"),
                "lower_bound": float(peak["lower_bound"]) if pd.notna(peak["lower_bound"]) else float("nan"),
                "upper_bound": float(peak["upper_bound"]) if pd.notna(peak["upper_bound"]) else float("nan"),
                "score": float(inc.peak_score),
                "reason": peak["reason"],
                "img": img,
                "feedback": inc.feedback if isinstance(inc.feedback, str) else None,
            }
        )
    return out, int(quiet.sum())


def _value_added(cfg: Config) -> list[dict[str, Any]]:
    """Forecast value added by lag week, from `seam_v_forecast_value_added` in the forecasts'
    database (empty when it cannot be read: the report goes out anyway)."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipelines.config import results_url
    from pipelines.db import make_engine
    from pipelines.errors import SeamError
    from pipelines.overrides import build_value_added, read_value_added

    name = cfg.results.forecasts
    try:
        engine = make_engine(results_url(cfg.source(name)), what=f"source {name!r}")
        try:
            table = build_value_added(read_value_added(engine))
        finally:
            engine.dispose()
    except (SeamError, SQLAlchemyError) as err:
        log.warning("report: no forecast value added: %s", str(err)[:300])
        return []
    return [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in table.to_dict("records")]


def _docs_link(cfg: Config, d: date) -> str | None:
    """The Data Docs site's index, relative to the night's report folder (None before any
    validation, or when `report.data_docs` is off)."""
    if not cfg.report.data_docs:
        return None
    index = docs_index(docs_project(cfg))
    if not index.is_file():
        return None
    return os.path.relpath(index, cfg.report.directory / d.isoformat())


def _history(
    cfg: Config, d: date, *, skus: list[Any], entities: set[str], categories: dict[Any, str]
) -> ReportHistory:
    """The report's reduction of the night's order lines, read one shard of SKUs at a time (an
    empty history when tonight's partition is missing: the problems section says why)."""
    try:
        return reduce_history(lines_by_shard(cfg, d), d, skus=skus, entities=entities, categories=categories)
    except MissingInputError as err:
        log.warning("report: %s", err)
        return reduce_history([], d, skus=skus, entities=entities, categories=categories)


def _optional(read: Callable[[], pd.DataFrame]) -> pd.DataFrame | None:
    """A dataset the report can do without: None when tonight's partition is missing (the
    problems section at the top says why)."""
    try:
        return read()
    except MissingInputError as err:
        log.warning("report: %s", err)
        return None


def group_chart(
    forecasts: pd.DataFrame,
    previous: pd.DataFrame | None,
    history: pd.DataFrame,
    column: str,
    value: str,
    title: str,
    *,
    name: str,
) -> dict[str, Any]:
    """Forecast of one SKU or category summed over its series, with the change since last night.

    The bands of a group are the sums of its series' bands: wider than the group's own interval
    would be (errors partly cancel when summed), so they err on the safe side.
    """
    cols = ["yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"]
    f = forecasts[forecasts[column] == value].groupby("target_date", as_index=False)[cols].sum()
    change = None
    if previous is not None and len(previous):
        p = previous[previous[column] == value]
        common = set(pd.to_datetime(p["target_date"])) & set(pd.to_datetime(f["target_date"]))
        if common:
            new = f[pd.to_datetime(f["target_date"]).isin(common)]["yhat"].sum()
            old = p[pd.to_datetime(p["target_date"]).isin(common)]["yhat"].sum()
            change = (new - old) / old if old else None
    return {
        "sku": value,
        "name": name,
        "total": float(f["yhat"].sum()),
        "change": change,
        "img": forecast_chart(history[history[column] == value], f, title),
    }


def _category_charts(
    hierarchy: pd.DataFrame,
    previous: pd.DataFrame | None,
    cat_hist: pd.DataFrame,
    total_hist: pd.DataFrame,
) -> list[dict[str, Any]]:
    """The total and each category, with their own reconciled forecasts and bands (one row per
    target date each: nothing is summed here)."""
    total_hist = total_hist.assign(category="(total)")

    def level(frame: pd.DataFrame | None, name: str) -> pd.DataFrame | None:
        if frame is None:
            return None
        rows = frame[frame["level"] == name]
        return rows.assign(category=rows["category"].fillna("(total)"))

    charts = [
        group_chart(
            level(hierarchy, "total"),
            level(previous, "total"),
            total_hist,
            "category",
            "(total)",
            "All products (total of every category and warehouse, units/day)",
            name="All products",
        )
    ]
    cats = level(hierarchy, "category")
    assert cats is not None
    for cat in sorted(cats["category"].unique()):
        charts.append(
            group_chart(
                cats,
                level(previous, "category"),
                cat_hist,
                "category",
                cat,
                f"{cat} (all SKUs and warehouses, units/day)",
                name=cat,
            )
        )
    return charts


def entity_labels(
    cfg: Config, d: date, product_names: dict[str, str], demand_keys: dict[str, tuple[str, str]]
) -> Any:
    """A function (metric, entity) -> the name a business reader recognises.

    `demand_keys` maps a demand series' entity to its (sku, warehouse).
    """
    accounts: dict[str, str] = {}
    if cfg.has_dataset("accounts"):
        acc = read_dataset(cfg, "accounts", d)
        accounts = dict(zip(acc["account_id"], acc["name"], strict=True))

    def label(metric: str, entity: str) -> str:
        if metric == "demand" and entity in demand_keys:
            sku, wh = demand_keys[entity]
            return f"{product_names.get(sku, sku)} ({sku}) at {wh}"
        if metric in ("tickets", "pipeline_value"):
            return f"{accounts.get(entity, entity)} ({entity})"
        return entity

    return label
