"""What the nightly steps read, through the lake and the quality gate, for the stages to use.

Public functions:
    shard_history(cfg, d, mine)        a shard's daily demand series and its history at the
                                       forecast frequency (`mine`: the shard's SKU filter),
                                       with the series of its product launches
    shard_launches(cfg, d, mine)       the shard's product launches the plan recorded
    product_categories(cfg, d, without) the products' `sku, category` (None when unusable)
    previous_final(lake, output, night, skus)  an earlier night's final forecast of some SKUs
    driver_frame(cfg, d, series, mine) the demand drivers known ahead (promotions, holidays)
    panel_figures(cfg, d, shards)      the whole night's week, peers and driver effects, gathered
                                       one shard in memory at a time
    forecast_freq(cfg), forecast_options(cfg, freq)   the forecaster's settings from the config
    optional_dataset(cfg, dataset, d)  a night's dataset the config may not have
    lines_by_shard(cfg, d)             the night's order lines, one forecast shard at a time
    flagged_scores(lake, d)            the anomaly scores of the series with an anomaly
    forecast_inputs(cfg, d, shard, shards) the forecaster's inputs of one shard
    score_inputs(cfg, d, shard, shards) the anomaly scorer's inputs of one shard
    order_line_totals(cfg, d, names, custom) the metrics over the order lines per entity and day,
                                       gathered one shard at a time
    customer_fits(lake, d, part, shards) one partition of customers' fitted order lines and
                                       every shard's repeat-pair counts
    require_usable(cfg, d, step, datasets) raise `StepSkipped` when a dataset failed its gate

Contract: nothing here writes; a dataset that failed its `error` gate tonight is not read (the
functions say what they do without it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from functools import partial
from typing import Any

import pandas as pd
import pyarrow as pa

from pipelines.config import Config
from pipelines.errors import MissingInputError, StepSkipped
from pipelines.lake import Lake, read_dataset
from pipelines.launches import Launch, horizon_end, launch_series
from pipelines.quality import blocked_datasets
from pipelines.series import build_demand_series, custom_rows, metric_rows
from pipelines.sharding import sku_filter
from pipelines.state import (
    forecast_drivers,
    forecast_peers,
    forecast_week,
    record_cutoffs,
    record_partitions,
    recorded_launches,
    shard_plan,
)

log = logging.getLogger(__name__)


def forecast_freq(cfg: Config) -> str:
    """The forecaster's period: days, or weeks ending on Sunday."""
    return "D" if cfg.forecast.freq == "D" else "W-SUN"


def forecast_options(cfg: Config, freq: str) -> Any:
    """The forecaster's `ForecastOptions` for the config's settings."""
    from pipelines.forecasting import build_options

    # new_product_days in periods of the forecast frequency (whole weeks rounded up)
    periods = cfg.forecast.new_product_days if freq == "D" else -(-cfg.forecast.new_product_days // 7)
    options = build_options(freq, new_product_periods=periods)
    if cfg.scale.processes_per_task is not None:
        options = replace(options, n_jobs=cfg.scale.processes_per_task)
    return options


def shard_history(
    cfg: Config,
    d: date,
    mine: list[tuple[str, str, list[Any]]] | None,
    launches: list[Launch] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shard's (None: every shard's) daily demand series and its history at the forecast
    frequency, with the series of its product launches (`launches`: already read, or None to
    read them from the plan)."""
    from pipelines.forecasting.inputs import build_history

    lines = read_dataset(cfg, "order_lines", d, filters=mine)
    stockouts = read_dataset(cfg, "stockouts", d, filters=mine) if cfg.has_dataset("stockouts") else None
    series = build_demand_series(lines, stockouts, end=d, history_days=cfg.forecast.history_days)
    if launches is None:
        launches = shard_launches(cfg, d, mine)
    if launches:
        launched = launch_series(launches, d, cfg.forecast.history_days)
        series = pd.concat([series, launched], ignore_index=True) if len(series) else launched
    history, _ = build_history(series, cfg.forecast.freq)
    return series, history


def shard_launches(cfg: Config, d: date, mine: list[tuple[str, str, list[Any]]] | None) -> list[Launch]:
    """The night's product launches (recorded by the plan step) of the shard's SKUs (None: all)."""
    launches = [Launch.from_list(row) for row in recorded_launches(Lake(cfg.lake), d)]
    if mine is None:
        return launches
    skus = {str(s) for _, _, values in mine for s in values}
    return [x for x in launches if x.sku in skus]


def product_categories(cfg: Config, d: date, *, without: str) -> pd.DataFrame | None:
    """The products' `sku, category` of night `d` (None, logging what happens `without` them: no
    usable products dataset that night)."""
    if not cfg.has_dataset("products") or blocked_datasets(cfg, d, ["products"]):
        log.warning("%s: no usable products dataset, so %s", d, without)
        return None
    return read_dataset(cfg, "products", d)[["sku", "category"]]


def forecast_categories(cfg: Config, d: date) -> pd.DataFrame | None:
    """The products' categories, for the forecast's new products' peers."""
    return product_categories(cfg, d, without="the forecast's new products have no peers")


