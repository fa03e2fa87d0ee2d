"""Data-quality gates: Great Expectations suites from `expectations/`, plus freshness and volume.

Each canonical dataset has a suite `expectations/<dataset>.json` in Great Expectations 1.x's
own format.  An expectation's `severity` is GX's: `critical` stops the night for that dataset
(our `error`), `warning` is reported only (our `warn`).  Expectations may name another dataset
in `meta.value_set_from` (e.g. "products.sku"): the value set is filled from that dataset's
snapshot, which gives referential-integrity checks across datasets.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Config
from pipelines.datasets import read_dataset
from pipelines.errors import ConfigError, QualityGateError
from pipelines.extract import run_bounds
from pipelines.lake import output_path, partition_path, partitions, read_manifest, write_frame
from pipelines.results import RESULT_TABLES

log = logging.getLogger(__name__)
EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "expectations"
RESULT_COLUMNS = list(RESULT_TABLES["seam_data_quality_results"].columns)
VOLUME_DROP = 0.5  # a snapshot with fewer than half the rows of the previous one is half-loaded
# The column that dates each row's business event: none may lie after the night being processed.
EVENT_DATES = {"order_lines": "order_date", "tickets": "opened_at", "opportunities": "created_at"}
PRICE_RATIO = 20.0  # a line priced 20x above or below its list price is a unit or currency error
PRICE_SHARE = 0.001  # ...and more than 0.1% of such lines is a broken feed, not a typo


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


def suite_path(dataset: str, directory: Path | None = None) -> Path:
    return (directory or EXPECTATIONS_DIR) / f"{dataset}.json"


def load_suite_json(dataset: str, directory: Path | None = None) -> dict[str, Any] | None:
    path = suite_path(dataset, directory)
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err}); fix the expectation suite file") from None
    return data


def check_freshness(cfg: Config, dataset: str, df: pd.DataFrame, run_date: date) -> list[CheckResult]:
    """The newest cursor value must be within the table's `freshness.max_age` of the run's end."""
    source, spec = cfg.provider(dataset)
    if spec.freshness is None or not spec.cursor:
        return []
    _, end = run_bounds(run_date)
    newest = pd.to_datetime(df[spec.cursor]).max() if len(df) else None
    limit = spec.freshness.max_age
    if newest is None or pd.isna(newest):
        age_txt, ok = "no rows", False
    else:
        newest_naive = newest.tz_convert(None) if newest.tzinfo else newest
        age = pd.Timestamp(end) - newest_naive
        ok = age <= pd.Timedelta(limit)
        age_txt = f"newest {spec.cursor} {newest_naive:%Y-%m-%d %H:%M}, age {_fmt_age(age)}"
    return [
        CheckResult(
            dataset,
            "freshness",
            spec.freshness.severity,
            bool(ok),
            age_txt,
            f"age <= {_fmt_age(pd.Timedelta(limit))} (sources.{source.name}.tables.{spec.name}"
            f".freshness.max_age)",
        )
    ]


def _fmt_age(td: pd.Timedelta) -> str:
    hours = td.total_seconds() / 3600
    return f"{hours / 24:.1f}d" if hours >= 48 else f"{hours:.1f}h"


def check_volume(cfg: Config, dataset: str, rows: int, run_date: date) -> list[CheckResult]:
    """Row count against the median of the trailing snapshots (a half-loaded table fails)."""
    source, spec = cfg.provider(dataset)
    if spec.mode != "snapshot":
        return []
    earlier = [d for d in partitions(cfg.lake, source.name, spec.name) if d < run_date][-7:]
    counts = []
    for d in earlier:
        m = read_manifest(partition_path(cfg.lake, source.name, spec.name, d))
        if m and "rows" in m:
            counts.append(int(m["rows"]))
    results = [CheckResult(dataset, "row_count", "error", rows > 0, f"{rows} rows", "at least 1 row")]
    if counts:
        ref = float(pd.Series(counts).median())
        ok = rows >= VOLUME_DROP * ref
        results.append(
            CheckResult(
                dataset,
                "row_volume",
                "error",
                bool(ok),
                f"{rows} rows",
                f">= {VOLUME_DROP:.0%} of the trailing median {ref:.0f}",
            )
        )
    return results


def check_event_dates(dataset: str, df: pd.DataFrame, run_date: date) -> list[CheckResult]:
    """No row may be dated after the night (future-dated orders, tickets, ...)."""
    col = EVENT_DATES.get(dataset)
    if col is None or col not in df.columns or not len(df):
        return []
    _, end = run_bounds(run_date)
    values = pd.to_datetime(df[col])
    future = df.loc[values >= pd.Timestamp(end), col]
    sample = json.dumps([_jsonable(v) for v in future.head(10)])
    return [
        CheckResult(
            dataset,
            f"not_in_future({col})",
            "error",
            future.empty,
            f"{len(future)} rows after {run_date}, latest {values.max():%Y-%m-%d}",
            f"{col} <= {run_date}",
            len(future),
            sample,
        )
    ]


def check_prices(cfg: Config, dataset: str, df: pd.DataFrame, run_date: date) -> list[CheckResult]:
    """Order-line prices against the product's list price: catches 100x unit/currency errors."""
    if dataset != "order_lines" or not cfg.has_dataset("products") or not len(df):
        return []
    products = read_dataset(cfg, "products", run_date)
    if "list_price" not in products.columns:
        return []
    lp = df["sku"].map(products.set_index("sku")["list_price"])
    ratio = df["unit_price"] / lp
    off = df[(ratio > PRICE_RATIO) | (ratio < 1 / PRICE_RATIO)]
    share = len(off) / len(df)
    sample = json.dumps([f"{r.order_id}-{r.line_no}: {r.unit_price}" for r in off.head(10).itertuples()])
    return [
        CheckResult(
            dataset,
            "unit_price_vs_list_price",
            "error",
            share <= PRICE_SHARE,
            f"{len(off)} lines ({share:.2%}) priced over {PRICE_RATIO:.0f}x away from list price",
            f"at most {PRICE_SHARE:.1%} of lines",
            len(off),
            sample,
        )
    ]


