"""Public entry points: `forecast` (the fixed contract) and `run_forecast` (with options)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd

from pipelines.forecasting.blas import limit_blas_threads, set_blas_threads
from pipelines.forecasting.calendar import PanelWeek, SeriesCalendar, build_calendars, panel_week
from pipelines.forecasting.drivers import Drivers, apply_effect, fit_effects
from pipelines.forecasting.intervals import fit_multipliers
from pipelines.forecasting.options import ForecastOptions, build_options, future_index
from pipelines.forecasting.peers import (
    Peers,
    build_peer_profiles,
    find_new_products,
    fit_new_product,
    note_without_peers,
)
from pipelines.forecasting.selection import SeriesResult, fit_predict_series
from pipelines.forecasting.validation import (
    SeriesInput,
    build_series,
    check_arguments,
    check_history,
    localize_like,
)
from pipelines.progress import Progress

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS = (
    "unique_id",
    "ds",
    "yhat",
    "model",
    "weights",
    "backtest_error",
    "fallback",
    "fallback_reason",
    "level",
    "trend",
    "seasonal",
    "new_product",
)


def forecast(
    history: pd.DataFrame,
    horizon: int,
    freq: str,
    levels: Sequence[float] = (80, 95),
    drivers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Forecast every series of a long history `horizon` periods ahead with prediction intervals.

    Args:
        history: long frame `unique_id` (str), `ds` (datetime64), `y` (float, NaN allowed) and an
            optional boolean `censored` (stock-out: the value is treated as missing).
        horizon: number of future periods (>= 1).
        freq: pandas frequency of `ds` ('D', 'W-SUN', 'h', ...); it sets the seasonal periods.
        levels: interval levels in percent, each in (0, 100).
        drivers: optional known-future drivers, a long frame `unique_id, ds` and any of
            `promotion` (share of the period on promotion, in [0, 1]), `discount` (its depth, in
            [0, 1]) and `holiday` (share of the period that is a holiday), covering the history
            and the horizon (see `pipelines.forecasting.drivers`). Their effect is fitted on the
            history (removed from it before the base models are fitted) and applied on the
            horizon; the output then has a `drivers` column explaining it (None where no driver).
            None (default): the output is exactly that of the forecaster without drivers.

    Returns:
        One row per series and future period (series in order of first appearance):
        `unique_id, ds, yhat, yhat_lo_<L>, yhat_hi_<L>` for each level (L = 80 -> "80",
        99.5 -> "99_5"), and explanations: `model` (chosen model or "combo(a,b,...)"),
        `weights` (JSON model -> weight), `backtest_error` (rolling-origin backtest MASE of the
        chosen forecast, RMSSE for intermittent series, NaN when the history is too short for a
        backtest), `fallback` / `fallback_reason` (a model failed and a simpler one was used, with
        the error), and the components `level`, `trend` (on the seasonally adjusted scale) and
        `seasonal` (its contribution to yhat), NaN where the chosen model has none; `new_product`
        is None here (see `run_forecast`'s `peers`).
        Forecasts and bounds are finite, bounds are ordered, and series with a non-negative
        history are clipped at 0. For daily and sub-daily data, periods of the week in which no
        series of `history` ever had demand (a business closed at weekends) are forecast as 0
        with 0 bounds, and intermittent and low-volume forecasts follow the weekly profile of the
        series, shrunk towards the panel's (see `pipelines.forecasting.calendar`).
        The output is bit-identical for the same history in any row order, in any process and
        with any number of worker processes.

    Raises:
        ForecastInputError: the history or an argument violates the input contract.
    """
    return run_forecast(
        history,
        horizon,
        freq,
        levels,
        build_options(freq),
        drivers=Drivers(drivers) if drivers is not None else None,
    )


