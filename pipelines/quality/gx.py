"""Great Expectations plumbing of the quality gate: check results, GX runs and Data Docs.

`pipelines.quality.batches` decides how each expectation is evaluated; what runs through GX
runs here, and the combined results are turned into `seam_data_quality_results` rows and a GX
Data Docs site.
"""

from __future__ import annotations

import fcntl
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
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


SHOWN_VALUES = 20  # a value set longer than this is shown by its first values in Data Docs


def _compact(conf: Any) -> Any:
    """The expectation's configuration as stored with the night's results: a long value set (tonight's
    SKUs, say) is cut to its first values, so that a night adds kilobytes to the store, not megabytes."""
    values = conf.kwargs.get("value_set")
    if isinstance(values, list) and len(values) > SHOWN_VALUES:
        conf = type(conf)(
            type=conf.type,
            kwargs={**conf.kwargs, "value_set": values[:SHOWN_VALUES]},
            meta={**(conf.meta or {}), "seam_value_set_size": len(values)},
            severity=conf.severity,
        )
    return conf


@contextmanager
def _project_lock(project: Path) -> Iterator[None]:
    project.mkdir(parents=True, exist_ok=True)
    with (project / ".seam-lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def docs_index(project: Path) -> Path:
    """The index page of the project's Data Docs site."""
    return project / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def write_data_docs(
    project: Path, dataset: str, suite_json: dict[str, Any], results: list[Any], run_date: date
) -> Path:
    """Add one night's validation of a dataset to the GX project at `project`: its suite (as shipped),
    the validation result (the store keeps every night) and its Data Docs page; the site's index
    lists every night.  Re-validating a night replaces that night's result.  Returns the index.

    The project is a plain GX file project (`gx.get_context(project_root_dir=project)` opens it), so
    its suites, results and docs can be browsed and rebuilt with GX's own tools.
    """
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    with _project_lock(project):
        context = gx.get_context(mode="file", project_root_dir=str(project))
        suite = context.suites.add_or_update(
            gx.ExpectationSuite(
                **{k: v for k, v in suite_json.items() if k in ("name", "expectations", "meta")}
            )
        )
        kept = [
            ExpectationValidationResult(
                success=r.success,
                expectation_config=_compact(r.expectation_config),
                result=r.result,
                exception_info=r.exception_info,
            )
            for r in results
        ]
        evaluated = len(kept)
        ok = sum(1 for r in kept if r.success)
        # one key per night: a re-run of the night replaces its result instead of adding another
        run_id = RunIdentifier(
            run_name=f"{dataset}-{run_date.isoformat()}",
            run_time=datetime.combine(run_date, datetime.min.time(), tzinfo=UTC),
        )
        batch = f"seam_{dataset}-{run_date.isoformat()}"
        validation = ExpectationSuiteValidationResult(
            success=ok == evaluated,
            results=kept,
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
                "run_id": run_id,
                "validation_time": run_id.run_time,
            },
            batch_id=batch,
        )
        suite_id = ExpectationSuiteIdentifier(name=suite.name)
        result_id = ValidationResultIdentifier(
            expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=batch
        )
        context.validation_results_store.store_validation_results(
            suite_validation_result=validation,
            suite_validation_result_identifier=result_id,
            expectation_suite_identifier=suite_id,
        )
        # both kinds of identifier, as GX's UpdateDataDocsAction passes them
        context.build_data_docs(resource_identifiers=[result_id, suite_id])  # type: ignore[arg-type]
    return docs_index(project)


def expired_validations(project: Path, before: date) -> list[Path]:
    """Stored validation results (and their Data Docs pages) of nights before `before`."""
    out = []
    for base, suffix in (
        (project / "gx" / "uncommitted" / "validations", ".json"),
        (project / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations", ".html"),
    ):
        for f in base.rglob(f"*{suffix}") if base.is_dir() else []:
            stamp = f.parent.name[:8]  # the run time folder: YYYYMMDDTHHMMSS...
            if stamp.isdigit() and date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8])) < before:
                out.append(f)
    return sorted(out)


def prune_data_docs(project: Path, before: date) -> list[Path]:
    """Remove the results and pages of nights before `before`, then rebuild the site's index."""
    import great_expectations as gx
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    with _project_lock(project):
        gone = expired_validations(project, before)
        for f in gone:
            f.unlink(missing_ok=True)
        if gone:
            context = gx.get_context(mode="file", project_root_dir=str(project))
            suites = [ExpectationSuiteIdentifier(name=s.name) for s in context.suites.all()]
            context.build_data_docs(resource_identifiers=suites[:1])
    return gone