def run_suite(
    suite_json: dict[str, Any],
    df: pd.DataFrame,
    dataset: str,
    references: dict[str, set[Any]],
    *,
    with_rows: bool = False,
    docs_dir: Path | None = None,
) -> list[CheckResult]:
    """Validate `df` with a GX suite (JSON form); returns one result per expectation.

    With `docs_dir`, a GX Data Docs site of this validation is built there (a Checkpoint with
    GX's UpdateDataDocsAction), for data engineers to browse.
    """
    import great_expectations as gx  # heavy import, only when validating

    suite_json = _resolve_references(suite_json, references)
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
    out = []
    for res in validation.results:
        conf = res.expectation_config
        assert conf is not None  # GX always reports the configuration it validated
        kwargs = dict(conf.kwargs)
        col = kwargs.pop("column", None) or ",".join(kwargs.pop("column_list", []) or [])
        kwargs.pop("batch_id", None)
        severity = "warn" if str(getattr(conf, "severity", "critical")).endswith("warning") else "error"
        result = res.result or {}
        sample = result.get("partial_unexpected_list") or []
        observed = result.get("observed_value")
        unexpected = int(result.get("unexpected_count") or 0)
        if observed is None:
            observed = f"{unexpected} unexpected of {result.get('element_count', len(df))}"
        exc = (res.exception_info or {}).get("exception_message") if not res.success else None
        out.append(
            CheckResult(
                dataset=dataset,
                check_name=f"{conf.type}({col})" if col else conf.type,
                severity=severity,
                success=bool(res.success),
                observed_value=str(exc or observed)[:500],
                expected=_describe_expected(kwargs),
                unexpected_count=unexpected,
                unexpected_sample=json.dumps([_jsonable(v) for v in sample[:10]]),
                rows=tuple(int(i) for i in (result.get("unexpected_index_list") or [])) if with_rows else (),
            )
        )
    return out


def _describe_expected(kwargs: dict[str, Any]) -> str:
    kwargs = {
        k: v for k, v in kwargs.items() if v is not None and k not in ("result_format", "catch_exceptions")
    }
    if "value_set" in kwargs and len(kwargs["value_set"]) > 10:
        kwargs["value_set"] = f"<{len(kwargs['value_set'])} values>"
    return json.dumps(kwargs, default=str)[:500]


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, datetime | date | pd.Timestamp):
        return v.isoformat()
    return v if isinstance(v, int | float | str | bool) or v is None else str(v)


def _resolve_references(suite_json: dict[str, Any], references: dict[str, set[Any]]) -> dict[str, Any]:
    out = json.loads(json.dumps(suite_json))
    for exp in out.get("expectations", []):
        ref = (exp.get("meta") or {}).get("value_set_from")
        if ref:
            if ref not in references:
                raise ConfigError(f"suite {out.get('name')}: meta.value_set_from {ref!r} is not available")
            exp["kwargs"]["value_set"] = sorted(references[ref], key=str)
    return out


def reference_names(suite_json: dict[str, Any] | None) -> list[str]:
    """'dataset.column' references a suite needs (for referential-integrity checks)."""
    if not suite_json:
        return []
    return [
        e["meta"]["value_set_from"]
        for e in suite_json.get("expectations", [])
        if (e.get("meta") or {}).get("value_set_from")
    ]