def run_forecast(
    history: pd.DataFrame,
    horizon: int,
    freq: str,
    levels: Sequence[float],
    options: ForecastOptions,
    week: PanelWeek | None = None,
    peers: Peers | None = None,
    drivers: Drivers | None = None,
) -> pd.DataFrame:
    """`forecast` with explicit options (season lengths, workers, backtest windows, clipping).

    `week` is the week of the whole panel when `history` is one shard of it (see
    `pipelines.forecasting.calendar.WeekStats`): with it, a series' point forecast does not depend
    on which other series share its shard. Without it, the week is estimated from `history`.

    `peers` (the series' categories and warehouses, see `pipelines.forecasting.peers`) turns on
    the forecast of new products: a series with less than `options.new_product_periods` periods
    of history is forecast from its peers, and its `new_product` column says how (None for the
    other series). Without `peers`, every series is forecast from its own history.

    `drivers` (the driver frame and, when `history` is one shard of the panel, the panel's
    effects, see `pipelines.forecasting.drivers`) turns on known-future drivers and the `drivers`
    column. The calendars and new products' peers are estimated from the history as it is; the
    base models are fitted on the history without the drivers' effect and chosen on backtests
    with it.
    """
    started = time.perf_counter()
    h, lvls = check_arguments(horizon, levels)
    check_history(history)
    build_options(freq)  # validates freq with a clear error
    series = build_series(history, freq)
    if peers is not None and options.calendar and week is None and series:
        week = panel_week(series, freq, options.season_lengths)
    calendars = build_calendars(series, freq, options.season_lengths, week) if options.calendar else None
    effects = fit_effects(series, drivers, h, freq, options.season_lengths) if drivers is not None else None
    base = [replace(s, y=s.y / e.history) for s, e in zip(series, effects, strict=True)] if effects else None
    uplifts = [e.history for e in effects] if effects else None
    results = _fit_with_peers(series, calendars, h, options, freq, week, peers, base, uplifts)
    if effects:
        results = [apply_effect(r, e) for r, e in zip(results, effects, strict=True)]
    # pooled in order of unique_id, not of the input rows
    by_id = sorted(range(len(series)), key=lambda i: series[i].unique_id)
    multipliers = {
        group: fit_multipliers([results[i].scores for i in by_id if results[i].group == group], h, lvls)
        for group in sorted({r.group for r in results})
    }
    out = build_output(series, results, multipliers, h, freq, lvls)
    out["ds"] = localize_like(pd.DatetimeIndex(out["ds"]), history)
    if effects is not None:
        out["drivers"] = np.array([note for e in effects for note in e.notes], dtype=object)
    logger.info(
        "forecast: %d series, %d rows in, %d rows out, horizon %d, %d fallbacks, %.1fs",
        len(series),
        len(history),
        len(out),
        h,
        int(out["fallback"].sum() // h) if len(out) else 0,
        time.perf_counter() - started,
    )
    return out


# a series' history (on the base scale), its calendar and its drivers' history uplift
Task = tuple[np.ndarray, SeriesCalendar | None, np.ndarray | None]


def _fit_with_peers(
    series: list[SeriesInput],
    calendars: list[SeriesCalendar] | None,
    horizon: int,
    options: ForecastOptions,
    freq: str,
    week: PanelWeek | None,
    peers: Peers | None,
    base: list[SeriesInput] | None = None,
    uplifts: list[np.ndarray] | None = None,
) -> list[SeriesResult]:
    """Every series' result: new products from their peers, the others (and new products without
    peers but with sales) from their own history (`base`: the history the models are fitted on,
    when it differs from `series`, on which new products and their peers are found; `uplifts`:
    the drivers' effect `base` is divided by, which the backtests put back)."""
    fit = base if base is not None else series
    if peers is None:
        return _fit_all(fit, calendars, horizon, options, uplifts)
    profiles = peers.profiles or build_peer_profiles(
        series, peers.keys, freq, options.new_product_periods, week
    )
    new = find_new_products(series, peers.keys, profiles, calendars)
    done: dict[int, SeriesResult] = {}
    for i, product in new.items():
        cal = calendars[i] if calendars is not None else None
        fitted = fit_new_product(series[i].y, horizon, product, cal, options.nonnegative)
        if fitted is not None:
            done[i] = fitted
    rest = [i for i in range(len(series)) if i not in done]
    fitted_rest = _fit_all(
        [fit[i] for i in rest],
        [calendars[i] for i in rest] if calendars else None,
        horizon,
        options,
        [uplifts[i] for i in rest] if uplifts else None,
    )
    for i, result in zip(rest, fitted_rest, strict=True):
        done[i] = replace(result, new_product=note_without_peers(new[i])) if i in new else result
    return [done[i] for i in range(len(series))]


def _fit_batch(batch: list[Task], horizon: int, options: ForecastOptions) -> list[SeriesResult]:
    return [fit_predict_series(y, horizon, options, calendar, uplift) for y, calendar, uplift in batch]


def _fit_all(
    series: list[SeriesInput],
    calendars: list[SeriesCalendar] | None,
    horizon: int,
    options: ForecastOptions,
    uplifts: list[np.ndarray] | None = None,
) -> list[SeriesResult]:
    """Fit every series, in worker processes when there are enough of them.

    A series' result depends on its own values, calendar and uplift only, so how the series are
    split into batches and processes does not change it.
    """
    tasks: list[Task] = [
        (s.y, calendars[i] if calendars else None, uplifts[i] if uplifts else None)
        for i, s in enumerate(series)
    ]
    jobs = min(options.resolved_jobs(), max(1, len(tasks) // max(1, options.batch_size // 4)))
    progress = Progress("forecast", len(tasks))
    results: list[SeriesResult] = []
    if jobs <= 1 or len(tasks) < options.serial_below:
        with limit_blas_threads(1):
            for task in tasks:
                results += _fit_batch([task], horizon, options)
                progress.add()
    else:
        # batches small enough to balance the load, large enough to amortise pickling
        size = max(1, min(options.batch_size, -(-len(tasks) // (jobs * 4))))
        batches = [tasks[i : i + size] for i in range(0, len(tasks), size)]
        with ProcessPoolExecutor(max_workers=jobs, initializer=set_blas_threads) as pool:
            for part in pool.map(_fit_batch, batches, [horizon] * len(batches), [options] * len(batches)):
                results += part
                progress.add(len(part))
    progress.finish()
    return results


def _level_name(level: float) -> str:
    return str(int(level)) if float(level).is_integer() else str(level).replace(".", "_")


def build_output(
    series: list[SeriesInput],
    results: list[SeriesResult],
    multipliers: dict[str, dict[float, np.ndarray]],
    horizon: int,
    freq: str,
    levels: tuple[float, ...],
) -> pd.DataFrame:
    """Assemble the long output frame: point forecasts, calibrated bounds and explanations."""
    n = len(series)
    mean = np.vstack([r.mean for r in results]) if n else np.empty((0, horizon))
    sigma = np.vstack([r.sigma for r in results]) if n else np.empty((0, horizon))
    sigma = np.where(np.isfinite(sigma), sigma, 0.0)
    clip = np.array([r.nonnegative for r in results], dtype=bool)[:, None]
    cols: dict[str, object] = {}
    ds_cache: dict[pd.Timestamp, pd.DatetimeIndex] = {}
    ds_parts = []
    for s in series:
        if s.last_ds not in ds_cache:
            ds_cache[s.last_ds] = future_index(s.last_ds, horizon, freq)
        ds_parts.append(ds_cache[s.last_ds])
    cols["unique_id"] = np.repeat([s.unique_id for s in series], horizon)
    cols["ds"] = pd.DatetimeIndex(np.concatenate([p.values for p in ds_parts])) if n else pd.DatetimeIndex([])
    yhat = np.where(clip, np.maximum(mean, 0.0), mean)
    cols["yhat"] = yhat.ravel()
    for level in levels:
        mult = np.vstack([multipliers[r.group][level] for r in results]) if n else sigma
        half = mult * sigma
        lo, hi = mean - half, mean + half
        lo = np.where(clip, np.maximum(lo, 0.0), lo)
        hi = np.where(clip, np.maximum(hi, 0.0), hi)
        lo, hi = np.minimum(lo, yhat), np.maximum(hi, yhat)
        name = _level_name(level)
        cols[f"yhat_lo_{name}"] = lo.ravel()
        cols[f"yhat_hi_{name}"] = hi.ravel()
    cols["model"] = np.repeat([r.model for r in results], horizon)
    cols["weights"] = np.repeat([json.dumps(r.weights, sort_keys=True) for r in results], horizon)
    cols["backtest_error"] = np.repeat([r.backtest_error for r in results], horizon).astype(float)
    cols["fallback"] = np.repeat([r.fallback for r in results], horizon).astype(bool)
    cols["fallback_reason"] = np.repeat(np.array([r.fallback_reason for r in results], dtype=object), horizon)
    for comp in ("level", "trend", "seasonal"):
        cols[comp] = (
            np.concatenate([r.components.get(comp, np.full(horizon, np.nan)) for r in results])
            if n
            else np.empty(0)
        )
    cols["new_product"] = np.repeat(np.array([r.new_product for r in results], dtype=object), horizon)
    return pd.DataFrame(cols)
