"""MinT reconciliation on hierarchies small enough to check by hand or against the textbook formula."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pipelines.forecasting.hierarchy import LEVELS, build_hierarchy, build_residuals
from pipelines.forecasting.reconcile import build_bounds, reconcile_mint, shrinkage_intensity


def _total_of_two() -> sp.csr_matrix:
    return sp.csr_matrix(np.array([[1.0, 1.0]]))


def test_diagonal_mint_by_hand() -> None:
    # total 10, bottoms 3 and 4: incoherence g = 10 - 7 = 3; W = diag(1, 1, 2), U'WU = 4.
    # ytilde = yhat - W U g / 4 = (10 - 3/4, 3 + 3/4, 4 + 2 * 3/4); Var = w - w^2 / 4.
    base = np.array([[10.0], [3.0], [4.0]])
    sd = np.sqrt(np.array([[1.0], [1.0], [2.0]]))
    rec = reconcile_mint(base, {80.0: sd}, _total_of_two(), None)
    assert rec.method == "mint_diagonal"
    np.testing.assert_allclose(rec.mean[:, 0], [9.25, 3.75, 5.5])
    np.testing.assert_allclose(rec.sd[80.0][:, 0] ** 2, [0.75, 0.75, 1.0])
    lo, hi = build_bounds(rec)[80.0]
    z = 1.2815515655446004
    np.testing.assert_allclose(hi[:, 0], rec.mean[:, 0] + z * rec.sd[80.0][:, 0])
    np.testing.assert_allclose(lo[:, 0], rec.mean[:, 0] - z * rec.sd[80.0][:, 0])


def test_clipped_bottom_is_summed_again() -> None:
    # the total says 1, the bottoms say -3 and 5: the negative bottom is clipped and the total
    # is the sum of what is left (coherent, non-negative)
    base = np.array([[1.0], [-3.0], [5.0]])
    rec = reconcile_mint(base, {80.0: np.ones((3, 1))}, _total_of_two(), None)
    assert (rec.mean[1:] >= 0).all()
    assert rec.mean[0, 0] == pytest.approx(rec.mean[1, 0] + rec.mean[2, 0])


def _textbook(base: np.ndarray, w: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S (S' W^-1 S)^-1 S' W^-1 yhat and diag S (S' W^-1 S)^-1 S' (the paper's eq. 10 and Var)."""
    s = np.vstack([a, np.eye(a.shape[1])])
    wi = np.linalg.inv(w)
    inner = np.linalg.inv(s.T @ wi @ s)
    return s @ inner @ s.T @ wi @ base, np.diag(s @ inner @ s.T)


def test_shrunk_mint_matches_the_textbook_formula() -> None:
    rng = np.random.default_rng(3)
    # two categories of two and three bottom series, plus the total
    a = np.array(
        [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 1, 1, 1]],
        dtype=float,
    )
    n = 8
    bottom_err = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))
    z = np.hstack([bottom_err @ a.T, bottom_err])
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    s = rng.uniform(0.5, 3.0, n)
    lam = shrinkage_intensity(z)
    assert 0 < lam < 1
    r = z.T @ z / z.shape[0]
    w = np.diag(s) @ (lam * np.eye(n) + (1 - lam) * r) @ np.diag(s)
    base = rng.normal(10, 3, (n, 1))
    expected_mean, expected_var = _textbook(base, w, a)
    rec = reconcile_mint(base, {95.0: s[:, None]}, sp.csr_matrix(a), z, nonnegative=False)
    assert rec.method.startswith("mint_shrink")
    np.testing.assert_allclose(rec.mean, expected_mean, rtol=1e-8)
    np.testing.assert_allclose(rec.sd[95.0][:, 0] ** 2, expected_var, rtol=1e-8)
    np.testing.assert_allclose(rec.mean[0], rec.mean[3:].sum(axis=0))
    np.testing.assert_allclose(rec.mean[1], rec.mean[3:5].sum(axis=0))


def test_shrinkage_intensity_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 6))
    z[:, 1] += z[:, 0]
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    t, n = z.shape
    r = z.T @ z / t
    w = z[:, :, None] * z[:, None, :]
    var_r = ((w - r) ** 2).sum(axis=0) / (t * (t - 1))
    off = ~np.eye(n, dtype=bool)
    expected = var_r[off].sum() / (r[off] ** 2).sum()
    assert shrinkage_intensity(z) == pytest.approx(min(1.0, expected))


