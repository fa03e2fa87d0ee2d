import pyarrow as pa
import pytest

from pipelines.errors import SchemaDriftError
from pipelines.extract import check_drift, schema_to_json

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
