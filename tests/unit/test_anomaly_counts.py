"""Unit tests of pipelines.anomaly on sparse counts: the count model, bands, reasons and severities."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from pipelines.anomaly import DEFAULT_SEVERITIES, DEFAULT_THRESHOLD, build_incidents, score

START = pd.Timestamp("2023-01-02")  # a Monday


def sparse_orders(
    uid: str = "demand:SKU1|WH1",
    days: int = 730,
    orders_per_year: float = 8.0,
    sizes: tuple[float, ...] = (5, 10, 12, 20, 40),
    seed: int = 0,
) -> pd.DataFrame:
    """A product x location series of an ERP: weekday-only trading, a handful of orders a year of a
    few usual sizes, zero on every other day."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(START, periods=days, freq="D")
    p = orders_per_year / (365.25 * 5 / 7)
    order = (rng.random(days) < p) & (ds.day_of_week < 5)
    y = np.where(order, rng.choice(np.asarray(sizes, dtype=float), days), 0.0)
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": y})


def panel(n: int, days: int = 730) -> pd.DataFrame:
    return pd.concat([sparse_orders(f"s{i}", days=days, seed=i) for i in range(n)], ignore_index=True)


def recurrence_in_weeks(reason: str) -> float:
    """Weeks in "happens about once in N weeks|months|years" of a reason."""
    m = re.search(r"happens about once in ([\d,]+) (weeks|months|years)", reason)
    assert m, reason
    n = float(m.group(1).replace(",", ""))
    return n * {"weeks": 1.0, "months": 30.44 / 7.0, "years": 365.25 / 7.0}[m.group(2)]


def test_ordinary_orders_of_sparse_series_are_not_critical() -> None:
    out = score(panel(60))
    orders = out[out["y"] > 0]
    assert len(orders) > 500
    # A usual size at the usual frequency is ordinary: the median order is far from any threshold,
    # few orders are alarms and none is critical.
    assert orders["score"].median() < 0.99
    assert orders["is_anomaly"].mean() < 0.02
    assert not (orders["is_anomaly"] & (orders["score"] >= DEFAULT_SEVERITIES["critical"])).any()
    later = out[out["ds"] >= START + pd.Timedelta(days=60)]
    assert (later["model"] == "causal-compound-count").all()


def test_sparse_false_alarms_below_one_per_thousand_series_days() -> None:
    out = score(panel(60))
    late = out[out["ds"] >= START + pd.Timedelta(days=365)]
    assert 1000 * len(build_incidents(late)) / len(late) < 1.0


def test_size_seen_twice_is_inside_the_band() -> None:
    df = sparse_orders(orders_per_year=20, sizes=(3, 4, 5, 6, 50), seed=3)
    out = score(df)
    late = out[(out["ds"] >= START + pd.Timedelta(days=400)) & (out["y"] == 50)]
    assert len(late) >= 2
    assert not late["is_anomaly"].any()
    assert (late["upper"] >= 50).all()


@pytest.mark.parametrize("seed", [1, 2])
def test_burst_and_size_far_outside_are_found(seed: int) -> None:
    df = sparse_orders(seed=seed)
    burst, huge = 600, 650
    df.loc[burst, "y"] = 12.0 * 30  # thirty usual orders on one day
    df.loc[huge, "y"] = 5000.0  # a size far outside anything seen
    out = score(df)
    assert out.loc[burst, "is_anomaly"] and out.loc[huge, "is_anomaly"]
    assert out.loc[huge, "score"] >= DEFAULT_SEVERITIES["high"]
    reason = out.loc[huge, "reason"]
    assert "x the expected" not in reason and "happens" in reason


