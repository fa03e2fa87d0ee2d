"""Unit tests of pipelines.anomaly: metric scoring, incidents and order-line anomalies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.anomaly import (
    AnomalyInputError,
    ScoreOptions,
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


def multiplicative_counts(
    uid: str = "orders", days: int = 500, seed: int = 0, level: float = 40.0
) -> pd.DataFrame:
    """Counts whose weekday pattern and noise scale with a level that doubles over a year.

    Poisson counts around a mean with 10% multiplicative (log-normal) day-to-day noise: right-skewed,
    and weekends (0.3x) are relatively noisier than weekdays.
    """
    rng = np.random.default_rng(seed)
    ds = pd.date_range(START, periods=days, freq="D")
    weekday = np.array([1.0, 1.1, 1.05, 1.0, 1.2, 0.3, 0.3])[ds.day_of_week]
    mean = level * weekday * 2.0 ** (np.arange(days) / 365.0) * np.exp(rng.normal(0.0, 0.1, days))
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": rng.poisson(mean).astype(float)})


def intermittent_counts(uid: str = "slow", days: int = 400, seed: int = 0) -> pd.DataFrame:
    """Lumpy intermittent demand: about one order every three days, of 1 + Poisson(1) units each."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(START, periods=days, freq="D")
    orders = rng.poisson(0.35, days)
    y = np.array([orders[i] + rng.poisson(1.0, orders[i]).sum() for i in range(days)], dtype=float)
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": y})


def test_multiplicative_counts_few_false_alarms_and_spike_found() -> None:
    df = multiplicative_counts(days=500)
    out = score(df)
    assert out["is_anomaly"].sum() <= 1
    df.loc[450, "y"] *= 4
    out = score(df)
    assert out.iloc[450]["is_anomaly"] and out.iloc[450]["kind"] == "spike"


def test_skewed_series_gets_asymmetric_band() -> None:
    # Multiplicative noise: the band reaches further above the expected value than below it.
    rng = np.random.default_rng(1)
    ds = pd.date_range(START, periods=300, freq="D")
    weekday = np.array([1.0, 1.2, 1.1, 1.0, 1.3, 0.4, 0.3])[ds.day_of_week]
    y = 500.0 * weekday * np.exp(rng.normal(0.0, 0.15, 300))
    out = score(pd.DataFrame({"unique_id": "rev", "ds": ds, "y": y})).iloc[250:]
    assert ((out["upper"] - out["expected"]) > 1.2 * (out["expected"] - out["lower"])).all()
    assert (out["lower"] > 0).all()
    assert out["is_anomaly"].sum() == 0


def test_lumpy_intermittent_counts_no_false_alarms() -> None:
    df = intermittent_counts(days=400, seed=7)
    out = score(df)
    assert out["is_anomaly"].sum() == 0
    df.loc[350, "y"] = 40.0
    out = score(df)
    assert out.loc[out["is_anomaly"], "ds"].tolist() == [df.loc[350, "ds"]]


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


def test_level_shift_detected_with_since_date() -> None:
    df = weekly_series(days=220)
    df.loc[180:, "y"] *= 1.8
    out = score(df)
    shift = out[(out["kind"] == "level_shift") & out["is_anomaly"]]
    assert not shift.empty
    assert shift["ds"].min() <= START + pd.Timedelta(days=182)
    assert "level shift since" in shift.iloc[0]["reason"]
    inc = build_incidents(out)
    big = inc[inc["start"] >= START + pd.Timedelta(days=178)]
    assert len(big) == 1 and big.iloc[0]["kind"] == "level_shift"
    assert big.iloc[0]["start"] == START + pd.Timedelta(days=180)


def test_incremental_equals_full() -> None:
    df = pd.concat([weekly_series("a", days=300), weekly_series("b", days=300, seed=3)], ignore_index=True)
    df.loc[295, "y"] *= 4
    full = score(df)
    cut = START + pd.Timedelta(days=290)
    inc = score(df, options=ScoreOptions(only_after=cut))
    ref = full[full["ds"] > cut].reset_index(drop=True)
    assert len(inc) == len(ref) == 18
    pd.testing.assert_frame_equal(inc, ref)
    assert inc["is_anomaly"].any()


