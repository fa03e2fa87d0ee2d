-- seam result tables, version 1 (MariaDB / MySQL, InnoDB).  Idempotent: safe to run again.
CREATE TABLE IF NOT EXISTS seam_forecasts (
    run_date               DATE         NOT NULL,
    sku                    VARCHAR(64)  NOT NULL,
    warehouse              VARCHAR(64)  NOT NULL,
    target_date            DATE         NOT NULL,
    yhat                   DOUBLE       NOT NULL,
    yhat_lo_80             DOUBLE       NOT NULL,
    yhat_hi_80             DOUBLE       NOT NULL,
    yhat_lo_95             DOUBLE       NOT NULL,
    yhat_hi_95             DOUBLE       NOT NULL,
    model                  VARCHAR(128) NOT NULL,
    model_version          VARCHAR(64)  NOT NULL,
    explanation            TEXT,
    fallback               BOOLEAN      NOT NULL DEFAULT FALSE,
    training_snapshot_date DATE         NOT NULL,
    PRIMARY KEY (run_date, sku, warehouse, target_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS seam_anomaly_scores (
    run_date    DATE         NOT NULL,
    metric      VARCHAR(32)  NOT NULL,
    entity      VARCHAR(128) NOT NULL,
    ds          DATE         NOT NULL,
    value       DOUBLE,
    expected    DOUBLE,
    lower_bound DOUBLE,
    upper_bound DOUBLE,
    score       DOUBLE       NOT NULL,
    is_anomaly  BOOLEAN      NOT NULL,
    severity    VARCHAR(16),
    kind        VARCHAR(16),
    reason      TEXT,
    model       VARCHAR(128) NOT NULL,
    PRIMARY KEY (run_date, metric, entity, ds)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS seam_data_quality_results (
    run_date          DATE         NOT NULL,
    dataset           VARCHAR(64)  NOT NULL,
    check_name        VARCHAR(255) NOT NULL,
    severity          VARCHAR(8)   NOT NULL,
    success           BOOLEAN      NOT NULL,
    observed_value    TEXT,
    expected          TEXT,
    unexpected_count  BIGINT       NOT NULL DEFAULT 0,
    unexpected_sample TEXT,
    PRIMARY KEY (run_date, dataset, check_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS seam_run_ledger (
    run_date    DATE         NOT NULL,
    step        VARCHAR(64)  NOT NULL,
    attempt     INT          NOT NULL,
    run_id      VARCHAR(255),
    started_at  DATETIME(6)  NOT NULL,
    finished_at DATETIME(6),
    status      VARCHAR(16)  NOT NULL,
    rows_in     BIGINT,
    rows_out    BIGINT,
    checksum    VARCHAR(64),
    error       TEXT,
    PRIMARY KEY (run_date, step, attempt)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS seam_load_batches (
    table_name VARCHAR(64) NOT NULL,
    run_date   DATE        NOT NULL,
    checksum   VARCHAR(64) NOT NULL,
    row_count  BIGINT      NOT NULL,
    loaded_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (table_name, run_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
