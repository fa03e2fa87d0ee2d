-- seam forecast hierarchy, version 8 (MariaDB/MySQL).  Purely additive; safe to run again.
-- seam_forecasts_hierarchy: the night's forecasts of every level of the product x warehouse hierarchy,
-- reconciled so that children sum to their parents (MinT, see pipelines/forecasting/reconcile.py):
--   level: total | category | category_warehouse | sku | sku_warehouse;
--   category, sku, warehouse: the node's keys, NULL where the level sums over them (total: all NULL;
--   sku: the SKU in every warehouse); series_key: the node's id (the natural key needs no NULLs);
--   yhat: reconciled forecast, yhat_base: the level's own (unreconciled) forecast;
--   yhat_lo_80 .. yhat_hi_95: the node's own 80% / 95% bands (not sums of its children's bands);
--   method: mint_shrink(lambda=...) or mint_diagonal, then +own_bands (the default) or +gaussian_bands.
-- seam_forecasts is unchanged: it keeps the SKU x warehouse statistical and final forecasts.
-- seam_forecast_accuracy scores these rows too, as levels hier_total, hier_category, hier_cat_wh,
-- hier_sku and hier_sku_wh (entity: series_key; no schema change).
CREATE TABLE IF NOT EXISTS seam_forecasts_hierarchy (
    run_date      date             NOT NULL,
    level         varchar(32)      NOT NULL,
    series_key    varchar(255)     NOT NULL,
    target_date   date             NOT NULL,
    category      varchar(128),
    sku           varchar(64),
    warehouse     varchar(64),
    yhat          DOUBLE NOT NULL,
    yhat_base     DOUBLE NOT NULL,
    yhat_lo_80    DOUBLE NOT NULL,
    yhat_hi_80    DOUBLE NOT NULL,
    yhat_lo_95    DOUBLE NOT NULL,
    yhat_hi_95    DOUBLE NOT NULL,
    method        varchar(64)      NOT NULL,
    model_version varchar(64)      NOT NULL,
    PRIMARY KEY (run_date, level, series_key, target_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
