from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pytest

from pipelines.errors import MissingInputError
from pipelines.lake import Lake
from pipelines.lake.migrate import migrate_layout

DAY = date(2026, 11, 22)


def _stage(lake: Lake, rows: list[int], *, fail: bool = False) -> None:
    with lake.stage_table("erp", "t", DAY) as staged:
        pd.DataFrame({"a": rows}).to_parquet(staged.data_file)
        staged.write_manifest({"rows": len(rows)})
        if fail:
            raise RuntimeError("killed")


def test_rewrite_replaces_a_partition_and_a_failed_write_leaves_the_old_one(tmp_path):
    lake = Lake(tmp_path)
    _stage(lake, [1, 2])
    _stage(lake, [3])
    assert lake.read_table("erp", "t", DAY).column("a").to_pylist() == [3]
    with pytest.raises(RuntimeError):
        _stage(lake, [4, 5], fail=True)
    assert lake.read_table("erp", "t", DAY).column("a").to_pylist() == [3]
    assert lake.table_manifest("erp", "t", DAY) == {"rows": 1}
    assert not list((tmp_path / "_staging").iterdir())  # no staging left
    assert lake.table_days("erp", "t") == [DAY]


def test_partition_without_manifest_is_not_listed(tmp_path):
    lake = Lake(tmp_path)
    lake.table_partition("erp", "t", DAY).mkdir(parents=True)
    assert lake.table_days("erp", "t") == []
    with pytest.raises(MissingInputError, match="seam extract --date 2026-11-22"):
        lake.table_files("erp", "t", DAY)


def test_outputs_keep_run_date_out_of_the_files_and_dates_as_dates(tmp_path):
    lake = Lake(tmp_path)
    frame = pd.DataFrame(
        {
            "run_date": pd.Timestamp(DAY),
            "sku": ["a", "b"],
            "target_date": pd.to_datetime(["2026-11-23", "2026-11-24"]),
        }
    )
    lake.write_shard_plan("forecasts", DAY, 2)
    lake.write_shard("forecasts", DAY, 0, frame.head(1), {"shard": 0})
    assert lake.read_output("forecasts", DAY) is None  # one of two shards: incomplete
    lake.write_shard("forecasts", DAY, 1, frame.tail(1), {"shard": 1})
    got = lake.read_output("forecasts", DAY)
    pd.testing.assert_frame_equal(got, frame, check_dtype=False)
    files = sorted(lake.output_partition("forecasts", DAY).iterdir())
    assert [f.name for f in files] == ["part-shard-00000.parquet", "part-shard-00001.parquet"]
    schema = ds.dataset(files).schema
    assert "run_date" not in schema.names and str(schema.field("target_date").type) == "date32[day]"
    lake.write_shard_plan("forecasts", DAY, 1)  # a smaller plan drops the shards beyond it
    assert [f.name for f in lake.output_partition("forecasts", DAY).iterdir()] == ["part-shard-00000.parquet"]


def test_a_dead_writers_staging_is_swept_and_a_live_ones_is_kept(tmp_path):
    import socket

    lake = Lake(tmp_path)
    base = tmp_path / "_staging"
    dead = base / f"{socket.gethostname()}-999999-abcd1234"
    dead.mkdir(parents=True)
    (dead / "part-00000.parquet").write_bytes(b"half")
    assert lake.sweep_staging() == [dead]
    dead.mkdir()
    with lake.staging() as mine:  # a new write sweeps the dead writer's staging, never a live one's
        assert not dead.exists() and mine.is_dir()
        assert lake.sweep_staging() == [] and mine.is_dir()


def _old_lake(root) -> None:
    """A lake as seam wrote it before 0.2 (partitions with _manifest.json inside, dates repeated)."""
    import json

    part = root / "erp" / "lines" / "snapshot_date=2026-11-22"
    part.mkdir(parents=True)
    pd.DataFrame({"order_id": ["o1"], "quantity": [2.0]}).to_parquet(part / "part-00000.parquet")
    (part / "_manifest.json").write_text(json.dumps({"rows": 1}))
    (root / "erp" / "lines" / ".tmp-snapshot_date=2026-11-23-ab12").mkdir()  # a crash leftover
    night = root / "_seam" / "forecasts" / "run_date=2026-11-22"
    (night / "shard=00000").mkdir(parents=True)
    (night / "_manifest.json").write_text(json.dumps({"shards": 1}))
    old = pd.DataFrame(
        {"run_date": [pd.Timestamp(DAY)], "sku": ["a"], "target_date": [pd.Timestamp("2026-11-23")]}
    )
    old.to_parquet(night / "shard=00000" / "part-00000.parquet")
    (night / "shard=00000" / "_manifest.json").write_text(json.dumps({"rows": 1}))
    q = root / "_seam" / "quality_lines" / "run_date=2026-11-22"
    q.mkdir(parents=True)
    pd.DataFrame({"run_date": [pd.Timestamp(DAY)], "dataset": ["lines"], "check_name": ["c"]}).to_parquet(
        q / "part-00000.parquet"
    )


