"""The lake of a demo night, read as analysts read it: DuckDB, Polars, pyarrow and pandas, each
table and each output as one dataset, and the whole lake with one glob, with a crash leftover."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from pipelines.config import load_config
from pipelines.lake import Lake
from pipelines.run_context import RunContext
from pipelines.steps import run_all
from tests.conftest import NIGHT

WHOLE_LAKE = "source=*/**/*.parquet"


@pytest.fixture(scope="module")
def night_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipelines.demo import generate
    from tests.conftest import SMALL, write_config

    tmp = tmp_path_factory.mktemp("lake_readers")
    erp, crm = f"sqlite:///{tmp / 'erp.db'}", f"sqlite:///{tmp / 'crm.db'}"
    generate(erp, crm, SMALL)
    import os
    import uuid

    tag = uuid.uuid4().hex[:6].upper()
    os.environ[f"SEAM_ERP_{tag}"], os.environ[f"SEAM_CRM_{tag}"] = erp, crm
    config = write_config(
        tmp / "seam.yml",
        erp_env=f"SEAM_ERP_{tag}",
        crm_env=f"SEAM_CRM_{tag}",
        lake=tmp / "lake",
        reports=tmp / "reports",
    )
    cfg = load_config(config)
    run_all(cfg, RunContext(NIGHT))
    # what a crash leaves: a staging folder with a half-written file, outside every dataset
    crash = cfg.lake / "_staging" / "otherhost-4242-deadbeef"
    crash.mkdir(parents=True)
    (crash / "part-00000.parquet").write_bytes(b"PAR1 half written")
    return cfg.lake


def _datasets(lake: Path) -> list[Path]:
    return sorted(p for p in lake.glob("source=*/table=*") if p.is_dir())


def test_every_table_and_output_is_one_dataset_for_every_reader(night_lake: Path) -> None:
    folders = _datasets(night_lake)
    names = {f"{p.parent.name}/{p.name}" for p in folders}
    assert {
        "source=erp/table=order_lines",
        "source=crm/table=tickets",
        "source=_seam/table=forecasts",
    } <= names
    assert {"source=_seam/table=anomalies", "source=_seam/table=quality"} <= names
    # the score shards' exchange with score_records lives outside the datasets
    assert "source=_seam/table=record_fits" not in names
    assert any((night_lake / "_exchange" / "table=record_fits").rglob("part-shard-*.arrow"))
    for folder in folders:
        glob = f"{folder}/**/*.parquet"
        ((n,),) = duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true)"
        ).fetchall()
        frame = pl.scan_parquet(glob, hive_partitioning=True).collect()
        table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
        pdf = pd.read_parquet(folder)
        assert n == frame.height == table.num_rows == len(pdf), folder
        assert frame.schema["run_date"] == pl.Date, folder  # the partition key reads as a date
        types = duckdb.sql(
            f"SELECT DISTINCT typeof(run_date) FROM read_parquet('{glob}', hive_partitioning=true)"
        )
        assert types.fetchall() in ([], [("DATE",)]), folder


def test_dates_inside_outputs_are_dates_and_the_key_is_not_repeated(night_lake: Path) -> None:
    lake = Lake(night_lake)
    folder = lake.output_partition("forecasts", NIGHT).parent
    schema = ds.dataset(
        folder,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("run_date", pa.date32())]), flavor="hive"),
    ).schema
    assert schema.field("target_date").type == pa.date32() and schema.field("run_date").type == pa.date32()
    for f in folder.rglob("*.parquet"):
        assert "run_date" not in ds.dataset(f).schema.names


def test_the_whole_lake_with_one_glob(night_lake: Path) -> None:
    glob = f"{night_lake}/{WHOLE_LAKE}"
    rows = duckdb.sql(
        f"SELECT source, \"table\", count(*) FROM read_parquet('{glob}', hive_partitioning=true, union_by_name=true) "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    tables = {(s, t) for s, t, _ in rows}
    assert (
        ("erp", "order_lines") in tables
        and ("_seam", "forecasts") in tables
        and ("crm", "accounts") in tables
    )
    frame = (
        pl.scan_parquet(glob, hive_partitioning=True, missing_columns="insert", extra_columns="ignore")
        .select("source", "table")
        .collect()
    )
    assert frame.height == sum(n for *_, n in rows)
