"""Data-quality gates: Great Expectations suites (`pipelines/expectations/`), freshness and volume.

A night's snapshot is validated in record batches (`pipelines.quality.batches`), reading only
the columns the checks need, so memory does not grow with the table; whole-table truths
(uniqueness, aggregates, row counts) are still decided on the whole table.

Each canonical dataset has a suite `expectations/<dataset>.json` in Great Expectations 1.x's
own format, shipped in the package (`pipelines.quality.suites`).  An expectation's `severity` is
GX's: `critical` stops the night for that dataset (our `error`), `warning` is reported only (our
`warn`).  Expectations may take a GX suite parameter named after another dataset's column
(`"value_set": {"$PARAMETER": "products__sku"}`): it is filled with that column's values in
tonight's snapshot, which gives referential-integrity checks across datasets.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import Config
from pipelines.contracts import SOURCE, conform_frame, contract_of
from pipelines.errors import ConfigError, MissingInputError, QualityGateError
from pipelines.lake import Lake, dataset_files, read_dataset
from pipelines.quality.batches import BATCH_ROWS, BatchSource, SuiteRun, iter_positions
from pipelines.quality.checks import EVENT_DATES, RowChecks
from pipelines.quality.gx import CheckResult, to_check_result, write_data_docs
from pipelines.quality.suites import load_suite
from pipelines.results import RESULT_TABLES
from pipelines.run_context import business_zone, night_bounds

log = logging.getLogger(__name__)
RESULT_COLUMNS = list(RESULT_TABLES["seam_data_quality_results"].columns)


def check_freshness(cfg: Config, dataset: str, newest: dict[str, Any], run_date: date) -> list[CheckResult]:
    """Each source's newest cursor value (`newest[source]`, None without rows) must be within its
    `freshness.max_age`.  A dataset fed by several sources gets one check per source
    (`freshness(<source>)`): one stale source is never hidden by a fresh one."""
    providers = cfg.providers(dataset)
    end = night_bounds(run_date, cfg.timezone).end
    results = []
    for source, spec in providers:
        if spec.freshness is None or not spec.cursor:
            continue
        limit = spec.freshness.max_age
        value = newest.get(source.name)
        if value is None or pd.isna(value):
            age_txt, ok = "no rows", False
        else:
            # aware cursors are compared in the business zone's wall-clock time, like naive ones
            newest_naive = (
                value.tz_convert(business_zone(cfg.timezone)).tz_localize(None) if value.tzinfo else value
            )
            age = pd.Timestamp(end) - newest_naive
            ok = age <= pd.Timedelta(limit)
            age_txt = f"newest {spec.cursor} {newest_naive:%Y-%m-%d %H:%M}, age {_fmt_age(age)}"
        results.append(
            CheckResult(
                dataset,
                _per_source("freshness", source.name, len(providers)),
                spec.freshness.severity,
                bool(ok),
                age_txt,
                f"age <= {_fmt_age(pd.Timedelta(limit))} (sources.{source.name}.tables.{spec.name}"
                f".freshness.max_age)",
            )
        )
    return results


def _per_source(check: str, source: str, sources: int) -> str:
    """A check's name: as it was for a single source, `<check>(<source>)` in a union."""
    return check if sources == 1 else f"{check}({source})"


def _fmt_age(td: pd.Timedelta) -> str:
    hours = td.total_seconds() / 3600
    return f"{hours / 24:.1f}d" if hours >= 48 else f"{hours:.1f}h"