def test_a_lake_of_the_old_layout_is_moved_once_and_reads_the_same(tmp_path):
    _old_lake(tmp_path)
    lake = Lake(tmp_path)
    moved = migrate_layout(lake)
    assert len(moved) == 3 and migrate_layout(lake) == []
    assert lake.table_days("erp", "lines") == [DAY]
    assert lake.read_table("erp", "lines", DAY).column("order_id").to_pylist() == ["o1"]
    fc = lake.read_output("forecasts", DAY)
    assert fc["sku"].tolist() == ["a"] and fc["run_date"].tolist() == [pd.Timestamp(DAY)]
    assert lake.read_quality("lines", DAY)["check_name"].tolist() == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "_meta",
        "_staging",
        "_state",
        "source=_seam",
        "source=erp",
    ]


def test_the_whole_lake_is_one_hive_dataset_for_duckdb_and_polars(tmp_path):
    lake = Lake(tmp_path)
    _stage(lake, [1, 2])
    lake.write_shard_plan("forecasts", DAY, 1)
    lake.write_shard("forecasts", DAY, 0, pd.DataFrame({"run_date": [pd.Timestamp(DAY)], "a": [9]}), {})
    crash = tmp_path / "_staging" / "otherhost-1-deadbeef"
    crash.mkdir(parents=True)
    (crash / "part-00000.parquet").write_bytes(b"not parquet")  # a crash leftover
    glob = f"{tmp_path}/source=*/**/*.parquet"
    rows = duckdb.sql(
        f"SELECT source, \"table\", run_date, a FROM read_parquet('{glob}', hive_partitioning=true, union_by_name=true) "
        "ORDER BY a"
    ).fetchall()
    assert rows == [("erp", "t", DAY, 1), ("erp", "t", DAY, 2), ("_seam", "forecasts", DAY, 9)]
    frame = (
        pl.scan_parquet(glob, hive_partitioning=True, missing_columns="insert", extra_columns="ignore")
        .collect()
        .sort("a")
    )
    assert frame["a"].to_list() == [1, 2, 9] and frame.schema["run_date"] == pl.Date


def test_the_panel_week_travels_with_the_shard_plan_and_a_new_plan_drops_it(tmp_path):
    from pipelines.state import forecast_week, write_forecast_week

    lake = Lake(tmp_path)
    with pytest.raises(ValueError, match="no shard plan"):
        write_forecast_week(lake, DAY, {"period": 7})
    lake.write_shard_plan("forecasts", DAY, 3)
    with pytest.raises(MissingInputError, match="run the plan step"):
        forecast_week(lake, DAY)
    write_forecast_week(lake, DAY, None)  # no weekly cycle is an answer too
    assert forecast_week(lake, DAY) is None
    write_forecast_week(lake, DAY, {"period": 7, "pool": [0.25, 0.75]})
    assert forecast_week(lake, DAY) == {"period": 7, "pool": [0.25, 0.75]}
    assert lake.read_shard_plan("forecasts", DAY) == 3
    lake.write_shard_plan("forecasts", DAY, 3)  # re-planning the night forgets the old week
    with pytest.raises(MissingInputError):
        forecast_week(lake, DAY)


def test_a_filtered_read_of_a_sharded_output_passes_over_a_shard_without_rows(tmp_path):
    """A shard without rows (a partition of customers without an anomaly) has columns without a
    type; a filter on them reads nothing from it instead of failing."""
    from pipelines.results import RESULT_TABLES

    lake = Lake(tmp_path / "lake")
    night = date(2026, 11, 22)
    lake.write_shard_plan("anomalies", night, 2)
    rows = pd.DataFrame({"metric": ["demand", "revenue"], "entity": ["A|W1", "W1"], "score": [0.5, 0.9]})
    lake.write_shard("anomalies", night, 0, rows, manifest={})
    empty = pd.DataFrame(columns=list(RESULT_TABLES["seam_anomaly_scores"].columns))
    lake.write_shard("anomalies", night, 1, empty, manifest={})
    got = list(lake.iter_output("anomalies", night, filters=[("entity", "in", ["W1"])]))
    assert [len(part) for part in got] == [1, 0]
    assert got[0]["metric"].tolist() == ["revenue"]


