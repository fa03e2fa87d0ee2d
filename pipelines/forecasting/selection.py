"""Per-series model choice: candidates, rolling-origin backtests, selection and combination.

`fit_predict_series` is the unit of work sent to worker processes. It prepares one series, fits
the candidate models once on the full history, replays them from earlier origins (rolling-origin
backtest on the series' own recent history), keeps the best single model or an equal-weight
combination of the best few (whichever backtests better), and returns the forecast with what the
interval calibration and the explanation columns need.

With a `SeriesCalendar` (see `calendar`), the models see only the periods the business trades
in, and closed periods get a 0 forecast and 0-wide intervals; intermittent and low-volume
forecasts are spread over the week by the series' weekly profile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from pipelines.forecasting.arima import fit_arima
from pipelines.forecasting.calendar import SeriesCalendar
from pipelines.forecasting.intermittent import build_croston, classify_demand
from pipelines.forecasting.models import (
    FamilyFn,
    ModelForecast,
    build_seasonal_naive,
    fit_ets_theta,
    fit_naive,
    single,
)
from pipelines.forecasting.options import ForecastOptions
from pipelines.forecasting.seasonality import Seasonality, fit_seasonality, is_seasonal

logger = logging.getLogger(__name__)

# Models on the seasonally adjusted series, in tie-break order.
# A family fits one or more related models at once (ETS and Theta share one SES fit).
ADJUSTED_MODELS: dict[str, FamilyFn] = {
    "ets,theta": fit_ets_theta,
    "arima": single("arima", fit_arima),
    "naive": single("naive", fit_naive),
}
INTERMITTENT_MODELS: dict[str, FamilyFn] = {
    name: single(name, build_croston(name)) for name in ("sba", "tsb", "croston")
}
MIN_POINTS_FOR_MODELS = 8
# Families that need more data than MIN_POINTS_FOR_MODELS are only tried from this length on
# (too short is "not applicable", not a failure to report).
MIN_POINTS: dict[str, int] = {"arima": 16}
# Used without backtests (too short a history): the M4 "Comb" benchmark's spirit.
DEFAULT_MEMBERS: tuple[str, ...] = ("theta", "ets", "sba", "tsb", "naive")


@dataclass
class SeriesResult:
    """Forecast of one series plus what interval calibration and explanation need."""

    mean: np.ndarray
    sigma: np.ndarray
    scores: np.ndarray
    model: str
    weights: dict[str, float]
    backtest_error: float
    group: str = "regular"
    fallback: bool = False
    fallback_reason: str | None = None
    nonnegative: bool = False
    components: dict[str, np.ndarray] = field(default_factory=dict)
    new_product: str | None = None  # how a series with a short history was forecast (see `peers`)

    def last_steps(self, horizon: int) -> SeriesResult:
        """The same result restricted to its last `horizon` steps."""
        return replace(
            self,
            mean=self.mean[-horizon:],
            sigma=self.sigma[-horizon:],
            scores=self.scores[:, -horizon:],
            components={k: v[-horizon:] for k, v in self.components.items()},
        )


@dataclass
class _Candidate:
    fit: ModelForecast
    adjusted: bool
    errors: np.ndarray


@dataclass(frozen=True)
class Profile:
    """A series' weekly demand shape on the modelled (open-period) grid.

    Attributes:
        history: multiplier of each modelled history period, aligned with the history's end.
        future: multiplier of each forecast period.
        period: modelled periods per week (the open phases).
    """

    history: np.ndarray
    future: np.ndarray
    period: int


def build_clean_series(y: np.ndarray, max_history: int) -> np.ndarray:
    """Drop leading NaN, keep the last `max_history` points and fill gaps by interpolation."""
    finite = np.flatnonzero(np.isfinite(y))
    if finite.size == 0:
        return np.empty(0)
    y = y[finite[0] :][-max_history:]
    mask = np.isfinite(y)
    if mask.all():
        return y.astype(np.float64, copy=True)
    idx = np.arange(len(y))
    # linear inside, last observed value carried forward at the end
    return np.interp(idx, idx[mask], y[mask]).astype(np.float64)


def _history_to_keep(options: ForecastOptions) -> int:
    longest = max((p for p in options.season_lengths), default=0.0)
    return max(options.max_history, int(np.ceil(options.min_seasons_kept * longest)))


def _mase_scale(y: np.ndarray) -> float:
    """Mean absolute one-step difference (1.0 when the series is constant)."""
    s = float(np.mean(np.abs(np.diff(y)))) if len(y) > 1 else 0.0
    return s if s > 0 else 1.0


def _origins(n: int, horizon: int, windows: int, min_train: int) -> list[int]:
    return [o for o in (n - horizon * w for w in range(windows, 0, -1)) if o >= min_train]


def _fit_candidates(
    y: np.ndarray, adj: np.ndarray, horizon: int, families: dict[str, tuple[FamilyFn, bool]]
) -> tuple[dict[str, ModelForecast], dict[str, bool], list[str]]:
    """Fit every family; returns forecasts by model, whether each is on the adjusted scale, and
    the failure reasons of the models that were dropped."""
    fits: dict[str, ModelForecast] = {}
    adjusted: dict[str, bool] = {}
    reasons: list[str] = []
    for family, (fn, on_adjusted) in families.items():
        try:
            for name, fc in fn(adj if on_adjusted else y, horizon).items():
                if fc.mean.shape != (horizon,) or not np.all(np.isfinite(fc.mean)):
                    raise FloatingPointError(f"{name}: non-finite or mis-shaped forecast")
                fits[name], adjusted[name] = fc, on_adjusted
        except Exception as err:  # a failing model is dropped, the others carry on
            reasons.append(f"{family} failed: {type(err).__name__}: {err}")
            logger.debug("fit of %s failed", family, exc_info=True)
    return fits, adjusted, reasons


def _backtest(
    y: np.ndarray,
    fits: dict[str, ModelForecast],
    adjusted: dict[str, bool],
    origins: list[int],
    horizon: int,
    periods: tuple[float, ...],
    shape: np.ndarray | None = None,
    shaped: dict[str, bool] | None = None,
) -> dict[str, np.ndarray]:
    """Backtest forecasts (windows, horizon) per model; NaN where a replay fails.

    `shape` (aligned with `y`) multiplies the replays of the models marked in `shaped`.
    """
    preds = {k: np.full((len(origins), horizon), np.nan) for k in fits}
    for i, origin in enumerate(origins):
        prefix = y[:origin]
        season = fit_seasonality(prefix, periods, horizon) if any(adjusted.values()) else None
        adj = season.adjust(prefix) if season is not None else prefix
        for name, fc in fits.items():
            try:
                if adjusted[name] and season is not None:
                    preds[name][i] = season.restore(fc.replay(adj, horizon))
                else:
                    preds[name][i] = fc.replay(prefix, horizon)
                if shape is not None and shaped is not None and shaped[name]:
                    preds[name][i] *= shape[origin : origin + horizon]
            except Exception:  # a failing replay only disqualifies that window
                logger.debug("replay of %s failed at origin %d", name, origin, exc_info=True)
    return preds


def _choose(
    preds: dict[str, np.ndarray],
    actual: np.ndarray,
    scale: float,
    k_range: tuple[int, int],
    squared: bool,
) -> tuple[list[str], float, np.ndarray]:
    """Best of the means of the top k models, k in `k_range`, ranked by backtest error.

    The error is MASE, or RMSSE when `squared` (intermittent demand: absolute error favours
    forecasting zero, squared error targets the mean demand rate, as in M5).
    """

    def mase(p: np.ndarray) -> float:
        err = np.abs(actual - p)
        if not np.isfinite(err).any():
            return np.inf
        if squared:
            return float(np.sqrt(np.nanmean(err**2))) / scale
        return float(np.nanmean(err)) / scale

    ranked = sorted(preds, key=lambda k: mase(preds[k]))
    best: tuple[float, list[str], np.ndarray] | None = None
    for k in range(min(k_range[0], len(ranked)), min(k_range[1], len(ranked)) + 1):
        members = ranked[:k]
        combo = np.mean([preds[m] for m in members], axis=0)
        score = mase(combo)
        if best is None or score < best[0] - 1e-12:
            best = (score, members, combo)
    assert best is not None
    return best[1], best[0], actual - best[2]


def build_growth(errors: np.ndarray, horizon: int) -> np.ndarray:
    """Error growth over the horizon, step**b, with b fitted to the backtest errors.

    b is the slope of log RMS error on log step, clipped to [0, 1] and shrunk towards the
    random-walk value 0.5 (prior weight: four windows), so few windows give a random-walk shape.
    """
    steps = np.arange(1, horizon + 1, dtype=np.float64)
    b = 0.5
    n_windows = errors.shape[0]
    if n_windows and horizon >= 3:
        with np.errstate(invalid="ignore", divide="ignore"):
            rms = np.sqrt(np.nanmean(errors**2, axis=0))
        ok = np.isfinite(rms) & (rms > 0)
        if ok.sum() >= 3:
            slope = float(np.polyfit(np.log(steps[ok]), np.log(rms[ok]), 1)[0])
            b = (n_windows * float(np.clip(slope, 0.0, 1.0)) + 4 * 0.5) / (n_windows + 4)
    return steps**b


def build_scales(
    errors: np.ndarray,
    sigma1: float,
    horizon: int,
    spread: np.ndarray | None = None,
    spread_ahead: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step scale of the forecast errors and the normalised backtest scores.

    The one-step scale pools the in-sample one-step error (weight: one window) with the backtest
    errors divided by the growth path (`build_growth`; the pooled interval multipliers correct
    what remains of the shape). Each window's scores use a scale estimated without that window, so the
    scores are honest out-of-sample ratios (as in cross-conformal prediction).

    `spread` (windows, horizon) and `spread_ahead` (horizon,) are relative error scales of the
    backtest windows' and the forecast's periods (a weekly profile: a busy day's demand varies
    more than a quiet day's); None means 1.

    Returns:
        sigma (horizon,) and scores (windows, horizon) of |error| / scale.
    """
    growth = build_growth(errors, horizon)
    growth_w = growth[None, :] * spread if spread is not None else growth[None, :]
    prior_ss, prior_n = horizon * sigma1**2, float(horizon)
    norm = errors / growth_w
    finite = np.isfinite(norm)
    ss_w = np.where(finite, norm, 0.0) ** 2
    ss_w, n_w = ss_w.sum(axis=1), finite.sum(axis=1)
    total_ss, total_n = float(ss_w.sum()) + prior_ss, float(n_w.sum()) + prior_n
    sigma = np.sqrt(total_ss / total_n) * growth
    if spread_ahead is not None:
        sigma = sigma * spread_ahead
    if errors.shape[0] < 2:
        scale_w = np.full(errors.shape[0], sigma1)
    else:
        scale_w = np.sqrt((total_ss - ss_w) / np.maximum(total_n - n_w, 1.0))
    denom = scale_w[:, None] * growth_w
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(denom > 0, np.abs(errors) / denom, np.nan)
    return sigma, scores


