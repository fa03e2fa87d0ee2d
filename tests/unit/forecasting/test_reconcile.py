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


def test_mint_solved_shard_by_shard_is_mint_of_the_whole_hierarchy() -> None:
    """ShardedMinT eliminates the SKU nodes one shard at a time: the same reconciled forecasts as
    reconcile_mint over the whole hierarchy (negative bottoms clipped, aggregates summed again)."""
    from pipelines.forecasting.hierarchy import TOP_LEVELS
    from pipelines.forecasting.reconcile import ShardedMinT

    rng = np.random.default_rng(11)
    skus = [f"S{i:02d}" for i in range(30)]
    keys = pd.DataFrame(
        [(s, w) for s in skus for w in ("W1", "W2", "W3") if rng.random() < 0.8], columns=["sku", "warehouse"]
    )
    keys["category"] = keys["sku"].map({s: "ABCD"[i % 4] for i, s in enumerate(skus)})
    tree = build_hierarchy(keys)
    n_a, n, horizon = tree.n_aggregates, len(tree.nodes), 5
    base = rng.gamma(2.0, 20.0, (n, horizon)) - 5.0  # some bottoms below 0
    spread = rng.gamma(2.0, 3.0, n)
    rec = reconcile_mint(base, {80.0: np.repeat(spread[:, None], horizon, axis=1)}, tree.aggregation, None)

    level = tree.nodes["level"].to_numpy()
    top = np.flatnonzero(np.isin(level[:n_a], TOP_LEVELS))
    sku_rows = np.flatnonzero(level[:n_a] == "sku")
    a = tree.aggregation.tocsr()
    w = spread**2
    mint = ShardedMinT(base[top], w[top])
    shards = [skus[0:7], skus[7:20], skus[20:]]
    figures = []
    for mine in shards:
        cols = np.flatnonzero(keys["sku"].isin(mine).to_numpy())
        blocks = sku_rows[np.isin(tree.nodes["sku"].to_numpy()[sku_rows], mine)]
        args = (
            a[top][:, cols],
            a[blocks][:, cols],
            (base[n_a + cols], w[n_a + cols]),
            (base[blocks], w[blocks]),
        )
        mint.add(*args)
        figures.append((cols, args))
    with pytest.raises(ValueError, match="solve\\(\\) before bottom"):
        mint.bottom(*figures[0][1])  # type: ignore[arg-type]
    mint.solve()
    with pytest.raises(ValueError, match="before solve"):
        mint.add(*figures[0][1])  # type: ignore[arg-type]
    bottom = np.zeros((n - n_a, horizon))
    for cols, args in figures:
        bottom[cols] = np.maximum(mint.bottom(*args), 0.0)  # type: ignore[arg-type]
    np.testing.assert_allclose(bottom, rec.mean[n_a:], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a @ bottom, rec.mean[:n_a], rtol=1e-9, atol=1e-9)
    assert (bottom == 0).any() and not np.allclose(bottom, np.maximum(base[n_a:], 0))  # clipped, moved


def _by_shard(bottom, series, categories, spec, groups, tmp_path):  # type: ignore[no-untyped-def]
    from pipelines.forecasting import hierarchy as h
    from pipelines.lake import Lake

    sku = series["unique_id"].str.split("|").str[0]
    shards = h.HierarchyShards(
        len(groups),
        lambda k: bottom[bottom["sku"].isin(groups[k])],
        lambda k: series[sku.isin(groups[k])],
    )
    with Lake(tmp_path).spill() as spill:
        result = h.forecast_hierarchy_by_shard(shards, categories, spec, spill)
        return result, result.rows