def test_incremental_from_trailing_window_equals_full() -> None:
    from pipelines.anomaly import REQUIRED_HISTORY_DAYS

    days = REQUIRED_HISTORY_DAYS + 40
    df = pd.concat(
        [
            weekly_series("a", days=days),
            weekly_series("b", days=days, seed=4),
            # count series take the square-root / log / count-model paths
            multiplicative_counts("c", days=days, seed=2),
            intermittent_counts("d", days=days, seed=3),
        ],
        ignore_index=True,
    )
    df.loc[days - 3, "y"] *= 4
    cut = START + pd.Timedelta(days=days - 5)
    full = score(df)
    window = df[df["ds"] > cut - pd.Timedelta(days=REQUIRED_HISTORY_DAYS)]
    inc = score(window, options=ScoreOptions(only_after=cut))
    ref = full[full["ds"] > cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(inc, ref, check_exact=True)
    assert inc["is_anomaly"].sum() == 1


@pytest.mark.parametrize("days", [1, 3, 10])
def test_short_series_never_alarm(days: int) -> None:
    df = weekly_series(days=days)
    df.loc[days - 1, "y"] *= 10
    out = score(df)
    assert len(out) == days
    assert not out["is_anomaly"].any()
    assert out["score"].between(0, 1).all()


def test_all_zero_series_no_alarm_then_spike() -> None:
    ds = pd.date_range(START, periods=120, freq="D")
    y = np.zeros(120)
    y[100] = 1.0  # an ordinary single unit
    y[110] = 50.0  # far above anything seen
    out = score(pd.DataFrame({"unique_id": "z", "ds": ds, "y": y}))
    flagged = out.loc[out["is_anomaly"], "ds"].tolist()
    assert flagged == [ds[110]]


def test_single_value_series() -> None:
    ds = pd.date_range(START, periods=90, freq="D")
    out = score(pd.DataFrame({"unique_id": "c", "ds": ds, "y": 42.5}))
    assert not out["is_anomaly"].any()
    np.testing.assert_allclose(out["expected"].iloc[-1], 42.5)
    one = score(pd.DataFrame({"unique_id": ["c"], "ds": [START], "y": [7.0]}))
    assert len(one) == 1 and not one["is_anomaly"].any()


def test_intermittent_series_no_alarm_for_ordinary_values() -> None:
    rng = np.random.default_rng(5)
    ds = pd.date_range(START, periods=300, freq="D")
    y = rng.poisson(0.15, 300).astype(float)
    out = score(pd.DataFrame({"unique_id": "slow", "ds": ds, "y": y}))
    assert (y > 0).sum() > 20
    assert out["is_anomaly"].sum() == 0
    y[250] = 40.0
    out = score(pd.DataFrame({"unique_id": "slow", "ds": ds, "y": y}))
    assert out.loc[out["is_anomaly"], "ds"].tolist() == [ds[250]]


def test_nan_value_scored_as_missing() -> None:
    df = weekly_series()
    df.loc[100, "y"] = np.nan
    out = score(df)
    assert out.iloc[100]["kind"] == "missing" and out.iloc[100]["is_anomaly"]
    assert "no value" in out.iloc[100]["reason"]
    assert not out.iloc[101:108]["is_anomaly"].any()


def test_holiday_event_for_all_series() -> None:
    df = pd.concat([weekly_series("a"), weekly_series("b", seed=2)], ignore_index=True)
    day = START + pd.Timedelta(days=150)
    df.loc[df["ds"] == day, "y"] *= 0.05
    events = pd.DataFrame({"unique_id": ["*"], "ds": [day], "event": ["holiday: Christmas"]})
    out = score(df, events=events)
    hit = out[out["ds"] == day]
    assert not hit["is_anomaly"].any()
    assert hit["reason"].str.contains("holiday: Christmas").all()
    assert not score(df)[lambda d: d["ds"] == day]["is_anomaly"].eq(False).any()


def test_end_option_flags_stopped_feed() -> None:
    df = weekly_series(days=100)
    out = score(df, options=ScoreOptions(end=START + pd.Timedelta(days=102)))
    assert len(out) == 103
    assert out.iloc[-3:]["kind"].eq("missing").all()


def test_incident_open_and_severity() -> None:
    df = weekly_series()
    df.loc[198:199, "y"] *= 5
    inc = build_incidents(score(df), thresholds={"critical": 0.999999, "medium": 0.9995})
    assert len(inc) == 1
    row = inc.iloc[0]
    assert row["status"] == "open" and row["severity"] == "critical" and row["points"] == 2
    assert row["incident_id"] == build_incidents(score(df)).iloc[0]["incident_id"]


def test_incident_gap_of_one_day_merges() -> None:
    df = weekly_series()
    df.loc[[150, 152], "y"] *= 4
    inc = build_incidents(score(df))
    assert len(inc) == 1 and inc.iloc[0]["points"] == 2
    assert len(build_incidents(score(df), max_gap_days=0)) == 2


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.DataFrame({"unique_id": [1], "ds": [START], "y": [1.0]}), "must hold strings"),
        (pd.DataFrame({"unique_id": ["a"], "ds": ["2023-01-01"], "y": [1.0]}), "datetime64"),
        (pd.DataFrame({"unique_id": ["a"], "ds": [START + pd.Timedelta(hours=3)], "y": [1.0]}), "midnight"),
        (pd.DataFrame({"unique_id": ["a", "a"], "ds": [START, START], "y": [1.0, 2.0]}), "duplicate"),
        (pd.DataFrame({"unique_id": ["a"], "ds": [START], "y": ["x"]}), "numeric"),
        (pd.DataFrame({"unique_id": ["a"], "ds": [START], "y": [np.inf]}), "infinite"),
    ],
)
def test_bad_series_input_raises_clear_error(frame: pd.DataFrame, match: str) -> None:
    with pytest.raises(AnomalyInputError, match=match):
        score(frame)


