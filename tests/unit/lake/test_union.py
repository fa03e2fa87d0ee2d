"""A dataset fed by several sources is read as their union, with a `source` column."""

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import parse_config
from pipelines.errors import MissingInputError, SchemaConflictError
from pipelines.lake import Lake, read_dataset
from pipelines.sharding import night_skus, sku_filter

DAY = date(2026, 11, 22)


def _config(tmp_path: Path, union: dict | None = None):
    tables = {"products": {}, "warehouses": {}}
    raw = {
        "lake": str(tmp_path / "lake"),
        "sources": {
            "erp_eu": {"url": f"sqlite:///{tmp_path / 'eu.db'}", "tables": tables},
            "erp_us": {"url": f"sqlite:///{tmp_path / 'us.db'}", "tables": tables},
        },
        **({"union": union} if union is not None else {}),
    }
    return parse_config(raw, base=tmp_path)


def _land(cfg, source: str, table: str, frame: pd.DataFrame, day: date = DAY) -> None:
    with Lake(cfg.lake).stage_table(source, table, day) as staged:
        frame.to_parquet(staged.data_file, index=False)
        staged.write_manifest({"rows": len(frame)})


def _products(skus: list, prices: list[float], category: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"sku": skus, "name": [f"n{s}" for s in skus], "category": category, "list_price": prices}
    )


def test_union_carries_source_and_a_shared_sku_is_one_product_from_the_first_source(tmp_path):
    cfg = _config(tmp_path)
    _land(cfg, "erp_eu", "products", _products(["A", "B"], [1.0, 2.0], "eu"))
    _land(cfg, "erp_us", "products", _products(["B", "C"], [3.0, 4.0], "us"))
    got = read_dataset(cfg, "products", DAY)
    assert got[["sku", "category", "source"]].values.tolist() == [
        ["A", "eu", "erp_eu"],
        ["B", "eu", "erp_eu"],  # B is listed by both: the first source in the config describes it
        ["C", "us", "erp_us"],
    ]


def test_qualified_keys_keep_each_sources_entity(tmp_path):
    cfg = _config(tmp_path, {"qualify_keys": ["sku"]})
    _land(cfg, "erp_eu", "products", _products(["A", "B"], [1.0, 2.0], "eu"))
    _land(cfg, "erp_us", "products", _products(["B"], [3.0], "us"))
    got = read_dataset(cfg, "products", DAY)
    assert got[["sku", "source"]].values.tolist() == [
        ["erp_eu:A", "erp_eu"],
        ["erp_eu:B", "erp_eu"],
        ["erp_us:B", "erp_us"],
    ]


def test_a_single_source_reads_as_before_plus_source(tmp_path):
    raw = {
        "lake": str(tmp_path / "lake"),
        "sources": {"erp": {"url": f"sqlite:///{tmp_path / 'e.db'}", "tables": {"products": {}}}},
    }
    cfg = parse_config(raw, base=tmp_path)
    frame = _products(["A", "A"], [1.0, 2.0], "x")  # a duplicate stays: validation reports it
    _land(cfg, "erp", "products", frame)
    got = read_dataset(cfg, "products", DAY)
    pd.testing.assert_frame_equal(got.drop(columns="source"), frame)
    assert got["source"].tolist() == ["erp", "erp"]


def test_a_type_conflict_names_both_sources_and_the_column(tmp_path):
    cfg = _config(tmp_path)
    _land(cfg, "erp_eu", "products", _products(["A"], [1.0], "eu"))
    _land(cfg, "erp_us", "products", _products([7], [3.0], "us"))  # sku as a number
    with pytest.raises(SchemaConflictError) as err:
        read_dataset(cfg, "products", DAY)
    message = str(err.value)
    for part in ("'sku'", "sources.erp_eu.tables.products", "sources.erp_us.tables.products", "casts:"):
        assert part in message


def test_integers_and_decimals_unify_as_numbers(tmp_path):
    cfg = _config(tmp_path)
    _land(cfg, "erp_eu", "products", _products(["A"], [1.5], "eu"))
    us = _products(["B"], [0], "us").astype({"list_price": "int64"})
    _land(cfg, "erp_us", "products", us)
    assert read_dataset(cfg, "products", DAY)["list_price"].tolist() == [1.5, 0.0]


def test_a_missing_source_partition_fails_naming_the_source(tmp_path):
    cfg = _config(tmp_path)
    _land(cfg, "erp_eu", "products", _products(["A"], [1.0], "eu"))
    with pytest.raises(
        MissingInputError, match=r"no snapshot of erp_us\.products for 2026-11-22 .*union of 2"
    ):
        read_dataset(cfg, "products", DAY)


def _lines_config(tmp_path: Path, union: dict | None = None):
    tables = {"order_lines": {}}
    raw = {
        "lake": str(tmp_path / "lake"),
        "sources": {
            "erp_eu": {"url": f"sqlite:///{tmp_path / 'eu.db'}", "tables": tables},
            "erp_us": {"url": f"sqlite:///{tmp_path / 'us.db'}", "tables": tables},
        },
        **({"union": union} if union is not None else {}),
    }
    return parse_config(raw, base=tmp_path)