def _result_without_models(
    y: np.ndarray, horizon: int, reason: str | None, nonneg: bool, profile: Profile | None = None
) -> SeriesResult:
    """Too short or constant for models: the last value, or, for a short non-negative history with
    zeros (sparse demand), its mean rate spread over the week by `profile`."""
    nan_h = np.full(horizon, np.nan)
    if nonneg and len(y) and (y == 0).any() and (y != 0).any():
        rate = float(np.mean(y))
        spread = profile.future if profile is not None else np.ones(horizon)
        mean = rate * spread
        sigma1 = float(np.std(y))
        return SeriesResult(
            mean=mean,
            sigma=sigma1 * np.sqrt(np.arange(1, horizon + 1)) * np.sqrt(spread),
            scores=np.empty((0, horizon)),
            model="mean",
            weights={"mean": 1.0},
            backtest_error=np.nan,
            group="short",
            fallback=reason is not None,
            fallback_reason=reason,
            nonnegative=nonneg,
            components={"level": np.full(horizon, rate), "trend": nan_h, "seasonal": mean - rate},
        )
    name = "naive" if len(y) else "zero"
    fc = fit_naive(y, horizon) if len(y) else None
    mean = fc.mean if fc is not None else np.zeros(horizon)
    sigma1 = fc.sigma1 if fc is not None and np.isfinite(fc.sigma1) else 0.0
    if len(y) and not np.isfinite(fc.sigma1 if fc else np.nan):
        sigma1 = abs(float(y[-1])) * 0.1
    return SeriesResult(
        mean=mean,
        sigma=sigma1 * np.sqrt(np.arange(1, horizon + 1)),
        scores=np.empty((0, horizon)),
        model=name,
        weights={name: 1.0},
        backtest_error=np.nan,
        group="short",
        fallback=reason is not None,
        fallback_reason=reason,
        nonnegative=nonneg,
        components={"level": mean.copy(), "trend": nan_h, "seasonal": nan_h},
    )


