"""Unit tests of pipelines.anomaly: metric scoring, incidents and order-line anomalies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.anomaly import (
    AnomalyInputError,
    build_incidents,
    score,
    score_records,
)

START = pd.Timestamp("2023-01-02")  # a Monday


def weekly_series(uid: str = "units", days: int = 200, seed: int = 0, level: float = 100.0) -> pd.DataFrame:
    """A series with a strong weekday pattern (weekends low) and Gaussian noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(START, periods=days, freq="D")
    weekday = np.array([1.0, 1.1, 1.05, 1.0, 1.2, 0.4, 0.3])[ds.day_of_week]
    y = level * weekday + rng.normal(0.0, 0.04 * level, days)
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": y})


def test_spike_detected() -> None:
    df = weekly_series()
    df.loc[150, "y"] *= 3
    out = score(df)
    row = out.iloc[150]
    assert row["is_anomaly"] and row["kind"] == "spike"
    assert "expected" in row["reason"]
    assert out["is_anomaly"].sum() == 1


def test_dip_detected() -> None:
    df = weekly_series()
    df.loc[150, "y"] *= 0.3
    out = score(df)
    assert out.iloc[150]["is_anomaly"] and out.iloc[150]["kind"] == "dip"


def test_no_alarm_on_weekday_seasonality() -> None:
    out = score(weekly_series(days=400))
    assert out["is_anomaly"].sum() <= 1
    assert out["score"].between(0, 1).all()


def test_missing_day_added_and_flagged() -> None:
    df = weekly_series().drop(index=120)
    out = score(df)
    assert len(out) == 200
    row = out.iloc[120]
    assert np.isnan(row["y"]) and row["kind"] == "missing" and row["is_anomaly"]


def test_events_not_flagged_but_mentioned() -> None:
    df = weekly_series()
    df.loc[150, "y"] *= 3
    events = pd.DataFrame({"unique_id": [None], "ds": [df.loc[150, "ds"]], "event": ["promotion"]})
    out = score(df, events=events)
    row = out.iloc[150]
    assert not row["is_anomaly"]
    assert "promotion" in row["reason"]


def test_causal_truncation_gives_identical_prefix() -> None:
    df = pd.concat([weekly_series("a"), weekly_series("b", seed=1)], ignore_index=True)
    full = score(df)
    cut = df[df["ds"] <= START + pd.Timedelta(days=130)]
    part = score(cut)
    common = full.merge(part, on=["unique_id", "ds"], suffixes=("", "_p"))
    assert len(common) == len(part)
    for col in ("expected", "lower", "upper", "score"):
        np.testing.assert_allclose(common[col], common[f"{col}_p"], rtol=0, atol=1e-9)
    assert (common["is_anomaly"] == common["is_anomaly_p"]).all()


def test_incidents_group_consecutive_days() -> None:
    df = weekly_series()
    df.loc[150:152, "y"] *= 3
    inc = build_incidents(score(df))
    assert len(inc) == 1
    assert inc.iloc[0]["points"] == 3 and inc.iloc[0]["status"] == "closed"


def test_bad_input_raises() -> None:
    with pytest.raises(AnomalyInputError, match="missing column"):
        score(pd.DataFrame({"unique_id": ["a"], "ds": [START]}))


def test_record_mispriced_and_duplicate() -> None:
    rng = np.random.default_rng(0)
    n = 60
    lines = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(n)],
            "line_no": 1,
            "order_date": pd.date_range(START, periods=n, freq="D"),
            "sku": "sku1",
            "customer_id": [f"c{i % 5}" for i in range(n)],
            "quantity": rng.integers(1, 10, n).astype(float),
            "unit_price": 10.0 * (1 + rng.normal(0, 0.01, n)),
            "discount": 0.0,
        }
    )
    lines.loc[50, "unit_price"] = 100.0
    dup = lines.iloc[[55]].assign(line_no=2)
    out = score_records(pd.concat([lines, dup], ignore_index=True))
    flagged = out[out["is_anomaly"]]
    assert set(flagged["record_id"]) == {"o50-1", "o55-2"}
    assert set(flagged["field"]) == {"unit_price", "duplicate"}
