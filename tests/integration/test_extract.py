"""Extraction into the lake against real PostgreSQL, MariaDB and SQLite: modes, types, atomicity, drift."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipelines.config import Config, parse_config
from pipelines.errors import ConfigError, SchemaDriftError, SourceUnavailableError
from pipelines.extract import extract_table
from pipelines.extract import table as extract_mod
from pipelines.lake import Lake, read_partition

DAY1, DAY2 = date(2026, 11, 21), date(2026, 11, 22)
EXPECTED_METHOD = {"postgresql": "copy", "mariadb": "mysql_client", "sqlite": "generic"}


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def backend(request, tmp_path) -> tuple[str, str]:
    """(kind, URL of a fresh empty database)."""
    if request.param == "postgresql":
        return "postgresql", request.getfixturevalue("pg_database")()
    if request.param == "mariadb":
        return "mariadb", request.getfixturevalue("mariadb_database")()
    return "sqlite", f"sqlite:///{tmp_path / 'src.db'}"


def _lines_table(
    md: sa.MetaData,
    *,
    drop: str | None = None,
    rename: str | None = None,
    retype: bool = False,
    add: bool = False,
) -> sa.Table:
    cols = [
        sa.Column("order_id", sa.String(20), nullable=False),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("order_date", sa.Date, nullable=False),
        sa.Column("sku", sa.String(20), nullable=False),
        sa.Column("quantity", sa.String(20) if retype else sa.Numeric(12, 3), nullable=False),
        sa.Column("unit_price", sa.Numeric(12, 2), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    ]
    if add:
        cols.append(sa.Column("extra", sa.Integer, nullable=True))
    cols = [c for c in cols if c.name != drop]
    if rename:
        cols = [sa.Column(rename, c.type, nullable=c.nullable) if c.name == "note" else c for c in cols]
    return sa.Table("lines", md, *cols)


def _row(i: int, updated: datetime, note: str | None = None) -> dict:
    return {
        "order_id": f"O{i:04d}",
        "line_no": i % 3 + 1,
        "order_date": updated.date(),
        "sku": f"SKU{i % 5}",
        "quantity": Decimal(f"{i}.125"),
        "unit_price": Decimal(f"{i % 7}.99"),
        "note": note,
        "updated_at": updated,
    }


def _create(url: str, rows: list[dict], **shape: object) -> None:
    engine = sa.create_engine(url)
    md = sa.MetaData()
    table = _lines_table(md, **shape)  # type: ignore[arg-type]
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
        if rows:
            names = {c.name for c in table.columns}
            fix = str if shape.get("retype") else (lambda v: v)
            values = [{k: fix(v) if k == "quantity" else v for k, v in r.items() if k in names} for r in rows]
            conn.execute(table.insert(), values)
    engine.dispose()


def _insert(url: str, rows: list[dict]) -> None:
    engine = sa.create_engine(url)
    table = _lines_table(sa.MetaData())
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    engine.dispose()


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, **table: object) -> Config:
    monkeypatch.setenv("SEAM_TEST_EXTRACT_URL", url)
    raw = {
        "lake": str(tmp_path / "lake"),
        "sources": {
            "erp": {
                "url_env": "SEAM_TEST_EXTRACT_URL",
                "tables": {
                    "lines": {
                        "dataset": "order_lines",
                        "table": "lines",
                        "columns": {"quantity": "quantity"},
                        # the test table lacks these required columns of order_lines
                        "constants": {
                            "customer_id": "C1",
                            "warehouse": "W1",
                            "currency": "EUR",
                            "status": "open",
                        },
                        **table,
                    }
                },
            }
        },
    }
    return parse_config(raw, base=tmp_path)


def TABLE_DIR(cfg: Config) -> Path:
    return Lake(cfg.lake).table_partition("erp", "lines", DAY1).parent


def _read(cfg: Config, day: date) -> pd.DataFrame:
    df = read_partition(Lake(cfg.lake).table_partition("erp", "lines", day))
    return df.sort_values(["order_id", "line_no"]).reset_index(drop=True)


def _watermarks(cfg: Config) -> dict | None:
    return Lake(cfg.lake).read_state("watermarks", "erp", "lines")


SPECIAL = ["NULL", "tab\there", "line\nbreak", "back\\slash", "", "ünï €", None]


def test_snapshot_types_manifest_and_dataset_readers(backend, tmp_path, monkeypatch):
    kind, url = backend
    rows = [_row(i, datetime(2026, 11, 21, 8 + i % 10, i % 60), SPECIAL[i % len(SPECIAL)]) for i in range(40)]
    _create(url, rows)
    cfg = _config(tmp_path, monkeypatch, url)
    res = extract_table(cfg, "erp", "lines", DAY2)
    assert res.rows == 40 and res.warnings == ()
    folder = Lake(cfg.lake).table_partition("erp", "lines", DAY2)
    assert folder.name == "run_date=2026-11-22" and (folder / "part-00000.parquet").is_file()
    got = _read(cfg, DAY2)
    want = pd.DataFrame(rows).sort_values(["order_id", "line_no"]).reset_index(drop=True)
    assert got["note"].tolist() == want["note"].tolist()  # 'NULL', '', tabs, newlines, NULL all exact
    assert got["quantity"].tolist() == want["quantity"].tolist()
    assert got["unit_price"].tolist() == want["unit_price"].tolist()
    assert [pd.Timestamp(v) for v in got["updated_at"]] == [pd.Timestamp(v) for v in want["updated_at"]]
    assert got["order_date"].tolist() == want["order_date"].tolist()

    schema = ds.dataset(folder / "part-00000.parquet").schema
    assert schema.field("quantity").type == pa.decimal128(12, 3)
    assert schema.field("unit_price").type == pa.decimal128(12, 2)
    assert schema.field("order_date").type == pa.date32()
    assert schema.field("updated_at").type == pa.timestamp("us")
    assert not schema.field("order_id").nullable and schema.field("note").nullable

    manifest = Lake(cfg.lake).table_manifest("erp", "lines", DAY2)
    assert manifest is not None
    assert manifest["rows"] == 40 and manifest["method"] == EXPECTED_METHOD[kind]
    assert {c["name"] for c in manifest["schema"]} >= {"order_id", "quantity", "updated_at"}
    assert "lines" in manifest["query"] and manifest["seconds"] >= 0
    assert "seam_test_pw" not in json.dumps(manifest)
    assert manifest["clustered_by"] == "sku"  # the rows are laid out by SKU, in the order read
    raw = ds.dataset(folder / "part-00000.parquet").to_table().to_pandas()
    assert raw["sku"].tolist() == sorted(raw["sku"])
    assert sorted(raw["order_id"]) == sorted(r["order_id"] for r in rows)
    pw = make_url(url).password
    assert not pw or pw not in json.dumps(manifest)

    # The lake reads as a Hive-partitioned dataset (pyarrow and pandas).
    extract_table(cfg, "erp", "lines", DAY1)
    dset = ds.dataset(TABLE_DIR(cfg), format="parquet", partitioning="hive")
    table = dset.to_table()
    assert table.num_rows == 80 and "run_date" in table.column_names
    frame = pd.read_parquet(TABLE_DIR(cfg))
    assert len(frame) == 80 and set(frame["run_date"].astype(str)) == {"2026-11-21", "2026-11-22"}


def test_not_null_strings_keep_null_words_tabs_and_escapes(backend, tmp_path, monkeypatch):
    """A NOT NULL text column is read without the NULL-safe mark: 'NULL' stays a string there too."""
    _, url = backend
    words = [w for w in SPECIAL if w is not None]
    rows = [{**_row(i, datetime(2026, 11, 21, 9, i)), "sku": words[i % len(words)]} for i in range(30)]
    _create(url, rows)
    cfg = _config(tmp_path, monkeypatch, url)
    extract_table(cfg, "erp", "lines", DAY2)
    got = _read(cfg, DAY2)
    assert got["sku"].tolist() == [words[i % len(words)] for i in range(30)]
    assert got["sku"].notna().all()


def test_timestamp_with_zone_is_utc_in_arrow(pg_database, tmp_path, monkeypatch):
    url = pg_database()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE lines (order_id text NOT NULL, line_no int NOT NULL, "
            "quantity numeric(12,3), updated_at timestamptz)"
        )
        conn.exec_driver_sql(
            "INSERT INTO lines VALUES ('a', 1, 1.5, '2026-11-21 23:30:00-05'), ('b', 1, NULL, NULL)"
        )
    engine.dispose()
    cfg = _config(tmp_path, monkeypatch, url, dataset="none")  # a table of its own shape, landed as it is
    extract_table(cfg, "erp", "lines", DAY2)
    folder = Lake(cfg.lake).table_partition("erp", "lines", DAY2)
    table = ds.dataset(folder / "part-00000.parquet").to_table().sort_by("order_id")
    assert table.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert table.column("updated_at").to_pylist()[0] == datetime.fromisoformat("2026-11-22T04:30:00+00:00")
    assert table.column("quantity").to_pylist() == [Decimal("1.500"), None]


@pytest.mark.parametrize("column_type", ["timestamptz", "timestamp"])
def test_the_night_is_the_business_day_in_the_configured_zone_across_dst(
    pg_database, tmp_path, monkeypatch, column_type
):
    """Europe/Berlin, 2026-03-29: clocks jump from 02:00 to 03:00, the night is 23 hours long.

    A zone-aware column is bounded by the instants of local midnight (22:00 UTC the day before);
    a column without a zone holds local wall-clock time and is bounded by midnight itself.
    """
    url = pg_database()
    engine = sa.create_engine(url)
    moments = {  # row -> (a zone-aware instant, the same moment as Berlin wall-clock time)
        "before": ("2026-03-28 22:59:59+00", "2026-03-28 23:59:59"),
        "first": ("2026-03-28 23:00:00+00", "2026-03-29 00:00:00"),
        "last": ("2026-03-29 21:59:59+00", "2026-03-29 23:59:59"),
        "after": ("2026-03-29 22:00:00+00", "2026-03-30 00:00:00"),
    }
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE lines (order_id text NOT NULL, line_no int NOT NULL, updated_at {column_type})"
        )
        for order_id, (aware, local) in moments.items():
            value = aware if column_type == "timestamptz" else local
            conn.execute(sa.text("INSERT INTO lines VALUES (:o, 1, :v)"), {"o": order_id, "v": value})
    engine.dispose()
    cfg = _config(tmp_path, monkeypatch, url, as_of="updated_at", columns={}, dataset="none")
    cfg = replace(cfg, timezone="Europe/Berlin")
    extract_table(cfg, "erp", "lines", date(2026, 3, 29))
    got = Lake(cfg.lake).read_table("erp", "lines", date(2026, 3, 29)).column("order_id").to_pylist()
    assert sorted(got) == ["before", "first", "last"]  # as_of: everything before the night's end


def test_incremental_lookback_catches_late_updates_and_reruns_are_idempotent(backend, tmp_path, monkeypatch):
    _, url = backend
    _create(url, [_row(i, datetime(2026, 11, 21, 10 + i)) for i in range(1, 5)])  # up to 21 14:00
    cfg = _config(tmp_path, monkeypatch, url, mode="incremental", cursor="updated_at", lookback="2h")
    first = extract_table(cfg, "erp", "lines", DAY1)
    assert first.rows == 4
    assert _watermarks(cfg) == {"history": {"2026-11-21": "2026-11-21T14:00:00"}}

    _insert(
        url,
        [
            _row(20, datetime(2026, 11, 21, 12, 30)),  # arrived late, inside the 2h look-back
            _row(21, datetime(2026, 11, 21, 9, 0)),  # arrived late, before the look-back: missed by design
            _row(22, datetime(2026, 11, 22, 9, 0)),  # tonight's change
            _row(23, datetime(2026, 11, 23, 1, 0)),  # tomorrow: outside the run's interval
        ],
    )
    second = extract_table(cfg, "erp", "lines", DAY2)
    got = _read(cfg, DAY2)
    assert sorted(got["order_id"]) == ["O0002", "O0003", "O0004", "O0020", "O0022"]  # >= 12:00 on the 21st
    assert _watermarks(cfg)["history"]["2026-11-22"] == "2026-11-22T09:00:00"

    again = extract_table(cfg, "erp", "lines", DAY2)  # same night again: same window, same rows
    assert again.rows == second.rows == 5
    pd.testing.assert_frame_equal(_read(cfg, DAY2), got)
    assert not got.duplicated(["order_id", "line_no"]).any()
    assert _watermarks(cfg)["history"] == {
        "2026-11-21": "2026-11-21T14:00:00",
        "2026-11-22": "2026-11-22T09:00:00",
    }
    redo_first = extract_table(cfg, "erp", "lines", DAY1)  # backfilling the first night is unchanged
    assert redo_first.rows == 6  # no earlier watermark: everything before the 22nd, incl. late rows
    assert _watermarks(cfg)["history"]["2026-11-22"] == "2026-11-22T09:00:00"


def test_killed_run_leaves_no_partition_and_keeps_the_watermark(backend, tmp_path, monkeypatch):
    _, url = backend
    _create(url, [_row(i, datetime(2026, 11, 21, 10, i)) for i in range(5)])
    cfg = _config(tmp_path, monkeypatch, url, mode="incremental", cursor="updated_at")
    extract_table(cfg, "erp", "lines", DAY1)
    before = _watermarks(cfg)
    old = _read(cfg, DAY1)
    _insert(url, [_row(30, datetime(2026, 11, 22, 8))])

    def die(*_a, **_k):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(extract_mod, "widen", die)
    for day in (DAY2, DAY1):  # a new night, and a re-run over an existing partition
        with pytest.raises(RuntimeError, match="killed"):
            extract_table(cfg, "erp", "lines", day)
    assert not Lake(cfg.lake).table_partition("erp", "lines", DAY2).exists()
    pd.testing.assert_frame_equal(_read(cfg, DAY1), old)
    assert [p.name for p in TABLE_DIR(cfg).iterdir()] == ["run_date=2026-11-21"]
    assert _watermarks(cfg) == before


DRIFT = [
    ({"add": True}, None),
    ({"drop": "note"}, "removed columns ['note']"),
    ({"rename": "remark"}, "renamed columns (probably) ['note -> remark (string)']"),
    ({"retype": True}, "retyped columns ['quantity: decimal128(12, 3) -> string']"),
]


def test_schema_drift(backend, tmp_path, monkeypatch):
    _, url = backend
    rows = [_row(i, datetime(2026, 11, 21, 10, i), "x") for i in range(3)]
    for n, (shape, message) in enumerate(DRIFT):
        _create(url, rows)
        (tmp_path / str(n)).mkdir()
        cfg = _config(tmp_path / str(n), monkeypatch, url)
        extract_table(cfg, "erp", "lines", DAY1)
        _create(url, rows, **shape)
        if message is None:
            res = extract_table(cfg, "erp", "lines", DAY2)
            assert res.warnings == ("schema drift in erp.lines: added columns ['extra']",)
            assert "extra" in _read(cfg, DAY2).columns
            continue
        with pytest.raises(SchemaDriftError) as err:
            extract_table(cfg, "erp", "lines", DAY2)
        assert str(err.value).startswith(f"schema drift in erp.lines: {message}. ")
        assert not Lake(cfg.lake).table_partition("erp", "lines", DAY2).exists()
        assert [p.name for p in TABLE_DIR(cfg).iterdir()] == ["run_date=2026-11-21"]


def test_empty_table_writes_an_empty_typed_partition(backend, tmp_path, monkeypatch):
    _, url = backend
    _create(url, [])
    cfg = _config(tmp_path, monkeypatch, url, mode="incremental", cursor="updated_at")
    res = extract_table(cfg, "erp", "lines", DAY2)
    assert res.rows == 0
    table = ds.dataset(Lake(cfg.lake).table_partition("erp", "lines", DAY2) / "part-00000.parquet").to_table()
    assert table.num_rows == 0 and table.schema.field("unit_price").type == pa.decimal128(12, 2)
    assert _watermarks(cfg) is None  # nothing seen, nothing to advance


def test_missing_table_is_a_config_error_and_writes_nothing(backend, tmp_path, monkeypatch):
    _, url = backend
    cfg = _config(tmp_path, monkeypatch, url)
    with pytest.raises(ConfigError, match="table 'lines' does not exist in source 'erp'"):
        extract_table(cfg, "erp", "lines", DAY2)
    assert not any(cfg.lake.rglob("*.parquet"))


@pytest.mark.parametrize("server", ["pg_database", "mariadb_database"])
def test_wrong_password_is_clear_and_never_printed(server, request, tmp_path, monkeypatch, caplog):
    url = make_url(request.getfixturevalue(server)()).set(password="Wr0ng-s3cret-pw")
    cfg = _config(tmp_path, monkeypatch, url.render_as_string(hide_password=False))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceUnavailableError) as err:
        extract_table(cfg, "erp", "lines", DAY2)
    text = str(err.value)
    assert "cannot connect to source 'erp'" in text and ("password" in text or "Access denied" in text)
    assert "Wr0ng-s3cret-pw" not in text and "Wr0ng-s3cret-pw" not in caplog.text
    assert not any(cfg.lake.rglob("*.parquet"))


KILL_MID_WRITE = """
import json, os, signal, sys
from datetime import date
from pathlib import Path
import pipelines.extract.table as ex
import pipelines.db.csv_stream as csv_stream
import pipelines.extract.cluster as cluster
from pipelines.config import parse_config

