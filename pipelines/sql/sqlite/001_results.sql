-- seam result tables, version 1 (SQLite).  Idempotent: safe to run again.
CREATE TABLE IF NOT EXISTS seam_forecasts (
    run_date               date             NOT NULL,
    sku                    varchar(64)      NOT NULL,
    warehouse              varchar(64)      NOT NULL,
    target_date            date             NOT NULL,
    yhat                   REAL             NOT NULL,
    yhat_lo_80             REAL             NOT NULL,
    yhat_hi_80             REAL             NOT NULL,
    yhat_lo_95             REAL             NOT NULL,
    yhat_hi_95             REAL             NOT NULL,
    model                  varchar(128)     NOT NULL,
    model_version          varchar(64)      NOT NULL,
    explanation            text,
    fallback               boolean          NOT NULL DEFAULT false,
    training_snapshot_date date             NOT NULL,
    PRIMARY KEY (run_date, sku, warehouse, target_date)
);
CREATE TABLE IF NOT EXISTS seam_anomaly_scores (
    run_date    date             NOT NULL,
    metric      varchar(32)      NOT NULL,
    entity      varchar(128)     NOT NULL,
    ds          date             NOT NULL,
    value       REAL            ,
    expected    REAL            ,
    lower_bound REAL            ,
    upper_bound REAL            ,
    score       REAL             NOT NULL,
    is_anomaly  boolean          NOT NULL,
    severity    varchar(16),
    kind        varchar(16),
    reason      text,
    model       varchar(128)     NOT NULL,
    PRIMARY KEY (run_date, metric, entity, ds)
);
CREATE TABLE IF NOT EXISTS seam_data_quality_results (
    run_date          date         NOT NULL,
    dataset           varchar(64)  NOT NULL,
    check_name        varchar(255) NOT NULL,
    severity          varchar(8)   NOT NULL,
    success           boolean      NOT NULL,
    observed_value    text,
    expected          text,
    unexpected_count  bigint       NOT NULL DEFAULT 0,
    unexpected_sample text,
    PRIMARY KEY (run_date, dataset, check_name)
);
CREATE TABLE IF NOT EXISTS seam_run_ledger (
    run_date    date         NOT NULL,
    step        varchar(64)  NOT NULL,
    attempt     integer      NOT NULL,
    run_id      varchar(255),
    started_at  TIMESTAMP    NOT NULL,
    finished_at TIMESTAMP  ,
    status      varchar(16)  NOT NULL,
    rows_in     bigint,
    rows_out    bigint,
    checksum    varchar(64),
    error       text,
    PRIMARY KEY (run_date, step, attempt)
);
CREATE TABLE IF NOT EXISTS seam_load_batches (
    table_name varchar(64) NOT NULL,
    run_date   date        NOT NULL,
    checksum   varchar(64) NOT NULL,
    row_count  bigint      NOT NULL,
    loaded_at  TIMESTAMP   NOT NULL,
    PRIMARY KEY (table_name, run_date)
);
