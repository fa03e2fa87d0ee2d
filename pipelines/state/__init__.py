"""Run state: everything seam remembers between steps and nights, behind one package.

Public functions:
    migrate(engine) / pending_migrations / require_migrated   the result tables' schema version
    record_step(engine, StepRecord), peak_rss_mb              the run ledger (`seam_run_ledger`)
    loaded_checksum(conn, ...) / record_batch(conn, ...)      `seam_load_batches`, on the load's
                                                              own transaction
    watermark_before / commit_watermark                       incremental extraction watermarks
    write_shard_plan / shard_plan                             tonight's shard counts
    read_status / format_status                               `seam status`

Contract: no other module reads or writes these tables or files.
"""

from pipelines.state.ledger import StepRecord, peak_rss_mb, record_step
from pipelines.state.load_batches import loaded_checksum, record_batch
from pipelines.state.migrations import migrate, migration_files, pending_migrations, require_migrated
from pipelines.state.shard_plans import SHARDED_OUTPUTS, shard_plan, write_shard_plan
from pipelines.state.status import format_status, read_status
from pipelines.state.watermarks import commit_watermark, watermark_before

__all__ = [
    "SHARDED_OUTPUTS",
    "StepRecord",
    "commit_watermark",
    "format_status",
    "loaded_checksum",
    "migrate",
    "migration_files",
    "peak_rss_mb",
    "pending_migrations",
    "read_status",
    "record_batch",
    "record_step",
    "require_migrated",
    "shard_plan",
    "watermark_before",
    "write_shard_plan",
]