def check_volume(cfg: Config, dataset: str, rows: dict[str, int], run_date: date) -> list[CheckResult]:
    """Each snapshot source's row count tonight (`rows[source]`) against the median of its trailing
    snapshots (a half-loaded table fails).  In a union, one check per source (`row_volume(<source>)`)."""
    providers = cfg.providers(dataset)
    lake = Lake(cfg.lake)
    rule = cfg.quality
    results = []
    for source, spec in providers:
        if spec.mode != "snapshot":
            continue
        n = rows.get(source.name, 0)
        earlier = [d for d in lake.table_days(source.name, spec.name) if d < run_date][-rule.volume_window :]
        counts = []
        for d in earlier:
            m = lake.table_manifest(source.name, spec.name, d)
            if m and "rows" in m:
                counts.append(int(m["rows"]))
        results.append(
            CheckResult(
                dataset,
                _per_source("row_count", source.name, len(providers)),
                "error",
                n > 0,
                f"{n} rows",
                "at least 1 row",
            )
        )
        if counts:
            ref = float(pd.Series(counts).median())
            ok = n >= rule.volume_min_ratio * ref
            results.append(
                CheckResult(
                    dataset,
                    _per_source("row_volume", source.name, len(providers)),
                    "error",
                    bool(ok),
                    f"{n} rows",
                    f">= {rule.volume_min_ratio:.0%} of the median {ref:.0f} of the last {len(counts)} snapshots "
                    f"(quality.volume)",
                )
            )
    return results


def _source_counts(cfg: Config, dataset: str, source: BatchSource, run_date: date) -> dict[str, int]:
    """Rows per source tonight: the whole read for a single source; in a union, each source's
    partition as extracted (its manifest), before entities listed by an earlier source are dropped."""
    providers = cfg.providers(dataset)
    if len(providers) == 1:
        return {providers[0][0].name: source.num_rows}
    lake, out = Lake(cfg.lake), {}
    for src, spec in providers:
        m = lake.table_manifest(src.name, spec.name, run_date) or {}
        out[src.name] = int(m["rows"]) if "rows" in m else _rows_of(source, src.name)
    return out


def _rows_of(source: BatchSource, name: str) -> int:
    table = source.read_columns([SOURCE])
    return int(pc.sum(pc.equal(table.column(0), name)).as_py() or 0)


def _newest_by_source(cfg: Config, dataset: str, source: BatchSource, newest: Any) -> dict[str, Any]:
    """Each source's newest cursor value: `newest` (seen by the row checks) for a single source;
    in a union, per source from the rows in memory."""
    providers = cfg.providers(dataset)
    if len(providers) == 1:
        return {providers[0][0].name: newest}
    out: dict[str, Any] = {}
    names = source.schema.names
    for src, spec in providers:
        if spec.freshness is None or not spec.cursor or spec.cursor not in names or not source.num_rows:
            continue
        table = source.read_columns([SOURCE, spec.cursor])
        mine = table.filter(pc.equal(table.column(SOURCE), src.name)).column(spec.cursor).to_pandas()
        value = pd.to_datetime(mine).max() if len(mine) else None
        out[src.name] = None if value is None or pd.isna(value) else value
    return out


def run_suite(
    suite_json: dict[str, Any],
    df: pd.DataFrame,
    dataset: str,
    references: dict[str, Any],
    *,
    with_rows: bool = False,
    docs_dir: Path | None = None,
) -> list[CheckResult]:
    """Validate an in-memory frame with a GX suite (JSON form), all of it through GX at once;
    `references` are the values of its suite parameters.

    Returns one result per expectation.  The nightly gate streams batches instead
    (`validate_dataset`); this whole-frame run is the reference it must agree with.
    With `docs_dir`, a GX Data Docs site of this validation is built there (a Checkpoint with
    GX's UpdateDataDocsAction), for data engineers to browse.
    """
    import great_expectations as gx  # heavy import, only when validating

    suite_json = resolve_parameters(suite_json, references)
    context = gx.get_context(mode="ephemeral")
    suite = context.suites.add(
        gx.ExpectationSuite(**{k: v for k, v in suite_json.items() if k in ("name", "expectations", "meta")})
    )
    asset = context.data_sources.add_pandas(f"seam_{dataset}").add_dataframe_asset(dataset)
    night = asset.add_batch_definition_whole_dataframe("night")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{dataset}_night", data=night, suite=suite)
    )
    actions: list[Any] = []
    if docs_dir is not None:
        context.add_data_docs_site(
            site_name="seam",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
            },
        )
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["seam"]))
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"seam_{dataset}",
            validation_definitions=[definition],
            actions=actions,
            result_format="COMPLETE" if with_rows else "SUMMARY",
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": df})
    (validation,) = run.run_results.values()
    return [
        to_check_result(
            dataset,
            res.expectation_config,
            bool(res.success),
            res.result or {},
            (res.exception_info or {}).get("exception_message") if not res.success else None,
            len(df),
            with_rows=with_rows,
        )
        for res in validation.results
    ]


