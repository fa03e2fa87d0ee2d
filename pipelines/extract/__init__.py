"""Extract stage: snapshot the configured source tables of a night into the lake.

Public functions:
    extract_table(cfg, source, table, run_date) -> ExtractResult   one table, atomically
    table_list(cfg)                                                what the DAG maps over
    check_drift(previous, schema, where=...)                       schema drift between nights

Contract: source column names are mapped onto the canonical datasets here and nowhere else; a
partition appears with its manifest or not at all; incremental watermarks move only after it.
Modules: `plan` (the SELECT and its types), `schema` (Arrow types), `drift`, `ranges` (key
ranges for parallel streams), `table` (the extraction); the readers are the dialect adapters'.
"""

from pipelines.extract.drift import check_drift, schema_to_json
from pipelines.extract.table import ExtractResult, extract_table, table_list

__all__ = ["ExtractResult", "check_drift", "extract_table", "schema_to_json", "table_list"]
