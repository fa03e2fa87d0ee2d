"""Batched validation gives the results GX gives on the whole table at once."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.contracts import conform_frame, get_dataset
from pipelines.quality import run_suite, run_suite_batched
from pipelines.quality.batches import BatchSource, plan_suite

NAN = math.nan


def _lines(**overrides: list) -> pa.Table:
    """Nine order lines; columns may be replaced to inject faults."""
    cols = {
        "order_id": ["A", "A", "B", "C", "D", "E", "F", "G", "H"],
        "line_no": [1, 2, 1, 1, 1, 1, 1, 1, 1],
        "sku": ["S1", "S2", "S1", "S3", "S1", "S2", "S1", "S3", "S2"],
        "quantity": [1.0, 2.0, 3.0, 1.0, 5.0, 2.0, 1.0, 4.0, 2.0],
        "status": ["open"] * 9,
    }
    cols.update(overrides)
    return pa.table(cols)


def _suite(*expectations: dict) -> dict:
    return {"name": "order_lines", "expectations": list(expectations)}


def _exp(kind: str, severity: str = "critical", **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs, "severity": severity}


def _compare(tmp_path, table: pa.Table, suite: dict, batch_rows: int, *, with_rows: bool = False):
    """(batched results, whole-table GX results) of the same suite on the same rows."""
    path = tmp_path / "part-00000.parquet"
    pq.write_table(table, path, row_group_size=4)
    source = BatchSource(files=(path,))
    batched = run_suite_batched("order_lines", suite, source, with_rows=with_rows, batch_rows=batch_rows)
    whole = conform_frame(pq.read_table(path).to_pandas(date_as_object=False), get_dataset("order_lines"))
    reference = run_suite(suite, whole, "order_lines", {}, with_rows=with_rows)
    return batched, reference


BATCHES = [1, 2, 3, 4, 1000]


@pytest.mark.parametrize("batch_rows", BATCHES)
def test_duplicate_key_split_across_batches_is_caught(tmp_path, batch_rows):
    table = _lines(order_id=["A", "A", "B", "C", "D", "E", "F", "A", "H"])  # (A, 1) in rows 0 and 7
    suite = _suite(_exp("expect_compound_columns_to_be_unique", column_list=["order_id", "line_no"]))
    batched, reference = _compare(tmp_path, table, suite, batch_rows, with_rows=True)
    assert batched == reference
    (check,) = batched
    assert not check.success and check.unexpected_count == 2 and check.rows == (0, 7)
    assert "'order_id': 'A'" in check.unexpected_sample


@pytest.mark.parametrize("batch_rows", BATCHES)
def test_hash_collisions_never_make_a_false_duplicate(tmp_path, batch_rows, monkeypatch):
    import pipelines.quality.batches as vb

    real = vb.hash_keys

    def colliding(p, keys):  # every key hashes alike: every row becomes a candidate
        h, considered = real(p, keys)
        return h * 0, considered

    monkeypatch.setattr(vb, "hash_keys", colliding)
    table = _lines(order_id=["A", "A", "B", "C", "D", "E", "F", "A", "H"])
    suite = _suite(_exp("expect_compound_columns_to_be_unique", column_list=["order_id", "line_no"]))
    batched, reference = _compare(tmp_path, table, suite, batch_rows, with_rows=True)
    assert batched == reference and batched[0].rows == (0, 7)


@pytest.mark.parametrize("batch_rows", BATCHES)
def test_single_column_uniqueness_ignores_nulls_like_gx(tmp_path, batch_rows):
    table = _lines(sku=["S1", None, "S2", None, "S3", "S4", "S5", "S6", "S1"])
    suite = _suite(_exp("expect_column_values_to_be_unique", column="sku"))
    batched, reference = _compare(tmp_path, table, suite, batch_rows, with_rows=True)
    assert batched == reference
    assert batched[0].unexpected_count == 2 and batched[0].rows == (0, 8)


@pytest.mark.parametrize("batch_rows", BATCHES)
def test_mostly_is_computed_on_the_totals(tmp_path, batch_rows):
    # 2 of 9 skus missing, both in the first rows: a batch of 3 is 1/3 bad, the table 78% good
    table = _lines(sku=[None, None, "S1", "S1", "S1", "S1", "S1", "S1", "S1"])
    suite = _suite(
        _exp("expect_column_values_to_not_be_null", column="sku", mostly=0.75),
        _exp("expect_column_values_to_not_be_null", column="sku", mostly=0.8),
    )
    batched, reference = _compare(tmp_path, table, suite, batch_rows)
    assert batched == reference
    assert [r.success for r in batched] == [True, False]
    assert all(r.unexpected_count == 2 for r in batched)


@pytest.mark.parametrize("batch_rows", BATCHES)
def test_unexpected_counts_are_summed_and_examples_capped(tmp_path, batch_rows):
    table = _lines(quantity=[-1.0, 2.0, -3.0, NAN, -5.0, 2.0, None, -4.0, 2.0])
    suite = _suite(
        _exp("expect_column_values_to_be_between", column="quantity", min_value=0),
        _exp("expect_column_values_to_be_in_set", column="status", value_set=["shipped"], mostly=0.5),
    )
    batched, reference = _compare(tmp_path, table, suite, batch_rows, with_rows=True)
    assert batched == reference
    between, in_set = batched
    assert between.unexpected_count == 4 and between.rows == (0, 2, 4, 7)  # NaN and null are missing
    assert between.observed_value == "4 unexpected of 9"
    assert in_set.unexpected_count == 9 and len(in_set.rows) == 9 and not in_set.success


@pytest.mark.parametrize("batch_rows", BATCHES)
def test_integer_ids_in_text_columns_conform_as_whole_table(tmp_path, batch_rows):
    table = _lines(order_id=[10, 11, 12, 13, 14, 15, 16, 17, 99])
    suite = _suite(
        _exp(
            "expect_column_values_to_be_in_set", column="order_id", value_set=[str(i) for i in range(10, 18)]
        ),
        _exp("expect_column_values_to_not_be_null", column="order_id"),
    )
    batched, reference = _compare(tmp_path, table, suite, batch_rows)
    assert batched == reference
    assert batched[0].unexpected_sample == '["99"]'


@pytest.mark.parametrize("batch_rows", BATCHES)
def test_expectation_types_without_an_arrow_evaluator_run_through_gx(tmp_path, batch_rows):
    table = _lines(sku=["S1", "S22", "S1", "S333", "S1", "S2", "S1", "S3", "S2"])
    suite = _suite(
        _exp("expect_column_value_lengths_to_be_between", column="sku", min_value=1, max_value=2),
        _exp("expect_column_max_to_be_between", column="quantity", max_value=4),
        _exp("expect_table_row_count_to_be_between", min_value=10),
    )
    schema = pq.read_schema(_write(tmp_path, table))
    routes = [p.route for p in plan_suite(suite, schema, get_dataset("order_lines"))]
    assert routes == ["gx_rows", "gx_table", "gx_table"]
    batched, reference = _compare(tmp_path, table, suite, batch_rows, with_rows=True)
    assert batched == reference
    lengths, max_q, count = batched
    assert lengths.unexpected_count == 2 and lengths.rows == (1, 3)
    assert not max_q.success and max_q.observed_value == "5.0"  # the whole table's max, not a batch's
    assert not count.success and count.observed_value == "9"


def _write(tmp_path, table: pa.Table):
    path = tmp_path / "schema.parquet"
    pq.write_table(table, path)
    return path


def test_clean_suite_matches_gx_with_every_route(tmp_path):
    suite = _suite(
        _exp("expect_column_values_to_not_be_null", column="order_id"),
        _exp("expect_compound_columns_to_be_unique", column_list=["order_id", "line_no"]),
        _exp("expect_column_values_to_be_between", column="quantity", min_value=0, max_value=10),
        _exp("expect_column_values_to_be_of_type", column="quantity", type_="float64"),
        _exp("expect_column_values_to_be_in_set", column="status", value_set=["open"], severity="warning"),
        _exp("expect_column_value_lengths_to_equal", column="sku", value=2),
    )
    batched, reference = _compare(tmp_path, _lines(), suite, 2)
    assert batched == reference
    assert all(r.success for r in batched)
    assert {r.severity for r in batched} == {"error", "warn"}


@pytest.mark.parametrize("collide", [False, True])
def test_key_hashes_spilled_in_buckets_find_the_same_duplicates(tmp_path, monkeypatch, collide):
    """A table of more than `bucket_rows` rows keeps its key hashes on disk, a bucket of their top
    bits each; the duplicates (across batches and buckets) are those the in-memory check finds."""
    import numpy as np

    import pipelines.quality.batches as vb
    from pipelines.lake import Spill

    if collide:  # every hash in the same bucket and equal: every row is a candidate
        real = vb.hash_keys
        monkeypatch.setattr(vb, "hash_keys", lambda p, keys: (real(p, keys)[0] * 0, real(p, keys)[1]))
    n = 5000
    rng = np.random.default_rng(7)
    order_id = [f"O{i}" for i in range(n)]
    for src, dst in [(3, 4990), (100, 2500), (2500, 4000)]:  # three rows repeat earlier keys
        order_id[dst] = order_id[src]
    table = pa.table(
        {
            "order_id": order_id,
            "line_no": [1] * n,
            "sku": rng.choice(["S1", "S2"], n).tolist(),
            "quantity": rng.uniform(0, 9, n),
            "status": ["open"] * n,
        }
    )
    path = tmp_path / "part-00000.parquet"
    pq.write_table(table, path, row_group_size=700)
    source = BatchSource(files=(path,))
    suite = _suite(_exp("expect_compound_columns_to_be_unique", column_list=["order_id", "line_no"]))
    contract = get_dataset("order_lines")

    def run(spill):
        r = vb.SuiteRun(
            "order_lines",
            suite,
            source,
            contract,
            with_rows=True,
            batch_rows=600,
            spill=spill,
            bucket_rows=500,
        )
        for batch, offset in vb.iter_positions(source, r.columns, r.batch_rows):
            r.add_batch(batch, offset)
        return r, r.finish(n)

    folder = tmp_path / "spill"
    folder.mkdir()
    spilled, got = run(Spill(folder))
    memory, want = run(None)
    assert spilled.key_bits == 4 and memory.key_bits == 0  # 10 buckets' worth of rows: 16 buckets
    assert len(list(folder.glob("key_hashes_*.arrow"))) == (1 if collide else 16)
    assert got == want
    ((success, result, _),) = got
    assert not success and result["unexpected_count"] == 5
    assert sorted(result["unexpected_index_list"]) == [3, 100, 2500, 4000, 4990]
