-- seam night locks, version 4 (MariaDB/MySQL).  Purely additive; safe to run again.
-- One row while a night runs: who holds it (a `seam` process or an Airflow run), where, since when.
-- `seam run` and the nightly DAG take it before they write anything and release it at the end; a
-- second run of the same night waits or stops with "night D is already running (...)".
CREATE TABLE IF NOT EXISTS seam_night_locks (
    run_date  DATE         NOT NULL PRIMARY KEY,
    holder    VARCHAR(255) NOT NULL,
    host      VARCHAR(255) NOT NULL,
    pid       INT          NOT NULL,
    since     DATETIME     NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