# Small blocks and chunks: many batches, so the kill lands after some rows are already staged
# (in buckets of SKU ranges: the night outgrows the in-memory sort's buffer at once).
csv_stream.BLOCK_BYTES = 4096
ex.CHUNK_ROWS = 100
cluster.BUFFER_BYTES = 0
lake = Path(sys.argv[1])
widen, calls = ex.widen, []

def die(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # the first batch went through ParquetWriter.write_batch
        staged = sorted(p for p in lake.glob("_staging/*/**/*.arrow") if p.stat().st_size)
        print(json.dumps({"staged": [str(p) for p in staged], "bytes": [p.stat().st_size for p in staged]}))
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return widen(*args, **kwargs)

ex.widen = die
raw = {"lake": str(lake), "sources": {"erp": {"url_env": "SEAM_TEST_EXTRACT_URL", "tables": {"lines": {
    "dataset": "order_lines", "table": "lines", "mode": "incremental", "cursor": "updated_at",
    "constants": {"customer_id": "C1", "warehouse": "W1", "currency": "EUR", "status": "open"}}}}}}
ex.extract_table(parse_config(raw, base=lake), "erp", "lines", date(2026, 11, 22))
"""
KILL_ROWS = 3000


def test_sigkill_mid_extraction_leaves_no_visible_partition(backend, tmp_path, monkeypatch):
    """SIGKILL of the extracting process, on each real database's fast reader, after rows were staged."""
    import subprocess
    import sys
    from datetime import timedelta

    kind, url = backend
    _create(url, [_row(i, datetime(2026, 11, 21, 10, i)) for i in range(5)])
    cfg = _config(tmp_path, monkeypatch, url, mode="incremental", cursor="updated_at")
    extract_table(cfg, "erp", "lines", DAY1)
    before = _watermarks(cfg)
    assert before == {"history": {"2026-11-21": "2026-11-21T10:04:00"}}
    night = datetime(2026, 11, 22, 1)
    _insert(url, [_row(100 + i, night + timedelta(seconds=i), SPECIAL[i % 7]) for i in range(KILL_ROWS)])
    scratch = tmp_path / "scratch"  # the killed process's TMPDIR: nothing (no client option file) stays
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", KILL_MID_WRITE, str(cfg.lake)],
        capture_output=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert list(scratch.iterdir()) == []
    staged = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert staged["staged"] and min(staged["bytes"]) > 0  # rows had reached the temporary folder
    assert all(Path(p).parents[2].name == "_staging" for p in staged["staged"])  # outside every dataset

    assert not Lake(cfg.lake).table_partition("erp", "lines", DAY2).exists()
    assert DAY2 not in Lake(cfg.lake).table_days("erp", "lines")
    assert _watermarks(cfg) == before
    dset = ds.dataset(TABLE_DIR(cfg), format="parquet", partitioning="hive")
    assert dset.to_table().num_rows == 5  # the killed write's staging is invisible to readers

    res = extract_table(cfg, "erp", "lines", DAY2)  # from the watermark (10:04) on: cleans up, succeeds
    assert res.rows == KILL_ROWS + 1
    assert sorted(p.name for p in TABLE_DIR(cfg).iterdir()) == ["run_date=2026-11-21", "run_date=2026-11-22"]
    assert not list((cfg.lake / "_staging").iterdir())  # the dead writer's staging was swept
    got = _read(cfg, DAY2)
    want = [f"O{i:04d}" for i in [4, *range(100, 100 + KILL_ROWS)]]
    assert sorted(got["order_id"]) == sorted(want) and not got.duplicated(["order_id", "line_no"]).any()
    notes = [None if pd.isna(v) else v for v in got["note"]]
    assert notes == [None, *[SPECIAL[i % 7] for i in range(KILL_ROWS)]]
    manifest = Lake(cfg.lake).table_manifest("erp", "lines", DAY2)
    assert manifest is not None and manifest["rows"] == KILL_ROWS + 1
    assert manifest["method"] == EXPECTED_METHOD[kind]
    assert _watermarks(cfg)["history"]["2026-11-22"] == (night + timedelta(seconds=KILL_ROWS - 1)).isoformat()


def _keyed(url: str, keys: list[int | None]) -> sa.Table:
    """A table with an integer primary key `id` and a nullable integer `k` (same values, NULLs)."""
    md = sa.MetaData()
    table = sa.Table(
        "keyed",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("k", sa.Integer, nullable=True),
        sa.Column("label", sa.String(20), nullable=False),
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        md.create_all(conn)
        rows = [{"id": i + 1, "k": k, "label": f"r{i}"} for i, k in enumerate(keys)]
        conn.execute(table.insert(), rows)
    engine.dispose()
    return table


@pytest.mark.parametrize("span", [2, 3, 10, 1001])
def test_key_ranges_cover_every_row_once_with_null_keys(backend, span):
    from pipelines.extract.ranges import build_ranges

    _, url = backend
    keys = [*range(5, 5 + span), None, None, 5 + span - 1]  # duplicates and NULLs on the nullable key
    table = _keyed(url, keys)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for column in (table.c.id, table.c.k):
            ranges = build_ranges(conn, sa.select(table.c.label), column, min_keys=1)
            assert len(ranges) == 2
            got = [r for stmt in ranges for r in conn.execute(stmt).scalars()]
            assert sorted(got) == sorted(f"r{i}" for i in range(len(keys)))  # no gap, no duplicate
        one = build_ranges(conn, sa.select(table.c.label), table.c.id, min_keys=span + 10)
        assert len(one) == 1
    engine.dispose()


def test_mariadb_split_extraction_equals_one_stream(mariadb_database, tmp_path, monkeypatch):
    from pipelines.extract import ranges as extract_ranges

    url = mariadb_database()
    keys = list(range(3000))
    _keyed(url, keys)
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a gap in the keys around the middle, and a value to escape
        conn.exec_driver_sql("DELETE FROM keyed WHERE id BETWEEN 1400 AND 1600")
        conn.exec_driver_sql("UPDATE keyed SET label = 'NULL\\ttab' WHERE id = 1500 + 200")
    engine.dispose()
    monkeypatch.setenv("SEAM_TEST_EXTRACT_URL", url)
    frames, manifests = [], []
    for n, min_keys in enumerate((10**9, 1)):
        monkeypatch.setattr(extract_ranges, "SPLIT_MIN_KEYS", min_keys)
        monkeypatch.setattr("pipelines.db.csv_stream.BLOCK_BYTES", 4096)  # many batches per stream
        raw = {
            "lake": str(tmp_path / f"lake{n}"),
            "sources": {
                "erp": {
                    "url_env": "SEAM_TEST_EXTRACT_URL",
                    "tables": {"keyed": {"dataset": "none", "table": "keyed"}},  # landed as it is
                }
            },
        }
        cfg = parse_config(raw, base=tmp_path)
        res = extract_table(cfg, "erp", "keyed", DAY2)
        folder = Lake(cfg.lake).table_partition("erp", "keyed", DAY2)
        manifests.append(Lake(cfg.lake).table_manifest("erp", "keyed", DAY2))
        frames.append(read_partition(folder).sort_values("id").reset_index(drop=True))
        assert res.rows == 3000 - 201
    assert [m["streams"] for m in manifests] == [1, 2]
    assert [m["method"] for m in manifests] == ["mysql_client", "mysql_client"]
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert frames[1]["id"].is_unique and frames[1].loc[frames[1]["id"] == 1700, "label"].item() == "NULL\ttab"


def test_a_typo_in_columns_is_a_config_error(backend, tmp_path, monkeypatch):
    _, url = backend
    _create(url, [_row(0, datetime(2026, 11, 21, 10))])
    cfg = _config(tmp_path, monkeypatch, url, columns={"quantity": "quantiy"})
    with pytest.raises(ConfigError, match=r"source columns \['quantiy'\] of the `columns:` mapping"):
        extract_table(cfg, "erp", "lines", DAY2)
    assert not any(cfg.lake.rglob("*.parquet"))


def test_a_typo_in_a_query_is_a_config_error_naming_the_query(backend, tmp_path, monkeypatch):
    kind, url = backend
    table = "`lines`" if kind == "mariadb" else "lines"  # LINES is a keyword of MariaDB
    _create(url, [_row(0, datetime(2026, 11, 21, 10))])
    monkeypatch.setenv("SEAM_TEST_EXTRACT_URL", url)
    raw = {
        "lake": str(tmp_path / "lake"),
        "sources": {
            "erp": {
                "url_env": "SEAM_TEST_EXTRACT_URL",
                "tables": {"lines": {"dataset": "none", "query": f"SELECT order_id, quantiy FROM {table}"}},
            }
        },
    }
    cfg = parse_config(raw, base=tmp_path)
    with pytest.raises(ConfigError, match=r"fix sources\.erp\.tables\.lines\.query") as err:
        extract_table(cfg, "erp", "lines", DAY2)
    assert "quantiy" in str(err.value) and not err.value.transient
    assert not any(cfg.lake.rglob("*.parquet"))


def test_a_missing_required_column_is_refused_before_anything_is_read(backend, tmp_path, monkeypatch):
    _, url = backend
    _create(url, [_row(0, datetime(2026, 11, 21, 10))])
    cfg = _config(
        tmp_path, monkeypatch, url, constants={"customer_id": "C1", "warehouse": "W1", "status": "open"}
    )
    with pytest.raises(ConfigError) as err:
        extract_table(cfg, "erp", "lines", DAY2)
    assert str(err.value).startswith(
        "erp.lines (order_lines): required column `currency` is missing; map it with"
    )
    assert "`constants: {currency: ...}`" in str(err.value)
    assert not any(cfg.lake.rglob("*.parquet"))


def test_constants_and_casts_fix_a_source_without_a_query(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'src.db'}"
    _create(url, [_row(i, datetime(2026, 11, 21, 10, i)) for i in range(4)])
    cfg = _config(tmp_path, monkeypatch, url, casts={"line_no": "number"})
    extract_table(cfg, "erp", "lines", DAY2)
    got = Lake(cfg.lake).read_table("erp", "lines", DAY2)
    assert (
        got.schema.field("line_no").type == pa.float64() and got.schema.field("currency").type == pa.string()
    )
    assert set(got.column("currency").to_pylist()) == {"EUR"} and got.num_rows == 4
    assert Lake(cfg.lake).table_manifest("erp", "lines", DAY2)["schema"][-1]["name"] == "status"


def test_as_of_naming_a_missing_column_is_a_config_error(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'src.db'}"
    _create(url, [_row(0, datetime(2026, 11, 21, 10))])
    cfg = _config(tmp_path, monkeypatch, url, as_of="shipped_at")
    with pytest.raises(
        ConfigError, match=r"tables\.lines\.as_of: column 'shipped_at' is not in table 'lines'"
    ):
        extract_table(cfg, "erp", "lines", DAY2)


def test_a_column_renamed_over_is_replaced_by_the_mapped_one(backend, tmp_path, monkeypatch):
    """`region: sales_area` on a table with a `region` of its own: the mapped column wins, once."""
    _, url = backend
    engine = sa.create_engine(url)
    sites = sa.Table(
        "sites",
        sa.MetaData(),
        sa.Column("site_code", sa.String(5), primary_key=True),
        sa.Column("region", sa.String(10), nullable=False),  # an obsolete code
        sa.Column("sales_area", sa.String(10), nullable=False),
        sa.Column("name", sa.String(20), nullable=True),
    )
    with engine.begin() as conn:
        sites.create(conn)
        conn.execute(
            sites.insert(),
            [{"site_code": f"W{i}", "region": f"R{i}", "sales_area": "Nord"} for i in range(3)],
        )
    engine.dispose()
    monkeypatch.setenv("SEAM_TEST_EXTRACT_URL", url)
    table = {"table": "sites", "columns": {"warehouse": "site_code", "region": "sales_area"}}
    raw = {
        "lake": str(tmp_path / "lake"),
        "sources": {"erp": {"url_env": "SEAM_TEST_EXTRACT_URL", "tables": {"warehouses": table}}},
    }
    cfg = parse_config(raw, base=tmp_path)
    assert extract_table(cfg, "erp", "warehouses", DAY2).rows == 3
    got = Lake(cfg.lake).read_table("erp", "warehouses", DAY2)
    assert got.schema.names == ["warehouse", "region", "name"]
    assert got.column("region").to_pylist() == ["Nord"] * 3


def test_a_decimal_column_a_query_adds_lands_as_a_number(backend, tmp_path, monkeypatch):
    """A NUMERIC column the contract does not know (the driver gives `Decimal`s) lands as float64."""
    kind, url = backend
    table = "`lines`" if kind == "mariadb" else "lines"
    rows = [_row(i, datetime(2026, 11, 21, 10, i)) for i in range(5)]
    _create(url, rows)
    query = f"SELECT l.*, l.unit_price * 2 AS gross_price FROM {table} l WHERE l.updated_at < :run_end"
    cfg = _config(tmp_path, monkeypatch, url, table=None, query=query)
    extract_table(cfg, "erp", "lines", DAY2)
    got = _read(cfg, DAY2)
    assert Lake(cfg.lake).read_table("erp", "lines", DAY2).schema.field("gross_price").type == pa.float64()
    assert got["gross_price"].tolist() == [float(r["unit_price"]) * 2 for r in rows]


def test_an_untyped_null_bind_in_a_postgres_query_names_the_fix(pg_database, tmp_path, monkeypatch):
    """`:watermark IS NULL` is NULL on the first night; PostgreSQL cannot type it without a CAST."""
    url = pg_database()
    _create(url, [_row(i, datetime(2026, 11, 21, 10, i)) for i in range(3)])
    query = "SELECT * FROM lines WHERE (:watermark IS NULL OR updated_at >= :watermark)"
    cfg = _config(tmp_path, monkeypatch, url, table=None, query=query, mode="incremental")
    with pytest.raises(ConfigError, match=r"write CAST\(:watermark AS TIMESTAMP\)") as err:
        extract_table(cfg, "erp", "lines", DAY2)
    assert "fix sources.erp.tables.lines.query" in str(err.value)
    cast = "CAST(:watermark AS TIMESTAMP)"
    cfg = _config(
        tmp_path, monkeypatch, url, table=None, query=query.replace(":watermark", cast), mode="incremental"
    )
    assert extract_table(cfg, "erp", "lines", DAY2).rows == 3
