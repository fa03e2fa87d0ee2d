-- seam anomaly incidents, version 5 (MariaDB/MySQL).  Purely additive; safe to run again.
-- One row per incident: consecutive anomalous days of one metric and entity (a quiet day does not
-- split it).  Each night's load extends a continuing incident and closes one that ended.
--   status: open while the incident reaches the night scored last; closed once a night shows it over.
--   first_night / last_night: the nights whose scoring flagged it first and last.
CREATE TABLE IF NOT EXISTS seam_anomaly_incidents (
    incident_id VARCHAR(32)      NOT NULL PRIMARY KEY,
    metric      VARCHAR(32)      NOT NULL,
    entity      VARCHAR(128)     NOT NULL,
    start_ds    DATE             NOT NULL,
    end_ds      DATE             NOT NULL,
    peak_ds     DATE             NOT NULL,
    peak_score  DOUBLE           NOT NULL,
    severity    VARCHAR(16)      NOT NULL,
    kind        VARCHAR(16)      NOT NULL,
    status      VARCHAR(8)       NOT NULL,
    points      INT              NOT NULL,
    first_night DATE             NOT NULL,
    last_night  DATE             NOT NULL,
    reason      TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- Open incidents, worst first: what someone should look at today.
CREATE OR REPLACE VIEW seam_v_open_incidents AS
SELECT i.incident_id, i.metric, i.entity, i.start_ds, i.end_ds, i.severity,
       CASE i.severity WHEN 'critical' THEN 1 WHEN 'high' THEN 2 WHEN 'medium' THEN 3 ELSE 4 END AS severity_rank,
       i.kind, i.peak_ds, i.peak_score, i.points, i.first_night, i.last_night, i.reason
FROM seam_anomaly_incidents i
WHERE i.status = 'open';
