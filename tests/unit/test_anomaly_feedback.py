"""Unit tests of analyst feedback in pipelines.anomaly.score: points marked as expected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.anomaly import REQUIRED_HISTORY_DAYS, AnomalyInputError, ScoreOptions, score

START = pd.Timestamp("2023-01-02")  # a Monday


def weekly_series(uid: str = "units", days: int = 260, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range(START, periods=days, freq="D")
    weekday = np.array([1.0, 1.1, 1.05, 1.0, 1.2, 0.4, 0.3])[ds.day_of_week]
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": 100.0 * weekday + rng.normal(0.0, 4.0, days)})


BURST = list(range(200, 205))  # five days at three times the usual level, e.g. an unannounced promotion


def with_burst(days: int = 260) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = weekly_series(days=days)
    df.loc[BURST, "y"] *= 3.0
    return df, df.loc[BURST, ["unique_id", "ds"]]


def test_marked_points_are_not_flagged_and_say_so() -> None:
    df, fb = with_burst()
    plain = score(df)
    assert plain.loc[BURST, "is_anomaly"].all()
    out = score(df, feedback=fb)
    assert not out.loc[BURST, "is_anomaly"].any()
    assert out.loc[BURST, "reason"].str.contains("marked as expected by an analyst").all()
    # The evidence is still reported: the score says how unusual the values were (the first one
    # exactly as without feedback; the later ones no longer count the marked days as a shift).
    assert out.loc[BURST[0], "score"] == plain.loc[BURST[0], "score"]
    assert (out.loc[BURST, "score"] > 0.9995).all()


def test_marked_points_leave_the_baseline_like_missing_values() -> None:
    df, fb = with_burst()
    out = score(df, feedback=fb)
    plain = score(df)
    missing = score(df.assign(y=df["y"].mask(df.index.isin(BURST))))
    after = out.index > BURST[-1]
    for col in ("expected", "lower", "upper", "score"):
        np.testing.assert_array_equal(out.loc[after, col], missing.loc[after, col])
    # Without the feedback the burst widens the band and lifts the expected value of the weeks after.
    width = (out["upper"] - out["lower"])[after].iloc[:56].mean()
    plain_width = (plain["upper"] - plain["lower"])[after].iloc[:56].mean()
    assert width < 0.8 * plain_width
    assert not out.loc[after, "is_anomaly"].any()


def test_feedback_is_reproducible_and_incremental() -> None:
    df, fb = with_burst(days=REQUIRED_HISTORY_DAYS + 60)
    df.loc[df.index[-2], "y"] *= 4.0
    full = score(df, feedback=fb)
    pd.testing.assert_frame_equal(full, score(df, feedback=fb), check_exact=True)
    cut = df["ds"].max() - pd.Timedelta(days=5)
    window = df[df["ds"] > cut - pd.Timedelta(days=REQUIRED_HISTORY_DAYS)]
    inc = score(window, feedback=fb, options=ScoreOptions(only_after=cut))
    pd.testing.assert_frame_equal(inc, full[full["ds"] > cut].reset_index(drop=True), check_exact=True)
    assert inc["is_anomaly"].sum() == 1


def test_feedback_for_unknown_series_or_days_is_ignored() -> None:
    df = weekly_series(days=120)
    fb = pd.DataFrame({"unique_id": ["nope", "units"], "ds": [START, START + pd.Timedelta(days=500)]})
    pd.testing.assert_frame_equal(score(df, feedback=fb), score(df))


@pytest.mark.parametrize(
    ("feedback", "match"),
    [
        (pd.DataFrame({"unique_id": ["units"]}), "feedback is missing column"),
        (pd.DataFrame({"unique_id": ["units"], "ds": [START + pd.Timedelta(hours=5)]}), "midnight"),
        (pd.DataFrame({"unique_id": [None], "ds": [START]}), "null"),
    ],
)
def test_bad_feedback_raises(feedback: pd.DataFrame, match: str) -> None:
    with pytest.raises(AnomalyInputError, match=match):
        score(weekly_series(days=30), feedback=feedback)
