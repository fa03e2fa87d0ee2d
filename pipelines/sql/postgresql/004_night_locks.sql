-- seam night locks, version 4 (PostgreSQL).  Purely additive; safe to run again.
-- One row while a night runs: who holds it (a `seam` process or an Airflow run), where, since when.
-- `seam run` and the nightly DAG take it before they write anything and release it at the end; a
-- second run of the same night waits or stops with "night D is already running (...)".
CREATE TABLE IF NOT EXISTS seam_night_locks (
    run_date  date         NOT NULL PRIMARY KEY,
    holder    varchar(255) NOT NULL,
    host      varchar(255) NOT NULL,
    pid       integer      NOT NULL,
    since     timestamptz  NOT NULL
);