def _parameter_name(value: Any) -> str | None:
    return (
        value.get("$PARAMETER")
        if isinstance(value, dict) and isinstance(value.get("$PARAMETER"), str)
        else None
    )


def suite_parameters(suite_json: dict[str, Any] | None) -> list[str]:
    """The GX suite parameters (`{"$PARAMETER": name}`) a suite's expectations use, in order."""
    names: list[str] = []
    for e in (suite_json or {}).get("expectations", []):
        for value in (e.get("kwargs") or {}).values():
            name = _parameter_name(value)
            if name and name not in names:
                names.append(name)
    return names


def resolve_parameters(suite_json: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The suite with every `{"$PARAMETER": name}` replaced by its value (what GX's
    `expectation_parameters=` does), for the evaluators that read the kwargs directly."""
    out = json.loads(json.dumps(suite_json))
    for exp in out.get("expectations", []):
        for key, value in list((exp.get("kwargs") or {}).items()):
            name = _parameter_name(value)
            if name is None:
                continue
            if name not in parameters:
                raise ConfigError(
                    f"suite {out.get('name')}: no value for the suite parameter {name!r} "
                    f"(expectation {exp.get('type')}); name a dataset column as <dataset>__<column>"
                )
            found = parameters[name]
            exp["kwargs"][key] = sorted(found, key=str) if isinstance(found, set | frozenset) else found
    return out


def dataset_source(cfg: Config, dataset: str, run_date: date) -> BatchSource:
    """The night's rows of a dataset, in `read_dataset` order, without reading them yet.

    Single-source snapshots are streamed from their Parquet files.  Incremental datasets keep the
    newest version of each key over all partitions, and a union of several sources is checked for
    types and entities across them: both need the rows whole, and are read with `read_dataset`.
    """
    providers = cfg.providers(dataset)
    if len(providers) > 1 or providers[0][1].mode != "snapshot":  # a union is read whole, in memory
        df = read_dataset(cfg, dataset, run_date, conform=False, exclude_quarantined=False)
        return BatchSource(table=pa.Table.from_pandas(df, preserve_index=False))
    return BatchSource(files=dataset_files(cfg, dataset, run_date))


def validate_dataset(
    cfg: Config,
    dataset: str,
    run_date: date,
    *,
    expectations_dir: Path | None = None,
    batch_rows: int = BATCH_ROWS,
) -> list[CheckResult]:
    """Run every check of one dataset for a night, write the results to the lake, gate on errors.

    The snapshot is read in batches of `batch_rows` rows (only the columns the checks use).
    Raises `QualityGateError` naming dataset, check, observed and expected values when an
    `error`-severity check fails (results are written first, so people can see them).
    """
    t0 = time.perf_counter()
    spec = cfg.provider(dataset)[1]
    contract = contract_of(dataset)
    source = dataset_source(cfg, dataset, run_date)
    names = source.schema.names
    checks = RowChecks(
        dataset, contract, pd.Timestamp(night_bounds(run_date, cfg.timezone).end), rules=cfg.quality
    )
    if spec.freshness is not None and spec.cursor and spec.cursor in names:
        checks.cursor = spec.cursor
    if EVENT_DATES.get(dataset) in names:
        checks.event_col = EVENT_DATES[dataset]
    missing: list[str] = []  # datasets other checks refer to that are not in the lake tonight
    if dataset == "order_lines" and cfg.has_dataset("products"):
        products = _reference(cfg, "products", run_date, missing)
        if products is not None and "list_price" in products.columns:
            checks.prices = products.set_index("sku")["list_price"]
    suite = _night_suite(cfg, dataset, run_date, expectations_dir, missing, names)
    # the suite's key hashes of a large snapshot wait on disk, a bucket at a time
    with Lake(cfg.lake).spill() as spill:
        rows = source.num_rows
        run = (
            SuiteRun(
                dataset,
                suite,
                source,
                contract,
                with_rows=spec.quarantine,
                batch_rows=batch_rows,
                spill=spill,
            )
            if suite and rows
            else None
        )
        columns = [c for c in dict.fromkeys(checks.columns + (run.columns if run else [])) if c in names]
        for batch, offset in iter_positions(source, columns, batch_rows):
            checks.add_batch(batch)
            if run is not None:
                run.add_batch(batch, offset)
        results = (
            check_volume(cfg, dataset, _source_counts(cfg, dataset, source, run_date), run_date)
            + check_freshness(
                cfg,
                dataset,
                _newest_by_source(cfg, dataset, source, checks.newest if rows else None),
                run_date,
            )
            + checks.event_results(run_date)
            + checks.price_results()
            + [
                CheckResult(
                    dataset,
                    f"reference({ref})",
                    "warn",
                    False,
                    f"{ref} is not in the lake for {run_date}",
                    f"checks against {ref} run when it is extracted; they were left out tonight",
                )
                for ref in sorted(set(missing))
            ]
        )
        if run is not None:
            shipped = load_suite(dataset, spec.suite, expectations_dir) or {}
            docs = DocsTarget(docs_project(cfg), run_date, shipped) if cfg.report.data_docs else None
            results += _suite_results(run, rows, docs)
    if spec.quarantine:
        results = quarantine(
            cfg, dataset, run_date, source, rows, results, max_share=spec.quarantine_max_share
        )
    frame = pd.DataFrame(
        [{"run_date": pd.Timestamp(run_date), **r.__dict__} for r in results], columns=RESULT_COLUMNS
    )
    Lake(cfg.lake).write_quality(dataset, run_date, frame)
    failed = [r for r in results if not r.success]
    for r in failed:
        (log.error if r.severity == "error" else log.warning)("quality %s", r.describe())
    log.info(
        "validate %s run_date=%s rows_in=%d checks=%d failed=%d seconds=%.2f",
        dataset,
        run_date,
        rows,
        len(results),
        len(failed),
        time.perf_counter() - t0,
    )
    errors = [r for r in failed if r.severity == "error"]
    if errors:
        raise QualityGateError("; ".join(r.describe() for r in errors))
    return results


def _reference(cfg: Config, dataset: str, run_date: date, missing: list[str]) -> pd.DataFrame | None:
    """A dataset other checks compare against, or None (noted in `missing`) when tonight's
    extraction of it failed: its own validation fails for that, this one need not."""
    try:
        return read_dataset(cfg, dataset, run_date)
    except MissingInputError:
        missing.append(dataset)
        return None


def _night_suite(
    cfg: Config, dataset: str, run_date: date, directory: Path | None, missing: list[str], columns: list[str]
) -> dict[str, Any] | None:
    """The dataset's suite as it runs tonight.

    - Suite parameters are filled: a config value set (`value_sets.<name>`, e.g. `currencies`),
      or `<dataset>__<column>`, that column's values in tonight's snapshot of the dataset
      (referential integrity across datasets).  Expectations whose parameter names a dataset that is
      not configured, or not in the lake tonight (noted in `missing`), are left out.
    - Optional columns are optional: expectations on an optional column the source does not have
      are left out.
    - Required means not null: every required column of the contract gets a critical not-null check.
    """
    suite = load_suite(dataset, cfg.provider(dataset)[1].suite, directory)
    if not suite:
        return None
    contract = contract_of(dataset)
    values: dict[str, Any] = {}
    for name in suite_parameters(suite):
        if name in cfg.value_sets:
            values[name] = list(cfg.value_sets[name])
            continue
        ref_ds, sep, ref_col = name.partition("__")
        if not sep:
            raise ConfigError(
                f"suite {suite.get('name')}: suite parameter {name!r} is not <dataset>__<column>; "
                f"seam fills parameters named after a dataset column, e.g. products__sku"
            )
        found = _reference(cfg, ref_ds, run_date, missing) if cfg.has_dataset(ref_ds) else None
        if found is not None:
            if ref_col not in found.columns:
                raise ConfigError(
                    f"suite {suite.get('name')}: suite parameter {name!r}: {ref_ds} has no column {ref_col!r}"
                )
            values[name] = set(found[ref_col].dropna().unique())
    absent = {c.name for c in contract.columns if not c.required and c.name not in columns}
    kept = [
        e
        for e in suite.get("expectations", [])
        if all(_parameter_name(v) in (None, *values) for v in (e.get("kwargs") or {}).values())
        and (e.get("kwargs") or {}).get("column") not in absent
    ]
    if len(cfg.providers(dataset)) > 1:
        kept = [_unique_per_source(e) for e in kept]
    not_null = {
        (e.get("kwargs") or {}).get("column")
        for e in kept
        if e.get("type") == "expect_column_values_to_not_be_null"
    }
    kept += [
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": c.name},
            "severity": "critical",
            "meta": {"notes": "required by the dataset's contract (pipelines/contracts.py)"},
        }
        for c in contract.columns
        if c.required and c.name in columns and c.name not in not_null
    ]
    return resolve_parameters({**suite, "expectations": kept}, values)


def _unique_per_source(expectation: dict[str, Any]) -> dict[str, Any]:
    """In a union, rows of two sources never clash (order 1001 of each ERP is two orders): a
    uniqueness expectation holds per source, i.e. on (`source`, its columns)."""
    kind, kwargs = expectation.get("type"), dict(expectation.get("kwargs") or {})
    if kind == "expect_column_values_to_be_unique":
        kwargs["column_list"] = [SOURCE, kwargs.pop("column")]
        return {**expectation, "type": "expect_compound_columns_to_be_unique", "kwargs": kwargs}
    if kind == "expect_compound_columns_to_be_unique":
        return {**expectation, "kwargs": {**kwargs, "column_list": [SOURCE, *kwargs["column_list"]]}}
    return expectation


def run_suite_batched(
    dataset: str,
    suite_json: dict[str, Any],
    source: BatchSource,
    *,
    with_rows: bool = False,
    batch_rows: int = BATCH_ROWS,
    docs: DocsTarget | None = None,
) -> list[CheckResult]:
    """Validate `source` with a resolved GX suite in batches of `batch_rows` rows.

    Gives the same results as `run_suite` on the whole table (`validate_dataset` does this
    in the same pass as its own checks).
    """
    run = SuiteRun(
        dataset, suite_json, source, contract_of(dataset), with_rows=with_rows, batch_rows=batch_rows
    )
    for batch, offset in iter_positions(source, run.columns, batch_rows):
        run.add_batch(batch, offset)
    return _suite_results(run, source.num_rows, docs)


@dataclass(frozen=True)
class DocsTarget:
    """Where a validation goes in Data Docs: the GX project, the night, the suite as shipped."""

    project: Path
    run_date: date
    suite_json: dict[str, Any]


def docs_project(cfg: Config) -> Path:
    """The GX project (suites, every night's results, Data Docs) beside the reports."""
    return cfg.report.directory / "gx-project"


def _suite_results(run: SuiteRun, rows: int, docs: DocsTarget | None) -> list[CheckResult]:
    """Check results of a finished suite run, and its page in the Data Docs of `docs`."""
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

    suite = gx.ExpectationSuite(
        **{k: v for k, v in run.suite_json.items() if k in ("name", "expectations", "meta")}
    )
    configs = [e.configuration for e in suite.expectations]
    outcomes = run.finish(rows)
    # GX reports a suite's results grouped by column, in the order the columns first appear
    groups: dict[str, list[int]] = {}
    for i, conf in enumerate(configs):
        col = conf.kwargs.get("column")
        groups.setdefault(col if isinstance(col, str) else "\0", []).append(i)
    order = [i for g in groups.values() for i in g]
    configs, outcomes = [configs[i] for i in order], [outcomes[i] for i in order]
    if docs is not None:
        validation = [
            ExpectationValidationResult(
                success=ok,
                expectation_config=conf,
                result=result,
                exception_info={
                    "raised_exception": exc is not None,
                    "exception_message": exc,
                    "exception_traceback": None,
                },
            )
            for conf, (ok, result, exc) in zip(configs, outcomes, strict=True)
        ]
        write_data_docs(
            docs.project, run.dataset, docs.suite_json or run.suite_json, validation, docs.run_date
        )
    return [
        to_check_result(run.dataset, conf, ok, result, exc, rows, with_rows=run.with_rows)
        for conf, (ok, result, exc) in zip(configs, outcomes, strict=True)
    ]


def quarantine(
    cfg: Config,
    dataset: str,
    run_date: date,
    source: BatchSource,
    rows: int,
    results: list[CheckResult],
    *,
    max_share: float,
) -> list[CheckResult]:
    """Set aside rows that failed row-level `error` checks in the lake's quarantine; the rest go on.

    The quarantine file holds the offending rows, their position (`_seam_row`) and the reasons.
    The failed checks are reported as `warn` with the quarantined count.  When more than
    `max_share` of the `rows` are bad, nothing is quarantined: the feed is broken and the gate fails.
    """
    row_level = [r for r in results if not r.success and r.severity == "error" and r.rows]
    lake = Lake(cfg.lake)
    bad: dict[int, list[str]] = {}
    for r in row_level:
        for i in r.rows:
            bad.setdefault(i, []).append(r.check_name)
    if not bad or len(bad) > max_share * rows:
        lake.write_quarantine(dataset, run_date, pd.DataFrame({"_seam_row": pd.Series([], dtype="int64")}))
        return results
    positions = sorted(bad)
    table = source.take(positions, BATCH_ROWS)
    frame = conform_frame(table.to_pandas(date_as_object=False), contract_of(dataset))
    frame.insert(0, "_seam_row", positions)
    frame["quarantine_reason"] = ["; ".join(bad[i]) for i in positions]
    folder = lake.write_quarantine(
        dataset,
        run_date,
        frame,
        manifest={"dataset": dataset, "run_date": run_date.isoformat(), "rows": len(frame)},
    )
    log.warning("quality %s: %d rows quarantined in %s", dataset, len(frame), folder)
    out = []
    for r in results:
        if r in row_level:
            r = CheckResult(
                r.dataset,
                r.check_name,
                "warn",
                False,
                f"{r.observed_value} ({len(r.rows)} rows quarantined)",
                r.expected,
                r.unexpected_count,
                r.unexpected_sample,
            )
        out.append(r)
    return out


def read_quality(cfg: Config, run_date: date) -> pd.DataFrame:
    """All quality results written for a night (every validated dataset)."""
    frames, lake = [], Lake(cfg.lake)
    for ds in sorted({t.dataset for s in cfg.sources for t in s.tables}):
        found = lake.read_quality(ds, run_date)
        if found is not None:
            frames.append(found)
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def blocked_datasets(cfg: Config, run_date: date, datasets: list[str]) -> dict[str, list[str]]:
    """Datasets (among `datasets`) that may not be used tonight, with the reasons.

    A dataset is blocked when an `error`-severity check failed, or when it was not validated
    for the night at all (its validation crashed or has not run).
    """
    blocked: dict[str, list[str]] = {}
    lake = Lake(cfg.lake)
    for ds in datasets:
        q = lake.read_quality(ds, run_date)
        if q is None:
            blocked[ds] = [f"{ds}: not validated for {run_date}"]
            continue
        bad = q[(~q["success"].astype(bool)) & (q["severity"] == "error")]
        if len(bad):
            blocked[ds] = [
                CheckResult(**{k: r[k] for k in RESULT_COLUMNS if k != "run_date"}).describe()
                for _, r in bad.iterrows()
            ]
    return blocked
