-- seam forecast accuracy, version 3 (PostgreSQL).  Purely additive; safe to run again.
-- seam_forecast_accuracy: filled by each night's load (pipelines/forecasting/accuracy.py, pipelines/load/accuracy.py).  The night run_date
-- scores the archived forecasts (seam_forecasts, every night kept) whose target dates are in the
-- actuals window it loads (the last horizon + 7 days), one row per level, entity and lag_days
-- (target_date - forecast run_date):
--   level 'series': entity 'sku|warehouse'; 'category': the product category ('(no category)' for
--   SKUs without one); 'all': entity 'all'.
--   n_points = forecasts scored; sum_actual, sum_forecast, sum_abs_error = sums over them;
--   WAPE = sum|actual - yhat| / sum|actual|; bias = (sum yhat - sum actual) / sum|actual|
--   (> 0: over-forecast); both NULL when the actuals sum to 0.
--   MASE = mean of |actual - yhat| / scale over the points, scale = the series' in-sample mean
--   absolute seasonal-naive error mean|y(t) - y(t-7)| over its daily demand before the window.
--   For a series: its mean absolute error / its scale; for a category or 'all': the mean of the
--   scaled absolute errors pooled over the group's points.  Points whose series has no history
--   or a constant one (scale 0) are left out (mase_points = the points used); MASE is NULL when
--   none are left, never infinite.
--   coverage_80/95 = share of actuals inside the 80 %/95 % interval (should be near 0.80/0.95).
--   first_run_date, last_run_date = the oldest and newest forecast night among the points.
CREATE TABLE IF NOT EXISTS seam_forecast_accuracy (
    run_date       date             NOT NULL,
    level          varchar(16)      NOT NULL,
    entity         varchar(255)     NOT NULL,
    lag_days       integer          NOT NULL,
    n_points       bigint           NOT NULL,
    mase_points    bigint           NOT NULL,
    sum_actual     double precision NOT NULL,
    sum_forecast   double precision NOT NULL,
    sum_abs_error  double precision NOT NULL,
    wape           double precision,
    bias           double precision,
    mase           double precision,
    coverage_80    double precision NOT NULL,
    coverage_95    double precision NOT NULL,
    first_run_date date             NOT NULL,
    last_run_date  date             NOT NULL,
    PRIMARY KEY (run_date, level, entity, lag_days)
);
-- The latest night's accuracy rows: per level, entity and lag_days, as scored by the newest night.
-- Overall accuracy by lag over every run stays in seam_v_forecast_accuracy (002, unchanged).
CREATE OR REPLACE VIEW seam_v_forecast_accuracy_latest AS
SELECT a.run_date, a.level, a.entity, a.lag_days, a.n_points, a.mase_points,
       a.sum_actual, a.sum_forecast, a.sum_abs_error, a.wape, a.bias, a.mase,
       a.coverage_80, a.coverage_95, a.first_run_date, a.last_run_date
FROM seam_forecast_accuracy a
WHERE a.run_date = (SELECT MAX(run_date) FROM seam_forecast_accuracy);
