-- seam aggregate overrides, version 9 (SQLite).  Keeps every row; applied once (seam_schema_migrations).
-- seam_forecast_overrides gains `category` and `sku` becomes nullable:
--   sku set: a series override (as in version 6; category must be NULL);
--   sku NULL, category set: a category override (warehouse NULL: the category in every warehouse,
--   else the category in that warehouse);
--   sku NULL, category NULL: a total override (warehouse NULL: every series, else every SKU of
--   that warehouse).
-- An aggregate override sets (value) or scales (relative_change) the sum of its SKU x warehouse
-- series; each night spreads it over them in proportion to their statistical forecast, then the
-- series overrides apply on top (README "Planner overrides").  Existing rows keep their ids.
-- SQLite cannot change a column's nullability, so the table is rebuilt in the migration's
-- transaction: new table, copy (ids included), carry the id sequence over, drop, rename.
CREATE TABLE seam_forecast_overrides_v9 (
    override_id     integer      NOT NULL PRIMARY KEY AUTOINCREMENT,
    sku             varchar(64),
    warehouse       varchar(64),
    start_date      date         NOT NULL,
    end_date        date         NOT NULL,
    value           REAL,
    relative_change REAL,
    author          varchar(128) NOT NULL,
    reason          text         NOT NULL,
    created_at      TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_on      date,
    category        varchar(128),
    CHECK ((value IS NULL AND relative_change IS NOT NULL) OR (value IS NOT NULL AND relative_change IS NULL)),
    CHECK (value IS NULL OR value >= 0),
    CHECK (relative_change IS NULL OR relative_change >= -1),
    CHECK (end_date >= start_date),
    CHECK (NOT (sku IS NOT NULL AND category IS NOT NULL))
);
INSERT INTO seam_forecast_overrides_v9
    (override_id, sku, warehouse, start_date, end_date, value, relative_change, author, reason, created_at, expires_on)
SELECT override_id, sku, warehouse, start_date, end_date, value, relative_change, author, reason, created_at, expires_on
FROM seam_forecast_overrides;
DELETE FROM sqlite_sequence WHERE name = 'seam_forecast_overrides_v9';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'seam_forecast_overrides_v9', seq FROM sqlite_sequence WHERE name = 'seam_forecast_overrides';
DROP TABLE seam_forecast_overrides;
ALTER TABLE seam_forecast_overrides_v9 RENAME TO seam_forecast_overrides;
