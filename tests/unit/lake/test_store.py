from datetime import date

import pandas as pd
import pytest

from pipelines.lake import Lake
from pipelines.lake.store import staged_partition, write_frame

DAY = date(2026, 11, 22)


def test_rewrite_replaces_a_partition_and_a_failed_write_leaves_the_old_one(tmp_path):
    lake = Lake(tmp_path)
    final = lake.table_partition("erp", "t", DAY)
    write_frame(final, pd.DataFrame({"a": [1, 2]}))
    write_frame(final, pd.DataFrame({"a": [3]}))
    assert lake.read_table("erp", "t", DAY).column("a").to_pylist() == [3]
    with pytest.raises(RuntimeError), staged_partition(final) as tmp:
        (tmp / "part-00000.parquet").write_bytes(b"half")
        raise RuntimeError("killed")
    assert lake.read_table("erp", "t", DAY).column("a").to_pylist() == [3]
    assert [p.name for p in final.parent.iterdir()] == [final.name]  # no temporary folder left
    assert lake.table_days("erp", "t") == [DAY]


def test_partition_without_manifest_is_not_listed(tmp_path):
    lake = Lake(tmp_path)
    lake.table_partition("erp", "t", DAY).mkdir(parents=True)
    assert lake.table_days("erp", "t") == []
