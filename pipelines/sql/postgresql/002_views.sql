-- seam analyst views and the actuals table, version 2 (PostgreSQL).  Purely additive; safe to run again.
-- seam_actuals: observed demand per sku, warehouse and day; the load fills it (table seam_actuals)
-- so that seam_v_forecast_accuracy can score the forecasts once the days have happened.
CREATE TABLE IF NOT EXISTS seam_actuals (
    sku       varchar(64) NOT NULL,
    warehouse varchar(64) NOT NULL,
    ds        date   NOT NULL,
    actual    double precision    NOT NULL,
    PRIMARY KEY (sku, warehouse, ds)
);
-- The latest run's forecast for every sku, warehouse and target date (lag_days = target - run).
CREATE OR REPLACE VIEW seam_v_latest_forecast AS
SELECT f.run_date, f.sku, f.warehouse, f.target_date, (f.target_date - f.run_date) AS lag_days,
       f.yhat, f.yhat_lo_80, f.yhat_hi_80, f.yhat_lo_95, f.yhat_hi_95,
       f.model, f.model_version, f.fallback, f.explanation, f.training_snapshot_date
FROM seam_forecasts f
JOIN (SELECT sku, warehouse, target_date, MAX(run_date) AS run_date
      FROM seam_forecasts GROUP BY sku, warehouse, target_date) latest
  ON latest.sku = f.sku AND latest.warehouse = f.warehouse
 AND latest.target_date = f.target_date AND latest.run_date = f.run_date;
-- Forecast against actuals by lag (days between the run and the target date), over every run:
-- WAPE = sum|actual - yhat| / sum|actual|; bias = sum(yhat - actual) / sum|actual| (> 0: over-forecast);
-- coverage_80/95 = share of actuals inside the 80 %/95 % interval (should be near 0.80/0.95).
CREATE OR REPLACE VIEW seam_v_forecast_accuracy AS
SELECT (f.target_date - f.run_date) AS lag_days,
       COUNT(*) AS n_points,
       MIN(f.run_date) AS first_run_date,
       MAX(f.run_date) AS last_run_date,
       SUM(ABS(a.actual - f.yhat)) / NULLIF(SUM(ABS(a.actual)), 0) AS wape,
       SUM(f.yhat - a.actual) / NULLIF(SUM(ABS(a.actual)), 0) AS bias,
       AVG(CASE WHEN a.actual BETWEEN f.yhat_lo_80 AND f.yhat_hi_80 THEN 1.0 ELSE 0.0 END) AS coverage_80,
       AVG(CASE WHEN a.actual BETWEEN f.yhat_lo_95 AND f.yhat_hi_95 THEN 1.0 ELSE 0.0 END) AS coverage_95
FROM seam_forecasts f
JOIN seam_actuals a ON a.sku = f.sku AND a.warehouse = f.warehouse AND a.ds = f.target_date
GROUP BY (f.target_date - f.run_date);
-- The latest night's anomalies, most severe first by severity_rank (1 critical ... 4 other).
CREATE OR REPLACE VIEW seam_v_open_anomalies AS
SELECT s.run_date, s.metric, s.entity, s.ds, s.severity,
       CASE s.severity WHEN 'critical' THEN 1 WHEN 'high' THEN 2 WHEN 'medium' THEN 3 ELSE 4 END AS severity_rank,
       s.kind, s.value, s.expected, s.lower_bound, s.upper_bound, s.score, s.reason, s.model
FROM seam_anomaly_scores s
WHERE s.is_anomaly = true
  AND s.run_date = (SELECT MAX(run_date) FROM seam_anomaly_scores);
-- Per step: the last successful run (night, attempt, rows, duration) and the latest attempt's status.
CREATE OR REPLACE VIEW seam_v_pipeline_health AS
SELECT ok.step, ok.run_date AS last_success_run_date, ok.attempt, ok.started_at, ok.finished_at,
       EXTRACT(EPOCH FROM (ok.finished_at - ok.started_at)) AS duration_seconds, ok.rows_in, ok.rows_out,
       latest.run_date AS latest_run_date, latest.status AS latest_status
FROM (SELECT l.*, ROW_NUMBER() OVER (PARTITION BY l.step ORDER BY l.run_date DESC, l.finished_at DESC) AS rn
      FROM seam_run_ledger l WHERE l.status = 'success') ok
LEFT JOIN (SELECT l.*, ROW_NUMBER() OVER (PARTITION BY l.step ORDER BY l.run_date DESC, l.attempt DESC) AS rn
           FROM seam_run_ledger l) latest ON latest.step = ok.step AND latest.rn = 1
WHERE ok.rn = 1;
