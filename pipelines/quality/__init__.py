"""Quality stage: the night's data-quality gate of each dataset.

Public functions:
    validate_dataset(cfg, dataset, run_date) -> [CheckResult]   suite, freshness, volume, dates and
                                                               prices in one streamed pass; results
                                                               written to the lake; raises
                                                               QualityGateError on an `error` failure
    blocked_datasets(cfg, run_date, datasets)                  which datasets failed tonight, and why
    read_quality(cfg, run_date)                                tonight's results, every dataset
    run_suite / run_suite_batched                              a GX suite on a frame / in batches
    load_suite(dataset, setting)                               a suite file (packaged or configured)

Contract: suites are GX 1.x JSON; severities `critical` (our `error`, the night stops for that
dataset) and `warning` (reported only).
"""

from pipelines.quality.gate import (
    blocked_datasets,
    check_freshness,
    check_volume,
    read_quality,
    run_suite,
    run_suite_batched,
    validate_dataset,
)
from pipelines.quality.gx import CheckResult
from pipelines.quality.suites import load_suite, packaged_suite

__all__ = [
    "CheckResult",
    "blocked_datasets",
    "check_freshness",
    "check_volume",
    "load_suite",
    "packaged_suite",
    "read_quality",
    "run_suite",
    "run_suite_batched",
    "validate_dataset",
]
