"""The nightly steps, as plain functions of (config, run context): orchestration only.

The Airflow DAG and the `seam` CLI call exactly these.  Each `run_*` reads its inputs through the
owners (`lake`, `state`), calls its stage, writes through the owners and records itself in the
run ledger; every step can run twice for the same night with the same result.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines import __version__
from pipelines.config import AlertChannel, Config, results_url
from pipelines.db import create_results_schema, make_engine
from pipelines.errors import (
    ConfigError,
    DataError,
    DeliveryError,
    MissingInputError,
    RunFailedError,
    SeamError,
    SourceUnavailableError,
    StepSkipped,
)
from pipelines.extract import ExtractResult, extract_table
from pipelines.inputs import (
    customer_fits,
    forecast_categories,
    forecast_freq,
    forecast_inputs,
    forecast_options,
    optional_dataset,
    panel_figures,
    previous_final,
    product_categories,
    require_usable,
    score_inputs,
    shard_history,
)
from pipelines.lake import Lake
from pipelines.lake.migrate import migrate_layout
from pipelines.launches import hold_until_launch
from pipelines.load import LoadResult
from pipelines.load.feedback import LabelTarget, read_all_labels
from pipelines.load.night import FINAL_OUTPUT, HIERARCHY_OUTPUT, forecasts_checksum, load_night, night_results
from pipelines.quality import CheckResult, validate_dataset
from pipelines.results import RESULT_TABLES
from pipelines.run_context import RunContext
from pipelines.sharding import partition_of, plan_shards, sku_filter
from pipelines.state import (
    Holder,
    StepRecord,
    acquire_night,
    migrate,
    next_attempt,
    record_cutoffs,
    record_partitions,
    record_step,
    release_night,
    require_migrated,
    shard_plan,
    write_forecast_drivers,
    write_forecast_peers,
    write_forecast_week,
    write_record_cutoffs,
)

log = logging.getLogger(__name__)


@dataclass
class StepOutcome:
    rows_in: int | None = None
    rows_out: int | None = None
    checksum: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@contextmanager
def night_lock(cfg: Config, ctx: RunContext) -> Iterator[None]:
    """Hold the night for this run while the block runs (re-entrant: a lock this run already holds
    is kept, and released by whoever took it)."""
    engine = make_engine(
        results_url(cfg.source(cfg.results.ledger)), write=True, what=f"source {cfg.results.ledger!r}"
    )
    holder = Holder.here(ctx.run_id)
    try:
        require_migrated(engine, what=f"source {cfg.results.ledger!r}")
        taken = acquire_night(engine, ctx.run_date, holder)
        migrate_layout(Lake(cfg.lake))  # a lake written before 0.2: moved into the current layout once
        try:
            yield
        finally:
            if taken:
                release_night(engine, ctx.run_date, holder)
    finally:
        engine.dispose()


@contextmanager
def tracked(cfg: Config, ctx: RunContext, step: str) -> Iterator[StepOutcome]:
    """Run a step inside the night's lock and record it in the run ledger: running, then success,
    skipped or failed with the error.  Each try of a step is a new attempt; all are kept."""
    outcome = StepOutcome()
    with night_lock(cfg, ctx):
        engine = make_engine(
            results_url(cfg.source(cfg.results.ledger)), write=True, what=f"source {cfg.results.ledger!r}"
        )
        started = datetime.now(UTC)
        attempt = next_attempt(engine, ctx.run_date, step)

        def record(status: str, *, checksum: str | None = None, error: str | None = None) -> None:
            finished = None if status == "running" else datetime.now(UTC)
            record_step(
                engine,
                StepRecord(
                    ctx.run_date,
                    step,
                    attempt,
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
            record("running")
            try:
                yield outcome
            except Exception as err:
                status = "skipped" if isinstance(err, StepSkipped) else "failed"
                record(status, error=f"{type(err).__name__}: {err}")
                raise
            record("success", checksum=outcome.checksum)
        finally:
            engine.dispose()


def model_version(cfg: Config) -> str:
    """Package version plus a hash of the model settings, stored with every forecast."""
    digest = hashlib.sha256(repr((cfg.forecast, cfg.anomaly)).encode()).hexdigest()[:8]
    return f"seam-{__version__}+{digest}"


def require_datasets(cfg: Config, ctx: RunContext, step: str, datasets: list[str]) -> None:
    """Raise `StepSkipped` if a dataset the step needs failed an `error` gate tonight."""
    require_usable(cfg, ctx.run_date, step, datasets)


def run_label(
    cfg: Config, target: LabelTarget, *, label: str, author: str, note: str | None, valid_from: date
) -> tuple[str, int]:
    """Write one analyst label into the database that holds its incident or series; returns
    (source, feedback_id).  Bad input raises `FeedbackError` and writes nothing."""
    from pipelines.anomaly.feedback import FeedbackError, check_label
    from pipelines.load.feedback import find_incident, write_label

    check_label(label, author)
    target.check()
    if target.incident_id is not None:
        holders = []
        for name in cfg.result_databases():
            engine = make_engine(results_url(cfg.source(name)), what=f"source {name!r}")
            try:
                if find_incident(engine, target.incident_id) is not None:
                    holders.append(name)
            finally:
                engine.dispose()
        if not holders:
            raise FeedbackError(
                f"unknown incident {target.incident_id!r}: no results database of {cfg.path} holds it; "
                f"list open incidents with SELECT incident_id, metric, entity FROM seam_v_open_incidents"
            )
        source = holders[0]
    else:
        metric = str(target.metric)
        if metric not in cfg.metric_datasets() and not metric.startswith("order_line_"):
            raise FeedbackError(
                f"unknown metric {metric!r}; the config scores {sorted(cfg.metric_datasets())} "
                f"(and order_line_* checks)"
            )
        source = cfg.anomaly_database(metric)
    engine = make_engine(results_url(cfg.source(source)), write=True, what=f"source {source!r}")
    try:
        require_migrated(engine, what=f"source {source!r}")
        return source, write_label(
            engine, target, label=label, author=author, note=note, valid_from=valid_from
        )
    finally:
        engine.dispose()


# --- steps -------------------------------------------------------------------------------------
def run_migrate(cfg: Config) -> dict[str, list[str]]:
    """Create or upgrade the result tables in every database that receives results."""
    applied = {}
    for name in cfg.result_databases():
        if cfg.results.schema is not None:
            create_results_schema(
                results_url(cfg.source(name), in_schema=False), cfg.results.schema, what=f"source {name!r}"
            )
        engine = make_engine(results_url(cfg.source(name)), write=True, what=f"source {name!r}")
        try:
            applied[name] = migrate(engine)
        finally:
            engine.dispose()
    return applied


def run_extract(
    cfg: Config, ctx: RunContext, *, source: str | None = None, table: str | None = None
) -> list[ExtractResult]:
    """Extract every configured table (or one source / one table) for the night."""
    chosen = [
        (s.name, t.name)
        for s in cfg.sources
        if source in (None, s.name)
        for t in s.tables
        if table in (None, t.name)
    ]
    if not chosen:
        raise ConfigError(
            f"no configured table matches --source {source} --table {table}; the config has "
            f"{[f'{s.name}.{t.name}' for s in cfg.sources for t in s.tables]}"
        )
    results = []
    for src, tbl in chosen:  # one ledger step per table, as the DAG's mapped tasks record them
        with tracked(cfg, ctx, f"extract:{src}.{tbl}") as out:
            results.append(extract_table(cfg, src, tbl, ctx.run_date))
            out.rows_out = results[-1].rows
    return results


def run_validate(cfg: Config, ctx: RunContext, *, dataset: str | None = None) -> list[CheckResult]:
    """Run the quality checks of one dataset (or each, one ledger step per dataset); raises
    QualityGateError naming every dataset whose `error` checks failed."""
    datasets = [dataset] if dataset else sorted({t.dataset for s in cfg.sources for t in s.tables})
    results: list[CheckResult] = []
    failures: list[DataError] = []
    for ds in datasets:
        try:
            with tracked(cfg, ctx, f"validate:{ds}") as out:
                found = validate_dataset(cfg, ds, ctx.run_date)
                out.rows_out = len(found)
            results += found
        except DataError as err:
            failures.append(err)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise type(failures[0])("; ".join(str(f) for f in failures))
    return results


def run_plan(cfg: Config, ctx: RunContext) -> list[int]:
    """Decide tonight's shards of forecasting and scoring (what the DAG maps over).

    With more than one shard, the plan also records the business's week (closed days, the pooled
    weekly profile), the new products' peers (per category and warehouse) and the demand drivers'
    effects (promotions, holidays), estimated from every shard's series, one shard in memory at a
    time: each forecasting shard uses them, so a series' forecast does not depend on how the night
    is sharded.
    """
    from pipelines.anomaly.records import HistoryCutoffs

    with tracked(cfg, ctx, "plan") as out:
        # what a customer's history can hold (the score shards send no older line), counted in
        # the same pass over the order lines as the series' costs
        records = "order_lines" in cfg.metric_datasets().values() and cfg.has_dataset("order_lines")
        after = window_start(cfg, ctx)
        cutoffs = HistoryCutoffs(pd.Timestamp(after)) if records else None
        shards = plan_shards(cfg, ctx.run_date, cutoffs=cutoffs)
        lake = Lake(cfg.lake)
        if shards > 1:
            week, peers, drivers = panel_figures(cfg, ctx.run_date, shards)
            write_forecast_week(lake, ctx.run_date, week)
            write_forecast_peers(lake, ctx.run_date, peers)
            write_forecast_drivers(lake, ctx.run_date, drivers)
        if shards > 1 and cutoffs is not None:
            counted = cutoffs.finish()
            partitions = record_partitions(lake, ctx.run_date)
            counted["customer_part"] = partition_of(counted["customer_id"], partitions)
            write_record_cutoffs(lake, ctx.run_date, after, counted, partitions)
        out.rows_out = shards
    return list(range(shards))


def window_start(cfg: Config, ctx: RunContext) -> date:
    """The night's anomaly window starts after this day (`pipelines.anomaly.nightly.window_start_of`)."""
    return ctx.run_date - timedelta(days=cfg.anomaly.window_days)


