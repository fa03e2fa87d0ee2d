-- seam analyst feedback on anomalies, version 7 (SQLite).  Purely additive; safe to run again.
-- seam_anomaly_feedback: what analysts say about an incident or a point (written by `seam anomaly
-- label` or by plain SQL, see the README).  One row per statement, never updated: the latest valid
-- label of a target counts.  A target is an incident (incident_id) or the days start_ds..end_ds of
-- one metric and entity (end_ds NULL: the single day start_ds).
--   label: expected | false_positive | confirmed | fixed (other values are skipped with a warning).
--   valid_from: the first night whose scoring uses the label (NULL: the day of created_at), so a
--   backfill of an earlier night scores as that night did.
CREATE TABLE IF NOT EXISTS seam_anomaly_feedback (
    feedback_id integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    incident_id varchar(32),
    metric      varchar(32),
    entity      varchar(128),
    start_ds    date,
    end_ds      date,
    label       varchar(32)      NOT NULL,
    author      varchar(128)     NOT NULL,
    note        text,
    created_at  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    valid_from  date
);
-- seam_anomaly_incident_alerts: incidents already alerted (notifications.incident_alerts), one row per
-- incident and severity, so a night never alerts an incident twice and an escalation alerts again.
CREATE TABLE IF NOT EXISTS seam_anomaly_incident_alerts (
    incident_id varchar(32)      NOT NULL,
    severity    varchar(16)      NOT NULL,
    alerted_night date           NOT NULL,
    channels    varchar(255)     NOT NULL,
    PRIMARY KEY (incident_id, severity)
);
-- The latest valid label of every target: counts per label and the precision analysts measured,
-- (confirmed + fixed) / (confirmed + fixed + false_positive).
DROP VIEW IF EXISTS seam_v_anomaly_feedback;
CREATE VIEW seam_v_anomaly_feedback AS
SELECT COALESCE(SUM(CASE WHEN v.label = 'expected' THEN 1 ELSE 0 END), 0) AS n_expected,
       COALESCE(SUM(CASE WHEN v.label = 'false_positive' THEN 1 ELSE 0 END), 0) AS n_false_positive,
       COALESCE(SUM(CASE WHEN v.label = 'confirmed' THEN 1 ELSE 0 END), 0) AS n_confirmed,
       COALESCE(SUM(CASE WHEN v.label = 'fixed' THEN 1 ELSE 0 END), 0) AS n_fixed,
       COUNT(v.label) AS n_targets,
       1.0 * SUM(CASE WHEN v.label IN ('confirmed', 'fixed') THEN 1 ELSE 0 END)
           / NULLIF(SUM(CASE WHEN v.label IN ('confirmed', 'fixed', 'false_positive') THEN 1 ELSE 0 END), 0)
           AS label_precision,
       MAX(v.created_at) AS last_labelled_at
FROM (
    SELECT f.label, f.created_at,
           ROW_NUMBER() OVER (
               PARTITION BY COALESCE(f.incident_id, ''),
                            CASE WHEN f.incident_id IS NULL THEN f.metric END,
                            CASE WHEN f.incident_id IS NULL THEN f.entity END,
                            CASE WHEN f.incident_id IS NULL THEN f.start_ds END
               ORDER BY f.created_at DESC, f.feedback_id DESC
           ) AS rn
    FROM seam_anomaly_feedback f
    WHERE f.label IN ('expected', 'false_positive', 'confirmed', 'fixed')
      AND f.author IS NOT NULL AND TRIM(f.author) <> ''
      AND ((f.incident_id IS NOT NULL
            AND f.incident_id IN (SELECT i.incident_id FROM seam_anomaly_incidents i))
           OR (f.incident_id IS NULL AND f.metric IS NOT NULL AND f.entity IS NOT NULL
               AND f.start_ds IS NOT NULL))
) v
WHERE v.rn = 1;