def _lines(skus: list[str]) -> pd.DataFrame:
    n = len(skus)
    return pd.DataFrame(
        {
            "order_id": [str(1001 + i) for i in range(n)],
            "line_no": 1,
            "order_date": pd.Timestamp(DAY),
            "customer_id": "c1",
            "warehouse": "W1",
            "sku": skus,
            "quantity": 1.0,
            "unit_price": 2.0,
            "currency": "EUR",
            "status": "open",
            "updated_at": pd.Timestamp(DAY),
        }
    )


@pytest.mark.parametrize("qualify", [False, True])
def test_order_lines_of_two_sources_never_merge_and_shards_find_every_sku(tmp_path, qualify):
    cfg = _lines_config(tmp_path, {"qualify_keys": qualify})
    _land(cfg, "erp_eu", "order_lines", _lines(["A", "B"]))
    _land(cfg, "erp_us", "order_lines", _lines(["B", "C"]))  # the same order ids as erp_eu
    got = read_dataset(cfg, "order_lines", DAY)
    assert len(got) == 4 and got["source"].tolist() == ["erp_eu"] * 2 + ["erp_us"] * 2
    skus = night_skus(cfg, DAY)
    want = ["erp_eu:A", "erp_eu:B", "erp_us:B", "erp_us:C"] if qualify else ["A", "B", "C"]
    assert skus == want
    shard = read_dataset(cfg, "order_lines", DAY, filters=sku_filter(cfg, DAY, 0, 1))
    pd.testing.assert_frame_equal(shard, got)
    only_b = read_dataset(cfg, "order_lines", DAY, filters=[("sku", "in", [want[1]])])
    # unqualified, B is one product sold by both sources; qualified, erp_eu:B is erp_eu's own
    assert only_b["source"].tolist() == (["erp_eu"] if qualify else ["erp_eu", "erp_us"])


def _sku_days(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sku", "warehouse", "order_date"]).assign(
        order_date=lambda f: pd.to_datetime(f["order_date"])
    )


def test_the_night_in_record_batches_is_the_union_read_whole_and_costs_the_same_skus(tmp_path, monkeypatch):
    """`iter_source_batches` gives the rows `read_source_nights` gives (source, qualified keys,
    unified types), a few at a time; the plan's SKU costs made from them equal those counted from
    the whole night: distinct days per series, history from a SKU's first day, a missing
    warehouse a series of its own, a missing SKU counted as a series but not costed."""
    import functools

    import pyarrow as pa

    from pipelines import sharding
    from pipelines.lake import iter_source_batches, read_source_nights

    raw = {
        "lake": str(tmp_path / "lake"),
        "union": {"qualify_keys": ["sku"]},
        "sources": {
            name: {"url": f"sqlite:///{tmp_path / f'{name}.db'}", "tables": {"order_lines": {}}}
            for name in ("erp_eu", "erp_us")
        },
    }
    cfg = parse_config(raw, base=tmp_path)
    eu = [("A", "W1", d) for d in ("2026-11-01", "2026-11-01", "2026-11-03", "2026-11-20")]
    eu += [("A", None, "2026-11-02"), ("B", "W1", "2026-11-21"), (None, "W1", "2026-11-05")]
    eu += [("C", "W2", f"2026-10-{d:02d}") for d in range(1, 29)]
    us = [("A", "W1", "2026-11-10"), ("D", "W3", "2026-11-22"), ("D", "W3", "2026-11-22")]
    _land(cfg, "erp_eu", "order_lines", _sku_days(eu))
    _land(cfg, "erp_us", "order_lines", _sku_days(us))
    columns = ["sku", "warehouse", "order_date"]
    whole = pa.concat_tables(
        part.table for part in read_source_nights(cfg, "order_lines", DAY, columns=columns)
    )
    batches = list(iter_source_batches(cfg, "order_lines", DAY, columns=columns, batch_rows=4))
    assert len(batches) == 10 and pa.concat_tables(batches).equals(whole)
    assert "erp_us:A" in pa.concat_tables(batches).column("sku").to_pylist()  # qualified, per source

    small = functools.partial(iter_source_batches, batch_rows=3)  # a series' days over batches
    monkeypatch.setattr(sharding, "iter_source_batches", small)
    costs, n_series, pairs = sharding.sku_costs(cfg, DAY)
    days = pd.concat(
        [
            _sku_days(eu).assign(sku=lambda f: "erp_eu:" + f["sku"]),
            _sku_days(us).assign(sku=lambda f: "erp_us:" + f["sku"]),
        ]
    )
    days = days.dropna(subset=["sku"]).drop_duplicates()
    expected: dict[str, float] = {}
    for (sku, _), part in days.groupby(["sku", "warehouse"], dropna=False):
        history = (DAY - days.loc[days["sku"] == sku, "order_date"].min().date()).days + 1
        expected[sku] = expected.get(sku, 0.0) + sharding.series_cost(part["order_date"].nunique(), history)
    assert costs.keys() == expected.keys() and all(costs[k] == pytest.approx(v) for k, v in expected.items())
    assert n_series == 7  # A|W1, A|-, B|W1, -|W1, C|W2 (eu), A|W1, D|W3 (us)
    assert sorted(pairs, key=str) == sorted(
        [
            ("erp_eu:A", "W1"),
            ("erp_eu:A", None),
            ("erp_eu:B", "W1"),
            ("erp_eu:C", "W2"),
            ("erp_us:A", "W1"),
            ("erp_us:D", "W3"),
        ],
        key=str,
    )