def test_hierarchy_structure() -> None:
    bottom = pd.DataFrame(
        {
            "sku": ["A", "A", "B", "C"],
            "warehouse": ["W1", "W2", "W1", "W1"],
            "category": ["x", "x", "x", "y"],
        }
    )
    tree = build_hierarchy(bottom)
    counts = tree.nodes["level"].value_counts().to_dict()
    assert counts == {"total": 1, "category": 2, "category_warehouse": 3, "sku": 3, "sku_warehouse": 4}
    assert list(dict.fromkeys(tree.nodes["level"])) == list(LEVELS)
    assert tree.nodes["series_key"].is_unique
    a = tree.aggregation.toarray()
    nodes = tree.nodes.iloc[: tree.n_aggregates]
    x_w1 = nodes[
        (nodes["level"] == "category_warehouse") & (nodes["category"] == "x") & (nodes["warehouse"] == "W1")
    ]
    assert a[x_w1.index[0]].tolist() == [1, 0, 1, 0]
    sku_a = nodes[(nodes["level"] == "sku") & (nodes["sku"] == "A")]
    assert a[sku_a.index[0]].tolist() == [1, 1, 0, 0]
    assert nodes[nodes["level"] == "total"][["category", "sku", "warehouse"]].isna().all(axis=None)
    assert a[0].tolist() == [1, 1, 1, 1]


def test_residuals_are_standardised_and_constant_series_are_zero() -> None:
    t = np.arange(400)
    values = np.vstack([10 + np.sin(t) + (t % 7), np.full(400, 5.0)])
    z = build_residuals(values, 7, periods=300)
    assert z.shape == (300, 2)
    assert z[:, 0].std() == pytest.approx(1.0)
    assert (z[:, 1] == 0).all()


def test_accuracy_of_the_reconciled_levels_by_hand() -> None:
    from pipelines.forecasting.accuracy import build_hierarchy_accuracy
    from pipelines.forecasting.hierarchy import series_keys

    night = pd.Timestamp("2026-03-01")
    day = night + pd.Timedelta(days=1)
    hist_days = pd.date_range(night - pd.Timedelta(days=13), night)
    # A/W1 steps from 1 to 3 after a week (weekly difference 2), the others stay at 1
    history = pd.concat(
        [
            pd.DataFrame({"sku": s, "warehouse": w, "ds": hist_days, "y": y})
            for s, w, y in (
                ("A", "W1", [1.0] * 7 + [3.0] * 7),
                ("A", "W2", [1.0] * 14),
                ("B", "W1", [1.0] * 14),
            )
        ],
        ignore_index=True,
    )
    actuals = pd.DataFrame(
        {"sku": ["A", "A", "B"], "warehouse": ["W1", "W2", "W1"], "ds": [day] * 3, "actual": [2.0, 3.0, 5.0]}
    )
    categories = pd.DataFrame({"sku": ["A", "B"], "category": ["x", "y"]})
    keys = pd.DataFrame({"category": [None, "x"], "sku": [None, None], "warehouse": [None, None]})
    forecasts = pd.DataFrame(
        {
            "run_date": night,
            "level": ["total", "category"],
            "series_key": [
                series_keys("total", keys.iloc[:1]).iloc[0],
                series_keys("category", keys.iloc[1:]).iloc[0],
            ],
            "target_date": day,
            "yhat": [9.0, 4.0],
            "yhat_lo_80": [8.0, 3.0],
            "yhat_hi_80": [11.0, 4.5],
            "yhat_lo_95": [7.0, 2.0],
            "yhat_hi_95": [12.0, 6.0],
        }
    )
    out = build_hierarchy_accuracy(forecasts, actuals, history, categories, run_date=day.date())
    total = out[out["level"] == "hier_total"].iloc[0]
    cat = out[out["level"] == "hier_category"].iloc[0]
    assert total["lag_days"] == 1 and total["sum_actual"] == 10.0
    assert total["wape"] == pytest.approx(0.1) and total["mase"] == pytest.approx(0.5)  # scale 2
    assert (total["coverage_80"], total["coverage_95"]) == (1.0, 1.0)
    assert cat["entity"] == forecasts["series_key"].iloc[1] and cat["sum_actual"] == 5.0
    assert cat["wape"] == pytest.approx(0.2) and cat["mase"] == pytest.approx(0.5)
    assert (cat["coverage_80"], cat["coverage_95"]) == (0.0, 1.0)
    assert set(out["level"]) == {"hier_total", "hier_category"}


def test_a_night_without_forecasts_has_no_levels() -> None:
    from pipelines.forecasting import build_options
    from pipelines.forecasting.hierarchy import HierarchySpec, forecast_hierarchy

    bottom = pd.DataFrame(columns=["sku", "warehouse", "target_date", "yhat", "yhat_lo_80", "yhat_hi_80"])
    spec = HierarchySpec("D", 7, (80.0, 95.0), build_options("D"))
    result = forecast_hierarchy(bottom, pd.DataFrame(), None, spec)
    assert result.rows.empty and {"level", "series_key", "yhat", "yhat_hi_95"} <= set(result.rows.columns)


