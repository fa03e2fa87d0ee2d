"""Planner overrides: the rules, the final forecast, the time fence (pure functions, tiny frames)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from pipelines.errors import DataError
from pipelines.overrides import (
    adjust_forecasts,
    build_final_forecast,
    check_new_overrides,
    split_stored_overrides,
)

NIGHT = date(2026, 11, 22)
SERIES = pd.DataFrame({"sku": ["A", "A", "B"], "warehouse": ["W1", "W2", "W1"]})


def forecasts(days: int = 10, yhat: float = 10.0) -> pd.DataFrame:
    rows = [
        {"run_date": pd.Timestamp(NIGHT), "sku": s, "warehouse": w, "target_date": t, "yhat": yhat}
        for s, w in zip(SERIES["sku"], SERIES["warehouse"], strict=True)
        for t in pd.date_range(pd.Timestamp(NIGHT) + pd.Timedelta(days=1), periods=days)
    ]
    return pd.DataFrame(rows)


def override(
    i: int,
    sku: str = "A",
    warehouse: str | None = "W1",
    start: str = "2026-11-25",
    end: str = "2026-11-28",
    **kw,
):
    row = {
        "override_id": i,
        "sku": sku,
        "warehouse": warehouse,
        "start_date": start,
        "end_date": end,
        "value": None,
        "relative_change": None,
        "author": "ann",
        "reason": "why",
        "created_at": pd.Timestamp("2026-11-20", tz="UTC"),
        "expires_on": None,
    }
    row.update(kw)
    return row


def stored(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_value_replaces_change_multiplies_and_ids_trace_each_row():
    valid, skipped = split_stored_overrides(
        stored(override(1, value=50.0), override(2, sku="B", warehouse=None, relative_change=-0.5)),
        series=SERIES,
        run_date=NIGHT,
    )
    assert skipped.empty
    final = build_final_forecast(forecasts(), valid, None, run_date=NIGHT, fence_days=0)
    a1 = final[(final.sku == "A") & (final.warehouse == "W1")].set_index("target_date")
    assert (a1.loc["2026-11-25":"2026-11-28", "yhat_final"] == 50.0).all()
    assert (a1.loc["2026-11-25":"2026-11-28", "override_ids"] == "1").all()
    assert (a1.loc["2026-11-23":"2026-11-24", "yhat_final"] == 10.0).all()
    assert a1.loc["2026-11-23":"2026-11-24", "override_ids"].isna().all()
    b = final[final.sku == "B"].set_index("target_date")
    assert (b.loc["2026-11-25":"2026-11-28", "yhat_final"] == 5.0).all()
    assert (b.loc["2026-11-25":"2026-11-28", "override_ids"] == "2").all()
    assert (final["yhat"] == 10.0).all()  # the statistical forecast is kept


def test_time_fence_keeps_last_nights_final_forecast():
    valid, _ = split_stored_overrides(
        stored(override(1, start="2026-11-23", end="2026-11-30", value=50.0)), series=SERIES, run_date=NIGHT
    )
    previous = forecasts().assign(target_date=lambda f: f["target_date"], yhat_final=7.0, override_ids=None)
    previous.loc[previous.target_date == pd.Timestamp("2026-11-24"), "override_ids"] = "9"
    final = build_final_forecast(forecasts(), valid, previous, run_date=NIGHT, fence_days=3)
    a1 = final[(final.sku == "A") & (final.warehouse == "W1")].set_index("target_date")
    assert list(a1.loc["2026-11-23":"2026-11-25", "yhat_final"]) == [7.0, 7.0, 7.0]  # frozen
    assert list(a1.loc["2026-11-23":"2026-11-25", "override_ids"].fillna("-")) == ["-", "9", "-"]
    assert (a1.loc["2026-11-26":"2026-11-30", "yhat_final"] == 50.0).all()  # outside the fence
    # without a previous final forecast there is nothing to freeze
    first = build_final_forecast(forecasts(), valid, None, run_date=NIGHT, fence_days=3)
    assert (
        (
            first[(first.sku == "A") & (first.warehouse == "W1")]
            .set_index("target_date")
            .loc["2026-11-23", "yhat_final"]
        )
        == 50.0
    )


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (override(3, sku="Z", value=1.0), "unknown series SKU 'Z'"),
        (override(3, sku="Z", warehouse=None, value=1.0), "unknown SKU 'Z'"),
        (override(3, warehouse="W9", value=1.0), "unknown series SKU 'A' x warehouse 'W9'"),
        (override(3, value=-1.0), "value must be a quantity >= 0"),
        (override(3, relative_change=-1.5), "must be >= -1"),
        (override(3, value=1.0, relative_change=0.1), "exactly one of value"),
        (override(3), "exactly one of value"),
        (override(3, start="2026-11-28", end="2026-11-25", value=1.0), "is before start_date"),
        (override(3, author="", value=1.0), "author is empty"),
        (
            override(3, warehouse=None, start="2026-11-27", end="2026-12-01", value=1.0),
            "overlaps override #1",
        ),
    ],
)
def test_invalid_stored_rows_are_skipped_with_the_reason(row, problem):
    valid, skipped = split_stored_overrides(
        stored(override(1, value=50.0), row), series=SERIES, run_date=NIGHT
    )
    assert list(valid.override_id) == [1]
    assert list(skipped.override_id) == [3] and problem in skipped.problem.iloc[0]


def test_expired_and_finished_overrides_are_not_in_force():
    rows = stored(
        override(1, value=1.0, expires_on="2026-11-21"),
        override(2, sku="B", start="2026-11-01", end="2026-11-22", value=1.0),
        override(3, warehouse="W2", value=1.0, expires_on="2026-11-22"),
    )
    valid, skipped = split_stored_overrides(rows, series=SERIES, run_date=NIGHT)
    assert list(valid.override_id) == [3] and skipped.empty


def test_new_overrides_are_refused_whole_naming_every_bad_row():
    new = pd.DataFrame(
        [
            {
                "sku": "A",
                "warehouse": "W2",
                "start_date": "2026-11-25",
                "end_date": "2026-11-26",
                "value": 3,
                "author": "bob",
                "reason": "ok",
            },
            {
                "sku": "A",
                "warehouse": None,
                "start_date": "2026-11-26",
                "end_date": "2026-11-27",
                "value": 3,
                "author": "bob",
                "reason": "x",
            },
            {
                "sku": "B",
                "warehouse": "W1",
                "start_date": "2026-11-10",
                "end_date": "2026-11-27",
                "value": 3,
                "author": "bob",
                "reason": "x",
            },
            {
                "sku": "B",
                "warehouse": "W2",
                "start_date": "2026-11-25",
                "end_date": "2026-11-27",
                "value": -3,
                "author": "bob",
                "reason": "x",
            },
        ]
    )
    existing = stored(override(1, value=50.0))
    with pytest.raises(DataError) as err:
        check_new_overrides(new, series=SERIES, existing=existing, today=NIGHT)
    text = str(err.value)
    assert "3 of 4 override(s) refused, nothing was written" in text
    assert "row 2" in text and "overlaps override #1" in text
    assert "row 3" in text and "in the past" in text
    assert "row 4" in text and "unknown series" in text and "quantity >= 0" in text
    assert "  row 1 (" not in text  # row 1 is fine (row 2 overlaps it too)
    ok = check_new_overrides(new.iloc[:1], series=SERIES, existing=existing, today=NIGHT)
    assert len(ok) == 1


def test_rows_of_one_batch_may_not_overlap_each_other():
    new = pd.DataFrame(
        [
            {
                "sku": "B",
                "warehouse": "W1",
                "start_date": "2026-11-25",
                "end_date": "2026-11-26",
                "relative_change": 0.1,
                "author": "a",
                "reason": "r",
            },
            {
                "sku": "B",
                "warehouse": None,
                "start_date": "2026-11-26",
                "end_date": "2026-11-28",
                "relative_change": 0.1,
                "author": "a",
                "reason": "r",
            },
        ]
    )
    with pytest.raises(DataError, match=r"row 2 .*overlaps row 1 of this batch"):
        check_new_overrides(new, series=SERIES, existing=stored(override(1, value=1.0)).iloc[:0], today=NIGHT)


def test_adjust_reports_effects_totals_and_skipped():
    adjusted = adjust_forecasts(
        forecasts(),
        stored(override(1, value=50.0), override(2, sku="Z", value=1.0)),
        None,
        run_date=NIGHT,
        fence_days=2,
    )
    notes = adjusted.notes()
    assert notes["rows_overridden"] == 4 and notes["fenced_rows"] == 0
    assert notes["units_final"] - notes["units_statistical"] == pytest.approx(4 * 40.0)
    (active,) = notes["active"]
    assert (
        active["override_id"] == 1 and active["rows"] == 4 and active["units_change"] == pytest.approx(160.0)
    )
    (skipped,) = notes["skipped"]
    assert skipped["override_id"] == 2 and "unknown series" in skipped["problem"]


def test_value_added_by_lag_week():
    from pipelines.overrides import build_value_added

    by_lag = pd.DataFrame(
        {
            "lag_days": [1, 2, 8],
            "n_points": [2.0, 2.0, 1.0],
            "n_overridden": [1.0, 0.0, 0.0],
            "sum_actual": [10.0, 10.0, 0.0],
            "sum_naive": [14.0, 6.0, 3.0],
            "sum_statistical": [12.0, 9.0, 1.0],
            "sum_final": [11.0, 9.0, 1.0],
            "sum_abs_error_naive": [4.0, 4.0, 3.0],
            "sum_abs_error_statistical": [2.0, 1.0, 1.0],
            "sum_abs_error_final": [1.0, 1.0, 1.0],
        }
    )
    out = build_value_added(by_lag).set_index("lags")
    assert list(out.index) == ["1-7", "8-14"]
    week = out.loc["1-7"]
    assert week.n_points == 4 and week.n_overridden == 1
    assert week.wape_naive == pytest.approx(0.4) and week.wape_statistical == pytest.approx(0.15)
    assert week.wape_final == pytest.approx(0.1) and week.bias_final == pytest.approx(0.0)
    assert week.fva_statistical == pytest.approx(0.25) and week.fva_final == pytest.approx(0.05)
    assert (
        out.loc["8-14"].isna()[["wape_final", "fva_final"]].all()
    )  # no actual demand: undefined, not infinite
    assert build_value_added(by_lag.iloc[:0]).empty


# aggregate overrides: a category C of three series (X, Y in W1; Z in W2) next to an unrelated one (U)
CATS = pd.DataFrame({"sku": ["X", "Y", "Z", "U"], "category": ["C", "C", "C", "D"]})
AGG_SERIES = pd.DataFrame({"sku": ["X", "Y", "Z", "U"], "warehouse": ["W1", "W1", "W2", "W1"]})
AGG_YHAT = {"X": 10.0, "Y": 30.0, "Z": 60.0, "U": 7.0}


def agg_forecasts(days: int = 10, yhat: dict[str, float] | None = None) -> pd.DataFrame:
    level = AGG_YHAT if yhat is None else yhat
    rows = [
        {"run_date": pd.Timestamp(NIGHT), "sku": s, "warehouse": w, "target_date": t, "yhat": level[s]}
        for s, w in zip(AGG_SERIES["sku"], AGG_SERIES["warehouse"], strict=True)
        for t in pd.date_range(pd.Timestamp(NIGHT) + pd.Timedelta(days=1), periods=days)
    ]
    return pd.DataFrame(rows)


def aggregate(i: int, category: str | None = "C", warehouse: str | None = None, **kw) -> dict:
    return override(i, sku=None, warehouse=warehouse, category=category, **kw)


def adjust(rows: list[dict], forecasts: pd.DataFrame | None = None, previous=None, fence_days: int = 0):
    return adjust_forecasts(
        agg_forecasts() if forecasts is None else forecasts,
        stored(*rows),
        previous,
        run_date=NIGHT,
        fence_days=fence_days,
        categories=CATS,
    )


def day_rows(final: pd.DataFrame, day: str) -> pd.DataFrame:
    return final[final["target_date"] == pd.Timestamp(day)].set_index("sku")


def test_category_value_is_shared_by_the_statistical_forecast_and_sums_to_it():
    adjusted = adjust([aggregate(1, value=200.0)])
    assert adjusted.skipped.empty
    final = adjusted.final
    for day in pd.date_range("2026-11-25", "2026-11-28"):
        d = day_rows(final, str(day.date()))
        # shares 10 : 30 : 60 of 200
        assert d.loc[["X", "Y", "Z"], "yhat_final"].tolist() == pytest.approx([20.0, 60.0, 120.0])
        assert d.loc[["X", "Y", "Z"], "yhat_final"].sum() == pytest.approx(200.0)
        assert (d.loc[["X", "Y", "Z"], "override_ids"] == "1").all()
        assert d.loc["U", "yhat_final"] == 7.0 and pd.isna(d.loc["U", "override_ids"])  # other category
    outside = day_rows(final, "2026-11-24")
    assert outside["yhat_final"].tolist() == outside["yhat"].tolist()
    assert outside["override_ids"].isna().all()
    assert list(adjusted.active["rows"]) == [12]  # 3 series x 4 days
    assert adjusted.active["units_final"].iloc[0] == pytest.approx(800.0)


def test_category_in_one_warehouse_and_total_in_one_warehouse():
    by_wh = adjust([aggregate(1, warehouse="W1", value=80.0)]).final
    d = day_rows(by_wh, "2026-11-26")
    assert d.loc[["X", "Y"], "yhat_final"].tolist() == pytest.approx([20.0, 60.0])
    assert d.loc["Z", "yhat_final"] == 60.0 and pd.isna(d.loc["Z", "override_ids"])
    total = adjust([aggregate(1, category=None, warehouse="W1", value=94.0)]).final
    d = day_rows(total, "2026-11-26")
    # X, Y and U are W1's series: 10 : 30 : 7 of 94
    assert d.loc[["X", "Y", "U"], "yhat_final"].tolist() == pytest.approx([20.0, 60.0, 14.0])
    assert d.loc["Z", "yhat_final"] == 60.0


def test_aggregate_value_on_a_zero_forecast_is_split_equally():
    final = adjust(
        [aggregate(1, value=90.0)], agg_forecasts(yhat={"X": 0.0, "Y": 0.0, "Z": 0.0, "U": 1.0})
    ).final
    d = day_rows(final, "2026-11-25")
    assert d.loc[["X", "Y", "Z"], "yhat_final"].tolist() == pytest.approx([30.0, 30.0, 30.0])


def test_a_negative_statistical_forecast_gets_no_share():
    final = adjust(
        [aggregate(1, value=100.0)], agg_forecasts(yhat={"X": -5.0, "Y": 25.0, "Z": 75.0, "U": 1.0})
    ).final
    d = day_rows(final, "2026-11-25")
    assert d.loc[["X", "Y", "Z"], "yhat_final"].tolist() == pytest.approx([0.0, 25.0, 75.0])


def test_aggregate_relative_change_multiplies_every_child():
    final = adjust([aggregate(1, category=None, relative_change=0.5)]).final
    d = day_rows(final, "2026-11-27")
    assert d["yhat_final"].to_dict() == pytest.approx({"X": 15.0, "Y": 45.0, "Z": 90.0, "U": 10.5})
    assert (d["override_ids"] == "1").all()


def test_a_series_override_inside_a_category_override_is_made_up_by_its_siblings():
    adjusted = adjust(
        [
            aggregate(1, value=200.0),
            override(2, sku="Y", warehouse="W1", start="2026-11-27", end="2026-11-27", value=5.0),
        ]
    )
    d = day_rows(adjusted.final, "2026-11-27")
    assert d.loc["Y", "yhat_final"] == 5.0 and d.loc["Y", "override_ids"] == "2"  # the planner's SKU stands
    # X and Z share the remaining 195 by their statistical 10 : 60
    assert d.loc[["X", "Z"], "yhat_final"].tolist() == pytest.approx([195 * 10 / 70, 195 * 60 / 70])
    assert d.loc[["X", "Y", "Z"], "yhat_final"].sum() == pytest.approx(200.0)  # the category's total holds
    assert (d.loc[["X", "Z"], "override_ids"] == "1").all()
    other = day_rows(adjusted.final, "2026-11-26")
    assert other.loc[["X", "Y", "Z"], "yhat_final"].tolist() == pytest.approx([20.0, 60.0, 120.0])
    assert adjusted.shortfalls == ()


def test_nested_aggregate_overrides_apply_the_most_specific_first():
    """Total 300, category C 200 inside it, category C in W1 50 inside that (one day): C x W1's
    series X, Y share 50 (10 : 30), Z (C's other series) takes 200 - 50, U (the total's other
    series) takes 300 - 200."""
    one_day = {"start": "2026-11-26", "end": "2026-11-26"}
    adjusted = adjust(
        [
            aggregate(1, category=None, value=300.0, **one_day),
            aggregate(2, value=200.0, **one_day),
            aggregate(3, warehouse="W1", value=50.0, **one_day),
        ]
    )
    assert adjusted.skipped.empty
    d = day_rows(adjusted.final, "2026-11-26")
    assert d["yhat_final"].to_dict() == pytest.approx({"X": 12.5, "Y": 37.5, "Z": 150.0, "U": 100.0})
    assert d["override_ids"].to_dict() == {"X": "3", "Y": "3", "Z": "2", "U": "1"}
    units = adjusted.active.set_index("override_id")["units_final"].to_dict()
    assert units == pytest.approx({1: 100.0, 2: 150.0, 3: 50.0})  # the rows each override set


def test_a_total_relative_change_around_a_category_override_keeps_the_totals_target():
    """Total +50 % (statistical 107 -> 160.5) around category C = 200: U gets 160.5 - 200 < 0, so
    the category stands, U gets 0 and the shortfall is reported."""
    one_day = {"start": "2026-11-26", "end": "2026-11-26"}
    adjusted = adjust(
        [aggregate(1, category=None, relative_change=0.5, **one_day), aggregate(2, value=200.0, **one_day)]
    )
    d = day_rows(adjusted.final, "2026-11-26")
    assert d.loc[["X", "Y", "Z"], "yhat_final"].sum() == pytest.approx(200.0)
    assert d.loc["U", "yhat_final"] == 0.0
    assert len(adjusted.shortfalls) == 1
    assert adjusted.shortfalls[0].startswith("override #1 total x all warehouses 2026-11-26..2026-11-26:")
    assert "on 1 date(s) its nested overrides leave no room" in adjusted.shortfalls[0]
    assert adjusted.notes()["shortfalls"] == list(adjusted.shortfalls)
    # with room: total +50 % around category C = 100 -> U = 160.5 - 100
    roomy = adjust(
        [aggregate(1, category=None, relative_change=0.5, **one_day), aggregate(2, value=100.0, **one_day)]
    )
    assert day_rows(roomy.final, "2026-11-26").loc["U", "yhat_final"] == pytest.approx(60.5)
    assert roomy.shortfalls == ()


def test_time_fence_freezes_the_children_of_an_aggregate_override():
    first = adjust([]).final  # last night: no override
    previous = first[["sku", "warehouse", "target_date", "yhat_final", "override_ids"]]
    final = adjust([aggregate(1, value=200.0)], previous=previous, fence_days=3).final
    inside = day_rows(final, "2026-11-25")  # night + 3: frozen
    assert inside["yhat_final"].tolist() == inside["yhat"].tolist()
    assert inside["override_ids"].isna().all()
    after = day_rows(final, "2026-11-26")
    assert after.loc[["X", "Y", "Z"], "yhat_final"].sum() == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (aggregate(3, category="NOPE", value=1.0), "unknown category 'NOPE'"),
        (
            aggregate(3, warehouse="W2", category="D", value=1.0),
            "category 'D' has no forecast series in warehouse",
        ),
        (aggregate(3, category=None, warehouse="W9", value=1.0), "unknown warehouse 'W9'"),
        (override(3, sku="X", warehouse="W1", category="C", value=1.0), "not both"),
    ],
)
def test_bad_aggregate_overrides_are_refused_and_skipped(row, problem):
    with pytest.raises(DataError, match="nothing was written") as err:
        check_new_overrides(
            pd.DataFrame([row]).drop(columns=["override_id", "created_at"]),
            series=AGG_SERIES,
            existing=stored(override(1, sku="U", value=1.0)),
            today=NIGHT,
            categories=CATS,
        )
    assert problem in str(err.value)
    skipped = adjust([row]).skipped
    assert list(skipped.override_id) == [3] and problem in skipped["problem"].iloc[0]


def test_category_overrides_need_the_products_categories():
    _, skipped = split_stored_overrides(stored(aggregate(1, value=1.0)), series=AGG_SERIES, run_date=NIGHT)
    assert "no products' categories are known" in skipped["problem"].iloc[0]


def test_aggregates_of_one_scope_or_crossing_scopes_conflict_nested_ones_do_not():
    valid, skipped = split_stored_overrides(
        stored(
            aggregate(1, value=100.0),
            aggregate(2, warehouse="W1", value=50.0, start="2026-11-28", end="2026-11-30"),  # inside 1
            aggregate(3, category=None, relative_change=0.1, start="2026-11-26", end="2026-11-26"),  # holds 1
            aggregate(4, category="D", value=3.0),  # another category
            override(5, sku="X", warehouse="W1", value=1.0),  # a series inside 1
            aggregate(6, value=80.0, start="2026-11-27", end="2026-11-27"),  # the same scope as 1
            aggregate(7, category=None, warehouse="W1", value=9.0),  # W1's total crosses category C
            aggregate(8, category=None, warehouse="W2", value=9.0, start="2026-12-01", end="2026-12-01"),
        ),
        series=AGG_SERIES,
        run_date=NIGHT,
        categories=CATS,
    )
    assert list(valid.override_id) == [1, 2, 3, 4, 5, 8]
    assert list(skipped.override_id) == [6, 7]
    assert all("overlaps override #1 category C" in p for p in skipped["problem"])


def test_a_night_adjusted_one_shard_of_skus_at_a_time_equals_the_whole_night():
    from pipelines.overrides import NightAdjustment

    rows = stored(
        override(1, start="2026-11-23", end="2026-11-30", value=50.0),
        override(2, sku="B", warehouse=None, relative_change=-0.5),
        override(3, sku="Z", value=1.0),  # skipped: unknown series
        override(4, sku="A", warehouse="W2", start="2026-12-01", end="2026-12-02", value=0.0),
    )
    night = forecasts().assign(yhat=lambda f: 10.0 + f.index % 7)
    previous = forecasts().assign(yhat_final=7.0, override_ids=None)
    previous.loc[previous.target_date == pd.Timestamp("2026-11-24"), "override_ids"] = "9"
    previous = previous[(previous.sku != "B") | (previous.target_date > pd.Timestamp("2026-11-23"))]

    whole = adjust_forecasts(night, rows, previous, run_date=NIGHT, fence_days=3)
    parts = NightAdjustment(rows, SERIES, run_date=NIGHT, fence_days=3)
    assert parts.by_parts
    finals = [
        parts.apply(night[night.sku == sku], previous[previous.sku == sku].drop(columns="run_date"))
        for sku in ("B", "A")
    ]

    key = ["sku", "warehouse", "target_date"]
    got = pd.concat(finals).sort_values(key).reset_index(drop=True)
    want = whole.final.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    expected, notes = whole.notes(), parts.notes()
    assert notes["fenced_rows"] == expected["fenced_rows"] > 0
    assert notes["rows_overridden"] == expected["rows_overridden"] > 0
    assert notes["units_final"] == pytest.approx(expected["units_final"])
    assert notes["units_statistical"] == pytest.approx(expected["units_statistical"])
    assert notes["skipped"] == expected["skipped"] and len(notes["skipped"]) == 1
    assert [a["override_id"] for a in notes["active"]] == [a["override_id"] for a in expected["active"]]
    for got_one, want_one in zip(notes["active"], expected["active"], strict=True):
        assert list(got_one) == list(want_one)
        for k, v in want_one.items():
            assert got_one[k] == (pytest.approx(v) if isinstance(v, float) else v), k


def test_an_aggregate_override_in_force_adjusts_the_night_whole():
    from pipelines.overrides import NightAdjustment

    night = NightAdjustment(
        stored(override(1, sku=None, warehouse="W1", value=30.0)), SERIES, run_date=NIGHT, fence_days=0
    )
    assert len(night.valid) == 1 and not night.by_parts
    with pytest.raises(ValueError, match="adjust the night whole"):
        night.apply(forecasts(), None)