def fit_predict_series(
    y_raw: np.ndarray,
    horizon: int,
    options: ForecastOptions,
    calendar: SeriesCalendar | None = None,
    uplift: np.ndarray | None = None,
) -> SeriesResult:
    """Forecast one series (NaN = missing or censored) `horizon` steps ahead.

    Missing values at the end are not imputed: the forecast starts from the last observed value
    and runs over the gap, whose steps are then dropped. `calendar` (None: every period is
    alike) says which periods are closed and how demand spreads over the week.

    `uplift` (aligned with `y_raw`, 1 where no driver): `y_raw` is a history with its drivers'
    effect divided out (`pipelines.forecasting.drivers`), and the backtests judge each candidate
    and combination with that effect put back, against the history as it was: a model that
    misses the weeks around a promotion is judged by the promotion's volume, not by the
    deflated one.  The result stays on the base scale (the caller applies the future uplift).
    """
    finite = np.flatnonzero(np.isfinite(y_raw))
    gap = int(len(y_raw) - 1 - finite[-1]) if finite.size else 0
    observed = y_raw[: len(y_raw) - gap]
    observed_uplift = uplift[: len(y_raw) - gap] if uplift is not None else None
    cal = calendar.shifted(gap) if calendar is not None and gap else calendar
    try:
        result = _fit_predict_calendar(observed, horizon + gap, options, cal, observed_uplift)
    except Exception as err:  # never lose a series: an unexpected error falls back to naive
        logger.warning("series fit failed, falling back to naive", exc_info=True)
        y = build_clean_series(observed, _history_to_keep(options))
        reason = f"forecasting failed: {type(err).__name__}: {err}; naive forecast"
        nonneg = options.nonnegative if options.nonnegative is not None else bool(y.size and y.min() >= 0)
        result = _result_without_models(y, horizon + gap, reason, bool(nonneg))
        if cal is not None:
            shut = ~_open_ahead(cal, horizon + gap)
            result = replace(
                result, mean=np.where(shut, 0.0, result.mean), sigma=np.where(shut, 0.0, result.sigma)
            )
    return result.last_steps(horizon) if gap else result