def run_forecast(cfg: Config, ctx: RunContext, *, shard: int | None = None) -> Path:
    """Forecast demand per SKU x warehouse from the night's order lines: one shard, or all of them."""
    lake = Lake(cfg.lake)
    if shard is None:
        for k in run_plan(cfg, ctx):
            run_forecast(cfg, ctx, shard=k)
        return lake.output_partition("forecasts", ctx.run_date)
    # heavy (statsmodels): import when used
    from pipelines.forecasting import run_forecast as forecast_series
    from pipelines.forecasting.rows import build_forecast_rows

    with tracked(cfg, ctx, f"forecast:{shard}") as out:
        require_datasets(cfg, ctx, "forecast", ["order_lines", "stockouts"])
        t0 = time.perf_counter()
        shards = shard_plan(lake, "forecasts", ctx.run_date)
        frame = pd.DataFrame(columns=list(RESULT_TABLES["seam_forecasts"].columns))
        n_series = 0
        fin = forecast_inputs(cfg, ctx.run_date, shard, shards)
        if fin is not None:
            n_series = int(fin.series["unique_id"].nunique())
            fc = forecast_series(
                fin.history,
                cfg.forecast.horizon,
                fin.freq,
                cfg.forecast.levels,
                fin.options,
                fin.week,
                fin.peers,
                fin.drivers,
            )
            frame = build_forecast_rows(
                hold_until_launch(fc, fin.launches, fin.freq),
                fin.series,
                run_date=ctx.run_date,
                model_version=model_version(cfg),
                levels=cfg.forecast.levels,
            )
            out.rows_in = len(fin.series)
        share = float(frame["fallback"].mean()) if len(frame) else 0.0
        manifest = {"series": n_series, "fallback_share": share, "shard": shard, "shards": shards}
        path = lake.write_shard("forecasts", ctx.run_date, shard, frame, manifest=manifest)
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


