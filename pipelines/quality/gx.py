"""Great Expectations plumbing of the quality gate: check results, GX runs and Data Docs.

`pipelines.quality.batches` decides how each expectation is evaluated; what runs through GX
runs here, and the combined results are turned into `seam_data_quality_results` rows and a GX
Data Docs site.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from pipelines.contracts import Dataset, conform_frame


@dataclass(frozen=True)
class CheckResult:
    dataset: str
    check_name: str
    severity: str  # "error" | "warn"
    success: bool
    observed_value: str
    expected: str
    unexpected_count: int = 0
    unexpected_sample: str = "[]"
    rows: tuple[int, ...] = ()  # positions of the offending rows (row-level checks, when asked for)

    def describe(self) -> str:
        return (
            f"{self.dataset}: check {self.check_name} failed: observed {self.observed_value}, "
            f"expected {self.expected}"
        )


# --- GX, on pandas frames ------------------------------------------------------------------------
class GxRunner:
    """One ephemeral GX context with the expectations that run through GX, reused for every batch."""

    def __init__(self, dataset: str, expectations: list[dict[str, Any]], *, with_rows: bool) -> None:
        import great_expectations as gx

        self.context = gx.get_context(mode="ephemeral")
        suite = self.context.suites.add(gx.ExpectationSuite(name=f"{dataset}_gx", expectations=expectations))
        asset = self.context.data_sources.add_pandas(f"seam_{dataset}_gx").add_dataframe_asset(dataset)
        self.definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(
                name=f"{dataset}_gx", data=asset.add_batch_definition_whole_dataframe("batch"), suite=suite
            )
        )
        self.result_format: Literal["COMPLETE", "SUMMARY"] = "COMPLETE" if with_rows else "SUMMARY"

    def run(self, df: pd.DataFrame) -> list[Any]:
        return list(
            self.definition.run(batch_parameters={"dataframe": df}, result_format=self.result_format).results
        )


def frame_for_gx(batch: pa.RecordBatch | pa.Table, offset: int, contract: Dataset) -> pd.DataFrame:
    """A batch as the pandas frame GX used to get (conformed), indexed by table position."""
    df = conform_frame(batch.to_pandas(date_as_object=False), contract)
    df.index = pd.RangeIndex(offset, offset + len(df))
    return df


# --- check results ----------------------------------------------------------------------------
def to_check_result(
    dataset: str,
    conf: Any,
    success: bool,
    result: dict[str, Any],
    exception: str | None,
    rows: int,
    *,
    with_rows: bool,
) -> CheckResult:
    """One `seam_data_quality_results` row from a GX expectation configuration and its result."""
    kwargs = dict(conf.kwargs)
    col = kwargs.pop("column", None) or ",".join(kwargs.pop("column_list", []) or [])
    kwargs.pop("batch_id", None)
    # GX gives an enum (FailureSeverity.WARNING, value "warning"): compare its value
    level = getattr(conf, "severity", "critical")
    severity = "warn" if str(getattr(level, "value", level)).lower() == "warning" else "error"
    sample = result.get("partial_unexpected_list") or []
    observed = result.get("observed_value")
    unexpected = int(result.get("unexpected_count") or 0)
    if observed is None:
        observed = f"{unexpected} unexpected of {result.get('element_count', rows)}"
    return CheckResult(
        dataset=dataset,
        check_name=f"{conf.type}({col})" if col else conf.type,
        severity=severity,
        success=bool(success),
        observed_value=str((exception if not success else None) or observed)[:500],
        expected=describe_expected(kwargs),
        unexpected_count=unexpected,
        unexpected_sample=json.dumps([jsonable(v) for v in sample[:10]]),
        rows=tuple(int(i) for i in (result.get("unexpected_index_list") or [])) if with_rows else (),
    )


def describe_expected(kwargs: dict[str, Any]) -> str:
    kwargs = {
        k: v for k, v in kwargs.items() if v is not None and k not in ("result_format", "catch_exceptions")
    }
    if "value_set" in kwargs and len(kwargs["value_set"]) > 10:
        kwargs["value_set"] = f"<{len(kwargs['value_set'])} values>"
    return json.dumps(kwargs, default=str)[:500]


def jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, datetime | date | pd.Timestamp):
        return v.isoformat()
    return v if isinstance(v, int | float | str | bool) or v is None else str(v)


def write_data_docs(docs_dir: Path, dataset: str, suite_json: dict[str, Any], results: list[Any]) -> None:
    """A GX Data Docs site of a validation whose results were combined over batches.

    The results are stored and rendered as GX's UpdateDataDocsAction does after a Checkpoint.
    """
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(
        site_name="seam",
        site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        },
    )
    suite = context.suites.add(
        gx.ExpectationSuite(**{k: v for k, v in suite_json.items() if k in ("name", "expectations", "meta")})
    )
    evaluated = len(results)
    ok = sum(1 for r in results if r.success)
    run_id = RunIdentifier(run_name=f"{dataset}_night", run_time=datetime.now().astimezone())
    validation = ExpectationSuiteValidationResult(
        success=ok == evaluated,
        results=results,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": evaluated,
            "successful_expectations": ok,
            "unsuccessful_expectations": evaluated - ok,
            "success_percent": 100.0 * ok / evaluated if evaluated else None,
        },
        meta={
            "great_expectations_version": gx.__version__,
            "active_batch_definition": {"data_asset_name": dataset},
        },
        batch_id=f"seam_{dataset}-night",
    )
    validation.meta["run_id"] = run_id
    validation.meta["validation_time"] = run_id.run_time
    suite_id = ExpectationSuiteIdentifier(name=suite.name)
    result_id = ValidationResultIdentifier(
        expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=f"seam_{dataset}-night"
    )
    context.validation_results_store.store_validation_results(
        suite_validation_result=validation,
        suite_validation_result_identifier=result_id,
        expectation_suite_identifier=suite_id,
    )
    # both kinds of identifier, as GX's UpdateDataDocsAction passes them
    context.build_data_docs(site_names=["seam"], resource_identifiers=[result_id, suite_id])  # type: ignore[arg-type]