def _open_ahead(cal: SeriesCalendar, horizon: int) -> np.ndarray:
    out: np.ndarray = cal.factors[cal.phases_after(horizon)] > 0
    return out


def compress_periods(periods: tuple[float, ...], open_phases: np.ndarray) -> tuple[float, ...]:
    """Season lengths counted in open periods only.

    The week itself becomes its number of open phases; a cycle that divides the week (a day in
    hourly data) becomes its number of open phases when every cycle with any has the same number;
    anything else is scaled by the open share (e.g. 365.25 days -> 260.9 trading days).
    """
    week, n_open = len(open_phases), int(open_phases.sum())
    out: list[float] = []
    for p in periods:
        length = float(n_open) if round(p) == week and float(p).is_integer() else p * n_open / week
        if float(p).is_integer() and round(p) < week and week % round(p) == 0:
            per_cycle = open_phases.reshape(week // round(p), round(p)).sum(axis=1)
            busy = per_cycle[per_cycle > 0]
            if busy.size and (busy == busy[0]).all():
                length = float(busy[0])
        if length >= 2:
            out.append(length)
    return tuple(out)


def _expand(result: SeriesResult, cal: SeriesCalendar, horizon: int) -> SeriesResult:
    """Put a forecast of the open periods onto the full horizon: closed periods are 0 (bounds too)."""
    idx = np.flatnonzero(_open_ahead(cal, horizon))
    mean, sigma = np.zeros(horizon), np.zeros(horizon)
    mean[idx], sigma[idx] = result.mean, result.sigma
    scores = np.full((result.scores.shape[0], horizon), np.nan)
    scores[:, idx] = result.scores
    components = {}
    for name, values in result.components.items():
        full = np.full(horizon, np.nan)
        full[idx] = values
        components[name] = full
    return replace(result, mean=mean, sigma=sigma, scores=scores, components=components)


def _fit_predict_calendar(
    y_raw: np.ndarray,
    horizon: int,
    options: ForecastOptions,
    cal: SeriesCalendar | None,
    uplift: np.ndarray | None = None,
) -> SeriesResult:
    """Fit on the open periods of the history and forecast the open periods of the horizon."""
    if cal is None:
        return _fit_predict_observed(y_raw, horizon, options, None, uplift)
    hist_phase, ahead_phase = cal.phases_before(len(y_raw)), cal.phases_after(horizon)
    open_phases = cal.factors > 0
    open_hist, open_ahead = open_phases[hist_phase], open_phases[ahead_phase]
    n_open = int(open_phases.sum())
    # the profile's mean over the open phases is 1: it spreads an open-period level over them
    shape = cal.factors * n_open / cal.period
    profile = Profile(shape[hist_phase[open_hist]], shape[ahead_phase[open_ahead]], n_open)
    h_open = int(open_ahead.sum())
    if h_open == 0:
        nonneg = options.nonnegative is not False
        return _expand(_result_without_models(np.zeros(0), 0, None, nonneg), cal, horizon)
    if n_open < cal.period:
        options = replace(options, season_lengths=compress_periods(options.season_lengths, open_phases))
    open_uplift = uplift[open_hist] if uplift is not None else None
    result = _fit_predict_observed(y_raw[open_hist], h_open, options, profile, open_uplift)
    return _expand(result, cal, horizon) if h_open < horizon else result


def _fit_predict_observed(
    y_raw: np.ndarray,
    horizon: int,
    options: ForecastOptions,
    profile: Profile | None = None,
    uplift: np.ndarray | None = None,
) -> SeriesResult:
    y = build_clean_series(y_raw, _history_to_keep(options))
    nonneg = options.nonnegative if options.nonnegative is not None else bool(len(y) and y.min() >= 0)
    if len(y) == 0:
        reason = "no observed (non-missing, non-censored) value; forecasting 0"
        return _result_without_models(y, horizon, reason, bool(nonneg))
    if len(y) < MIN_POINTS_FOR_MODELS or np.ptp(y) == 0:
        return _result_without_models(y, horizon, None, bool(nonneg), profile)

    demand = classify_demand(y)
    group = "intermittent" if demand in ("intermittent", "lumpy") else "regular"
    shape = profile.history[len(profile.history) - len(y) :] if profile is not None else None
    spread_models = False
    if group == "intermittent":
        season = Seasonality("none", np.zeros(len(y)), np.zeros(horizon))
        periods: tuple[float, ...] = ()
        models: dict[str, tuple[FamilyFn, bool]] = {k: (fn, False) for k, fn in INTERMITTENT_MODELS.items()}
        spread_models = profile is not None
    else:
        periods = options.season_lengths
        # the week and the cycles inside it (the day, in hourly data) that the profile describes
        weekly = [
            p
            for p in periods
            if profile is not None and float(p).is_integer() and profile.period % round(p) == 0
        ]
        if profile is not None and nonneg and (y == 0).any() and not any(is_seasonal(y, p) for p in weekly):
            # low volume: the week's shape is too faint in this series alone; the profile gives it
            periods = tuple(p for p in periods if p not in weekly)
            spread_models = True
        season = fit_seasonality(y, periods, horizon)
        models = {
            k: (fn, True)
            for k, fn in ADJUSTED_MODELS.items()
            if len(y) >= MIN_POINTS.get(k, MIN_POINTS_FOR_MODELS)
        }
    short_periods = [round(p) for p in options.season_lengths if p >= 2 and len(y) >= 2 * p]
    if short_periods:
        snaive = build_seasonal_naive(min(short_periods))
        models["seasonal_naive"] = (single("seasonal_naive", snaive), False)
    adj = season.adjust(y)
    fits, adjusted, reasons = _fit_candidates(y, adj, horizon, models)
    if not fits:
        return _result_without_models(y, horizon, "; ".join(reasons), bool(nonneg), profile)
    # the seasonal naive forecast already has the week's shape
    shaped = {m: spread_models and m != "seasonal_naive" for m in fits}
    # every backtest trains on at least half of the history
    min_train = max(MIN_POINTS_FOR_MODELS, len(y) // 2)
    origins = _origins(len(y), horizon, options.backtest_windows, min_train)
    scale = _mase_scale(y)
    # the drivers' uplift of each backtest period (None: no driver in any backtest window)
    driven = _driven_windows(uplift, len(y), origins, horizon)
    if origins:
        preds = _backtest(y, fits, adjusted, origins, horizon, periods, shape, shaped)
        actual = np.vstack([y[o : o + horizon] for o in origins])
        if driven is not None:
            preds = {name: p * driven for name, p in preds.items()}
            actual = actual * driven
        k_range = (options.min_combine, options.combine_top)
        squared = group == "intermittent"
        members, score, errors = _choose(preds, actual, scale, k_range, squared)
    else:
        preferred: list[str] = [m for m in DEFAULT_MEMBERS if m in fits]
        members = preferred[: max(1, options.min_combine)] or list(fits)[:1]
        score, errors = np.nan, np.empty((0, horizon))
    ahead = profile.future if profile is not None else np.ones(horizon)
    finals = {m: season.restore(fits[m].mean) if adjusted[m] else fits[m].mean for m in members}
    finals = {m: f * ahead if shaped[m] else f for m, f in finals.items()}
    mean = np.mean([finals[m] for m in members], axis=0)
    sigma1s = [fits[m].sigma1 for m in members if np.isfinite(fits[m].sigma1)]
    sigma1 = float(np.mean(sigma1s)) if sigma1s else float(np.std(np.diff(y)))
    if season.kind == "multiplicative":
        sigma1 *= float(np.mean(np.abs(season.future)))
    spread_bt: np.ndarray | None = None
    spread_ahead: np.ndarray | None = None
    if shape is not None and any(shaped[m] for m in members):
        # demand on a day with a share s of the week's demand varies about as sqrt(s) (counts)
        spread = np.sqrt(np.mean([shape if shaped[m] else np.ones(len(y)) for m in members], axis=0))
        spread_bt = np.vstack([spread[o : o + horizon] for o in origins]) if origins else None
        spread_ahead = np.sqrt(np.mean([ahead if shaped[m] else np.ones(horizon) for m in members], axis=0))
    if driven is not None:
        # the errors are on the driven scale: back to the base scale, which the caller's uplift
        # (and its own uncertainty) widens again on the horizon's driven periods
        spread_bt = driven if spread_bt is None else spread_bt * driven
    sigma, scores = build_scales(errors, sigma1, horizon, spread_bt, spread_ahead)
    weights = {m: round(1.0 / len(members), 6) for m in members}
    # canonical (registry) order, so one combination always has one name
    ordered = [m for m in fits if m in members]
    name = ordered[0] if len(ordered) == 1 else f"combo({','.join(ordered)})"
    return SeriesResult(
        mean=mean,
        sigma=sigma,
        scores=scores,
        model=name,
        weights=weights,
        backtest_error=score,
        group=group,
        fallback=bool(reasons),
        fallback_reason="; ".join(reasons) or None,
        nonnegative=bool(nonneg),
        components=_components(fits, members, adjusted, season, mean, horizon, shaped),
    )


def _driven_windows(uplift: np.ndarray | None, n: int, origins: list[int], horizon: int) -> np.ndarray | None:
    """The uplift of each backtest window's periods (windows, horizon), aligned with the end of
    the `n` modelled periods; None when no window holds a driven period."""
    if uplift is None or not origins:
        return None
    tail = uplift[len(uplift) - n :]
    windows = np.vstack([tail[o : o + horizon] for o in origins])
    return windows if (windows != 1.0).any() else None


def _components(
    fits: dict[str, ModelForecast],
    members: list[str],
    adjusted: dict[str, bool],
    season: Seasonality,
    mean: np.ndarray,
    horizon: int,
    shaped: dict[str, bool] | None = None,
) -> dict[str, np.ndarray]:
    """Level/trend when every member has them (on the adjusted scale); seasonal = mean - adjusted
    (with a weekly profile, its spread of the level over the week counts as seasonal)."""
    nan_h = np.full(horizon, np.nan)
    out = {"level": nan_h, "trend": nan_h, "seasonal": nan_h}
    adj_mean = np.mean([fits[m].mean for m in members], axis=0)
    profiled = shaped is not None and any(shaped[m] for m in members)
    if (season.kind != "none" and all(adjusted[m] for m in members)) or profiled:
        out["seasonal"] = mean - adj_mean
    levels = [lv for m in members if (lv := fits[m].level) is not None]
    if len(levels) == len(members):
        out["level"] = np.mean(levels, axis=0)
        trends = [tr if (tr := fits[m].trend) is not None else np.zeros(horizon) for m in members]
        if any(fits[m].trend is not None for m in members):
            out["trend"] = np.mean(trends, axis=0)
    return out
