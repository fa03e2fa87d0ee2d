from datetime import date

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.errors import SchemaDriftError
from pipelines.lake import partition_path, partitions, read_partition, staged_partition, write_frame
from pipelines.schema_drift import check_drift, schema_to_json

DAY = date(2026, 11, 22)


def test_rewrite_replaces_a_partition_and_a_failed_write_leaves_the_old_one(tmp_path):
    final = partition_path(tmp_path, "erp", "t", DAY)
    write_frame(final, pd.DataFrame({"a": [1, 2]}))
    write_frame(final, pd.DataFrame({"a": [3]}))
    assert read_partition(final)["a"].tolist() == [3]
    with pytest.raises(RuntimeError), staged_partition(final) as tmp:
        (tmp / "part-00000.parquet").write_bytes(b"half")
        raise RuntimeError("killed")
    assert read_partition(final)["a"].tolist() == [3]
    assert [p.name for p in final.parent.iterdir()] == [final.name]  # no temporary folder left
    assert partitions(tmp_path, "erp", "t") == [DAY]


def test_partition_without_manifest_is_not_listed(tmp_path):
    partition_path(tmp_path, "erp", "t", DAY).mkdir(parents=True)
    assert partitions(tmp_path, "erp", "t") == []


BEFORE = schema_to_json(pa.schema([("id", pa.int64()), ("name", pa.string()), ("price", pa.float64())]))


def test_added_column_is_a_warning():
    now = pa.schema([("id", pa.int64()), ("name", pa.string()), ("price", pa.float64()), ("x", pa.int32())])
    assert check_drift(BEFORE, now, where="erp.t") == ["schema drift in erp.t: added columns ['x']"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([("id", pa.int64()), ("name", pa.string())], "removed columns ['price']"),
        (
            [("id", pa.int64()), ("name", pa.string()), ("price", pa.string())],
            "retyped columns ['price: double -> string']",
        ),
        (
            [("id", pa.int64()), ("label", pa.string()), ("price", pa.float64())],
            "renamed columns (probably) ['name -> label (string)']",
        ),
    ],
)
def test_breaking_drift_fails_with_what_changed(fields, expected):
    with pytest.raises(SchemaDriftError) as err:
        check_drift(BEFORE, pa.schema(fields), where="erp.t")
    assert expected in str(err.value)


def test_first_snapshot_has_no_drift():
    assert check_drift(None, pa.schema([("id", pa.int64())]), where="erp.t") == []
