-- seam aggregate overrides, version 9 (PostgreSQL).  Keeps every row; applied once (seam_schema_migrations).
-- seam_forecast_overrides gains `category` and `sku` becomes nullable:
--   sku set: a series override (as in version 6; category must be NULL);
--   sku NULL, category set: a category override (warehouse NULL: the category in every warehouse,
--   else the category in that warehouse);
--   sku NULL, category NULL: a total override (warehouse NULL: every series, else every SKU of
--   that warehouse).
-- An aggregate override sets (value) or scales (relative_change) the sum of its SKU x warehouse
-- series; each night spreads it over them in proportion to their statistical forecast, then the
-- series overrides apply on top (README "Planner overrides").  Existing rows keep their ids.
ALTER TABLE seam_forecast_overrides ADD COLUMN IF NOT EXISTS category varchar(128);
ALTER TABLE seam_forecast_overrides ALTER COLUMN sku DROP NOT NULL;
ALTER TABLE seam_forecast_overrides DROP CONSTRAINT IF EXISTS seam_forecast_overrides_one_level,
    ADD CONSTRAINT seam_forecast_overrides_one_level CHECK (NOT (sku IS NOT NULL AND category IS NOT NULL));
