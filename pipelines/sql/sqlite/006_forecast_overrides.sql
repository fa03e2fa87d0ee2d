-- seam forecast overrides, version 6 (SQLite).  Additive; applied once (seam_schema_migrations).
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
ALTER TABLE seam_forecasts ADD COLUMN yhat_final REAL;
ALTER TABLE seam_forecasts ADD COLUMN override_ids text;
CREATE TABLE IF NOT EXISTS seam_forecast_overrides (
    override_id     integer      NOT NULL PRIMARY KEY AUTOINCREMENT,
    sku             varchar(64)  NOT NULL,
    warehouse       varchar(64),
    start_date      date         NOT NULL,
    end_date        date         NOT NULL,
    value           REAL,
    relative_change REAL,
    author          varchar(128) NOT NULL,
    reason          text         NOT NULL,
    created_at      TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_on      date,
    CHECK ((value IS NULL AND relative_change IS NOT NULL) OR (value IS NOT NULL AND relative_change IS NULL)),
    CHECK (value IS NULL OR value >= 0),
    CHECK (relative_change IS NULL OR relative_change >= -1),
    CHECK (end_date >= start_date)
);
-- The latest run's forecast, now with the final forecast and the overrides that shaped it.
DROP VIEW IF EXISTS seam_v_latest_forecast;
CREATE VIEW seam_v_latest_forecast AS
SELECT f.run_date, f.sku, f.warehouse, f.target_date, CAST(julianday(f.target_date) - julianday(f.run_date) AS INTEGER) AS lag_days,
       f.yhat, f.yhat_lo_80, f.yhat_hi_80, f.yhat_lo_95, f.yhat_hi_95,
       f.model, f.model_version, f.fallback, f.explanation, f.training_snapshot_date,
       f.yhat_final, f.override_ids
FROM seam_forecasts f
JOIN (SELECT sku, warehouse, target_date, MAX(run_date) AS run_date
      FROM seam_forecasts GROUP BY sku, warehouse, target_date) latest
  ON latest.sku = f.sku AND latest.warehouse = f.warehouse
 AND latest.target_date = f.target_date AND latest.run_date = f.run_date;