def driver_frame(
    cfg: Config, d: date, series: pd.DataFrame, mine: list[tuple[str, str, list[Any]]] | None = None
) -> pd.DataFrame | None:
    """The forecaster's demand drivers of the shard's series (None: `forecast.drivers` is empty);
    `mine`: the shard's SKU filter, so only its SKUs' promotions are read."""
    from pipelines.forecasting.inputs import build_driver_frame

    if not cfg.forecast.drivers:
        return None
    promotions = None
    if "promotions" in cfg.forecast.drivers:
        if blocked_datasets(cfg, d, ["promotions"]):
            log.warning("forecast %s: the promotions failed their quality gate, so no promotion drivers", d)
        else:
            promotions = read_dataset(cfg, "promotions", d, filters=mine)
    holidays: tuple[tuple[str, str], ...] = ()
    if "holidays" in cfg.forecast.drivers and len(series):
        # the series' history and the horizon
        last = horizon_end(cfg, pd.Timestamp(series["ds"].max()).date())
        holidays = cfg.anomaly.holidays_between(pd.Timestamp(series["ds"].min()).date(), last)
    return build_driver_frame(series, promotions=promotions, holidays=holidays, freq=cfg.forecast.freq)


def panel_figures(
    cfg: Config, d: date, shards: int
) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, Any] | None]:
    """The week (None: no weekly cycle), the new products' peers and the demand drivers' effects
    (None: no drivers) of the whole night's panel, gathered shard by shard."""
    from pipelines.forecasting import DriverStats, PeerStats
    from pipelines.forecasting.calendar import WeekStats
    from pipelines.forecasting.peers import build_peer_keys
    from pipelines.forecasting.validation import build_series

    freq = forecast_freq(cfg)
    options = forecast_options(cfg, freq)
    stats = WeekStats(freq, options.season_lengths)
    with_week = options.calendar and stats.needed
    peers = PeerStats(freq, options.new_product_periods)
    drivers = DriverStats(freq, options.season_lengths)
    products = forecast_categories(cfg, d)
    for shard in range(shards):
        mine = sku_filter(cfg, d, shard, shards)
        if mine is not None:
            series, history = shard_history(cfg, d, mine)
            inputs = build_series(history, freq)
            if with_week:
                stats.add(inputs)
            peers.add(inputs, build_peer_keys(series, products))
            frame = driver_frame(cfg, d, series, mine)
            if frame is not None:
                drivers.add(inputs, frame)
    week = stats.finish() if with_week else None
    prior = drivers.finish().to_dict() if cfg.forecast.drivers else None
    return (week.to_dict() if week is not None else None), peers.finish(week).to_dict(), prior


def optional_dataset(cfg: Config, dataset: str, d: date, filters: Any = None) -> pd.DataFrame | None:
    """The night's rows of a dataset the config may not have (None when it has not); only the rows
    `filters` select (pyarrow DNF, pushed down to the Parquet files)."""
    return read_dataset(cfg, dataset, d, filters=filters) if cfg.has_dataset(dataset) else None


def lines_by_shard(
    cfg: Config, d: date, read: dict[int, pd.DataFrame] | None = None
) -> Iterator[pd.DataFrame]:
    """The night's order lines, one shard of the night's plan at a time (all of them when the
    night has no plan: its forecast step has not run); `read`: shards the caller already holds."""
    try:
        shards = shard_plan(Lake(cfg.lake), "forecasts", d)
    except MissingInputError:
        yield read_dataset(cfg, "order_lines", d)
        return
    for k in range(shards):
        if read is not None and k in read:
            yield read[k]
            continue
        mine = sku_filter(cfg, d, k, shards)
        if mine is not None:
            yield read_dataset(cfg, "order_lines", d, filters=mine)