def _panel(skus: int = 6, days: int = 84, horizon: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily series of `skus` SKUs x 2 warehouses (some starting late) and their bottom forecasts."""
    from pipelines.series import join_keys

    rng = np.random.default_rng(4)
    end = pd.Timestamp("2026-03-31")
    series, bottom = [], []
    for k in range(skus):
        for wh in ("W1", "W2"):
            start = 0 if k % 3 else days // 2  # a third of the SKUs sell only in the last weeks
            ds = pd.date_range(end - pd.Timedelta(days=days - 1 - start), end, freq="D")
            y = rng.poisson(3 + k + 2 * (ds.dayofweek < 5), len(ds)).astype(float)
            sku = f"S{k}"
            series.append(
                pd.DataFrame(
                    {
                        "unique_id": join_keys(pd.Series([sku]), pd.Series([wh]))[0],
                        "ds": ds,
                        "y": y,
                        "censored": False,
                    }
                )
            )
            mean = float(y[-28:].mean())
            targets = pd.date_range(end + pd.Timedelta(days=1), periods=horizon, freq="D")
            bottom.append(
                pd.DataFrame(
                    {
                        "sku": sku,
                        "warehouse": wh,
                        "target_date": targets,
                        "yhat": mean,
                        "yhat_lo_80": mean * 0.6,
                        "yhat_hi_80": mean * 1.4,
                        "yhat_lo_95": mean * 0.4,
                        "yhat_hi_95": mean * 1.6,
                    }
                )
            )
    return pd.concat(bottom, ignore_index=True), pd.concat(series, ignore_index=True)


def test_the_history_summed_shard_by_shard_gives_the_whole_nights_levels() -> None:
    """The reconcile step reads the history one shard of SKUs at a time: the same rows."""
    from pipelines.forecasting import build_options
    from pipelines.forecasting.hierarchy import HierarchySpec, forecast_hierarchy

    bottom, series = _panel()
    categories = pd.DataFrame(
        {"sku": [f"S{k}" for k in range(6)], "category": ["A", "A", "B", "B", "B", "C"]}
    )
    spec = HierarchySpec("D", 7, (80.0, 95.0), build_options("D"))
    whole = forecast_hierarchy(bottom, series, categories, spec)
    sku = series["unique_id"].str.split("|").str[0]
    parts = [series[sku.isin(group)] for group in (["S0", "S3"], ["S1", "S4", "S5"], ["S2"])]
    sharded = forecast_hierarchy(bottom, iter(parts), categories, spec)
    pd.testing.assert_frame_equal(whole.rows, sharded.rows)
    assert set(whole.rows["level"]) == set(LEVELS)
    # the aggregates' history is what makes their forecasts: without a part's SKUs they change
    partial = forecast_hierarchy(bottom, iter(parts[:2]), categories, spec)
    total = partial.rows["level"] == "total"
    assert not np.allclose(partial.rows.loc[total, "yhat_base"], whole.rows.loc[total, "yhat_base"])


def test_the_bottom_forecasts_order_of_rows_does_not_change_the_levels() -> None:
    from pipelines.forecasting import build_options
    from pipelines.forecasting.hierarchy import HierarchySpec, forecast_hierarchy

    bottom, series = _panel()
    spec = HierarchySpec("D", 7, (80.0, 95.0), build_options("D"))
    ordered = forecast_hierarchy(bottom, series, None, spec)
    shuffled = forecast_hierarchy(bottom.sample(frac=1.0, random_state=5), series, None, spec)
    pd.testing.assert_frame_equal(shuffled.rows, ordered.rows, check_exact=True)
    assert ordered.base is None  # every node's base forecast only on request (benchmarks)
    kept = forecast_hierarchy(bottom, series, None, spec, keep_base=True)
    assert kept.base is not None and len(kept.base) == len(kept.rows)


def test_the_levels_come_in_blocks_of_whole_nodes_of_one_level_and_the_forecasts_in_parts(
    monkeypatch,
) -> None:
    """The reconcile step writes the rows a block at a time: every block holds whole nodes of one
    level, the blocks together are the rows; the night's forecasts given in parts (shards, read
    again on each pass) make the same rows as given whole."""
    from pipelines.forecasting import build_options
    from pipelines.forecasting import hierarchy as h

    bottom, series = _panel()
    categories = pd.DataFrame(
        {"sku": [f"S{k}" for k in range(6)], "category": ["A", "A", "B", "B", "B", "C"]}
    )
    spec = h.HierarchySpec("D", 7, (80.0, 95.0), build_options("D"))
    monkeypatch.setattr(h, "BLOCK_ROWS", 20)  # 2 nodes of 7 days a block
    whole = h.forecast_hierarchy(bottom, series, categories, spec)
    blocks = list(whole.parts())
    assert all(b["level"].nunique() == 1 and len(b) <= 20 and len(b) % 7 == 0 for b in blocks)
    assert [b["level"].iloc[0] for b in blocks] == sorted(
        (b["level"].iloc[0] for b in blocks), key=list(h.LEVELS).index
    )
    pd.testing.assert_frame_equal(pd.concat(blocks, ignore_index=True), whole.rows)
    assert len(blocks) > len(h.LEVELS) and whole.typed is not None and whole.typed["sku"].notna().all()
    shards = [bottom[bottom["sku"].isin(group)] for group in (["S4", "S1"], ["S0", "S2", "S3", "S5"])]
    calls = []

    def parts():
        calls.append(1)
        return iter(shards)

    in_parts = h.forecast_hierarchy(parts, series, categories, spec)
    pd.testing.assert_frame_equal(in_parts.rows, whole.rows)
    assert len(calls) == 2  # the series and dates, then the figures