def test_bands_of_non_negative_series_never_go_below_zero() -> None:
    rng = np.random.default_rng(4)
    ds = pd.date_range(START, periods=400, freq="D")
    frames = [
        panel(5),
        # amounts with zeros and a wide spread: an additive band would reach far below zero
        pd.DataFrame(
            {
                "unique_id": "pipeline_value:A1",
                "ds": ds,
                "y": np.where(rng.random(400) < 0.6, 0.0, 1.0) * rng.lognormal(9, 1.5, 400).round(2),
            }
        ),
        pd.DataFrame({"unique_id": "tickets:A2", "ds": ds, "y": rng.poisson(0.8, 400).astype(float)}),
        pd.DataFrame({"unique_id": "revenue:W1", "ds": ds, "y": rng.normal(100, 60, 400).clip(0).round(2)}),
    ]
    out = score(pd.concat(frames, ignore_index=True))
    assert (out["lower"].dropna() >= 0).all()
    # A series with negative values keeps its two-sided band.
    neg = pd.DataFrame({"unique_id": "margin", "ds": ds, "y": rng.normal(0, 10, 400)})
    assert (score(neg)["lower"].iloc[100:] < 0).all()


def test_sparse_amounts_have_no_ratio_messages() -> None:
    # A CRM account with a few opportunities a year worth 10k to 2M: "3192087.4x" must not appear.
    rng = np.random.default_rng(5)
    ds = pd.date_range(START, periods=730, freq="D")
    y = np.where(rng.random(730) < 6 / 365, rng.lognormal(11, 1.2, 730).round(2), 0.0)
    y[700] = 5e8
    out = score(pd.DataFrame({"unique_id": "pipeline_value:A9", "ds": ds, "y": y}))
    flagged = out[out["is_anomaly"]]
    assert list(flagged.index) == [700]
    assert not out["reason"].dropna().str.contains(r"\d+(?:\.\d+)?x the expected").any()
    assert "happens" in flagged.loc[700, "reason"]


def test_zero_on_busy_series_weighed_by_past_zeros() -> None:
    rng = np.random.default_rng(6)
    ds = pd.date_range(START, periods=500, freq="D")
    y = rng.poisson(17, 500).astype(float)
    quiet = pd.DataFrame({"unique_id": "quiet", "ds": ds, "y": y.copy()})
    y_so = y.copy()
    y_so[rng.choice(np.arange(60, 450), 12, replace=False)] = 0.0  # stock-outs: zeros happen
    stockouts = pd.DataFrame({"unique_id": "stockouts", "ds": ds, "y": y_so})
    for frame in (quiet, stockouts):
        frame.loc[470, "y"] = 0.0
    out = score(pd.concat([quiet, stockouts], ignore_index=True)).set_index(["unique_id", "ds"])
    day = ds[470]
    never = out.loc[("quiet", day)]
    assert never["is_anomaly"] and never["kind"] == "dip"
    assert never["reason"].startswith("0 against the expected")
    sometimes = out.loc[("stockouts", day)]
    assert not sometimes["is_anomaly"]
    assert sometimes["score"] < DEFAULT_THRESHOLD


def test_message_recurrence_matches_the_score() -> None:
    df = sparse_orders(seed=7)
    df.loc[640, "y"] = 400.0
    out = score(df)
    row = out.loc[640]
    assert row["is_anomaly"]
    # score = 1 - 2 * tail (one day), the reason says "once in 1 / tail <weekday>s" = 1 / tail weeks.
    weeks = recurrence_in_weeks(row["reason"])
    tail = (1.0 - row["score"]) / 2.0
    if tail > 0:
        assert weeks == pytest.approx(1.0 / tail, rel=0.1)
    else:
        assert "1,000 years" in row["reason"]


def test_incremental_equals_full_for_sparse_series() -> None:
    from pipelines.anomaly import REQUIRED_HISTORY_DAYS, ScoreOptions

    df = panel(4, days=REQUIRED_HISTORY_DAYS + 60)
    df.loc[df.index[-3], "y"] = 999.0
    cut = df["ds"].max() - pd.Timedelta(days=10)
    full = score(df)
    window = df[df["ds"] > cut - pd.Timedelta(days=REQUIRED_HISTORY_DAYS)]
    inc = score(window, options=ScoreOptions(only_after=cut))
    pd.testing.assert_frame_equal(inc, full[full["ds"] > cut].reset_index(drop=True), check_exact=True)