def validate_dataset(
    cfg: Config, dataset: str, run_date: date, *, expectations_dir: Path | None = None
) -> list[CheckResult]:
    """Run every check of one dataset for a night, write the results to the lake, gate on errors.

    Raises `QualityGateError` naming dataset, check, observed and expected values when an
    `error`-severity check fails (results are written first, so people can see them).
    """
    t0 = time.perf_counter()
    spec = cfg.provider(dataset)[1]
    df = read_dataset(cfg, dataset, run_date, exclude_quarantined=False).reset_index(drop=True)
    results = (
        check_volume(cfg, dataset, len(df), run_date)
        + check_freshness(cfg, dataset, df, run_date)
        + check_event_dates(dataset, df, run_date)
        + check_prices(cfg, dataset, df, run_date)
    )
    suite = load_suite_json(dataset, expectations_dir)
    if suite and len(df):
        refs: dict[str, set[Any]] = {}
        for ref in reference_names(suite):
            ref_ds, ref_col = ref.split(".", 1)
            if cfg.has_dataset(ref_ds):
                refs[ref] = set(read_dataset(cfg, ref_ds, run_date)[ref_col].dropna().unique())
        suite = {
            **suite,
            "expectations": [
                e
                for e in suite.get("expectations", [])
                if not (e.get("meta") or {}).get("value_set_from") or e["meta"]["value_set_from"] in refs
            ],
        }
        docs = cfg.report.directory / run_date.isoformat() / "data_docs" / dataset
        results += run_suite(suite, df, dataset, refs, with_rows=spec.quarantine, docs_dir=docs)
    if spec.quarantine:
        results = quarantine_rows(cfg, dataset, run_date, df, results, max_share=spec.quarantine_max_share)
    frame = pd.DataFrame(
        [{"run_date": pd.Timestamp(run_date), **r.__dict__} for r in results], columns=RESULT_COLUMNS
    )
    write_frame(
        output_path(cfg.lake, f"quality_{dataset}", run_date),
        frame,
        manifest={"dataset": dataset, "run_date": run_date.isoformat()},
    )
    failed = [r for r in results if not r.success]
    for r in failed:
        (log.error if r.severity == "error" else log.warning)("quality %s", r.describe())
    log.info(
        "validate %s run_date=%s rows_in=%d checks=%d failed=%d seconds=%.2f",
        dataset,
        run_date,
        len(df),
        len(results),
        len(failed),
        time.perf_counter() - t0,
    )
    errors = [r for r in failed if r.severity == "error"]
    if errors:
        raise QualityGateError("; ".join(r.describe() for r in errors))
    return results


def quarantine_rows(
    cfg: Config,
    dataset: str,
    run_date: date,
    df: pd.DataFrame,
    results: list[CheckResult],
    *,
    max_share: float,
) -> list[CheckResult]:
    """Move rows that failed row-level `error` checks to `_seam/quarantine_<dataset>`; the rest go on.

    The quarantine file holds the offending rows, their position (`_seam_row`) and the reasons.
    The failed checks are reported as `warn` with the quarantined count.  When more than
    `max_share` of the rows are bad, nothing is quarantined: the feed is broken and the gate fails.
    """
    row_level = [r for r in results if not r.success and r.severity == "error" and r.rows]
    folder = output_path(cfg.lake, f"quarantine_{dataset}", run_date)
    bad: dict[int, list[str]] = {}
    for r in row_level:
        for i in r.rows:
            bad.setdefault(i, []).append(r.check_name)
    if not bad or len(bad) > max_share * len(df):
        write_frame(folder, pd.DataFrame({"_seam_row": pd.Series([], dtype="int64")}))
        return results
    rows = df.iloc[sorted(bad)].copy()
    rows.insert(0, "_seam_row", sorted(bad))
    rows["quarantine_reason"] = ["; ".join(bad[i]) for i in sorted(bad)]
    write_frame(
        folder, rows, manifest={"dataset": dataset, "run_date": run_date.isoformat(), "rows": len(rows)}
    )
    log.warning("quality %s: %d rows quarantined in %s", dataset, len(rows), folder)
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
    frames = []
    for ds in sorted({t.dataset for s in cfg.sources for t in s.tables}):
        folder = output_path(cfg.lake, f"quality_{ds}", run_date)
        if folder.is_dir():
            frames.append(pd.read_parquet(folder / "part-00000.parquet"))
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def blocked_datasets(cfg: Config, run_date: date, datasets: list[str]) -> dict[str, list[str]]:
    """Datasets (among `datasets`) that may not be used tonight, with the reasons.

    A dataset is blocked when an `error`-severity check failed, or when it was not validated
    for the night at all (its validation crashed or has not run).
    """
    blocked: dict[str, list[str]] = {}
    for ds in datasets:
        folder = output_path(cfg.lake, f"quality_{ds}", run_date)
        if not folder.is_dir():
            blocked[ds] = [f"{ds}: not validated for {run_date}"]
            continue
        q = pd.read_parquet(folder / "part-00000.parquet")
        bad = q[(~q["success"].astype(bool)) & (q["severity"] == "error")]
        if len(bad):
            blocked[ds] = [
                CheckResult(**{k: r[k] for k in RESULT_COLUMNS if k != "run_date"}).describe()
                for _, r in bad.iterrows()
            ]
    return blocked
