"""The nightly steps, as plain functions of (config, run context).

The Airflow DAG and the `seam` CLI call exactly these.  Each step reads what the
previous one wrote to the lake, writes its own output there (atomically), records
itself in the run ledger, and can run twice for the same night with the same result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import __version__
from pipelines.accuracy import accuracy_window, load_forecast_accuracy
from pipelines.config import Config, results_url
from pipelines.datasets import read_dataset
from pipelines.db import make_engine
from pipelines.errors import DataError, StepSkipped
from pipelines.extract import ExtractResult, extract_table
from pipelines.lake import output_path, read_output, shard_path, write_frame
from pipelines.ledger import StepRecord, record_step
from pipelines.load import LoadResult, load_batch, migrate
from pipelines.results import RESULT_TABLES
from pipelines.series import METRIC_DATASETS, build_demand_series, build_metric_series
from pipelines.sharding import plan_shards, planned_shards, sku_filter
from pipelines.validate import CheckResult, blocked_datasets, read_quality, validate_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """Which night, and which attempt of it (Airflow's try number; 1 from the CLI)."""

    run_date: date
    attempt: int = 1
    run_id: str | None = None


@dataclass
class StepOutcome:
    rows_in: int | None = None
    rows_out: int | None = None
    checksum: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@contextmanager
def tracked(cfg: Config, ctx: RunContext, step: str) -> Iterator[StepOutcome]:
    """Record a step in the run ledger: running, then success or failed with the error."""
    engine = make_engine(results_url(cfg.source(cfg.results.ledger)))
    outcome = StepOutcome()
    started = datetime.now(UTC)

    def record(status: str, *, checksum: str | None = None, error: str | None = None) -> None:
        finished = None if status == "running" else datetime.now(UTC)
        record_step(
            engine,
            StepRecord(
                ctx.run_date,
                step,
                ctx.attempt,
                ctx.run_id,
                started,
                finished,
                status,
                outcome.rows_in,
                outcome.rows_out,
                checksum,
                error,
            ),
        )

    try:
        migrate(engine)
        record("running")
        yield outcome
    except Exception as err:
        record("skipped" if isinstance(err, StepSkipped) else "failed", error=f"{type(err).__name__}: {err}")
        raise
    else:
        record("success", checksum=outcome.checksum)
    finally:
        engine.dispose()


def model_version(cfg: Config) -> str:
    """Package version plus a hash of the model settings, stored with every forecast."""
    digest = hashlib.sha256(repr((cfg.forecast, cfg.anomaly)).encode()).hexdigest()[:8]
    return f"seam-{__version__}+{digest}"


def require_datasets(cfg: Config, ctx: RunContext, step: str, datasets: list[str]) -> None:
    """Raise `StepSkipped` if a dataset the step needs failed an `error` gate tonight."""
    blocked = blocked_datasets(cfg, ctx.run_date, [d for d in datasets if cfg.has_dataset(d)])
    if blocked:
        reasons = "; ".join(r for rs in blocked.values() for r in rs)
        raise StepSkipped(
            f"{step} skipped for {ctx.run_date}: {sorted(blocked)} failed their quality gate ({reasons}); "
            f"the last good night's results stay in place and are reported as stale"
        )


# --- steps -------------------------------------------------------------------------------------
def run_extract(
    cfg: Config, ctx: RunContext, *, source: str | None = None, table: str | None = None
) -> list[ExtractResult]:
    """Extract every configured table (or one source / one table) for the night."""
    name = "extract" if source is None else f"extract:{source}.{table}" if table else f"extract:{source}"
    with tracked(cfg, ctx, name) as out:
        results = [
            extract_table(cfg, s.name, t.name, ctx.run_date)
            for s in cfg.sources
            if source in (None, s.name)
            for t in s.tables
            if table in (None, t.name)
        ]
        if not results:
            raise DataError(f"no configured table matches source={source!r} table={table!r}")
        out.rows_out = sum(r.rows for r in results)
    return results


def run_validate(cfg: Config, ctx: RunContext, *, dataset: str | None = None) -> list[CheckResult]:
    """Run the quality checks of one dataset (or all); raises QualityGateError on an `error` failure."""
    datasets = [dataset] if dataset else sorted({t.dataset for s in cfg.sources for t in s.tables})
    results: list[CheckResult] = []
    failures: list[Exception] = []
    with tracked(cfg, ctx, f"validate:{dataset}" if dataset else "validate") as out:
        for ds in datasets:
            try:
                results += validate_dataset(cfg, ds, ctx.run_date)
            except DataError as err:
                failures.append(err)
        out.rows_out = len(results)
        if failures:
            if len(failures) == 1:
                raise failures[0]
            raise type(failures[0])("; ".join(str(f) for f in failures))
    return results


def run_plan(cfg: Config, ctx: RunContext) -> list[int]:
    """Decide tonight's shards of forecasting and scoring (what the DAG maps over)."""
    with tracked(cfg, ctx, "plan") as out:
        shards = plan_shards(cfg, ctx.run_date)
        out.rows_out = shards
    return list(range(shards))


def run_forecast(cfg: Config, ctx: RunContext, *, shard: int | None = None) -> Path:
    """Forecast demand per SKU x warehouse from the night's order lines: one shard, or all of them."""
    if shard is None:
        for k in run_plan(cfg, ctx):
            run_forecast(cfg, ctx, shard=k)
        return output_path(cfg.lake, "forecasts", ctx.run_date)
    # heavy (statsmodels): import when used
    from pipelines.forecasting import build_options
    from pipelines.forecasting import run_forecast as run_models

    with tracked(cfg, ctx, f"forecast:{shard}") as out:
        require_datasets(cfg, ctx, "forecast", ["order_lines", "stockouts"])
        t0 = time.perf_counter()
        shards = planned_shards(cfg, ctx.run_date, "forecasts")
        mine = sku_filter(cfg, ctx.run_date, shard, shards)
        frame = pd.DataFrame(columns=list(RESULT_TABLES["seam_forecasts"].columns))
        n_series = 0
        if mine is not None:
            lines = read_dataset(cfg, "order_lines", ctx.run_date, filters=mine)
            stockouts = (
                read_dataset(cfg, "stockouts", ctx.run_date, filters=mine)
                if cfg.has_dataset("stockouts")
                else None
            )
            series = build_demand_series(
                lines, stockouts, end=ctx.run_date, history_days=cfg.forecast.history_days
            )
            n_series = int(series["unique_id"].nunique())
            history = series[["unique_id", "ds", "y", "censored"]]
            freq = "D"
            if cfg.forecast.freq == "W":
                history = (
                    history.set_index("ds")
                    .groupby("unique_id")
                    .resample("W-SUN")
                    .agg({"y": "sum", "censored": "any"})
                    .reset_index()
                )
                freq = "W-SUN"
            options = build_options(freq)
            if cfg.scale.processes_per_task is not None:
                options = replace(options, n_jobs=cfg.scale.processes_per_task)
            fc = run_models(history, cfg.forecast.horizon, freq, cfg.forecast.levels, options)
            frame = build_forecast_rows(fc, cfg, ctx.run_date)
            out.rows_in = len(series)
        share = float(frame["fallback"].mean()) if len(frame) else 0.0
        path = write_frame(
            shard_path(cfg.lake, "forecasts", ctx.run_date, shard),
            frame,
            manifest={"series": n_series, "fallback_share": share, "shard": shard, "shards": shards},
        )
        out.rows_out = len(frame)
        log.info(
            "forecast run_date=%s shard=%d/%d series=%d rows_out=%d fallback_share=%.3f seconds=%.1f",
            ctx.run_date,
            shard,
            shards,
            n_series,
            len(frame),
            share,
            time.perf_counter() - t0,
        )
        if share > cfg.forecast.max_fallback_share:
            raise DataError(
                f"forecast: {share:.1%} of series fell back to a simpler model, more than "
                f"forecast.max_fallback_share={cfg.forecast.max_fallback_share:.1%}; see `explanation` in {path}"
            )
    return path


def build_forecast_rows(fc: pd.DataFrame, cfg: Config, run_date: date) -> pd.DataFrame:
    """Forecaster output -> rows of `seam_forecasts` (entity keys, bounds, model, explanation)."""
    lo, hi = cfg.forecast.levels
    parts = fc["unique_id"].str.split("|", n=1, expand=True)
    explain_cols = [
        c
        for c in ("weights", "backtest_error", "fallback_reason", "level", "trend", "seasonal")
        if c in fc.columns
    ]
    explanation = (
        fc[explain_cols].apply(
            lambda r: json.dumps(
                {k: (None if pd.isna(v) else v) if not isinstance(v, str) else v for k, v in r.items()},
                default=str,
            ),
            axis=1,
        )
        if explain_cols
        else None
    )
    return pd.DataFrame(
        {
            "run_date": pd.Timestamp(run_date),
            "sku": parts[0],
            "warehouse": parts[1],
            "target_date": pd.to_datetime(fc["ds"]),
            "yhat": fc["yhat"].astype(float),
            "yhat_lo_80": fc[f"yhat_lo_{lo}"].astype(float),
            "yhat_hi_80": fc[f"yhat_hi_{lo}"].astype(float),
            "yhat_lo_95": fc[f"yhat_lo_{hi}"].astype(float),
            "yhat_hi_95": fc[f"yhat_hi_{hi}"].astype(float),
            "model": fc["model"].astype(str),
            "model_version": model_version(cfg),
            "explanation": explanation,
            "fallback": fc["fallback"].astype(bool) if "fallback" in fc else False,
            "training_snapshot_date": pd.Timestamp(run_date),
        }
    )


def _events(cfg: Config, run_date: date, series: pd.DataFrame) -> pd.DataFrame:
    """Known events: promotions and stock-outs (on the demand series) and holidays (all series)."""
    rows = [
        pd.DataFrame(
            {
                "unique_id": None,
                "ds": pd.to_datetime([d for d, _ in cfg.anomaly.holidays]),
                "event": [f"holiday: {n}" for _, n in cfg.anomaly.holidays],
            }
        )
    ]
    if cfg.has_dataset("promotions"):
        promos = read_dataset(cfg, "promotions", run_date)
        demand_ids = series.loc[series["metric"] == "demand", "unique_id"].drop_duplicates()
        sku_of = demand_ids.str.split(":", n=1).str[1].str.split("|", n=1).str[0]
        ids = pd.DataFrame({"unique_id": demand_ids.to_numpy(), "sku": sku_of.to_numpy()})
        for p in promos.itertuples(index=False):
            days = pd.date_range(p.start_date, p.end_date, freq="D")
            for_sku = ids.loc[ids["sku"] == p.sku, "unique_id"].to_numpy()
            if len(for_sku) and len(days):
                rows.append(
                    pd.DataFrame(
                        {
                            "unique_id": pd.Series(for_sku).repeat(len(days)).to_numpy(),
                            "ds": pd.DatetimeIndex(list(days) * len(for_sku)),
                            "event": "promotion",
                        }
                    )
                )
    if cfg.has_dataset("stockouts"):
        # Demand on a stock-out day is censored: low sales there are expected, not an anomaly.
        so = read_dataset(cfg, "stockouts", run_date)
        rows.append(
            pd.DataFrame(
                {
                    "unique_id": "demand:" + so["sku"].astype(str) + "|" + so["warehouse"].astype(str),
                    "ds": pd.to_datetime(so["day"]).dt.normalize(),
                    "event": "stock-out",
                }
            )
        )
    ev = pd.concat(rows, ignore_index=True)
    return ev.drop_duplicates(["unique_id", "ds"])


def run_score(cfg: Config, ctx: RunContext, *, shard: int | None = None) -> Path:
    """Score the metric series and order lines for anomalies over the night's window.

    Demand series are split by SKU shard; the small per-warehouse and per-account metrics and
    the order-line checks are scored by shard 0.
    """
    if shard is None:
        for k in run_plan(cfg, ctx):
            run_score(cfg, ctx, shard=k)
        return output_path(cfg.lake, "anomalies", ctx.run_date)
    from pipelines.anomaly import ScoreOptions, score, score_records

    with tracked(cfg, ctx, f"score:{shard}") as out:
        usable = [
            m
            for m in cfg.anomaly.metrics
            if cfg.has_dataset(METRIC_DATASETS[m])
            and not blocked_datasets(cfg, ctx.run_date, [METRIC_DATASETS[m]])
        ]
        if not usable:
            require_datasets(cfg, ctx, "score", [METRIC_DATASETS[m] for m in cfg.anomaly.metrics])
        t0 = time.perf_counter()
        shards = planned_shards(cfg, ctx.run_date, "anomalies")
        window_start = pd.Timestamp(ctx.run_date) - pd.Timedelta(days=cfg.anomaly.window_days)
        frames, cache = [], {}
        mine = sku_filter(cfg, ctx.run_date, shard, shards) if "demand" in usable else None
        if mine is not None:
            lines = read_dataset(cfg, "order_lines", ctx.run_date, filters=mine)
            frames.append(
                build_metric_series("demand", lines, end=ctx.run_date, history_days=cfg.anomaly.history_days)
            )
        for metric in (m for m in usable if m != "demand" and shard == 0):
            dataset = METRIC_DATASETS[metric]
            if dataset not in cache:
                cache[dataset] = read_dataset(cfg, dataset, ctx.run_date)
            frames.append(
                build_metric_series(
                    metric, cache[dataset], end=ctx.run_date, history_days=cfg.anomaly.history_days
                )
            )
        parts = []
        n_series = 0
        if frames:
            series = pd.concat(frames, ignore_index=True)
            n_series = int(series["unique_id"].nunique())
            scored = score(
                series[["unique_id", "ds", "y"]],
                events=_events(cfg, ctx.run_date, series),
                options=ScoreOptions(
                    only_after=window_start,
                    end=pd.Timestamp(ctx.run_date),
                    n_jobs=cfg.scale.processes_per_task or ScoreOptions.n_jobs,
                ),
            )
            parts.append(build_score_rows(scored, cfg, ctx.run_date))
            out.rows_in = len(series)
        if shard == 0 and "order_lines" in {METRIC_DATASETS[m] for m in usable}:
            lines = cache.get("order_lines")
            if lines is None:
                lines = read_dataset(cfg, "order_lines", ctx.run_date)
            rec = score_records(lines)
            rec = rec[(rec["is_anomaly"]) & (pd.to_datetime(rec["order_date"]) > window_start)]
            parts.append(build_record_rows(rec, cfg, ctx.run_date))
        parts = [p for p in parts if len(p)]
        frame = (
            pd.concat(parts, ignore_index=True)
            if parts
            else pd.DataFrame(columns=list(RESULT_TABLES["seam_anomaly_scores"].columns))
        )
        path = write_frame(
            shard_path(cfg.lake, "anomalies", ctx.run_date, shard),
            frame,
            manifest={"series": n_series, "shard": shard, "shards": shards},
        )
        out.rows_out = len(frame)
        log.info(
            "score run_date=%s shard=%d/%d series=%d rows_out=%d anomalies=%d seconds=%.1f",
            ctx.run_date,
            shard,
            shards,
            n_series,
            len(frame),
            int(frame["is_anomaly"].astype(bool).sum()),
            time.perf_counter() - t0,
        )
    return path


def severity_of(scores: pd.Series, thresholds: dict[str, float], flagged: pd.Series) -> pd.Series:
    """Severity label per score from the configured thresholds (None when not an anomaly)."""
    sev = pd.Series([None] * len(scores), index=scores.index, dtype=object)
    for name, cut in sorted(thresholds.items(), key=lambda kv: kv[1]):
        sev[(scores >= cut) & flagged] = name
    sev[flagged & sev.isna()] = "low"
    return sev


def build_score_rows(scored: pd.DataFrame, cfg: Config, run_date: date) -> pd.DataFrame:
    metric_entity = scored["unique_id"].str.split(":", n=1, expand=True)
    flagged = scored["is_anomaly"].astype(bool)
    return pd.DataFrame(
        {
            "run_date": pd.Timestamp(run_date),
            "metric": metric_entity[0],
            "entity": metric_entity[1],
            "ds": scored["ds"],
            "value": scored["y"],
            "expected": scored["expected"],
            "lower_bound": scored["lower"],
            "upper_bound": scored["upper"],
            "score": scored["score"].astype(float),
            "is_anomaly": flagged,
            "severity": severity_of(scored["score"], cfg.anomaly.thresholds, flagged),
            "kind": scored["kind"],
            "reason": scored["reason"],
            "model": scored["model"].astype(str),
        }
    )


def build_record_rows(rec: pd.DataFrame, cfg: Config, run_date: date) -> pd.DataFrame:
    if rec.empty:
        return pd.DataFrame()
    flagged = rec["is_anomaly"].astype(bool)
    return pd.DataFrame(
        {
            "run_date": pd.Timestamp(run_date),
            "metric": "order_line_" + rec["field"].astype(str),
            "entity": rec["record_id"].astype(str),
            "ds": pd.to_datetime(rec["order_date"]),
            "value": rec["value"].astype(float),
            "expected": rec["expected"].astype(float),
            "lower_bound": rec["lower"].astype(float),
            "upper_bound": rec["upper"].astype(float),
            "score": rec["score"].astype(float),
            "is_anomaly": flagged,
            "severity": severity_of(rec["score"], cfg.anomaly.thresholds, flagged),
            "kind": rec["field"].map(lambda f: "duplicate" if f == "duplicate" else "record"),
            "reason": rec["reason"],
            "model": "records",
        }
    ).drop_duplicates(["metric", "entity", "ds"])


def run_load(cfg: Config, ctx: RunContext) -> list[LoadResult]:
    """Write the night's forecasts, anomaly scores, quality results, actuals and accuracy back, exactly once.

    Forecast accuracy (`seam_forecast_accuracy`) is computed after the forecasts and actuals are
    loaded, from the archive in the forecasts' database, for the target dates of tonight's actuals.
    """
    with tracked(cfg, ctx, "load") as out:
        d = ctx.run_date
        batches: list[tuple[str, str, pd.DataFrame]] = []
        forecasts = read_output(cfg.lake, "forecasts", d)
        if forecasts is not None:
            batches.append((cfg.results.forecasts, "seam_forecasts", forecasts))
        scores = read_output(cfg.lake, "anomalies", d)
        if scores is not None:
            owner = {m: cfg.provider(ds)[0].name for m, ds in METRIC_DATASETS.items() if cfg.has_dataset(ds)}
            source_of = scores["metric"].map(lambda m: owner.get(m, cfg.provider("order_lines")[0].name))
            for src in sorted({s.name for s in cfg.sources}):
                batches.append((src, "seam_anomaly_scores", scores[source_of == src]))
        quality = read_quality(cfg, d)
        if len(quality):
            batches.append((cfg.results.ledger, "seam_data_quality_results", quality))
        demand: tuple[pd.DataFrame, pd.DataFrame] | None = None
        if not blocked_datasets(cfg, d, ["order_lines"]):
            demand = build_actuals(cfg, d)
            batches.append((cfg.results.forecasts, "seam_actuals", demand[0]))
        results = []
        for src, table, frame in batches:
            engine = make_engine(results_url(cfg.source(src)))
            try:
                migrate(engine)
                results.append(load_batch(engine, table, d, frame))
            finally:
                engine.dispose()
        scored = load_forecast_accuracy(cfg, d, *demand) if demand is not None else None
        if scored is not None:
            results.append(scored)
        out.rows_in = sum(len(f) for _, _, f in batches)
        out.rows_out = sum(r.rows for r in results if not r.skipped)
        out.checksum = hashlib.sha256("".join(r.checksum for r in results).encode()).hexdigest()
    return results


def build_actuals(cfg: Config, run_date: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observed net demand for the accuracy of the forecasts: `(actuals, history)`.

    `actuals` (rows of `seam_actuals`): every day of the last horizon + 7 days (a week of late
    corrections) per SKU x warehouse that sold before, 0 on days without sales.  `history`
    (`sku, warehouse, ds, y`): the `forecast.history_days` before that window, the MASE scale.
    """
    lines = read_dataset(cfg, "order_lines", run_date)
    start, _ = accuracy_window(run_date, cfg.forecast.horizon)
    days = (run_date - start).days + 1
    series = build_demand_series(lines, None, end=run_date, history_days=cfg.forecast.history_days + days)
    in_window = series["ds"] >= pd.Timestamp(start)
    window = series[in_window]
    actuals = pd.DataFrame(
        {
            "sku": window["sku"],
            "warehouse": window["warehouse"],
            "ds": window["ds"],
            "actual": window["y"].astype(float),
        }
    ).reset_index(drop=True)
    history = series.loc[~in_window, ["sku", "warehouse", "ds", "y"]].reset_index(drop=True)
    return actuals, history


def run_report(cfg: Config, ctx: RunContext) -> Path:
    """Render the night's HTML report; returns its path."""
    from pipelines.report import write_report

    with tracked(cfg, ctx, "report") as out:
        path = write_report(cfg, ctx)
        out.rows_out = 1
    return path


def run_send_report(cfg: Config, ctx: RunContext) -> bool:
    """E-mail the night's report to `notifications.report_to`; False when no recipients are set."""
    from pipelines.notify import build_report_message, send_message

    spec = cfg.notifications
    if not spec.report_to:
        log.info("send_report: no notifications.report_to in the config, nothing to send")
        return False
    with tracked(cfg, ctx, "send_report") as out:
        folder = cfg.report.directory / ctx.run_date.isoformat()
        if not (folder / "report.html").is_file():
            raise DataError(
                f"no report for {ctx.run_date} in {folder}; run `seam report --date {ctx.run_date}` first"
            )
        msg = build_report_message(
            (folder / "report.html").read_text(encoding="utf-8"),
            (folder / "report.txt").read_text(encoding="utf-8"),
            subject=f"{cfg.report.title}: {ctx.run_date}",
            sender=spec.sender,
            to=spec.report_to,
        )
        send_message(spec, msg)
        out.rows_out = len(spec.report_to)
    return True


def run_all(cfg: Config, ctx: RunContext) -> Path:
    """All steps in order (the CLI's `seam run`); returns the report's path."""
    run_extract(cfg, ctx)
    gate: DataError | None = None
    try:
        run_validate(cfg, ctx)
    except DataError as err:  # like the DAG: the steps that need a failed dataset skip themselves
        gate = err
    shards = run_plan(cfg, ctx)  # planned once for both steps
    for step in (run_forecast, run_score):
        try:
            for shard in shards:
                step(cfg, ctx, shard=shard)
        except StepSkipped as skipped:
            log.warning("%s", skipped)
    run_load(cfg, ctx)
    path = run_report(cfg, ctx)
    run_send_report(cfg, ctx)  # after everything is loaded: a failed send undoes nothing
    if gate is not None:
        raise gate
    return path