def run_reconcile(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    """Coherent forecasts of every level of the product hierarchy (total, category, category x
    warehouse, SKU, SKU x warehouse) from tonight's forecasts: each aggregate forecast from its summed
    history, every level reconciled (`pipelines.forecasting.hierarchy`).  Writes the lake output
    `forecast_hierarchy`, which the load writes to `seam_forecasts_hierarchy`; returns its notes."""
    from pipelines.forecasting.hierarchy import (
        BOTTOM_COLUMNS,
        HierarchyShards,
        HierarchySpec,
        forecast_hierarchy_by_shard,
    )

    lake = Lake(cfg.lake)
    d = ctx.run_date
    with tracked(cfg, ctx, "reconcile") as out:
        require_datasets(cfg, ctx, "reconcile", ["order_lines", "stockouts"])
        shards = lake.complete_shards("forecasts", d)
        if shards is None:
            raise MissingInputError(
                f"no complete forecasts for {d} in {lake.output_partition('forecasts', d)}; "
                f"run `seam forecast --date {d}` first"
            )
        # the forecasts and the history one shard of SKUs at a time, the SKU nodes' history and
        # forecasts in the spill between passes; the rows written a block at a time
        read = [0]

        def forecasts(k: int) -> pd.DataFrame:
            part = lake.read_shard("forecasts", d, k, columns=BOTTOM_COLUMNS)
            read[0] += len(part)
            return part

        def history(k: int) -> pd.DataFrame:
            mine = sku_filter(cfg, d, k, shards)
            return shard_history(cfg, d, mine)[0] if mine is not None else pd.DataFrame()

        freq = forecast_freq(cfg)
        spec = HierarchySpec(
            cfg.forecast.freq, cfg.forecast.horizon, tuple(cfg.forecast.levels), forecast_options(cfg, freq)
        )
        night = {"run_date": pd.Timestamp(d), "model_version": model_version(cfg)}
        with lake.spill() as spill:
            result = forecast_hierarchy_by_shard(
                HierarchyShards(shards, forecasts, history),
                forecast_categories(cfg, ctx.run_date),
                spec,
                spill,
            )
            read[0] = 0  # the forecasts' rows once, not once per pass
            notes = {**result.notes, "statistical_checksum": forecasts_checksum(lake, d, spill)}
            typed = result.typed.assign(**night) if result.typed is not None else None
            written = [0]

            def rows() -> Iterator[pd.DataFrame]:
                for part in result.parts():
                    written[0] += len(part)
                    yield part.assign(**night)

            lake.write_output(HIERARCHY_OUTPUT, d, rows(), notes=notes, typed_as=typed)
        out.rows_in, out.rows_out = read[0], written[0]
    return notes


def run_adjust(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    """The night's final forecast: tonight's statistical forecasts with the planners' overrides in
    force (read from `seam_forecast_overrides` in the forecasts' database and checked again), frozen
    inside `forecast.time_fence_days`.  Writes the lake output `final_forecasts`, which the load
    writes to `seam_forecasts`; returns its notes (totals, active and skipped overrides)."""
    from pipelines.overrides import NightAdjustment, adjust_forecasts, describe_override, read_overrides

    lake = Lake(cfg.lake)
    d = ctx.run_date
    with tracked(cfg, ctx, "adjust") as out:
        shards = lake.complete_shards("forecasts", d)
        if shards is None:
            raise MissingInputError(
                f"no complete forecasts for {d} in {lake.output_partition('forecasts', d)}; "
                f"run `seam forecast --date {d}` first"
            )
        name = cfg.results.forecasts
        engine = make_engine(results_url(cfg.source(name)), what=f"source {name!r}")
        try:
            stored = read_overrides(engine)
        finally:
            engine.dispose()
        categories = None
        if stored["category"].notna().any():  # category overrides need the products' categories
            categories = product_categories(cfg, d, without="category overrides are skipped")
        before = lake.latest_complete_night(FINAL_OUTPUT, d - timedelta(days=1))
        series = pd.concat(  # the night's series, a shard's pairs at a time
            [
                part[["sku", "warehouse"]].drop_duplicates()
                for part in lake.iter_output("forecasts", d, columns=["sku", "warehouse"])
            ],
            ignore_index=True,
        )
        night = NightAdjustment(
            stored, series, run_date=d, fence_days=cfg.forecast.time_fence_days, categories=categories
        )
        for row in night.skipped.itertuples(index=False):
            log.warning(
                "data quality: override %s (by %s) skipped tonight: %s",
                describe_override(row),
                row.author,
                row.problem,
            )
        if night.by_parts:  # series overrides only: one shard of the forecasts at a time
            lake.write_shard_plan(FINAL_OUTPUT, d, shards)
            rows_in = rows_out = 0
            for k in range(shards):
                part = lake.read_shard("forecasts", d, k)
                previous = (
                    previous_final(lake, FINAL_OUTPUT, before, part["sku"].unique().tolist())
                    if before
                    else None
                )
                final = night.apply(part, previous)
                lake.write_shard(FINAL_OUTPUT, d, k, final, manifest={"shard": k, "shards": shards})
                rows_in, rows_out = rows_in + len(part), rows_out + len(final)
            notes = night.notes()
            active, shortfalls = len(night.valid), []
        else:  # an aggregate override shares its target across shards: the night whole
            forecasts = lake.read_output("forecasts", d)
            assert forecasts is not None
            adjusted = adjust_forecasts(
                forecasts,
                stored,
                previous_final(lake, FINAL_OUTPUT, before, None) if before else None,
                run_date=d,
                fence_days=cfg.forecast.time_fence_days,
                categories=categories,
            )
            notes = adjusted.notes()
            active, shortfalls = len(adjusted.active), list(adjusted.shortfalls)
            rows_in, rows_out = len(forecasts), len(adjusted.final)
        for line in shortfalls:
            log.warning("data quality: %s", line)
        with lake.spill() as spill:
            notes["statistical_checksum"] = forecasts_checksum(lake, d, spill)
        notes["previous_night"] = before.isoformat() if before else None
        if night.by_parts:
            lake.annotate_shard_plan(FINAL_OUTPUT, d, "notes", notes)
        else:
            lake.write_output(FINAL_OUTPUT, d, adjusted.final, notes=notes)
        out.rows_in, out.rows_out = rows_in, rows_out
        log.info(
            "adjust run_date=%s shards=%s overrides_active=%d overrides_skipped=%d rows_overridden=%d "
            "fenced_rows=%d units_statistical=%.1f units_final=%.1f",
            d,
            shards if night.by_parts else "whole",
            active,
            len(night.skipped),
            notes["rows_overridden"],
            notes["fenced_rows"],
            notes["units_statistical"],
            notes["units_final"],
        )
    return notes


def run_score(cfg: Config, ctx: RunContext, *, shard: int | None = None) -> Path:
    """Score the metric series for anomalies over the night's window, and fit the shard's order
    lines against their SKUs' history (what `run_score_records` finishes).

    Demand series are split by SKU shard; the small per-warehouse and per-account metrics are
    scored by shard 0 (the order lines they aggregate read one shard at a time).  Without `shard`,
    every shard and then every partition of `run_score_records`.
    """
    lake = Lake(cfg.lake)
    if shard is None:
        parts = run_plan(cfg, ctx)
        for k in parts:
            run_score(cfg, ctx, shard=k)
        for k in range(record_partitions(lake, ctx.run_date)):
            run_score_records(cfg, ctx, part=k)
        return lake.output_partition("anomalies", ctx.run_date)
    from pipelines.anomaly.nightly import score_night, window_start_of
    from pipelines.anomaly.records import empty_record_fits, left_out, record_fits

    with tracked(cfg, ctx, f"score:{shard}") as out:
        t0 = time.perf_counter()
        shards = shard_plan(lake, "forecasts", ctx.run_date)
        partitions = record_partitions(lake, ctx.run_date)
        inputs, lines = score_inputs(cfg, ctx.run_date, shard, shards)
        # the promotions and stock-outs that explain the shard's demand series: its SKUs'
        context = night_context(cfg, ctx, sku_filter(cfg, ctx.run_date, shard, shards))
        night = score_night(inputs, context)
        # what the partitions of customers need: the window's lines and each customer's history
        # (`night_fits`), fitted against every line of their SKUs; a partition's lines in its
        # batch, those older than the customer's cut-off in another
        start = window_start_of(context)
        fits = record_fits(lines, after=start) if lines is not None else empty_record_fits()
        n_lines = len(lines) if lines is not None else 0
        del lines, inputs
        kept = fits.lines
        cutoffs = record_cutoffs(lake, ctx.run_date, start.date())
        home = partition_of(kept["customer_id"], partitions)
        home = np.where(left_out(kept, after=start, cutoffs=cutoffs), home + partitions, home)
        frame = night.rows
        if night.rows_in is not None:
            out.rows_in = night.rows_in
        manifest = {"series": night.series, "shard": shard, "shards": shards}
        # cut by partition of customers: a partition's task reads its own batch of every shard
        lake.write_exchange(
            "record_fits",
            ctx.run_date,
            shard,
            kept.assign(customer_part=home),
            by="customer_part",
            parts=2 * partitions,
            manifest={"pairs": fits.pairs.to_dict(orient="list"), "shard": shard, "shards": shards},
        )
        lake.write_shard("anomalies", ctx.run_date, shard, frame, manifest=manifest)
        out.rows_out = len(frame)
        log.info(
            "score run_date=%s shard=%d/%d series=%d order_lines=%d (kept %d) rows_out=%d anomalies=%d "
            "seconds=%.1f",
            ctx.run_date,
            shard,
            shards,
            night.series,
            n_lines,
            len(kept),
            len(frame),
            int(frame["is_anomaly"].astype(bool).sum()),
            time.perf_counter() - t0,
        )
    return lake.output_partition("anomalies", ctx.run_date)


def run_score_records(cfg: Config, ctx: RunContext, *, part: int) -> Path:
    """Score the order lines of one partition of customers (by hash of the customer) for unusual
    prices, discounts, quantities and duplicates, from what every `score` shard fitted: the
    customers' history spans SKUs, so it is gathered once every shard of SKUs is done.  Writes the
    anomalies' shard `shards + part`."""
    from pipelines.anomaly.nightly import score_night_records, window_start_of

    lake = Lake(cfg.lake)
    with tracked(cfg, ctx, f"score_records:{part}") as out:
        t0 = time.perf_counter()
        shards = shard_plan(lake, "forecasts", ctx.run_date)
        partitions = record_partitions(lake, ctx.run_date)
        if not 0 <= part < partitions:
            raise ConfigError(
                f"score_records: the night {ctx.run_date} has partitions 0..{partitions - 1} of "
                f"customers, not {part}; run the partitions its plan step made"
            )
        context = night_context(cfg, ctx)
        fits, pairs = customer_fits(lake, ctx.run_date, part, shards, after=window_start_of(context))
        night = score_night_records(fits, pairs, context)
        out.rows_in = night.rows_in
        manifest = {"partition": part, "partitions": partitions, "order_lines": len(fits), "shards": shards}
        lake.write_shard("anomalies", ctx.run_date, shards + part, night.rows, manifest=manifest)
        out.rows_out = len(night.rows)
        log.info(
            "score_records run_date=%s partition=%d/%d order_lines=%d anomalies=%d seconds=%.1f",
            ctx.run_date,
            part,
            partitions,
            len(fits),
            len(night.rows),
            time.perf_counter() - t0,
        )
    return lake.output_partition("anomalies", ctx.run_date)


def night_context(cfg: Config, ctx: RunContext, skus: Any = None) -> Any:
    """What explains and bounds the night's anomaly scores (`pipelines.anomaly.nightly.NightContext`);
    with `skus` (a shard's SKU filter), the promotions and stock-outs of those SKUs only."""
    from pipelines.anomaly.nightly import NightContext

    return NightContext(
        run_date=ctx.run_date,
        window_days=cfg.anomaly.window_days,
        history_days=cfg.anomaly.history_days,
        thresholds=cfg.anomaly.thresholds,
        holidays=cfg.anomaly.holidays_between(
            ctx.run_date - timedelta(days=cfg.anomaly.history_days), ctx.run_date
        ),
        promotions=partial(optional_dataset, cfg, "promotions", ctx.run_date, skus),
        stockouts=partial(optional_dataset, cfg, "stockouts", ctx.run_date, skus),
        labels=partial(read_all_labels, cfg, ctx.run_date),
        n_jobs=cfg.scale.processes_per_task or NightContext.n_jobs,
    )


def run_load(cfg: Config, ctx: RunContext) -> list[LoadResult]:
    """Write the night's forecasts (final, from the adjust step; every level of the hierarchy, from
    the reconcile step), anomaly scores and incidents, quality results, actuals and accuracy
    back, exactly once (`pipelines.load.night`)."""
    with tracked(cfg, ctx, "load") as out:
        with Lake(cfg.lake).spill() as spill:  # the night's actuals and archive, by shard
            night = night_results(cfg, ctx.run_date, spill)
            results = load_night(cfg, ctx.run_date, night)
        out.rows_in = night.rows
        out.rows_out = sum(r.rows for r in results if not r.skipped)
        out.checksum = hashlib.sha256("".join(r.checksum for r in results).encode()).hexdigest()
    return results


IncidentSender = Callable[[AlertChannel, str, tuple[str, ...]], bool]


def run_incident_alerts(cfg: Config, ctx: RunContext, send: IncidentSender) -> int:
    """Tell `notifications.incident_alerts` about the night's new and escalated incidents: ONE
    message per channel listing them, through `send(channel, subject, lines)` (the Airflow
    notifiers, `pipelines.airflow.alerts.incident_sender`).  An incident whose message reached a
    channel is recorded in `seam_anomaly_incident_alerts` and never alerted again at that severity;
    ones labelled expected or false positive are not alerted.  Recorded in the run ledger as
    `alert_incidents`.  Returns how many incidents went out; raises `SourceUnavailableError` when
    some reached no channel (a retry sends them), `DeliveryError` when a channel missed some that
    another one took."""
    from pipelines.anomaly.notices import deliver_notices, incident_notices
    from pipelines.load.feedback import alertable_incidents, record_reached

    rules = cfg.notifications.incident_alerts
    if not rules:
        return 0
    with tracked(cfg, ctx, "alert_incidents") as out:
        incidents = alertable_incidents(cfg, ctx.run_date, {r.severity for r in rules})
        if incidents.empty:
            log.info("incident alerts night=%s: nothing new", ctx.run_date)
            return 0
        out.rows_in = len(incidents)
        delivery = deliver_notices(incident_notices(incidents, rules, ctx.run_date), send)
        sent = incidents[incidents["incident_id"].isin(delivery.reached)]
        record_reached(cfg, ctx.run_date, sent, delivery.reached)
        out.rows_out = len(sent)
        log.info(
            "incident alerts night=%s: %d of %d incident(s) sent", ctx.run_date, len(sent), len(incidents)
        )
        if delivery.undelivered(incidents["incident_id"]):
            raise SourceUnavailableError(
                f"{delivery.problem(ctx.run_date)}; {len(incidents) - len(sent)} incident(s) reached no channel: "
                f"the retry sends them (the ones already sent are not repeated)"
            )
        if delivery.failed:
            raise DeliveryError(
                f"{delivery.problem(ctx.run_date)}; every incident reached another channel and is recorded as "
                f"alerted, so they are not sent again: fix the channel, and read them in seam_v_open_incidents"
            )
    return len(sent)


def run_report(cfg: Config, ctx: RunContext) -> Path:
    """Render the night's HTML report; returns its path."""
    from pipelines.report import write_report

    with tracked(cfg, ctx, "report") as out:
        path = write_report(cfg, ctx)
        out.rows_out = 1
    return path


def run_send_report(cfg: Config, ctx: RunContext) -> bool:
    """E-mail the night's report to `notifications.report_to`; False when no recipients are set."""
    from pipelines.report import build_report_message, send_message

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


@dataclass(frozen=True)
class PruneResult:
    lake: list[str]
    reports: list[Path]
    data_docs: list[Path]


def run_prune(cfg: Config, ctx: RunContext, *, dry_run: bool = False) -> PruneResult:
    """Remove what is older than its retention on the night `ctx.run_date` (`lake.keep_days`,
    `lake.quarantine_keep_days`, `report.keep_days`, `report.data_docs_keep_days`); with
    `dry_run`, only say what would go."""
    import shutil

    from pipelines.lake.retention import expired_partitions, prune_lake
    from pipelines.quality.gate import docs_project
    from pipelines.quality.gx import expired_validations, prune_data_docs
    from pipelines.report.retention import expired_reports

    def work() -> PruneResult:
        partitions = expired_partitions(cfg, ctx.run_date)
        reports = expired_reports(cfg, ctx.run_date)
        docs_before = ctx.run_date - timedelta(days=cfg.report.data_docs_keep_days)
        docs = expired_validations(docs_project(cfg), docs_before)
        if not dry_run:
            prune_lake(cfg, partitions)
            for folder in reports:
                shutil.rmtree(folder, ignore_errors=True)
            prune_data_docs(docs_project(cfg), docs_before)
        return PruneResult([p.describe() for p in partitions], reports, docs)

    if dry_run:
        return work()
    with tracked(cfg, ctx, "prune") as out:
        result = work()
        out.rows_out = len(result.lake) + len(result.reports) + len(result.data_docs)
    return result


def run_all(cfg: Config, ctx: RunContext, send_incidents: IncidentSender | None = None) -> Path:
    """Every step of the night in order (the CLI's `seam run`), like the DAG: a failed step does not
    stop the others that can still run, the report is written and sent, and then the run fails with
    `RunFailedError` naming every failed step (exit code of the first).  With `send_incidents`, the
    night's incidents are alerted after the load (`run_incident_alerts`).  Returns the report's path."""
    run_migrate(cfg)
    failures: list[tuple[str, BaseException]] = []

    def attempt(name: str, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except StepSkipped as skipped:
            log.warning("%s", skipped)
            failures.append((name, skipped))
        except Exception as err:
            log.error("%s failed: %s: %s", name, type(err).__name__, err)
            failures.append((name, err))
        return None

    with night_lock(cfg, ctx):
        for s in cfg.sources:
            for t in s.tables:
                attempt(
                    f"extract:{s.name}.{t.name}", partial(run_extract, cfg, ctx, source=s.name, table=t.name)
                )
        for ds in sorted({t.dataset for s in cfg.sources for t in s.tables}):
            attempt(f"validate:{ds}", partial(run_validate, cfg, ctx, dataset=ds))
        shards = attempt("plan", partial(run_plan, cfg, ctx)) or []
        for step in (run_forecast, run_score):
            for shard in shards:
                attempt(f"{step.__name__.removeprefix('run_')}:{shard}", partial(step, cfg, ctx, shard=shard))
        if shards and not any(name.startswith("score:") for name, _ in failures):
            for part in range(record_partitions(Lake(cfg.lake), ctx.run_date)):
                attempt(f"score_records:{part}", partial(run_score_records, cfg, ctx, part=part))
        if shards and not any(name.startswith("forecast:") for name, _ in failures):
            attempt("reconcile", partial(run_reconcile, cfg, ctx))
            attempt("adjust", partial(run_adjust, cfg, ctx))
        attempt("load", partial(run_load, cfg, ctx))
        if send_incidents is not None:
            attempt("alert_incidents", partial(run_incident_alerts, cfg, ctx, send_incidents))
        path = attempt("report", partial(run_report, cfg, ctx))
        attempt("send_report", partial(run_send_report, cfg, ctx))  # after the load: a send undoes nothing
        attempt("prune", partial(run_prune, cfg, ctx))
    if failures:
        first = next(
            (e for _, e in failures if isinstance(e, SeamError) and not isinstance(e, StepSkipped)), None
        )
        raise RunFailedError(
            f"night {ctx.run_date}: {len(failures)} step(s) did not succeed: "
            + "; ".join(f"{name} ({type(err).__name__}: {err})" for name, err in failures)
            + (f". The report says so: {path}" if path else ""),
            exit_code=first.exit_code if first is not None else 1,
        )
    return Path(path)
