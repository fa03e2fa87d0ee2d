"""Run state: everything seam remembers between steps and nights, behind one package.

Public functions:
    migrate(engine) / pending_migrations / require_migrated   the result tables' schema version
    record_step(engine, StepRecord), peak_rss_mb              the run ledger (`seam_run_ledger`)
    loaded_checksum(conn, ...) / record_batch(conn, ...)      `seam_load_batches`, on the load's
                                                              own transaction
    watermark_before / commit_watermark                       incremental extraction watermarks
    write_shard_plan / shard_plan / shard_assignment          tonight's shards and their SKUs
    partition_count / record_partitions                       tonight's partitions of customers
    write_record_cutoffs / record_cutoffs                     their customers' cut-off days
    write_forecast_week / forecast_week                       the night's panel week, for every
                                                              forecasting shard
    write_forecast_peers / forecast_peers                     the night's new-product peers, idem
    write_forecast_drivers / forecast_drivers                 the night's demand drivers' effects,
                                                              idem
    write_launches / recorded_launches                        the night's product launches, idem
    acquire_night / release_night / next_attempt              one run of a night at a time, every
                                                              attempt kept (`seam_night_locks`)
    read_status / summarize / format_status                   what happened each night: `seam
                                                              status`, the report, the alerts

Contract: no other module reads or writes these tables or files.
"""

from pipelines.state.ledger import StepRecord, peak_rss_mb, record_step
from pipelines.state.load_batches import last_loaded_night, loaded_checksum, record_batch
from pipelines.state.migrations import migrate, migration_files, pending_migrations, require_migrated
from pipelines.state.nights import Holder, NightRunningError, acquire_night, next_attempt, release_night
from pipelines.state.shard_plans import (
    SHARDED_OUTPUTS,
    forecast_drivers,
    forecast_peers,
    forecast_week,
    partition_count,
    record_cutoffs,
    record_partitions,
    recorded_launches,
    shard_assignment,
    shard_plan,
    write_forecast_drivers,
    write_forecast_peers,
    write_forecast_week,
    write_launches,
    write_record_cutoffs,
    write_shard_plan,
)
from pipelines.state.status import (
    NightScope,
    expected_steps,
    format_status,
    night_problems,
    read_ledger,
    read_status,
    summarize,
)
from pipelines.state.watermarks import commit_watermark, watermark_before

__all__ = [
    "SHARDED_OUTPUTS",
    "Holder",
    "NightRunningError",
    "NightScope",
    "StepRecord",
    "acquire_night",
    "commit_watermark",
    "expected_steps",
    "forecast_drivers",
    "forecast_peers",
    "forecast_week",
    "format_status",
    "last_loaded_night",
    "loaded_checksum",
    "migrate",
    "migration_files",
    "next_attempt",
    "night_problems",
    "partition_count",
    "peak_rss_mb",
    "pending_migrations",
    "read_ledger",
    "read_status",
    "record_batch",
    "record_cutoffs",
    "record_partitions",
    "record_step",
    "recorded_launches",
    "release_night",
    "require_migrated",
    "shard_assignment",
    "shard_plan",
    "summarize",
    "watermark_before",
    "write_forecast_drivers",
    "write_forecast_peers",
    "write_forecast_week",
    "write_launches",
    "write_record_cutoffs",
    "write_shard_plan",
]
