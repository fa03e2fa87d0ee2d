"""Unit tests of pipelines.forecasting: contract, edge cases, intervals and fallbacks."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from pipelines.forecasting import (
    ForecastInputError,
    arima,
    build_options,
    forecast,
    run_forecast,
    selection,
)
from pipelines.forecasting.arima import ORDERS as ARIMA_ORDERS
from pipelines.forecasting.calendar import choose_cycle
from pipelines.forecasting.intermittent import build_croston, classify_demand
from pipelines.forecasting.least_squares import fit_least_squares
from pipelines.forecasting.options import infer_season_lengths
from pipelines.forecasting.selection import compress_periods

BOUNDS = ("yhat_lo_95", "yhat_lo_80", "yhat", "yhat_hi_80", "yhat_hi_95")


def _frame(values: dict[str, np.ndarray], freq: str = "D", start: str = "2024-01-01") -> pd.DataFrame:
    parts = [
        pd.DataFrame(
            {
                "unique_id": uid,
                "ds": pd.date_range(start, periods=len(y), freq=freq),
                "y": np.asarray(y, dtype=float),
            }
        )
        for uid, y in values.items()
    ]
    return pd.concat(parts, ignore_index=True)


def _check_contract(out: pd.DataFrame, hist: pd.DataFrame, horizon: int, freq: str = "D") -> None:
    """Properties every output must have, whatever the input."""
    ids = list(pd.unique(hist["unique_id"]))
    assert sorted(out["unique_id"].unique()) == sorted(ids)
    assert (out.groupby("unique_id").size() == horizon).all()
    for uid in ids:
        last = hist.loc[hist["unique_id"] == uid, "ds"].max()
        expected = pd.date_range(last, periods=horizon + 1, freq=freq)[1:]
        assert list(out.loc[out["unique_id"] == uid, "ds"]) == list(expected)
    assert np.isfinite(out[list(BOUNDS)].to_numpy(dtype=float)).all()
    for lower, upper in itertools.pairwise(BOUNDS):
        assert (out[lower] <= out[upper] + 1e-9).all(), (lower, upper)
    nonneg = hist.groupby("unique_id")["y"].min() >= 0
    for uid in nonneg[nonneg].index:
        assert (out.loc[out["unique_id"] == uid, list(BOUNDS)] >= 0).all().all()
    for text in out["weights"].unique():
        weights = json.loads(text)
        assert abs(sum(weights.values()) - 1.0) < 1e-4
    assert out["fallback"].dtype == bool
    assert set(out.columns) >= {"model", "fallback_reason", "level", "trend", "seasonal"}


def test_output_contract_on_a_mixed_panel() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(120)
    hist = _frame(
        {
            "noise": rng.normal(10, 1, 120),
            "trend": 5 + 0.5 * t + rng.normal(0, 1, 120),
            "short": np.array([3.0, 4.0]),
            "zero": np.zeros(50),
        }
    )
    out = forecast(hist, horizon=14, freq="D")
    _check_contract(out, hist, 14)
    assert list(out.columns[:3]) == ["unique_id", "ds", "yhat"]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9])
def test_very_short_series(n: int) -> None:
    hist = _frame({"a": np.arange(1, n + 1, dtype=float)})
    out = forecast(hist, horizon=4, freq="D")
    _check_contract(out, hist, 4)
    assert (out["yhat"] > 0).all()
    assert not out["fallback"].any()  # too short for a model is not a failure


def test_constant_and_all_zero_series() -> None:
    hist = _frame({"const": np.full(60, 7.0), "zero": np.zeros(60)})
    out = forecast(hist, horizon=5, freq="D")
    _check_contract(out, hist, 5)
    const = out[out["unique_id"] == "const"]
    assert np.allclose(const["yhat"], 7.0)
    zero = out[out["unique_id"] == "zero"]
    assert np.allclose(zero[list(BOUNDS)], 0.0)
    assert not out["fallback"].any()


def test_intermittent_series_uses_croston_family_and_tracks_rate() -> None:
    rng = np.random.default_rng(1)
    occur = rng.random(400) < 0.15
    y = np.where(occur, rng.poisson(6, 400) + 1, 0).astype(float)
    assert classify_demand(y) in ("intermittent", "lumpy")
    hist = _frame({"sku": y})
    out = forecast(hist, horizon=7, freq="D")
    _check_contract(out, hist, 7)
    weights = json.loads(out["weights"].iat[0])
    assert set(weights) <= {"croston", "sba", "tsb", "seasonal_naive"}
    assert set(weights) & {"croston", "sba", "tsb"}
    rate = 0.15 * 7.0
    assert 0.4 * rate < out["yhat"].mean() < 2.0 * rate
    assert (out["yhat_lo_95"] == 0).all()


def test_trend_is_extrapolated() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(200)
    hist = _frame({"up": 100 + 2.0 * t + rng.normal(0, 2, 200)}, freq="W-SUN")
    out = forecast(hist, horizon=10, freq="W-SUN")
    _check_contract(out, hist, 10, "W-SUN")
    truth = 100 + 2.0 * np.arange(200, 210)
    assert np.abs(out["yhat"].to_numpy() - truth).max() < 12
    assert (out["yhat_lo_80"].to_numpy() < truth).all() and (truth < out["yhat_hi_80"].to_numpy()).all()


def test_doubly_seasonal_daily_series_reproduces_both_patterns() -> None:
    rng = np.random.default_rng(3)
    n, h = 2 * 365 + 30, 28
    t = np.arange(n + h)
    weekly = np.array([0.0, 2.0, 3.0, 3.0, 4.0, 12.0, 10.0])[t % 7]
    yearly = 15.0 * np.sin(2 * np.pi * t / 365.25)
    signal = 50 + weekly + yearly
    y = signal[:n] + rng.normal(0, 1.5, n)
    hist = _frame({"store": y})
    out = forecast(hist, horizon=h, freq="D")
    _check_contract(out, hist, h)
    yhat = out["yhat"].to_numpy()
    truth = signal[n:]
    snaive_error = np.abs(y[n - 7 : n][np.arange(h) % 7] - truth).mean()
    assert np.abs(yhat - truth).mean() < 0.6 * snaive_error
    assert np.corrcoef(yhat, truth)[0, 1] > 0.9
    assert np.isfinite(out["seasonal"]).all()


def test_missing_values_and_gaps() -> None:
    rng = np.random.default_rng(4)
    y = 20 + rng.normal(0, 1, 100)
    y[[5, 6, 40, 99]] = np.nan
    hist = _frame({"a": y, "b": 5 + rng.normal(0, 0.5, 60)})
    hist = hist.drop(index=[10, 11, 12, 70]).reset_index(drop=True)  # missing dates
    out = forecast(hist, horizon=6, freq="D")
    _check_contract(out, hist, 6)
    a = out[out["unique_id"] == "a"]
    assert a["ds"].iat[0] == pd.Timestamp("2024-01-01") + pd.Timedelta(days=100)
    assert 17 < a["yhat"].mean() < 23


def test_time_zone_aware_stamps_keep_their_zone() -> None:
    ds = pd.date_range("2024-03-01", periods=60, freq="D", tz="Europe/Paris")  # spans a DST change
    hist = pd.DataFrame({"unique_id": "a", "ds": ds, "y": np.arange(60.0)})
    out = forecast(hist, horizon=3, freq="D")
    expected = pd.date_range("2024-04-30", periods=3, freq="D", tz="Europe/Paris")
    assert list(out["ds"]) == list(expected)


def test_censored_days_do_not_pull_the_forecast_down() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(20, 2, 120).round()
    stockout = np.zeros(120, dtype=bool)
    stockout[60:75] = True
    stockout[105:] = True
    y[stockout] = 0.0
    hist = _frame({"sku": y})
    hist["censored"] = stockout
    out = forecast(hist, horizon=7, freq="D")
    _check_contract(out, hist, 7)
    uncensored = forecast(hist.drop(columns="censored"), horizon=7, freq="D")
    assert 17.0 < out["yhat"].mean() < 23.0
    assert uncensored["yhat"].mean() < 12.0


def test_failing_model_falls_back_and_leaves_other_series_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_arima(y: np.ndarray, horizon: int) -> dict[str, object]:
        if y.mean() > 500:
            raise RuntimeError("simulated optimiser crash")
        return original(y, horizon)

    original = selection.ADJUSTED_MODELS["arima"]
    monkeypatch.setitem(selection.ADJUSTED_MODELS, "arima", broken_arima)
    rng = np.random.default_rng(6)
    hist = _frame({"big": 1000 + rng.normal(0, 5, 80), "small": 10 + rng.normal(0, 1, 80)})
    out = forecast(hist, horizon=5, freq="D")
    _check_contract(out, hist, 5)
    big, small = out[out["unique_id"] == "big"], out[out["unique_id"] == "small"]
    assert big["fallback"].all() and not small["fallback"].any()
    assert "arima failed: RuntimeError: simulated optimiser crash" in big["fallback_reason"].iat[0]
    assert small["fallback_reason"].isna().all()
    assert "arima" not in json.loads(big["weights"].iat[0])


def test_every_model_failing_falls_back_to_naive(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(y: np.ndarray, horizon: int) -> dict[str, object]:
        raise RuntimeError("boom")

    for name in list(selection.ADJUSTED_MODELS):
        monkeypatch.setitem(selection.ADJUSTED_MODELS, name, broken)
    hist = _frame({"a": 10 + np.sin(np.arange(50.0))})
    out = forecast(hist, horizon=3, freq="D")
    _check_contract(out, hist, 3)
    assert out["fallback"].all()
    assert "ets,theta failed: RuntimeError: boom" in out["fallback_reason"].iat[0]
    # only the model outside the broken families is left: the last week repeated
    assert (out["model"] == "seasonal_naive").all()
    assert np.allclose(out["yhat"], hist["y"].to_numpy()[-7:-4])


def test_unexpected_error_in_a_series_falls_back_to_naive(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_classify(y: np.ndarray) -> str:
        if y.mean() > 500:
            raise ZeroDivisionError("simulated bug")
        return classify_demand(y)

    monkeypatch.setattr(selection, "classify_demand", broken_classify)
    rng = np.random.default_rng(11)
    hist = _frame({"big": 1000 + rng.normal(0, 5, 40), "small": 10 + rng.normal(0, 1, 40)})
    out = forecast(hist, horizon=4, freq="D")
    _check_contract(out, hist, 4)
    big = out[out["unique_id"] == "big"]
    assert big["fallback"].all() and (big["model"] == "naive").all()
    assert "ZeroDivisionError: simulated bug" in big["fallback_reason"].iat[0]
    assert not out.loc[out["unique_id"] == "small", "fallback"].any()


def test_same_input_gives_the_same_output() -> None:
    rng = np.random.default_rng(7)
    hist = _frame({f"s{i}": 30 + rng.normal(0, 3, 90).cumsum() * 0.1 for i in range(4)})
    first = forecast(hist, horizon=7, freq="D")
    again = forecast(hist, horizon=7, freq="D")
    shuffled = forecast(hist.sample(frac=1.0, random_state=1), horizon=7, freq="D")
    pd.testing.assert_frame_equal(first, again)
    by_key = ["unique_id", "ds"]
    pd.testing.assert_frame_equal(
        first.sort_values(by_key, ignore_index=True), shuffled.sort_values(by_key, ignore_index=True)
    )


def test_parallel_and_serial_paths_agree() -> None:
    rng = np.random.default_rng(8)
    hist = _frame({f"s{i}": 50 + rng.normal(0, 2, 70) for i in range(6)})
    serial = run_forecast(hist, 5, "D", (80, 95), build_options("D", n_jobs=1))
    parallel = run_forecast(hist, 5, "D", (80, 95), build_options("D", n_jobs=2, serial_below=1))
    pd.testing.assert_frame_equal(serial, parallel)


def test_interval_coverage_is_near_nominal_on_gaussian_noise() -> None:
    rng = np.random.default_rng(9)
    n, h, k = 120, 10, 60
    data = rng.normal(100, 5, size=(k, n + h))
    hist = _frame({f"g{i}": data[i, :n] for i in range(k)})
    out = run_forecast(hist, h, "D", (80, 95), build_options("D", n_jobs=1))
    truth = data[:, n:].ravel()
    inside95 = (out["yhat_lo_95"] <= truth) & (truth <= out["yhat_hi_95"])
    inside80 = (out["yhat_lo_80"] <= truth) & (truth <= out["yhat_hi_80"])
    assert abs(inside95.mean() - 0.95) < 0.035
    assert abs(inside80.mean() - 0.80) < 0.06
    # the Gaussian 95% half-width is 1.96 * 5; calibrated intervals must not be far wider
    assert ((out["yhat_hi_95"] - out["yhat_lo_95"]) / 2).median() < 1.5 * 1.96 * 5


def test_custom_levels_produce_their_columns() -> None:
    hist = _frame({"a": 10 + np.random.default_rng(10).normal(0, 1, 40)})
    out = forecast(hist, horizon=3, freq="D", levels=(50, 99.5))
    assert {"yhat_lo_50", "yhat_hi_50", "yhat_lo_99_5", "yhat_hi_99_5"} <= set(out.columns)
    assert (out["yhat_lo_99_5"] <= out["yhat_lo_50"]).all()


def test_season_lengths_follow_the_frequency() -> None:
    assert infer_season_lengths("W-SUN") == (52.0,)
    assert infer_season_lengths("D") == (7.0, 365.25)
    assert infer_season_lengths("h") == (24.0, 168.0)
    assert infer_season_lengths("MS") == (12.0,)


@pytest.mark.parametrize(
    "overrides", [{"min_combine": 0}, {"combine_top": 1}, {"n_jobs": 0}, {"season_lengths": (1.0,)}]
)
def test_bad_options_raise_clear_errors(overrides: dict[str, object]) -> None:
    with pytest.raises(ForecastInputError, match="ForecastOptions"):
        build_options("D", **overrides)


def _good() -> pd.DataFrame:
    return _frame({"a": np.arange(10.0)})


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda: _good().drop(columns="y"), {}, r"missing required column\(s\) \['y'\]"),
        (lambda: _good().assign(ds=lambda d: d["ds"].astype(str)), {}, "'ds' must have a datetime64"),
        (lambda: _good().assign(y=lambda d: d["y"].astype(str)), {}, "'y' must be numeric"),
        (lambda: pd.concat([_good(), _good().tail(1)]), {}, "duplicate \\(unique_id, ds\\)"),
        (lambda: _good().assign(censored=1), {}, "'censored' must be boolean"),
        (lambda: _good().assign(y=np.inf), {}, "infinite"),
        (lambda: _good().iloc[:0], {}, "no rows"),
        (lambda: [1, 2], {}, "must be a pandas DataFrame"),
        (_good, {"horizon": 0}, "`horizon` must be an integer >= 1, got 0"),
        (_good, {"horizon": 2.5}, "`horizon` must be an integer >= 1, got 2.5"),
        (_good, {"levels": (80, 100)}, r"in \(0, 100\).*got 100"),
        (_good, {"levels": (0,)}, r"in \(0, 100\)"),
        (_good, {"levels": 95}, "`levels` must be a sequence"),
        (_good, {"freq": "not-a-freq"}, "`freq` must be a pandas frequency"),
        (_good, {"freq": "W-MON"}, "is not on the 'W-MON' grid"),
    ],
)
def test_bad_inputs_raise_clear_errors(make: object, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"horizon": 3, "freq": "D", **kwargs}
    with pytest.raises(ForecastInputError, match=message):
        forecast(make(), **args)  # type: ignore[operator, arg-type]


# --- sparse demand and the business's week -------------------------------------------------------


def _weekday_panel(n_series: int, days: int, prob: float, seed: int) -> dict[str, np.ndarray]:
    """Lumpy demand on weekdays only (the panel starts on a Monday)."""
    rng = np.random.default_rng(seed)
    weekday = (np.arange(days) % 7) < 5
    return {
        f"sku{i}": np.where(weekday & (rng.random(days) < prob), rng.poisson(6, days) + 1, 0).astype(float)
        for i in range(n_series)
    }


@pytest.mark.parametrize("position", [0, 350, 699])
@pytest.mark.parametrize("variant", ["croston", "sba", "tsb"])
def test_one_order_in_a_long_history_gives_a_small_rate(variant: str, position: int) -> None:
    y = np.zeros(700)
    y[position] = 70.0
    fc = build_croston(variant)(y, 28)
    # the order spread over the history is 0.1 a day; it used to be forecast as ~70 a day
    assert (fc.mean >= 0).all()
    assert fc.mean.max() <= 0.2
    assert np.all(np.isfinite(fc.replay(y[:400], 7)))


def test_croston_starts_from_the_mean_interval_of_the_whole_history() -> None:
    y = np.zeros(100)
    y[[9, 59]] = 10.0  # two demands in 100 periods: mean interval 50, size 10
    fc = build_croston("croston")(y, 1)
    assert 0.1 < fc.mean[0] < 0.4  # about 10 / 50, never 10 / 1


def test_sparse_series_in_a_long_history_are_not_forecast_as_daily_demand() -> None:
    values = _weekday_panel(20, 700, 0.3, seed=21)
    one = np.zeros(700)
    one[0] = 70.0
    values["one_order"] = one
    hist = _frame(values)
    out = forecast(hist, horizon=28, freq="D")
    _check_contract(out, hist, 28)
    assert out.loc[out["unique_id"] == "one_order", "yhat"].sum() < 5.0  # was 31 a day


def test_weekdays_the_business_never_trades_get_zero_forecasts_and_bounds() -> None:
    hist = _frame(_weekday_panel(12, 420, 0.4, seed=22))
    out = forecast(hist, horizon=21, freq="D")
    _check_contract(out, hist, 21)
    weekend = out["ds"].dt.day_of_week >= 5
    assert (out.loc[weekend, list(BOUNDS)] == 0).all().all()
    assert (out.loc[~weekend, "yhat"] > 0).all()
    assert (out.loc[~weekend, "yhat_hi_95"] > out.loc[~weekend, "yhat"]).all()


def test_one_series_alone_does_not_close_a_weekday() -> None:
    y = np.zeros(420)
    y[[14, 71, 150, 232, 301, 388]] = 5.0  # six orders, all on Mondays: not evidence enough
    hist = _frame({"rare": y})
    out = forecast(hist, horizon=14, freq="D")
    _check_contract(out, hist, 14)
    assert (out["yhat"] > 0).all()


def test_sparse_forecasts_follow_the_pooled_weekday_profile() -> None:
    rng = np.random.default_rng(23)
    days = 560
    dow = np.arange(days) % 7
    prob = np.array([0.6, 0.15, 0.15, 0.15, 0.15, 0.0, 0.0])[dow]  # Mondays are busy
    values = {
        f"sku{i}": np.where(rng.random(days) < prob, rng.poisson(4, days) + 1, 0).astype(float)
        for i in range(25)
    }
    sparse = np.zeros(days)
    sparse[[100, 233, 401]] = [8.0, 5.0, 9.0]  # three orders, on a Tuesday, a Thursday, a Friday
    values["sparse"] = sparse
    hist = _frame(values)
    out = forecast(hist, horizon=14, freq="D")
    _check_contract(out, hist, 14)
    s = out[out["unique_id"] == "sparse"].set_index(
        out.loc[out["unique_id"] == "sparse", "ds"].dt.day_of_week
    )
    by_day = s.groupby(level=0)["yhat"].mean()
    assert by_day[0] == by_day.max() > 1.5 * by_day[[1, 2, 3, 4]].max()
    assert by_day[[5, 6]].sum() == 0


def test_hourly_data_closed_at_night_gets_zero_forecasts_at_night() -> None:
    rng = np.random.default_rng(24)
    n = 24 * 7 * 6
    hour = np.arange(n) % 24
    open_hours = (hour >= 8) & (hour < 18)
    values = {
        f"store{i}": np.where(open_hours, rng.poisson(3 + 2 * np.sin(hour / 3.0), n), 0).astype(float)
        for i in range(6)
    }
    hist = _frame(values, freq="h")
    out = forecast(hist, horizon=48, freq="h")
    _check_contract(out, hist, 48, "h")
    night = (out["ds"].dt.hour < 8) | (out["ds"].dt.hour >= 18)
    assert (out.loc[night, list(BOUNDS)] == 0).all().all()
    assert (out.loc[~night, "yhat"] > 0.2).all()


def test_calendar_cycles_follow_the_frequency() -> None:
    assert choose_cycle("D", (7.0, 365.25), span=400) == 7
    assert choose_cycle("h", (24.0, 168.0), span=24 * 7 * 5) == 168
    assert choose_cycle("h", (24.0, 168.0), span=24 * 10) == 24
    assert choose_cycle("W-SUN", (52.0,), span=500) is None  # weekly data: no week inside a period
    assert choose_cycle("MS", (12.0,), span=100) is None
    assert choose_cycle("D", (), span=400) is None  # no seasonality asked for


def test_season_lengths_are_counted_in_open_periods() -> None:
    weekdays = np.array([True] * 5 + [False] * 2)
    assert compress_periods((7.0, 365.25), weekdays) == pytest.approx((5.0, 365.25 * 5 / 7))
    hours = np.zeros(168, dtype=bool)
    for day in range(6):  # Monday to Saturday, 9:00 to 17:00
        hours[day * 24 + 9 : day * 24 + 17] = True
    assert compress_periods((24.0, 168.0), hours) == (8.0, 48.0)


def test_the_calendar_can_be_switched_off() -> None:
    hist = _frame(_weekday_panel(12, 420, 0.4, seed=22))
    out = run_forecast(hist, 14, "D", (80, 95), build_options("D", calendar=False, n_jobs=1))
    weekend = out["ds"].dt.day_of_week >= 5
    assert (out.loc[weekend, "yhat"] > 0).any()


def test_least_squares_solver_finds_the_minimum_and_repeats_it_exactly() -> None:
    t = np.linspace(0.0, 4.0, 60)
    y = 3.0 * np.exp(-0.7 * t) + 0.5 + 0.01 * np.sin(7 * t)

    def resid(x: np.ndarray) -> np.ndarray:
        return x[0] * np.exp(-x[1] * t) + x[2] - y

    first = fit_least_squares(resid, np.array([1.0, 0.1, 0.0]), xtol=1e-10, ftol=1e-14)
    again = fit_least_squares(resid, np.array([1.0, 0.1, 0.0]), xtol=1e-10, ftol=1e-14)
    assert first.tobytes() == again.tobytes()
    assert first == pytest.approx([3.0, 0.7, 0.5], abs=0.02)


@pytest.mark.parametrize(("p", "q"), ARIMA_ORDERS)
def test_arima_jacobian_matches_finite_differences(p: int, q: int) -> None:
    rng = np.random.default_rng(25)
    z = np.convolve(rng.normal(size=300), [1.0, 0.5, 0.2])[:300]
    seen: dict[str, object] = {}

    def spy(fun: object, x0: np.ndarray, **kwargs: object) -> np.ndarray:
        seen["fun"], seen["jac"] = fun, kwargs["jac"]
        return x0

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(arima, "fit_least_squares", spy)
        arima._fit_order(z, p, q)
    fun, jac = seen["fun"], seen["jac"]
    x = rng.normal(0, 0.5, p + q)
    analytic = jac(x, fun(x))  # type: ignore[operator]
    numeric = np.empty_like(analytic)
    for k in range(p + q):
        step = np.zeros(p + q)
        step[k] = 1e-6
        numeric[k] = (fun(x + step) - fun(x - step)) / 2e-6  # type: ignore[operator]
    assert np.abs(analytic - numeric).max() <= 1e-6 * np.abs(numeric).max()
