"""Read canonical datasets of a run from the lake, conformed to their contracts."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa

from pipelines.config import Config
from pipelines.contracts import Dataset, get_dataset
from pipelines.errors import DataError
from pipelines.lake import output_path, partition_path, partitions, read_arrow

log = logging.getLogger(__name__)


def read_dataset(
    cfg: Config,
    dataset: str,
    run_date: date,
    *,
    conform: bool = True,
    exclude_quarantined: bool = True,
    filters: Any = None,
) -> pd.DataFrame:
    """The canonical dataset as of `run_date`.

    Snapshot tables: that night's partition.  Incremental tables: every partition up to
    `run_date`, keeping the newest version of each key (by the cursor column).  `filters`
    (pyarrow DNF) are pushed down to the Parquet files, so a shard reads only its rows.
    """
    source, spec = cfg.provider(dataset)
    ds = get_dataset(dataset)
    if spec.mode == "snapshot":
        folder = partition_path(cfg.lake, source.name, spec.name, run_date)
        if not folder.is_dir():
            raise DataError(
                f"no snapshot of {source.name}.{spec.name} for {run_date}; run "
                f"`seam extract --date {run_date}` first"
            )
        table = read_arrow(folder, filters=filters)
    else:
        days = [d for d in partitions(cfg.lake, source.name, spec.name) if d <= run_date]
        if run_date not in days:
            raise DataError(
                f"no increment of {source.name}.{spec.name} for {run_date}; run `seam extract --date {run_date}`"
            )
        table = pa.concat_tables(
            [read_arrow(partition_path(cfg.lake, source.name, spec.name, d), filters=filters) for d in days],
            promote_options="default",
        )
    df = table.to_pandas(date_as_object=False)
    if spec.mode == "incremental" and len(df):
        df = df.sort_values(ds.cursor or list(ds.key), kind="stable").drop_duplicates(
            list(ds.key), keep="last"
        )
    df = df.reset_index(drop=True)
    if exclude_quarantined:
        quarantined = output_path(cfg.lake, f"quarantine_{dataset}", run_date)
        if quarantined.is_dir():
            key = list(ds.key)
            bad = pd.read_parquet(quarantined / "part-00000.parquet")
            if len(bad):
                bad_keys = pd.MultiIndex.from_frame(bad[key].astype(str))
                df = df[~pd.MultiIndex.from_frame(df[key].astype(str)).isin(bad_keys)].reset_index(drop=True)
    return conform_frame(df, ds) if conform else df


def conform_frame(df: pd.DataFrame, ds: Dataset) -> pd.DataFrame:
    """Cast compatible source types to the canonical kinds (ids to text, decimals to float).

    Values that cannot be represented (text in a number column) raise `DataError`:
    a retyped source column is reported, never silently coerced.
    """
    out = df.copy()
    for col in ds.columns:
        if col.name not in out.columns:
            continue
        s = out[col.name]
        try:
            if col.kind == "string" and not pd.api.types.is_string_dtype(s):
                out[col.name] = s.astype("string").astype(object).where(s.notna(), None)
            elif col.kind in ("number", "integer") and not pd.api.types.is_numeric_dtype(s):
                out[col.name] = pd.to_numeric(s, errors="raise").astype(float)
            elif col.kind == "number":
                out[col.name] = s.astype(float)
            elif col.kind in ("date", "timestamp") and not pd.api.types.is_datetime64_any_dtype(s):
                out[col.name] = pd.to_datetime(s, errors="raise")
        except (ValueError, TypeError) as err:
            raise DataError(
                f"dataset {ds.name!r}: column {col.name!r} should be {col.kind} but holds "
                f"{s.dtype} values that do not convert ({str(err)[:120]}); was the source column retyped?"
            ) from None
    return out