def test_an_exchange_shard_gives_each_partition_its_rows_and_stays_out_of_the_parquet_dataset(tmp_path):
    lake = Lake(tmp_path / "lake")
    night = date(2026, 11, 22)
    lake.write_shard_plan("record_fits", night, 2)
    frame = pd.DataFrame(
        {
            "customer_part": [3, 0, 3, 1, 0, 3],
            "v": range(6),
            "order_date": pd.to_datetime(["2026-11-01"] * 5 + ["2026-11-20"]),
            "customer_id": ["a", "b", None, "d", "e", "f"],
        }
    )
    folder = lake.write_exchange(
        "record_fits", night, 0, frame, by="customer_part", parts=5, manifest={"x": 1}
    )
    lake.write_exchange("record_fits", night, 1, frame.iloc[:0], by="customer_part", parts=5, manifest={})

    got = [lake.read_exchange("record_fits", night, [0], p) for p in range(5)]
    assert [g["v"].tolist() for g in got] == [[1, 4], [3], [], [0, 2, 5], []]  # rows in the order given
    assert list(got[3].columns) == ["v", "order_date", "customer_id"]
    assert got[3]["order_date"].tolist() == list(pd.to_datetime(["2026-11-01", "2026-11-01", "2026-11-20"]))
    assert got[3]["customer_id"].isna().tolist() == [False, True, False]
    assert lake.read_exchange("record_fits", night, [1], 4).empty
    # several shards: in the order asked, a column that is all NULL in one shard taking the others' type
    lake.write_exchange(
        "record_fits",
        night,
        1,
        frame.assign(customer_id=None).iloc[:2],
        by="customer_part",
        parts=5,
        manifest={},
    )
    both = lake.read_exchange("record_fits", night, [1, 0], 3)
    assert both["v"].tolist() == [0, 0, 2, 5] and both["customer_id"].isna().tolist() == [
        True,
        False,
        True,
        False,
    ]
    assert lake.shard_manifest("record_fits", night, 0) == {"rows": 6, "parts": 5, "x": 1}
    assert lake.complete_shards("record_fits", night) == 2
    exchange = lake.exchange_partition("record_fits", night)
    assert sorted(p.name for p in exchange.iterdir()) == ["part-shard-00000.arrow", "part-shard-00001.arrow"]
    assert not folder.exists() and not any(Path(lake.root).glob("source=*/**/*.arrow"))  # out of the datasets
    assert lake.exchanges() == ["record_fits"] and lake.exchange_days("record_fits") == [night]
    with pytest.raises(
        ValueError, match=r"partitions 0\.\.4, not 5: it was written for another shard plan; run its"
    ):
        lake.read_exchange("record_fits", night, [0], 5)
    with pytest.raises(MissingInputError, match=r"part-shard-00002\.arrow; run the step"):
        lake.read_exchange("record_fits", night, [0, 2], 3)
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        lake.write_exchange("record_fits", night, 0, frame, by="customer_part", parts=2, manifest={})
    assert lake.read_exchange("record_fits", night, [0], 3)["v"].tolist() == [0, 2, 5]  # left as it was

    lake.write_shard_plan("record_fits", night, 1)  # a smaller plan drops the shards beyond it
    assert sorted(p.name for p in exchange.iterdir()) == ["part-shard-00000.arrow"]
    assert lake.complete_shards("record_fits", night) == 1

    lake.remove_partition("_seam", "record_fits", night)  # the night's output goes, its exchange too
    assert not exchange.exists() and lake.complete_shards("record_fits", night) is None


def test_an_output_written_in_parts_is_one_file_of_row_groups_typed_by_a_sample(tmp_path):
    """A one-piece output given in parts: one Parquet file, a row group per part, every part with
    the sample's types (a part whose key is all NULL stays a string column); a failing part leaves
    the night's earlier output in place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake = Lake(tmp_path)
    days = pd.to_datetime(["2026-11-23", "2026-11-24"])
    top = pd.DataFrame({"level": ["total"] * 2, "sku": [None, None], "target_date": days, "yhat": [9.0, 8.0]})
    low = pd.DataFrame({"level": ["sku"] * 2, "sku": ["a", "b"], "target_date": days, "yhat": [4.0, 5.0]})
    lake.write_output("levels", DAY, iter([top, low]), notes={"n": 1}, typed_as=low.head(1))
    (path,) = lake.output_partition("levels", DAY).glob("*.parquet")
    file = pq.ParquetFile(path)
    sku = file.schema_arrow.field("sku").type
    assert file.num_row_groups == 2 and (pa.types.is_string(sku) or pa.types.is_large_string(sku))
    assert str(file.schema_arrow.field("target_date").type) == "date32[day]"
    read = pd.concat(lake.iter_output("levels", DAY), ignore_index=True)
    assert read["sku"].tolist()[2:] == ["a", "b"] and read["sku"].isna().tolist()[:2] == [True, True]
    assert read["yhat"].tolist() == [9.0, 8.0, 4.0, 5.0] and lake.output_notes("levels", DAY) == {"n": 1}
    assert lake.complete_shards("levels", DAY) == 1
    only = pd.concat(lake.iter_output("levels", DAY, filters=[[("level", "==", "sku")]]), ignore_index=True)
    assert only["sku"].tolist() == ["a", "b"]

    def failing():
        yield low
        raise RuntimeError("the step failed")

    with pytest.raises(RuntimeError):
        lake.write_output("levels", DAY, failing(), notes={"n": 2}, typed_as=low.head(1))
    assert pq.ParquetFile(path).metadata.num_rows == 4  # the earlier file, whole
    assert not list((tmp_path / "_staging").iterdir())