def previous_final(lake: Lake, output: str, night: date, skus: list[Any] | None) -> pd.DataFrame:
    """The final forecast (`output`) of an earlier `night` (`sku, warehouse, target_date,
    yhat_final, override_ids`: what the time fence keeps), only the rows of `skus` (None: every
    SKU), read a shard at a time (a shard of another night's plan holds a range of SKUs: the filter
    skips the others' files)."""
    columns = ["sku", "warehouse", "target_date", "yhat_final", "override_ids"]
    if skus is not None and not skus:
        return pd.DataFrame(columns=columns)
    filters = [("sku", "in", skus)] if skus is not None else None
    parts = [
        part.drop(columns=["run_date"])
        for part in lake.iter_output(output, night, columns=columns, filters=filters)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def flagged_scores(lake: Lake, night: date) -> pd.DataFrame:
    """Every scored row of the series (metric, entity) with an anomaly on a complete night, read a
    shard at a time: what tonight's incidents and the report's anomaly count need (no rows, with
    the output's columns, when none has one; an empty frame when the night has no scores)."""
    pairs = [
        s.loc[s["is_anomaly"].astype(bool), ["metric", "entity"]]
        for s in lake.iter_output("anomalies", night, columns=["metric", "entity", "is_anomaly"])
    ]
    flagged = pd.concat(pairs, ignore_index=True).drop_duplicates() if pairs else None
    if flagged is None or flagged.empty:
        first = next(lake.iter_output("anomalies", night), None)
        return first.iloc[:0] if first is not None else pd.DataFrame()
    keep = [
        part.merge(flagged, on=["metric", "entity"])
        for part in lake.iter_output(
            "anomalies", night, filters=[("entity", "in", list(flagged["entity"].unique()))]
        )
    ]
    return pd.concat(keep, ignore_index=True)


def score_inputs(cfg: Config, d: date, shard: int, shards: int) -> tuple[list[Any], pd.DataFrame | None]:
    """The anomaly scorer's inputs of one shard: its `MetricInput`s (the shard's demand series;
    every other metric in shard 0) and the shard's order lines, whose records the shard fits (None
    when the order lines are not scored tonight).  The metrics over the whole night's order lines
    (revenue, order counts, custom ones) are aggregated per entity and day one shard of lines at a
    time (`pipelines.anomaly.daily.DailyTotals`).  Raises `StepSkipped` when every dataset the
    metrics come from failed its gate."""
    from pipelines.anomaly.nightly import MetricInput

    metrics = cfg.metric_datasets()
    custom = {c.name: c for c in cfg.anomaly.custom}
    usable = [m for m, ds in metrics.items() if cfg.has_dataset(ds) and not blocked_datasets(cfg, d, [ds])]
    if not usable:
        require_usable(cfg, d, "score", sorted(set(metrics.values())))
    inputs: list[MetricInput] = []
    mine = sku_filter(cfg, d, shard, shards)
    lines = None
    if mine is not None and "order_lines" in {metrics[m] for m in usable}:
        lines = read_dataset(cfg, "order_lines", d, filters=mine)
        if "demand" in usable:
            inputs.append(MetricInput("demand", lines))
    if shard != 0:
        return inputs, lines
    others = [m for m in usable if m != "demand"]
    cache: dict[str, pd.DataFrame] = {}
    for metric in (m for m in others if metrics[m] != "order_lines"):
        dataset = metrics[metric]
        if dataset not in cache:
            cache[dataset] = read_dataset(cfg, dataset, d)
        inputs.append(MetricInput(metric, cache[dataset], custom.get(metric)))
    over_lines = [m for m in others if metrics[m] == "order_lines"]
    inputs += [
        MetricInput(m, custom=custom.get(m), daily=daily)
        for m, daily in order_line_totals(
            cfg, d, over_lines, custom, {shard: lines} if lines is not None else None
        )
    ]
    return inputs, lines


def order_line_totals(
    cfg: Config,
    d: date,
    names: list[str],
    custom: dict[str, Any],
    read: dict[int, pd.DataFrame] | None = None,
) -> list[tuple[str, tuple[pd.DataFrame, Any, pd.DatetimeIndex | None]]]:
    """The aggregate per entity and day of each named metric over the night's order lines, read
    one shard of the night's plan at a time (`read`: shards the caller already holds)."""
    from pipelines.anomaly.daily import DailyTotals

    if not names:
        return []
    builders = [partial(custom_rows, custom[m]) if m in custom else partial(metric_rows, m) for m in names]
    totals = [DailyTotals(build) for build in builders]
    try:
        for part in lines_by_shard(cfg, d, read):
            for total in totals:
                total.add(part)
            del part
        return [(m, t.finish()) for m, t in zip(names, totals, strict=True)]
    finally:
        for t in totals:
            t.close()


def customer_fits(
    lake: Lake, d: date, part: int, shards: int, *, after: pd.Timestamp
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The order lines of one partition of customers as every `score` shard fitted them (read
    shard by shard, only the partition's rows), and the repeat-pair counts of every shard (in one
    frame: they add up, and a frame per shard would cost every partition a frame per shard).
    Of the lines ordered on or before `after` (the day the night's window starts after), only
    those a line's history can hold (`pipelines.anomaly.records.recent_lines`, in Arrow).  Raises
    `MissingInputError` when a shard has not written its fits."""
    fitted: list[int] = []
    counts: dict[str, list[Any]] = {}
    for k in range(shards):
        manifest = lake.shard_manifest("record_fits", d, k)
        if manifest is None:
            raise MissingInputError(
                f"score shard {k} of {d} has not fitted its order lines; run the score step's shard {k} first"
            )
        for name, values in manifest["pairs"].items():
            counts.setdefault(name, []).extend(values)
        if manifest["rows"]:
            fitted.append(k)
    pairs = [pd.DataFrame(counts)] if counts else []
    if not fitted:
        from pipelines.anomaly.records import empty_record_fits

        return empty_record_fits().lines, pairs
    table = lake.read_exchange_table("record_fits", d, fitted, part)
    from pipelines.anomaly.records import recent_lines, short_histories

    # the shards sent each customer's lines from its cut-off day in the partition's batch, and the
    # older ones in batch `partitions + part`: read only when a cut-off was too late
    partitions = record_partitions(lake, d)
    cutoffs = record_cutoffs(lake, d, pd.Timestamp(after).date(), part)
    mine = cutoffs.column("customer_id").to_pylist() if cutoffs is not None else []
    if short_histories(table, mine, after=after):
        older = lake.read_exchange_table("record_fits", d, fitted, partitions + part)
        table = pa.concat_tables([table, older], promote_options="permissive")
    return recent_lines(table, after=after).to_pandas(date_as_object=False), pairs


def require_usable(cfg: Config, d: date, step: str, datasets: list[str]) -> None:
    """Raise `StepSkipped` if a dataset the step needs failed an `error` gate on night `d`."""
    blocked = blocked_datasets(cfg, d, [ds for ds in datasets if cfg.has_dataset(ds)])
    if blocked:
        reasons = "; ".join(r for rs in blocked.values() for r in rs)
        raise StepSkipped(
            f"{step} skipped for {d}: {sorted(blocked)} failed their quality gate ({reasons}); "
            f"the last good night's results stay in place and are reported as stale"
        )


@dataclass(frozen=True)
class ForecastInputs:
    """What the forecaster needs for one shard: its daily series and history, the forecaster's
    period and options, the night's week, peers and drivers, and the shard's product launches
    (whose forecasts wait for their launch dates)."""

    series: pd.DataFrame
    history: pd.DataFrame
    freq: str
    options: Any
    week: Any
    peers: Any
    drivers: Any
    launches: list[Launch]


def forecast_inputs(cfg: Config, d: date, shard: int, shards: int) -> ForecastInputs | None:
    """The forecaster's inputs of one shard (None: the shard has no series).  With several shards,
    the week, the peers' profiles and the drivers' effects are the whole night's, recorded by the
    plan step (so a series' forecast does not depend on how the night is sharded)."""
    from pipelines.forecasting import DriverPrior, Drivers, Peers
    from pipelines.forecasting.calendar import PanelWeek
    from pipelines.forecasting.peers import PeerProfiles, build_peer_keys

    mine = sku_filter(cfg, d, shard, shards)
    if mine is None:
        return None
    lake = Lake(cfg.lake)
    week_data = forecast_week(lake, d) if shards > 1 else None
    profiles = PeerProfiles.from_dict(forecast_peers(lake, d)) if shards > 1 else None
    prior = forecast_drivers(lake, d) if shards > 1 else None
    launches = shard_launches(cfg, d, mine)
    series, history = shard_history(cfg, d, mine, launches)
    known = driver_frame(cfg, d, series, mine)
    freq = forecast_freq(cfg)
    return ForecastInputs(
        series=series,
        history=history,
        freq=freq,
        options=forecast_options(cfg, freq),
        week=PanelWeek.from_dict(week_data) if week_data is not None else None,
        peers=Peers(build_peer_keys(series, forecast_categories(cfg, d)), profiles),
        drivers=Drivers(known, DriverPrior.from_dict(prior) if prior else None)
        if known is not None
        else None,
        launches=launches,
    )
