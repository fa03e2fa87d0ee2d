"""Read canonical datasets of a night from the lake, conformed to their contracts."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from pipelines.config import Config
from pipelines.contracts import conform_frame, contract_of
from pipelines.errors import MissingInputError
from pipelines.lake.store import Lake

log = logging.getLogger(__name__)


def read_dataset(
    cfg: Config,
    dataset: str,
    run_date: date,
    *,
    conform: bool = True,
    exclude_quarantined: bool = True,
    filters: Any = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """The canonical dataset as of `run_date`.

    Snapshot tables: that night's partition.  Incremental tables: every partition up to
    `run_date`, keeping the newest version of each key (by the cursor column).  `filters`
    (pyarrow DNF) are pushed down to the Parquet files, so a shard reads only its rows.
    """
    source, spec = cfg.provider(dataset)
    ds = contract_of(dataset)
    lake = Lake(cfg.lake)
    if spec.mode == "snapshot":
        if run_date not in lake.table_days(source.name, spec.name):
            raise MissingInputError(
                f"no snapshot of {source.name}.{spec.name} for {run_date}; run "
                f"`seam extract --date {run_date}` first"
            )
        table = lake.read_table(source.name, spec.name, run_date, filters=filters, columns=columns)
    else:
        days = [d for d in lake.table_days(source.name, spec.name) if d <= run_date]
        if run_date not in days:
            raise MissingInputError(
                f"no increment of {source.name}.{spec.name} for {run_date}; run `seam extract --date {run_date}`"
            )
        table = pa.concat_tables(
            [lake.read_table(source.name, spec.name, d, filters=filters, columns=columns) for d in days],
            promote_options="default",
        )
    df = table.to_pandas(date_as_object=False)
    if spec.mode == "incremental" and len(df) and ds.key:  # a landed table has no key: every row stays
        df = df.sort_values(ds.cursor or list(ds.key), kind="stable").drop_duplicates(
            list(ds.key), keep="last"
        )
    df = df.reset_index(drop=True)
    if exclude_quarantined:
        bad = lake.read_quarantine(dataset, run_date)
        if bad is not None and len(bad) and ds.key:
            key = list(ds.key)
            bad_keys = pd.MultiIndex.from_frame(bad[key].astype(str))
            df = df[~pd.MultiIndex.from_frame(df[key].astype(str)).isin(bad_keys)].reset_index(drop=True)
    return conform_frame(df, ds) if conform else df


def dataset_files(cfg: Config, dataset: str, run_date: date) -> tuple[Path, ...]:
    """The Parquet files of a snapshot dataset's night (for readers that stream them in batches)."""
    source, spec = cfg.provider(dataset)
    lake = Lake(cfg.lake)
    if run_date not in lake.table_days(source.name, spec.name):
        raise MissingInputError(
            f"no snapshot of {source.name}.{spec.name} for {run_date}; run `seam extract --date {run_date}` first"
        )
    return lake.table_files(source.name, spec.name, run_date)