def _sorted(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(["series_key", "target_date"]).reset_index(drop=True)


def test_by_shard_with_a_forecaster_that_pools_nothing_gives_the_whole_nights_rows(
    monkeypatch, tmp_path
) -> None:
    """With an aggregate forecaster whose bands do not depend on the other series, the levels
    made shard by shard are the levels made whole: same nodes, keys, forecasts and bands."""
    from pipelines.forecasting import build_options
    from pipelines.forecasting import hierarchy as h

    def own_forecast(history, horizon, freq, levels, options, week=None):  # type: ignore[no-untyped-def]
        last = history.groupby("unique_id")["ds"].max()
        mean = history.groupby("unique_id")["y"].apply(lambda y: float(y.tail(14).mean()))
        sd = history.groupby("unique_id")["y"].apply(lambda y: float(y.tail(28).std(ddof=0)) + 0.5)
        rows = []
        for uid in sorted(mean.index):
            for step in range(1, horizon + 1):
                rows.append(
                    {
                        "unique_id": uid,
                        "ds": last[uid] + pd.Timedelta(days=step),
                        "yhat": mean[uid] * (1 + 0.01 * step),
                        "yhat_lo_80": mean[uid] - 1.28 * sd[uid],
                        "yhat_hi_80": mean[uid] + 1.28 * sd[uid] * (1 + 0.02 * step),
                        "yhat_lo_95": mean[uid] - 1.96 * sd[uid],
                        "yhat_hi_95": mean[uid] + 1.96 * sd[uid],
                    }
                )
        return pd.DataFrame(rows)

    monkeypatch.setattr(h, "run_forecast", own_forecast)
    bottom, series = _panel()
    categories = pd.DataFrame(
        {"sku": [f"S{k}" for k in range(6)], "category": ["A", "A", "B", "B", "B", "C"]}
    )
    spec = h.HierarchySpec("D", 7, (80.0, 95.0), build_options("D"))
    whole = _sorted(h.forecast_hierarchy(bottom, series, categories, spec).rows)
    result, rows = _by_shard(
        bottom, series, categories, spec, (["S0", "S3"], ["S1", "S4", "S5"], ["S2"]), tmp_path
    )
    pd.testing.assert_frame_equal(_sorted(rows), whole, check_exact=False, rtol=1e-9, atol=1e-9)
    assert result.notes["series"] == {
        "total": 1,
        "category": 3,
        "category_warehouse": 6,
        "sku": 6,
        "sku_warehouse": 12,
    }
    # each shard's SKU and SKU x warehouse rows, then the levels above
    order = list(dict.fromkeys(rows["level"]))
    assert order[:2] == ["sku", "sku_warehouse"] and order[-3:] == ["total", "category", "category_warehouse"]
    assert result.typed is not None and result.typed["sku"].notna().all()


def test_by_shard_the_aggregates_point_forecasts_are_the_whole_nights_and_the_levels_add_up(tmp_path) -> None:
    """With seam's forecaster the aggregates' point forecasts are the same as made whole (the week
    of every aggregate, gathered shard by shard); their bands are calibrated per shard, so the
    reconciled figures may move, but children still sum to their parents and every band holds
    its forecast."""
    from pipelines.forecasting import build_options
    from pipelines.forecasting import hierarchy as h

    bottom, series = _panel()
    categories = pd.DataFrame(
        {"sku": [f"S{k}" for k in range(6)], "category": ["A", "A", "B", "B", "B", "C"]}
    )
    spec = h.HierarchySpec("D", 7, (80.0, 95.0), build_options("D"))
    whole = _sorted(h.forecast_hierarchy(bottom, series, categories, spec).rows)
    _, rows = _by_shard(
        bottom, series, categories, spec, (["S5", "S3"], ["S1", "S0"], ["S2", "S4"]), tmp_path
    )
    rows = _sorted(rows)
    assert rows["series_key"].tolist() == whole["series_key"].tolist()
    np.testing.assert_allclose(rows["yhat_base"], whole["yhat_base"], rtol=1e-12)
    bottom_rows = rows[rows["level"] == "sku_warehouse"]
    for level in ("total", "category", "category_warehouse", "sku"):
        keys = list(h.LEVEL_KEYS[level])
        summed = (
            bottom_rows.groupby([*keys, "target_date"])["yhat"].sum().to_numpy()
            if keys
            else (bottom_rows.groupby("target_date")["yhat"].sum().to_numpy())
        )
        mine = rows[rows["level"] == level].sort_values([*keys, "target_date"])["yhat"].to_numpy()
        np.testing.assert_allclose(mine, summed, rtol=1e-9)
    assert (rows["yhat_lo_80"] <= rows["yhat"]).all() and (rows["yhat"] <= rows["yhat_hi_80"]).all()
    assert (rows["yhat_lo_95"] <= rows["yhat_lo_80"]).all()
    # not the whole night's figures to the bit: the SKU nodes' bands come from their shard
    assert not np.allclose(rows["yhat_hi_80"], whole["yhat_hi_80"])


def test_by_shard_refuses_a_sku_in_two_shards_and_the_in_memory_options(tmp_path) -> None:
    from pipelines.forecasting import build_options
    from pipelines.forecasting import hierarchy as h

    bottom, series = _panel()
    spec = h.HierarchySpec("D", 7, (80.0, 95.0), build_options("D"))
    with pytest.raises(ValueError, match=r"SKUs \['S1'\] are in shard 1 and an earlier one"):
        _by_shard(bottom, series, None, spec, (["S0", "S1"], ["S1", "S2"]), tmp_path)
    for changed in ({"bands": "gaussian"}, {"covariance": "shrink"}):
        from dataclasses import replace

        with pytest.raises(ValueError, match="use forecast_hierarchy"):
            _by_shard(bottom, series, None, replace(spec, **changed), (["S0"],), tmp_path)