def test_bad_events_and_options_raise() -> None:
    df = weekly_series(days=20)
    with pytest.raises(AnomalyInputError, match="events is missing column"):
        score(df, events=pd.DataFrame({"ds": [START], "event": ["x"]}))
    with pytest.raises(AnomalyInputError, match="threshold"):
        ScoreOptions(threshold=1.5)
    with pytest.raises(AnomalyInputError, match="thresholds"):
        build_incidents(score(df), thresholds={"high": 2.0})


def test_records_customer_with_negotiated_price_not_flagged() -> None:
    n = 80
    lines = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(n)],
            "line_no": 1,
            "order_date": pd.date_range(START, periods=n, freq="D"),
            "sku": "sku1",
            "customer_id": np.where(np.arange(n) % 4 == 0, "vip", "std"),
            "quantity": 5.0,
            "unit_price": np.where(np.arange(n) % 4 == 0, 7.0, 10.0),
            "discount": 0.0,
        }
    )
    lines.loc[72, "unit_price"] = 0.7  # a vip line keyed in at a tenth of its price
    out = score_records(lines)
    # The vip's lower price is usual for the vip: prices need the customer's history to be unusual,
    # and once it has min_history earlier lines its negotiated price is its normal price.
    flagged = out[out["is_anomaly"]]
    assert list(flagged["record_id"]) == ["o72-1"]
    assert list(flagged["field"]) == ["unit_price"]
    assert set(out["field"]) == {"unit_price", "quantity", "discount"}
    assert len(out) == 3 * n


def test_records_bad_input_raises() -> None:
    with pytest.raises(AnomalyInputError, match="missing column"):
        score_records(pd.DataFrame({"order_id": ["o1"]}))
    lines = pd.DataFrame(
        {
            "order_id": ["o1", "o1"],
            "line_no": [1, 1],
            "order_date": [START, START],
            "sku": ["s", "s"],
            "customer_id": ["c", "c"],
            "quantity": [1.0, 1.0],
            "unit_price": [1.0, 1.0],
            "discount": [0.0, 0.0],
        }
    )
    with pytest.raises(AnomalyInputError, match="duplicate keys"):
        score_records(lines)


