-- seam views by level of the product hierarchy, version 10 (MySQL/MariaDB).  Views only; safe to run again.
-- seam_v_forecast_value_added_by_level: forecast value added (README "Forecast value added") per
-- level of the product hierarchy, entity and lag_days, over every night whose days have actuals:
--   level 'series': one SKU in one warehouse (sku, warehouse; category: its category or NULL);
--   level 'category': the category's series summed (category; sku, warehouse NULL);
--   level 'all': every series summed (category, sku, warehouse NULL).
-- An aggregate is scored on its sums: on each forecast night and target date its series' actuals,
-- seasonal-naive, statistical (yhat) and final (yhat_final) forecasts are summed first, then the
-- errors taken, so a category's WAPE is that of the category's forecast, not a mean of its series'
-- (overrides that help each SKU can still make the category worse, and the other way round).
--   n_points: scored points of the level (a category's: nights x target dates); n_overridden: the
--   points with at least one overridden series; sums, WAPE, bias and FVA as in
--   seam_v_forecast_value_added (fva_wape_statistical > 0: the model beats naive; fva_wape_final
--   > 0: the overrides made it better).
-- A series' category is the one the reconcile step recorded (seam_forecasts_hierarchy, level
-- sku_warehouse); series it never placed count in 'series' and 'all' only.
CREATE OR REPLACE VIEW seam_v_forecast_value_added_by_level AS
WITH cats AS (
    SELECT sku, warehouse, MAX(category) AS category
    FROM seam_forecasts_hierarchy WHERE level = 'sku_warehouse' AND category IS NOT NULL
    GROUP BY sku, warehouse
), pts AS (
    SELECT f.run_date, f.target_date, DATEDIFF(f.target_date, f.run_date) AS lag_days, f.sku, f.warehouse, c.category,
           CASE WHEN f.override_ids IS NULL THEN 0 ELSE 1 END AS overridden,
           a.actual AS actual, n.actual AS naive, f.yhat AS statistical,
           COALESCE(f.yhat_final, f.yhat) AS final
    FROM seam_forecasts f
    JOIN seam_actuals a ON a.sku = f.sku AND a.warehouse = f.warehouse AND a.ds = f.target_date
    JOIN seam_actuals n ON n.sku = f.sku AND n.warehouse = f.warehouse AND n.ds = DATE_SUB(f.target_date, INTERVAL 7 * FLOOR((DATEDIFF(f.target_date, f.run_date) + 6) / 7) DAY)
    LEFT JOIN cats c ON c.sku = f.sku AND c.warehouse = f.warehouse
    WHERE f.run_date < f.target_date
), nodes AS (
    SELECT 'series' AS level, category, sku, warehouse, lag_days, overridden,
           actual, naive, statistical, final
    FROM pts
    UNION ALL
    SELECT 'category', category, NULL, NULL, lag_days, MAX(overridden),
           SUM(actual), SUM(naive), SUM(statistical), SUM(final)
    FROM pts WHERE category IS NOT NULL
    GROUP BY category, run_date, target_date, lag_days
    UNION ALL
    SELECT 'all', NULL, NULL, NULL, lag_days, MAX(overridden),
           SUM(actual), SUM(naive), SUM(statistical), SUM(final)
    FROM pts
    GROUP BY run_date, target_date, lag_days
)
SELECT level, category, sku, warehouse, lag_days,
       COUNT(*) AS n_points, SUM(overridden) AS n_overridden,
       SUM(ABS(actual)) AS sum_actual, SUM(naive) AS sum_naive,
       SUM(statistical) AS sum_statistical, SUM(final) AS sum_final,
       SUM(ABS(actual - naive)) AS sum_abs_error_naive,
       SUM(ABS(actual - statistical)) AS sum_abs_error_statistical,
       SUM(ABS(actual - final)) AS sum_abs_error_final,
       SUM(ABS(actual - naive)) / NULLIF(SUM(ABS(actual)), 0) AS wape_naive,
       SUM(ABS(actual - statistical)) / NULLIF(SUM(ABS(actual)), 0) AS wape_statistical,
       SUM(ABS(actual - final)) / NULLIF(SUM(ABS(actual)), 0) AS wape_final,
       (SUM(statistical) - SUM(actual)) / NULLIF(SUM(ABS(actual)), 0) AS bias_statistical,
       (SUM(final) - SUM(actual)) / NULLIF(SUM(ABS(actual)), 0) AS bias_final,
       (SUM(ABS(actual - naive)) - SUM(ABS(actual - statistical))) / NULLIF(SUM(ABS(actual)), 0) AS fva_wape_statistical,
       (SUM(ABS(actual - statistical)) - SUM(ABS(actual - final))) / NULLIF(SUM(ABS(actual)), 0) AS fva_wape_final,
       (ABS(SUM(statistical) - SUM(actual)) - ABS(SUM(final) - SUM(actual))) / NULLIF(SUM(ABS(actual)), 0) AS fva_abs_bias_final
FROM nodes
GROUP BY level, category, sku, warehouse, lag_days;
-- seam_v_latest_forecast_by_category: the latest night's forecast of each category and target
-- date, for planners who plan categories first: n_series, n_overridden (series with an override on
-- the date), yhat_statistical and yhat_final (the sums of the category's series' statistical and
-- final forecasts in seam_forecasts: the final one is what the overrides made of it, coherent with
-- the series by construction), and the category's own reconciled forecast with its 80 % / 95 %
-- bands from seam_forecasts_hierarchy (NULL when the reconcile step did not run that night).
-- Categories as in seam_v_forecast_value_added_by_level.
CREATE OR REPLACE VIEW seam_v_latest_forecast_by_category AS
WITH cats AS (
    SELECT sku, warehouse, MAX(category) AS category
    FROM seam_forecasts_hierarchy WHERE level = 'sku_warehouse' AND category IS NOT NULL
    GROUP BY sku, warehouse
), latest AS (
    SELECT MAX(run_date) AS run_date FROM seam_forecasts
), sums AS (
    SELECT f.run_date, c.category, f.target_date, COUNT(*) AS n_series,
           SUM(CASE WHEN f.override_ids IS NULL THEN 0 ELSE 1 END) AS n_overridden,
           SUM(f.yhat) AS yhat_statistical, SUM(COALESCE(f.yhat_final, f.yhat)) AS yhat_final
    FROM seam_forecasts f
    JOIN latest l ON l.run_date = f.run_date
    JOIN cats c ON c.sku = f.sku AND c.warehouse = f.warehouse
    GROUP BY f.run_date, c.category, f.target_date
)
SELECT s.run_date, s.category, s.target_date, s.n_series, s.n_overridden,
       s.yhat_statistical, s.yhat_final,
       h.yhat AS yhat_reconciled, h.yhat_lo_80, h.yhat_hi_80, h.yhat_lo_95, h.yhat_hi_95
FROM sums s
LEFT JOIN seam_forecasts_hierarchy h
  ON h.level = 'category' AND h.category = s.category
 AND h.run_date = s.run_date AND h.target_date = s.target_date;
