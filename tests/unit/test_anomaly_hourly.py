"""Unit tests of pipelines.anomaly.score on series sampled every hour (and the period contract)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.anomaly import AnomalyInputError, ScoreOptions, build_incidents, required_history, score

START = pd.Timestamp("2024-01-01")  # a Monday


def hourly_counts(uid: str = "visits", days: int = 70, seed: int = 0, level: float = 60.0) -> pd.DataFrame:
    """Hourly counts with a daily profile (afternoon peak, quiet nights) and quieter weekends."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(START, periods=24 * days, freq="h")
    hour, dow = ds.hour.to_numpy(), ds.day_of_week.to_numpy()
    profile = 0.15 + np.exp(-0.5 * ((hour - 14) / 4.0) ** 2)
    mean = level * profile * np.where(dow >= 5, 0.5, 1.0) * np.exp(rng.normal(0.0, 0.05, len(ds)))
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": rng.poisson(mean).astype(float)})


def at(days: int, hour: int) -> pd.Timestamp:
    return START + pd.Timedelta(days=days, hours=hour)


def test_hourly_series_are_scored_per_hour_with_few_false_alarms() -> None:
    df = pd.concat([hourly_counts("a"), hourly_counts("b", seed=1, level=400.0)], ignore_index=True)
    out = score(df)
    assert len(out) == len(df)
    assert (out.groupby("unique_id")["ds"].diff().dropna() == pd.Timedelta(hours=1)).all()
    late = out[out["ds"] >= at(21, 0)]
    assert len(build_incidents(late)) <= 1
    assert (out["lower"] >= 0).all()


def test_outage_spike_and_level_shift_are_found() -> None:
    outage = hourly_counts("outage", seed=2)
    outage.loc[outage["ds"].between(at(50, 10), at(50, 13)), "y"] = 0.0
    spike = hourly_counts("spike", seed=3)
    spike.loc[spike["ds"] == at(55, 15), "y"] *= 4.0
    shift = hourly_counts("shift", seed=4)
    shift.loc[shift["ds"] >= at(60, 9), "y"] = np.round(shift.loc[shift["ds"] >= at(60, 9), "y"] * 0.4)
    out = score(pd.concat([outage, spike, shift], ignore_index=True))
    inc = build_incidents(out)
    first = inc.groupby("unique_id")["start"].min()
    assert at(50, 10) <= first["outage"] <= at(50, 13)
    assert first["spike"] == at(55, 15)
    assert at(60, 9) <= first["shift"] <= at(61, 9)
    hit = out[(out["unique_id"] == "spike") & (out["ds"] == at(55, 15))].iloc[0]
    assert hit["kind"] == "spike" and "Monday" not in hit["reason"] and "15:00" in hit["reason"]
    assert "(1 hour," in inc.loc[inc["unique_id"] == "spike", "reason"].iloc[0]


def test_hourly_causal_truncation_gives_identical_prefix() -> None:
    df = pd.concat([hourly_counts("a", days=45), hourly_counts("b", days=45, seed=5)], ignore_index=True)
    df.loc[df.index[1000], "y"] *= 5.0
    full = score(df)
    for cut in (at(30, 7), at(41, 23), at(44, 12)):
        part = score(df[df["ds"] <= cut])
        ref = full[full["ds"] <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, ref, check_exact=True)


def test_hourly_incremental_last_day_equals_full() -> None:
    history = required_history("h")
    days = history.days + 10
    df = pd.concat([hourly_counts("a", days=days), hourly_counts("b", days=days, seed=6)], ignore_index=True)
    df.loc[df.index[-5], "y"] *= 5.0
    full = score(df)
    cut = df["ds"].max() - pd.Timedelta(hours=24)
    window = df[df["ds"] > cut - history]
    inc = score(window, options=ScoreOptions(only_after=cut))
    ref = full[full["ds"] > cut].reset_index(drop=True)
    assert len(inc) == 48
    pd.testing.assert_frame_equal(inc, ref, check_exact=True)
    assert inc["is_anomaly"].any()


def test_daily_event_covers_every_hour_of_its_day() -> None:
    df = hourly_counts(days=40)
    day = START + pd.Timedelta(days=35)
    df.loc[df["ds"].dt.normalize() == day, "y"] *= 5.0
    events = pd.DataFrame({"unique_id": [None], "ds": [day], "event": ["holiday: test"]})
    out = score(df, events=events)
    today = out[out["ds"].dt.normalize() == day]
    assert today["event"].eq("holiday: test").all() and not today["is_anomaly"].any()


def test_explicit_freq_matches_inferred() -> None:
    df = hourly_counts(days=30).iloc[::2]  # every other hour present: inferred as a 2-hour period
    assert (score(df)["ds"].diff().dropna() == pd.Timedelta(hours=2)).all()
    out = score(df, options=ScoreOptions(freq="h"))
    assert (out["ds"].diff().dropna() == pd.Timedelta(hours=1)).all()
    assert out["y"].isna().sum() == len(out) - len(df)


@pytest.mark.parametrize(
    ("stamps", "freq", "match"),
    [
        ([START, START + pd.Timedelta(hours=1, seconds=17)], None, "regular timestamps"),
        ([START, START + pd.Timedelta(minutes=30)], "h", "grid"),
        ([START, START + pd.Timedelta(hours=1)], "7min", "divide a day"),
    ],
)
def test_irregular_or_mismatched_timestamps_raise(
    stamps: list[pd.Timestamp], freq: str | None, match: str
) -> None:
    df = pd.DataFrame({"unique_id": "a", "ds": stamps, "y": [1.0, 2.0]})
    with pytest.raises(AnomalyInputError, match=match):
        score(df, options=ScoreOptions(freq=freq) if freq else None)