def demo_like_lines(n_days: int = 120, seed: int = 0) -> pd.DataFrame:
    """Order lines priced net of discount: list x (1 - promotion - wholesale discount).

    Two skus, promotions of 10-30% on some days, a wholesale customer group with 5/10/15% extra, and
    1 + Poisson(1) units per line; orders often hold two lines of the same sku.
    """
    rng = np.random.default_rng(seed)
    rows = []
    order = 0
    list_price = {"A": 12.0, "B": 3.5}
    promo = {d: (rng.choice([0.1, 0.2, 0.3]) if (d // 15) % 3 == 2 else 0.0) for d in range(n_days)}
    for d in range(n_days):
        for _ in range(6):
            order += 1
            cust = f"c{rng.integers(0, 6)}"
            wholesale = cust in ("c0", "c1")
            for line in range(1, int(rng.integers(1, 4)) + 1):
                sku = str(rng.choice(["A", "B"]))
                disc = promo[d] + (float(rng.choice([0.05, 0.1, 0.15])) if wholesale else 0.0)
                rows.append(
                    {
                        "order_id": f"o{order}",
                        "line_no": line,
                        "order_date": START + pd.Timedelta(days=d),
                        "sku": sku,
                        "customer_id": cust,
                        "quantity": float(1 + rng.poisson(1.0)),
                        "unit_price": round(list_price[sku] * (1 - disc), 2),
                        "discount": round(disc, 4),
                    }
                )
    return pd.DataFrame(rows)


def test_records_promotions_discounts_counts_and_chance_repeats_not_flagged() -> None:
    lines = demo_like_lines()
    out = score_records(lines)
    assert out["is_anomaly"].sum() == 0
    # The data do hold identical repeats by chance (same order, sku, quantity and price).
    assert (out["field"] == "duplicate").sum() > 0


def test_records_mispriced_and_unit_error_found_among_promotions() -> None:
    lines = demo_like_lines()
    late = lines.index[lines["order_date"] >= START + pd.Timedelta(days=100)]
    lines.loc[late[3], "unit_price"] *= 10
    lines.loc[late[20], "quantity"] = 100.0
    out = score_records(lines)
    flagged = out[out["is_anomaly"]]
    rid = lines["order_id"] + "-" + lines["line_no"].astype(str)
    assert set(flagged["record_id"]) == {rid[late[3]], rid[late[20]]}
    assert set(flagged["field"]) == {"unit_price", "quantity"}


def test_records_fitted_per_sku_shard_and_scored_per_customer_partition_equal_the_whole_night() -> None:
    """The nightly run fits the order lines one shard of SKUs at a time and scores them one
    partition of customers at a time: row for row the scores of the whole night at once."""
    from pipelines.anomaly import RecordOptions
    from pipelines.anomaly.records import night_fits, recent_lines, record_fits, score_fitted

    first, second = demo_like_lines(seed=1), demo_like_lines(seed=2)
    # the second set of orders buys other SKUs from the same customers
    second = second.assign(sku=second["sku"] + "2", order_id=second["order_id"] + "b")
    lines = pd.concat([first, second], ignore_index=True)
    late = lines.index[lines["order_date"] >= START + pd.Timedelta(days=100)]
    lines.loc[late[3], "unit_price"] *= 10
    lines.loc[late[40], "quantity"] = 100.0
    dup = lines.loc[[late[7]]].assign(line_no=lambda f: f["line_no"] + 10)
    lines = pd.concat([lines, dup], ignore_index=True).sample(frac=1.0, random_state=3)
    key = ["record_id", "field"]

    def rows(frame: pd.DataFrame) -> pd.DataFrame:  # a line without a reason: None however concatenated
        out = frame.sort_values(key).reset_index(drop=True)
        return out.assign(reason=out["reason"].astype(object).where(out["reason"].notna(), None))

    whole = rows(score_records(lines))
    assert whole["is_anomaly"].sum() >= 2 and (whole["field"] == "duplicate").any()

    # two shards of SKUs (an order's lines of both), then three partitions of customers
    fits = [record_fits(lines[lines["sku"].isin(skus)]) for skus in (["A", "B2"], ["B", "A2"])]
    every = pd.concat([f.lines for f in fits], ignore_index=True)
    part = every["customer_id"].map(lambda c: int(c[1:]) % 3)
    parts = [score_fitted(every[part == j], [f.pairs for f in fits]) for j in range(3)]
    pd.testing.assert_frame_equal(whole, rows(pd.concat(parts, ignore_index=True)))

    # only_after keeps the lines ordered after the day, with the same scores
    after = START + pd.Timedelta(days=110)
    recent = rows(score_fitted(every, [f.pairs for f in fits], only_after=after))
    pd.testing.assert_frame_equal(recent, whole[whole["order_date"] > after].reset_index(drop=True))
    # each shard keeps only the window's lines and each customer's last `window` lines before it:
    # the window's scores are the same, from a small part of the lines
    kept = pd.concat([night_fits(f.lines, after=after) for f in fits], ignore_index=True)
    assert len(kept) < len(every) / 2
    trimmed = rows(score_fitted(kept, [f.pairs for f in fits], only_after=after))
    pd.testing.assert_frame_equal(trimmed, recent)
    # fitting only those lines (against every line of their SKUs) gives the same rows and pairs
    for skus, f in zip((["A", "B2"], ["B", "A2"]), fits, strict=True):
        only = record_fits(lines[lines["sku"].isin(skus)], after=after)
        pd.testing.assert_frame_equal(only.lines, night_fits(f.lines, after=after))
        pd.testing.assert_frame_equal(only.pairs, f.pairs)
        assert len(only.lines) < len(f.lines) / 2
    # and a partition keeps, of every shard's, each customer's last `window` lines before it
    again = night_fits(kept, after=after)
    assert (
        len(again) < len(kept) and (again["order_date"] > after).sum() == (kept["order_date"] > after).sum()
    )
    pd.testing.assert_frame_equal(
        rows(score_fitted(again, [f.pairs for f in fits], only_after=after)), recent
    )
    # ... found first on the dates alone, in Arrow: fewer lines, the same ones kept in the end
    arrow = recent_lines(pa.Table.from_pandas(kept, preserve_index=False), after=after).to_pandas()
    assert len(again) <= len(arrow) < len(kept)
    pd.testing.assert_frame_equal(night_fits(arrow, after=after), again)
    # keeping fewer than `window` lines of history would change them
    short = pd.concat(
        [night_fits(f.lines, after=after, options=RecordOptions(window=10)) for f in fits], ignore_index=True
    )
    assert not rows(score_fitted(short, [f.pairs for f in fits], only_after=after))["score"].equals(
        recent["score"]
    )
    # a shard's pair counts alone would miss the other shard's pairs: the duplicate's score changes
    alone = rows(score_fitted(every, [fits[0].pairs]))
    assert not alone["score"].equals(whole["score"])


def test_recent_lines_keep_each_customers_last_window_before_the_day_ties_included() -> None:
    from pipelines.anomaly import RecordOptions
    from pipelines.anomaly.records import recent_lines

    day = pd.Timestamp("2026-11-01")
    lines = pa.table(
        {
            "customer_id": ["a"] * 6 + ["b"] * 2 + ["c"],
            # a: a line on Oct 31, two on Nov 1, two on Nov 2, one on Nov 5 (the window: after Nov 3);
            # b: Oct 1 and Nov 2; c: Nov 4
            "order_date": pd.to_datetime(
                [
                    *("2026-10-31", "2026-11-01", "2026-11-01", "2026-11-02", "2026-11-02", "2026-11-05"),
                    *("2026-10-01", "2026-11-02", "2026-11-04"),
                ]
            ),
            "n": list(range(9)),
        }
    )
    kept = recent_lines(
        lines, after=day + pd.Timedelta(days=2), options=RecordOptions(window=3, min_history=3)
    )
    # a: its last 3 before the window are the two of Nov 2 and one of Nov 1: both of Nov 1 come
    # along (a tie); b has fewer than 3: all of them; c only has a line in the window
    assert kept.column("n").to_pylist() == [1, 2, 3, 4, 5, 6, 7, 8]
    one = recent_lines(
        lines, after=day + pd.Timedelta(days=2), options=RecordOptions(window=2, min_history=2)
    )
    assert one.column("n").to_pylist() == [3, 4, 5, 6, 7, 8]
    micro = lines.cast(lines.schema.set(1, pa.field("order_date", pa.timestamp("us"))))  # as in the lake
    assert recent_lines(
        micro, after=day + pd.Timedelta(days=2), options=RecordOptions(window=2, min_history=2)
    ) == one.cast(micro.schema)
    assert recent_lines(lines.slice(0, 0), after=day).num_rows == 0
    assert recent_lines(lines, after=day - pd.Timedelta(days=60)).num_rows == 9  # all in the window


def test_history_cutoffs_spare_the_shards_the_lines_no_history_holds() -> None:
    """The plan counts each customer's lines a batch at a time; a score shard sends no line older
    than its customer's cut-off; a partition that finds a customer short of lines (a line counted
    twice) reads the lines left out: the same scores either way."""
    from pipelines.anomaly import RecordOptions
    from pipelines.anomaly.records import (
        HistoryCutoffs,
        left_out,
        night_fits,
        recent_lines,
        record_fits,
        score_fitted,
        short_histories,
    )

    opts = RecordOptions(window=3, min_history=3)
    after = pd.Timestamp("2026-11-03")
    days = ["2026-10-31", "2026-11-01", "2026-11-01", "2026-11-02", "2026-11-02", "2026-11-05"]
    cut = HistoryCutoffs(after, opts)
    cut.add(pa.array(["a"] * 4), pa.array(pd.to_datetime(days[:4])))  # in two batches
    cut.add(pa.array(["a", "a", "b"]), pa.array(pd.to_datetime([*days[4:], "2026-11-01"])))
    epoch = pd.Timestamp("1970-01-01")
    # a: 2 lines on Nov 2, 2 on Nov 1: its last 3 before the window from Nov 1; b: 1 line, none
    first = cut.finish()
    assert first.to_dict(orient="list") == {
        "customer_id": ["a"],
        "cutoff": [(pd.Timestamp("2026-11-01") - epoch).days],
    }
    assert first["cutoff"].dtype == np.int32
    cut.add(pa.array([7, 7, 7]), pa.array(pd.to_datetime(["2026-11-02"] * 3)))  # ids as text
    assert cut.finish().set_index("customer_id")["cutoff"].to_dict() == {
        "7": (pd.Timestamp("2026-11-02") - epoch).days,
        "a": (pd.Timestamp("2026-11-01") - epoch).days,
    }

    lines = demo_like_lines(seed=4)
    start = lines["order_date"].max() - pd.Timedelta(days=5)
    fits = [record_fits(lines[lines["sku"] == sku]) for sku in ("A", "B")]
    # the counts merged as the batches come (a night of many customers) or once at the end: the same
    merged = HistoryCutoffs(start)
    merged.merge_rows = 1
    for at in range(0, len(lines), 7):
        merged.add(pa.array(lines["customer_id"][at : at + 7]), pa.array(lines["order_date"][at : at + 7]))
    once = HistoryCutoffs(start)
    once.add(pa.array(lines["customer_id"]), pa.array(lines["order_date"]))
    pd.testing.assert_frame_equal(merged.finish(), once.finish())
    kept = [night_fits(f.lines, after=start, options=RecordOptions()) for f in fits]
    every = pd.concat(kept, ignore_index=True)
    whole = score_fitted(every, [f.pairs for f in fits], only_after=start)
    counted = HistoryCutoffs(start)
    counted.add(pa.array(lines["customer_id"]), pa.array(lines["order_date"]))
    counts = counted.finish()
    assert len(counts) and set(counts["customer_id"]) <= set(lines["customer_id"])
    cutoffs = pa.Table.from_pandas(counts, preserve_index=False)
    out = [left_out(k, after=start, cutoffs=cutoffs) for k in kept]
    sent = pd.concat([k[~o] for k, o in zip(kept, out, strict=True)], ignore_index=True)
    assert sum(o.sum() for o in out) > 0 and len(sent) < len(every)
    assert not short_histories(pa.Table.from_pandas(sent), list(counts["customer_id"]), after=start)
    trimmed = recent_lines(pa.Table.from_pandas(sent, preserve_index=False), after=start).to_pandas()
    pd.testing.assert_frame_equal(score_fitted(trimmed, [f.pairs for f in fits], only_after=start), whole)
    # a customer counted with lines the shards do not have: its cut-off is too late, and found so
    doubled = HistoryCutoffs(start)
    doubled.add(pa.array(lines["customer_id"]), pa.array(lines["order_date"]))
    late = lines[lines["order_date"] <= start].tail(1)
    doubled.add(pa.array(list(late["customer_id"]) * 60), pa.array(list(late["order_date"]) * 60))
    wrong = doubled.finish()
    as_table = pa.Table.from_pandas(wrong, preserve_index=False)
    short = pd.concat([k[~left_out(k, after=start, cutoffs=as_table)] for k in kept], ignore_index=True)
    assert short_histories(pa.Table.from_pandas(short), list(wrong["customer_id"]), after=start)
    assert not left_out(every, after=start, cutoffs=None).any()
    assert not left_out(every, after=start, cutoffs=as_table.slice(0, 0)).any()


def test_records_of_no_lines_are_no_rows() -> None:
    from pipelines.anomaly.records import empty_record_fits, score_fitted

    fits = empty_record_fits()
    assert fits.lines.empty and fits.pairs.empty
    assert score_fitted(fits.lines, [fits.pairs]).empty


def test_event_table_joins_a_period_s_events_in_order_once_each() -> None:
    """One row per series and period, sorted; the events of a period joined in the order they
    came, each once; a period with one event keeps it as it is."""
    from pipelines.anomaly.cadence import DAILY
    from pipelines.anomaly.panel import build_event_table

    rng = np.random.default_rng(7)
    n = 400
    events = pd.DataFrame(
        {
            "unique_id": rng.choice(["a", "b", "c", None], n),
            "ds": pd.Timestamp("2026-03-01") + pd.to_timedelta(rng.integers(0, 20, n), unit="D"),
            "event": rng.choice(["promotion", "stock-out", "holiday: Fair"], n),
        }
    )
    got = build_event_table(events, DAILY)
    expected: dict[tuple[str, int], list[str]] = {}
    for uid, ds, event in events.itertuples(index=False):
        key = ("*" if pd.isna(uid) else uid, int(ds.value // 86_400_000_000_000))
        if event not in expected.setdefault(key, []):
            expected[key].append(event)
    assert list(zip(got["unique_id"], got["period"], strict=True)) == sorted(expected)
    assert got["event"].tolist() == ["; ".join(expected[k]) for k in sorted(expected)]
    assert got.index.tolist() == list(range(len(got)))
    assert any(";" in e for e in got["event"]) and any(";" not in e for e in got["event"])


def test_events_are_the_scored_series_own_promotion_and_stockout_days() -> None:
    """A shard's events: every day of each promotion of its SKUs, for each of their demand series,
    and its series' stock-outs; another shard's promotions and stock-outs add nothing."""
    from pipelines.anomaly.events import build_events

    series = pd.DataFrame(
        {
            "unique_id": ["demand:A|W1", "demand:A|W2", "demand:B|W1", "revenue:W1"],
            "sku": ["A", "A", "B", None],
            "metric": ["demand", "demand", "demand", "revenue"],
        }
    )
    promotions = pd.DataFrame(
        {
            "sku": ["A", "C", "B", "B"],
            "start_date": pd.to_datetime(["2026-03-01", "2026-03-01", "2026-03-05", "2026-03-09"]),
            "end_date": pd.to_datetime(["2026-03-03", "2026-03-09", "2026-03-05", "2026-03-08"]),
        }
    )
    stockouts = pd.DataFrame(
        {"sku": ["A", "C"], "warehouse": ["W2", "W1"], "day": pd.to_datetime(["2026-03-02", "2026-03-04"])}
    )
    ev = build_events(series, holidays=(("2026-03-04", "Fair"),), promotions=promotions, stockouts=stockouts)
    got = {(u, str(d.date()), e) for u, d, e in ev.itertuples(index=False)}
    promo_a = {(u, f"2026-03-0{k}", "promotion") for u in ("demand:A|W1", "demand:A|W2") for k in (1, 2, 3)}
    assert got == {
        (None, "2026-03-04", "holiday: Fair"),
        *promo_a,
        ("demand:B|W1", "2026-03-05", "promotion"),  # a promotion ending before it starts: no day
    }  # the stock-out of A|W2 on a promotion day stays a promotion day; C is another shard's
    assert (ev["event"] == "stock-out").sum() == 0
    later = build_events(series, stockouts=stockouts)
    assert later["unique_id"].tolist() == ["demand:A|W2"]
