"""Forecast accuracy by lag on tiny hand-built frames, with figures computed by hand."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import DataError
from pipelines.forecasting.accuracy import (
    ACCURACY_COLUMNS,
    NO_CATEGORY,
    accuracy_window,
    build_forecast_accuracy,
    build_mase_scale,
)

NIGHT = date(2026, 1, 16)
D = pd.Timestamp


def _history() -> pd.DataFrame:
    """14 days before the window (Jan 1-14): A steps from 1 to 3 (scale 2), B is constant at 5
    (scale 0), C steps from 0 to 4 (scale 4)."""
    days = pd.date_range("2026-01-01", periods=14, freq="D")
    rows = []
    for sku, week1, week2 in (("A", 1.0, 3.0), ("B", 5.0, 5.0), ("C", 0.0, 4.0)):
        for i, ds in enumerate(days):
            rows.append((sku, "W1", ds, week1 if i < 7 else week2))
    return pd.DataFrame(rows, columns=["sku", "warehouse", "ds", "y"])


ACTUALS = pd.DataFrame(
    [
        ("A", "W1", D("2026-01-15"), 6.0),
        ("A", "W1", D("2026-01-16"), 4.0),
        ("B", "W1", D("2026-01-15"), 5.0),
        ("B", "W1", D("2026-01-16"), 3.0),
        ("C", "W1", D("2026-01-15"), 0.0),  # a series that sold nothing in the window
        ("C", "W1", D("2026-01-16"), 0.0),
    ],
    columns=["sku", "warehouse", "ds", "actual"],
)

FORECASTS = pd.DataFrame(
    [
        # sku, run, target, yhat, lo80, hi80, lo95, hi95
        ("A", "2026-01-14", "2026-01-15", 4.0, 3.0, 5.0, 2.0, 7.0),  # err 2: 80 out, 95 in
        ("A", "2026-01-14", "2026-01-16", 5.0, 4.0, 6.0, 3.0, 7.0),  # err 1: in (on the bound), in
        ("A", "2026-01-15", "2026-01-16", 3.0, 2.0, 3.5, 1.0, 5.0),  # err 1: out, in
        ("A", "2026-01-15", "2026-01-17", 9.0, 8.0, 10.0, 7.0, 11.0),  # no actual yet: not scored
        ("B", "2026-01-14", "2026-01-15", 5.0, 4.0, 6.0, 3.0, 7.0),  # err 0: in, in
        ("B", "2026-01-14", "2026-01-16", 6.0, 5.0, 7.0, 4.0, 8.0),  # err 3: out, out
        ("B", "2026-01-15", "2026-01-16", 4.0, 3.0, 5.0, 2.0, 6.0),  # err 1: in, in
        ("C", "2026-01-14", "2026-01-15", 2.0, 0.0, 3.0, 0.0, 4.0),  # err 2: in, in
        ("C", "2026-01-14", "2026-01-16", 1.0, 0.5, 2.0, 0.0, 3.0),  # err 1: out, in
        ("C", "2026-01-15", "2026-01-16", 0.0, 0.0, 1.0, 0.0, 2.0),  # err 0: in, in
    ],
    columns=[
        "sku",
        "run_date",
        "target_date",
        "yhat",
        "yhat_lo_80",
        "yhat_hi_80",
        "yhat_lo_95",
        "yhat_hi_95",
    ],
).assign(
    warehouse="W1",
    run_date=lambda f: pd.to_datetime(f["run_date"]),
    target_date=lambda f: pd.to_datetime(f["target_date"]),
)

CATEGORIES = pd.DataFrame({"sku": ["A", "B"], "category": ["cat1", "cat1"]})  # C has none

N = math.nan
# level, entity, lag: n_points, mase_points, sum_actual, sum_forecast, sum_abs_error, wape, bias,
# mase, coverage_80, coverage_95, first_run_date, last_run_date
EXPECTED = {
    ("series", "A|W1", 1): (2, 2, 10, 7, 3, 0.3, -0.3, (2 / 2 + 1 / 2) / 2, 0, 1, "01-14", "01-15"),
    ("series", "A|W1", 2): (1, 1, 4, 5, 1, 0.25, 0.25, 1 / 2, 1, 1, "01-14", "01-14"),
    ("series", "B|W1", 1): (2, 0, 8, 9, 1, 1 / 8, 1 / 8, N, 1, 1, "01-14", "01-15"),
    ("series", "B|W1", 2): (1, 0, 3, 6, 3, 1.0, 1.0, N, 0, 0, "01-14", "01-14"),
    ("series", "C|W1", 1): (2, 2, 0, 2, 2, N, N, (2 / 4 + 0 / 4) / 2, 1, 1, "01-14", "01-15"),
    ("series", "C|W1", 2): (1, 1, 0, 1, 1, N, N, 1 / 4, 0, 1, "01-14", "01-14"),
    ("category", NO_CATEGORY, 1): (2, 2, 0, 2, 2, N, N, 0.25, 1, 1, "01-14", "01-15"),
    ("category", NO_CATEGORY, 2): (1, 1, 0, 1, 1, N, N, 0.25, 0, 1, "01-14", "01-14"),
    # cat1 pools A and B; only A's points have a MASE scale
    ("category", "cat1", 1): (4, 2, 18, 16, 4, 4 / 18, -2 / 18, 0.75, 0.5, 1, "01-14", "01-15"),
    ("category", "cat1", 2): (2, 1, 7, 11, 4, 4 / 7, 4 / 7, 0.5, 0.5, 0.5, "01-14", "01-14"),
    ("all", "all", 1): (6, 4, 18, 18, 6, 6 / 18, 0, (1 + 0.5 + 0.5 + 0) / 4, 4 / 6, 1, "01-14", "01-15"),
    ("all", "all", 2): (3, 2, 7, 12, 5, 5 / 7, 5 / 7, (0.5 + 0.25) / 2, 1 / 3, 2 / 3, "01-14", "01-14"),
}


def _build(**overrides: object) -> pd.DataFrame:
    args: dict[str, object] = {
        "forecasts": FORECASTS,
        "actuals": ACTUALS,
        "history": _history(),
        "categories": CATEGORIES,
    }
    args.update(overrides)
    return build_forecast_accuracy(**args, run_date=NIGHT)  # type: ignore[arg-type]


def test_figures_per_series_category_and_all_match_the_hand_computation():
    acc = _build()
    assert list(acc.columns) == list(ACCURACY_COLUMNS)
    assert (acc["run_date"] == D(NIGHT)).all()
    got = {(r.level, r.entity, r.lag_days): r for r in acc.itertuples(index=False)}
    assert set(got) == set(EXPECTED)
    fields = [
        "n_points",
        "mase_points",
        "sum_actual",
        "sum_forecast",
        "sum_abs_error",
        "wape",
        "bias",
        "mase",
        "coverage_80",
        "coverage_95",
    ]
    for key, want in EXPECTED.items():
        row = got[key]
        for name, value in zip(fields, want[:10], strict=True):
            have = getattr(row, name)
            if math.isnan(value):
                assert have is None or math.isnan(have), (key, name, have)  # NULL, never inf
            else:
                assert have == pytest.approx(value), (key, name, have, value)
        assert row.first_run_date == D(f"2026-{want[10]}") and row.last_run_date == D(f"2026-{want[11]}")
    # sorted: series, then category, then all; entity and lag ascending within a level
    assert list(acc["level"]) == ["series"] * 6 + ["category"] * 4 + ["all"] * 2
    assert not np.isinf(acc[["wape", "bias", "mase"]].to_numpy(dtype=float)).any()


def test_same_inputs_give_the_same_rows_whatever_their_order():
    shuffled = FORECASTS.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(
        _build(), _build(forecasts=shuffled, actuals=ACTUALS[::-1]), check_exact=True
    )


def test_mase_scale_is_the_mean_absolute_weekly_difference_and_undefined_when_constant():
    scale = build_mase_scale(_history())
    assert scale[("A", "W1")] == 2.0 and scale[("C", "W1")] == 4.0
    assert math.isnan(scale[("B", "W1")])  # constant history: seasonal-naive error 0
    gappy = _history().query("not (sku == 'A' and ds == '2026-01-01')")  # Jan 8 has no week-ago value
    short = _history().query("ds < '2026-01-05'")  # fewer than 8 days: no pair at all
    assert build_mase_scale(gappy)[("A", "W1")] == 2.0
    assert build_mase_scale(short).empty


def test_no_categories_means_series_and_all_rows_only():
    acc = _build(categories=None)
    assert set(acc["level"]) == {"series", "all"}
    assert acc.loc[acc["level"] == "all", "n_points"].tolist() == [6, 3]


def test_nothing_to_score_gives_an_empty_frame_with_the_table_columns():
    early = FORECASTS[FORECASTS["target_date"] > D("2026-01-16")]
    acc = _build(forecasts=early)
    assert acc.empty and list(acc.columns) == list(ACCURACY_COLUMNS)
    acc = _build(forecasts=FORECASTS.iloc[0:0])
    assert acc.empty and list(acc.columns) == list(ACCURACY_COLUMNS)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"forecasts": FORECASTS.drop(columns=["yhat_hi_95"])},
            r"`forecasts` lacks columns \['yhat_hi_95'\]",
        ),
        ({"forecasts": pd.concat([FORECASTS, FORECASTS.iloc[[0]]])}, r"`forecasts` has 1 duplicate keys"),
        ({"actuals": ACTUALS.assign(actual=[1.0, None, 1, 1, 1, 1])}, r"`actuals` has 1 rows with nulls"),
        (
            {"categories": pd.DataFrame({"sku": ["A", "A"], "category": ["x", "y"]})},
            r"`categories` has 1 dup",
        ),
        (
            {"history": pd.concat([_history(), ACTUALS.rename(columns={"actual": "y"})])},
            r"`history` must end before the first day of `actuals` \(2026-01-15\)",
        ),
    ],
)
def test_bad_input_is_a_clear_error(overrides, message):
    with pytest.raises(DataError, match=message):
        _build(**overrides)


def test_the_window_is_the_last_horizon_plus_seven_days():
    assert accuracy_window(NIGHT, 14) == (date(2025, 12, 27), NIGHT)
    with pytest.raises(DataError, match="`horizon` must be >= 1, got 0"):
        accuracy_window(NIGHT, 0)


def _archives(
    actuals: pd.DataFrame, categories: pd.DataFrame, night: date
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Archived forecasts of every series and reconciled forecasts of every node of the hierarchy,
    made on each of the 21 nights before `night` for the next 14 days, with fractional figures;
    plus a SKU nobody sells any more (not scored)."""
    from pipelines.forecasting.accuracy import FORECAST_COLUMNS, HIERARCHY_COLUMNS
    from pipelines.forecasting.hierarchy import LEVEL_KEYS, series_keys

    rng = np.random.default_rng(5)
    runs = pd.date_range(end=pd.Timestamp(night) - pd.Timedelta(days=1), periods=21)
    lags = pd.to_timedelta(np.arange(1, 15), unit="D")
    series = pd.concat(
        [
            actuals[["sku", "warehouse"]].drop_duplicates(),
            pd.DataFrame({"sku": ["GONE"], "warehouse": ["W1"]}),
        ]
    )
    keyed = actuals.assign(
        category=actuals["sku"].map(dict(zip(categories["sku"], categories["category"], strict=True)))
    )
    nodes = [
        pd.DataFrame({"level": level, "series_key": series_keys(level, keyed[list(keys)].drop_duplicates())})
        if keys
        else pd.DataFrame({"level": [level], "series_key": series_keys(level, pd.DataFrame(index=[0]))})
        for level, keys in LEVEL_KEYS.items()
    ]

    def made(keys: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
        grid = keys.merge(pd.DataFrame({"run_date": runs}), how="cross").merge(
            pd.DataFrame({"lag": lags}), how="cross"
        )
        grid["target_date"] = grid["run_date"] + grid.pop("lag")
        y = rng.gamma(2.0, 1.7, len(grid))
        figures = {
            "yhat": y,
            "yhat_lo_80": y * 0.6,
            "yhat_hi_80": y * 1.4,
            "yhat_lo_95": y * 0.3,
            "yhat_hi_95": y * 1.9,
        }
        return grid.assign(**figures)[list(columns)]

    def stored(frame: pd.DataFrame) -> pd.DataFrame:  # the dates as DATE, as the result tables keep them
        return frame.assign(run_date=frame["run_date"].dt.date, target_date=frame["target_date"].dt.date)

    return stored(made(series, FORECAST_COLUMNS)), stored(
        made(pd.concat(nodes, ignore_index=True), HIERARCHY_COLUMNS)
    )


def test_the_load_scores_a_shard_at_a_time_as_the_whole_night(tmp_path, monkeypatch):
    """The load's actuals, MASE scales and accuracy built one shard of SKUs at a time, with the
    archive read in chunks from a database and sent to the shards, equal those of the whole night
    at once: the series and SKU-level rows exactly, the levels above SKUs (added up from the
    shards' sums) to the last bits of a float."""
    import sqlalchemy as sa

    from pipelines.demo import DemoSize
    from pipelines.demo.build import build_erp, build_order_lines
    from pipelines.forecasting.accuracy import build_actuals, build_hierarchy_accuracy, node_scales
    from pipelines.lake import Lake
    from pipelines.load import accuracy as load_accuracy

    erp = build_erp(DemoSize(days=120, skus=12, warehouses=3, seed=3))
    lines = build_order_lines(erp)
    categories = erp["products"][["sku", "category"]]
    night = lines["order_date"].max().date()
    whole, history = build_actuals(lines, run_date=night, horizon=14, history_days=60)
    archive, levels = _archives(whole, categories, night)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    archive.to_sql("seam_forecasts", engine, index=False)
    levels.to_sql("seam_forecasts_hierarchy", engine, index=False)
    monkeypatch.setattr(load_accuracy, "ARCHIVE_CHUNK_ROWS", 997)  # many chunks, each over shards
    skus = sorted(lines["sku"].unique())
    shards = [lines[lines["sku"].isin(skus[k::3])] for k in (2, 0, 1)]  # any order of shards
    with Lake(tmp_path / "lake").spill() as spill:
        demand = load_accuracy.spill_demand(
            iter(shards), spill, run_date=night, horizon=14, history_days=60, categories=categories
        )
        actuals = pd.concat(list(demand.actuals()), ignore_index=True)
        written = load_accuracy.score_night(engine, night, 14, demand)
        got = pd.concat([spill.read(name, k) for name, k in written], ignore_index=True)
        local = pd.concat([spill.read("node_scale", k) for k in demand.shards]).set_index("series_key")[
            "scale"
        ]
    key = ["sku", "warehouse", "ds"]
    pd.testing.assert_frame_equal(
        actuals.sort_values(key, ignore_index=True), whole.sort_values(key, ignore_index=True)
    )
    nodes = pd.concat([local, demand.above_scale])
    pd.testing.assert_series_equal(nodes.sort_index(), node_scales([history], categories).sort_index())
    expected = pd.concat(
        [
            build_forecast_accuracy(archive, whole, history, categories, run_date=night),
            build_hierarchy_accuracy(levels, whole, history, categories, run_date=night),
        ],
        ignore_index=True,
    )
    order, days = (
        ["level", "entity", "lag_days"],
        {"run_date": "M8[ns]", "first_run_date": "M8[ns]", "last_run_date": "M8[ns]"},
    )
    got = got.astype(days).sort_values(order, ignore_index=True)  # the same days, at any resolution
    expected = expected.astype(days).sort_values(order, ignore_index=True)
    assert set(got["level"]) == {"series", "category", "all", *HIERARCHY_NAMES}
    assert "GONE|W1" not in set(got["entity"]) and got["mase"].notna().any()
    exact = got["level"].isin(["series", "hier_sku", "hier_sku_wh"])
    pd.testing.assert_frame_equal(got[exact], expected[exact], check_exact=True)
    pd.testing.assert_frame_equal(got[~exact], expected[~exact], check_exact=False, rtol=1e-12)


HIERARCHY_NAMES = ("hier_total", "hier_category", "hier_cat_wh", "hier_sku", "hier_sku_wh")


def test_a_night_without_order_lines_has_no_actuals_and_scores_nothing(tmp_path):
    import sqlalchemy as sa

    from pipelines.lake import Lake
    from pipelines.load import accuracy as load_accuracy

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    archive, levels = _archives(ACTUALS, CATEGORIES, NIGHT)
    archive.to_sql("seam_forecasts", engine, index=False)
    levels.to_sql("seam_forecasts_hierarchy", engine, index=False)
    with Lake(tmp_path / "lake").spill() as spill:
        demand = load_accuracy.spill_demand(
            iter([]), spill, run_date=NIGHT, horizon=14, history_days=60, categories=CATEGORIES
        )
        (actuals,) = demand.actuals()
        assert actuals.empty and list(actuals.columns) == ["sku", "warehouse", "ds", "actual"]
        assert load_accuracy.score_night(engine, NIGHT, 14, demand) == []
