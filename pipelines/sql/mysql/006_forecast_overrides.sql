-- seam forecast overrides, version 6 (MariaDB/MySQL).  Additive; applied once (seam_schema_migrations).
-- seam_forecast_overrides: planners' adjustments of the statistical forecast, written with plain SQL
-- or `seam override add|import|remove` (README "Planner overrides").  One row per override:
--   sku, warehouse: the series (warehouse NULL: the SKU in every warehouse);
--   start_date .. end_date: the target dates it covers (both included);
--   value: units per day that replace the forecast, OR relative_change: the forecast is multiplied
--   by (1 + relative_change), e.g. 0.2 = +20 %, -0.5 = half (exactly one of the two is set);
--   author, reason: who and why; created_at: when; expires_on: the last night it is applied (NULL: none).
-- Each night re-checks every row (unknown series, overlapping ranges): a bad row is skipped with a
-- data-quality warning, never applied in part.
-- seam_forecasts gains the final forecast: yhat_final = yhat with the overrides in force (NULL in
-- rows loaded before version 6), override_ids = the ids that shaped the row ('3' or '3,7'; NULL: none).
ALTER TABLE seam_forecasts ADD COLUMN IF NOT EXISTS yhat_final DOUBLE, ADD COLUMN IF NOT EXISTS override_ids TEXT;
CREATE TABLE IF NOT EXISTS seam_forecast_overrides (
    override_id     INT          NOT NULL AUTO_INCREMENT PRIMARY KEY,
    sku             varchar(64)  NOT NULL,
    warehouse       varchar(64),
    start_date      date         NOT NULL,
    end_date        date         NOT NULL,
    value           DOUBLE,
    relative_change DOUBLE,
    author          varchar(128) NOT NULL,
    reason          text         NOT NULL,
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    expires_on      date,
    CHECK ((value IS NULL AND relative_change IS NOT NULL) OR (value IS NOT NULL AND relative_change IS NULL)),
    CHECK (value IS NULL OR value >= 0),
    CHECK (relative_change IS NULL OR relative_change >= -1),
    CHECK (end_date >= start_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- The latest run's forecast, now with the final forecast and the overrides that shaped it.
CREATE OR REPLACE VIEW seam_v_latest_forecast AS
SELECT f.run_date, f.sku, f.warehouse, f.target_date, DATEDIFF(f.target_date, f.run_date) AS lag_days,
       f.yhat, f.yhat_lo_80, f.yhat_hi_80, f.yhat_lo_95, f.yhat_hi_95,
       f.model, f.model_version, f.fallback, f.explanation, f.training_snapshot_date,
       f.yhat_final, f.override_ids
FROM seam_forecasts f
JOIN (SELECT sku, warehouse, target_date, MAX(run_date) AS run_date
      FROM seam_forecasts GROUP BY sku, warehouse, target_date) latest
  ON latest.sku = f.sku AND latest.warehouse = f.warehouse
 AND latest.target_date = f.target_date AND latest.run_date = f.run_date;
-- Forecast value added (FVA) per series and lag, over every night whose days have actuals: the
-- seasonal-naive forecast (the actual of the same weekday in the last week before the night),
-- the statistical forecast (yhat) and the final forecast (yhat_final; yhat for nights before version 6).
--   sum_abs_error_* / sum_actual = WAPE_*; (sum_* - sum_actual) / sum_actual = bias_* (> 0: over-forecast).
--   fva_wape_statistical = wape_naive - wape_statistical (> 0: the model beats the naive forecast);
--   fva_wape_final = wape_statistical - wape_final (> 0: the overrides made it better);
--   fva_abs_bias_final = |bias_statistical| - |bias_final| (> 0: the overrides reduced the bias).
--   Sums are kept so that any group (all series, a lag range) can be re-aggregated.
CREATE OR REPLACE VIEW seam_v_forecast_value_added AS
SELECT sku, warehouse, lag_days, n_points, n_overridden, sum_actual,
       sum_naive, sum_statistical, sum_final,
       sum_abs_error_naive, sum_abs_error_statistical, sum_abs_error_final,
       sum_abs_error_naive / NULLIF(sum_actual, 0) AS wape_naive,
       sum_abs_error_statistical / NULLIF(sum_actual, 0) AS wape_statistical,
       sum_abs_error_final / NULLIF(sum_actual, 0) AS wape_final,
       (sum_naive - sum_actual) / NULLIF(sum_actual, 0) AS bias_naive,
       (sum_statistical - sum_actual) / NULLIF(sum_actual, 0) AS bias_statistical,
       (sum_final - sum_actual) / NULLIF(sum_actual, 0) AS bias_final,
       (sum_abs_error_naive - sum_abs_error_statistical) / NULLIF(sum_actual, 0) AS fva_wape_statistical,
       (sum_abs_error_statistical - sum_abs_error_final) / NULLIF(sum_actual, 0) AS fva_wape_final,
       (ABS(sum_statistical - sum_actual) - ABS(sum_final - sum_actual)) / NULLIF(sum_actual, 0) AS fva_abs_bias_final
FROM (
    SELECT f.sku, f.warehouse, DATEDIFF(f.target_date, f.run_date) AS lag_days,
           COUNT(*) AS n_points,
           SUM(CASE WHEN f.override_ids IS NULL THEN 0 ELSE 1 END) AS n_overridden,
           SUM(ABS(a.actual)) AS sum_actual,
           SUM(n.actual) AS sum_naive,
           SUM(f.yhat) AS sum_statistical,
           SUM(COALESCE(f.yhat_final, f.yhat)) AS sum_final,
           SUM(ABS(a.actual - n.actual)) AS sum_abs_error_naive,
           SUM(ABS(a.actual - f.yhat)) AS sum_abs_error_statistical,
           SUM(ABS(a.actual - COALESCE(f.yhat_final, f.yhat))) AS sum_abs_error_final
    FROM seam_forecasts f
    JOIN seam_actuals a ON a.sku = f.sku AND a.warehouse = f.warehouse AND a.ds = f.target_date
    JOIN seam_actuals n ON n.sku = f.sku AND n.warehouse = f.warehouse AND n.ds = DATE_SUB(f.target_date, INTERVAL 7 * FLOOR((DATEDIFF(f.target_date, f.run_date) + 6) / 7) DAY)
    WHERE f.run_date < f.target_date
    GROUP BY f.sku, f.warehouse, DATEDIFF(f.target_date, f.run_date)
) s;
