"""Tables defined by a `query:` are read by the bulk readers (PostgreSQL's COPY, MariaDB's client
stream) with the column types the database describes, and give, row for row and type for type,
what the generic SQLAlchemy path gives: a join, every common type, NULLs, hostile text, the
dataset's declared kinds, an incremental window, and the demo's order lines.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml

from pipelines.config import Config, load_config, parse_config
from pipelines.extract import extract_table
from pipelines.lake import Lake
from tests.conftest import NIGHT

DAY1, DAY2 = date(2026, 11, 21), date(2026, 11, 22)
FAST = {"postgresql": "copy", "mariadb": "mysql_client"}

DDL = {
    "postgresql": [
        """CREATE TABLE orders (order_id integer PRIMARY KEY, placed_on date NOT NULL, placed_at timestamptz,
           paid boolean, note text)""",
        """CREATE TABLE items (order_id integer NOT NULL, line_no smallint NOT NULL, qty numeric(12, 3),
           price numeric(20, 6), weight real, ratio double precision, big bigint, label varchar(200),
           updated_at timestamp(6) NOT NULL, sku varchar(40) NOT NULL, PRIMARY KEY (order_id, line_no))""",
    ],
    "mariadb": [
        """CREATE TABLE orders (order_id integer PRIMARY KEY, placed_on date NOT NULL, placed_at timestamp(6) NULL,
           paid boolean, note text)""",
        """CREATE TABLE items (order_id integer NOT NULL, line_no smallint NOT NULL, qty numeric(12, 3),
           price numeric(20, 6), weight float, ratio double, big bigint, label varchar(200),
           updated_at datetime(6) NOT NULL, sku varchar(40) NOT NULL, PRIMARY KEY (order_id, line_no))""",
    ],
}
# a join, a computed decimal, a literal `%` in a statement (with and without binds)
QUERY = """
SELECT l.order_id, l.line_no, o.placed_on, o.placed_at, o.paid, o.note, l.qty, l.price, l.weight,
       l.ratio, l.big, l.label, l.updated_at, l.sku, l.qty * 2 AS doubled,
       CASE WHEN l.label LIKE 'a%' THEN 'a%' ELSE NULL END AS a_label
FROM items l JOIN orders o ON o.order_id = l.order_id
"""
HOSTILE = [
    "tab\there",
    "line\nbreak",
    "cr\rhere",
    "cr\r\nlf",
    "back\\slash",
    "\\N",
    "NULL",
    "~",
    '"q"',
    "'s'",
]
HOSTILE += ["", "  spaced  ", "a%b", "%%", "\\", "\\\\t", "😀 é 中", "a,b;c|d"]


def _orders() -> list[dict[str, Any]]:
    out = []
    for i in range(1, 28):  # orders 25-27 have no items
        out.append(
            {
                "order_id": i,
                "placed_on": date(2026, 1, 1) + timedelta(days=i * 13),
                "placed_at": None
                if i % 5 == 0
                else datetime(2026, 3, 1, 7, 30, tzinfo=UTC) + timedelta(hours=i * 37, microseconds=i),
                "paid": None if i % 4 == 0 else i % 2 == 0,
                "note": None if i % 3 == 0 else HOSTILE[i % len(HOSTILE)],
            }
        )
    return out


def _lines(updated: datetime, orders: range = range(1, 25), per: int = 3) -> list[dict[str, Any]]:
    out = []
    for o in orders:
        for n in range(1, per + 1):
            k = o * 10 + n
            out.append(
                {
                    "order_id": o,
                    "line_no": n,
                    "qty": None if k % 7 == 0 else Decimal(k) / 8 - 100,
                    "price": None
                    if k % 11 == 0
                    else Decimal(f"{k * 123456789}.{k:06d}") * (-1 if k % 2 else 1),
                    "weight": None if k % 9 == 0 else k / 10,
                    "ratio": None if k % 13 == 0 else k / 3,
                    "big": None if k % 8 == 0 else (2**62 + k) * (-1 if k % 3 else 1),
                    "label": None if k % 6 == 0 else HOSTILE[k % len(HOSTILE)],
                    "updated_at": updated + timedelta(minutes=k, microseconds=k),
                    "sku": HOSTILE[(k + 3) % len(HOSTILE)],  # NOT NULL: the word NULL among them
                }
            )
    return out


@pytest.fixture(params=["postgresql", "mariadb"])
def source(request, tmp_path, monkeypatch) -> tuple[str, str, sa.Engine]:
    """(kind, URL, engine) of a fresh database holding `orders` and their `items`."""
    kind = request.param
    url = request.getfixturevalue("pg_database" if kind == "postgresql" else "mariadb_database")()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for ddl in DDL[kind]:
            conn.exec_driver_sql(ddl)
    md = sa.MetaData()
    orders = sa.Table("orders", md, autoload_with=engine)
    lines = sa.Table("items", md, autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(orders.insert(), _orders())
        conn.execute(lines.insert(), _lines(datetime(2026, 11, 20, 6, 0)))
    yield kind, url, engine
    engine.dispose()


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, lake: str, **table: Any) -> Config:
    env = f"SEAM_TEST_QUERY_URL_{uuid.uuid4().hex[:6].upper()}"
    monkeypatch.setenv(env, url)
    raw = {"lake": str(tmp_path / lake), "sources": {"src": {"url_env": env, "tables": {"q": table}}}}
    return parse_config(raw, base=tmp_path)


def _read(cfg: Config, day: date, keys: list[str]) -> tuple[pa.Table, dict[str, Any]]:
    lake = Lake(cfg.lake)
    manifest = lake.table_manifest("src", "q", day)
    assert manifest is not None
    table = pq.read_table(lake.table_partition("src", "q", day))
    return table.sort_by([(k, "ascending") for k in keys]), manifest


def _same(generic: pa.Table, fast: pa.Table) -> None:
    assert fast.schema == generic.schema
    assert fast.num_rows == generic.num_rows
    for i, (want, have) in enumerate(zip(generic.to_pylist(), fast.to_pylist(), strict=True)):
        assert have == want, f"row {i} differs"


def test_a_joined_query_reads_like_the_generic_path_type_for_type(source, tmp_path, monkeypatch):
    kind, url, _ = source
    got = {}
    # MariaDB's fallback without a client binary too (decimals rounded like the generic path's)
    readers = ["generic", "auto", *(["sscursor"] if kind == "mariadb" else [])]
    for reader in readers:
        cfg = _config(
            tmp_path, monkeypatch, url, f"lake-{reader}", dataset="none", query=QUERY, reader=reader
        )
        res = extract_table(cfg, "src", "q", DAY2)
        got[reader] = _read(cfg, DAY2, ["order_id", "line_no"])
        assert res.rows == 72
    (generic, gman), (fast, fman) = got["generic"], got["auto"]
    assert gman["method"] == "generic" and fman["method"] == FAST[kind]
    _same(generic, fast)
    if kind == "mariadb":
        assert got["sscursor"][1]["method"] == "sscursor"
        _same(generic, got["sscursor"][0])

    types = {f.name: f.type for f in fast.schema}
    assert types["order_id"] == types["line_no"] == types["big"] == pa.int64()
    assert (
        types["qty"]
        == types["price"]
        == types["doubled"]
        == types["weight"]
        == types["ratio"]
        == pa.float64()
    )
    assert types["placed_on"] == pa.date32()
    assert types["updated_at"] == pa.timestamp("us")
    assert types["note"] == types["label"] == types["a_label"] == pa.string()
    if kind == "postgresql":
        # the session's zone, as the driver's values had it (the instants are UTC either way)
        assert types["paid"] == pa.bool_() and types["placed_at"].tz is not None
    else:  # BOOLEAN is TINYINT(1); TIMESTAMP is read in the session's zone, without one
        assert types["paid"] == pa.int64() and types["placed_at"] == pa.timestamp("us")

    # and what was written, read back exactly (decimals as the nearest float, as the generic path)
    want = sorted(_lines(datetime(2026, 11, 20, 6, 0)), key=lambda r: (r["order_id"], r["line_no"]))
    rows = fast.to_pylist()
    assert [r["label"] for r in rows] == [w["label"] for w in want]
    assert [r["big"] for r in rows] == [w["big"] for w in want]
    assert [r["price"] for r in rows] == [None if w["price"] is None else float(w["price"]) for w in want]
    assert [r["updated_at"] for r in rows] == [w["updated_at"] for w in want]
    assert [r["a_label"] for r in rows] == [
        "a%" if (w["label"] or "").startswith("a") else None for w in want
    ]
    notes = {o["order_id"]: o["note"] for o in _orders()}
    assert [r["note"] for r in rows] == [notes[w["order_id"]] for w in want]


def test_an_empty_result_is_a_typed_partition(source, tmp_path, monkeypatch):
    _, url, _ = source
    query = QUERY + " WHERE l.order_id < 0"
    tables = {}
    for reader in ("generic", "auto"):
        cfg = _config(
            tmp_path, monkeypatch, url, f"lake-{reader}", dataset="none", query=query, reader=reader
        )
        assert extract_table(cfg, "src", "q", DAY2).rows == 0
        tables[reader], _ = _read(cfg, DAY2, ["order_id"])
    _same(tables["generic"], tables["auto"])
    assert tables["auto"].schema.field("qty").type == pa.float64()  # described, not guessed as text


ORDER_LINES = """
SELECT CONCAT('SO', l.order_id) AS order_id, l.line_no, o.placed_on AS order_date,
       'C1' AS customer_id, 'W1' AS warehouse, l.label AS channel, 'SKU-1' AS sku,
       l.line_no AS quantity, l.qty AS returned_quantity, l.price AS unit_price, l.ratio AS discount,
       'EUR' AS currency, 'open' AS status, {updated} AS updated_at
FROM items l JOIN orders o ON o.order_id = l.order_id
WHERE l.updated_at < :run_end AND l.updated_at >= COALESCE(:watermark, {epoch})
"""


def test_declared_kinds_and_an_incremental_window_read_alike(source, tmp_path, monkeypatch):
    """order_lines declares number/date/timestamp kinds: an integer read as a number, and the
    cursor a timestamp with a zone on PostgreSQL (read as UTC, then without the zone, as the
    generic path does); two nights with a look-back, the watermark moving alike."""
    kind, url, engine = source
    if kind == "postgresql":
        query = ORDER_LINES.format(updated="l.updated_at AT TIME ZONE 'UTC'", epoch="timestamp '1900-01-01'")
    else:
        query = ORDER_LINES.format(updated="l.updated_at", epoch="TIMESTAMP '1900-01-01 00:00:00'")
    cfgs = {
        reader: _config(
            tmp_path,
            monkeypatch,
            url,
            f"lake-{reader}",
            dataset="order_lines",
            query=query,
            reader=reader,
            mode="incremental",
            cursor="updated_at",
            lookback="2h",
        )
        for reader in ("generic", "auto")
    }
    lines = sa.Table("items", sa.MetaData(), autoload_with=engine)
    nights: dict[str, list[tuple[pa.Table, dict[str, Any]]]] = {"generic": [], "auto": []}
    for day, late in ((DAY1, None), (DAY2, datetime(2026, 11, 21, 23, 0))):
        if late is not None:  # a late change inside the look-back, and tonight's new lines
            with engine.begin() as conn:
                conn.execute(lines.update().where(lines.c.order_id == 3).values(updated_at=late))
                conn.execute(
                    lines.insert(),
                    [
                        {**r, "line_no": r["line_no"] + 5}
                        for r in _lines(datetime(2026, 11, 22, 1, 0), range(1, 4))
                    ],
                )
        for reader, cfg in cfgs.items():
            extract_table(cfg, "src", "q", day)
            nights[reader].append(_read(cfg, day, ["order_id", "line_no"]))
    for (generic, gman), (fast, fman) in zip(nights["generic"], nights["auto"], strict=True):
        assert gman["method"] == "generic" and fman["method"] == FAST[kind]
        _same(generic, fast)
        assert fman["watermark"] == gman["watermark"]
        assert fast.schema.field("quantity").type == pa.float64()
        assert fast.schema.field("updated_at").type == pa.timestamp("us")
        assert fast.schema.field("order_date").type == pa.date32()
    assert nights["auto"][0][0].num_rows == 72
    second = nights["auto"][1][0]
    # Night 1's watermark is 10:03 on the 20th (line k of order o changed k = 10*o + line minutes
    # after 06:00): the look-back reaches 08:03, so orders 13-24, the late order 3 and the new lines.
    assert second.num_rows == 36 + 3 + 9
    assert set(second.column("order_id").to_pylist()) == {f"SO{o}" for o in (1, 2, 3, *range(13, 25))}
    assert Lake(cfgs["auto"].lake).read_state("watermarks", "src", "q") == Lake(
        cfgs["generic"].lake
    ).read_state("watermarks", "src", "q")


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_the_demo_order_lines_query_takes_the_bulk_path_with_the_same_parquet(
    kind, request, tmp_path, monkeypatch
):
    url = request.getfixturevalue("pg_database" if kind == "postgresql" else "mariadb_database")()
    demo_env = request.getfixturevalue("demo_env")
    path = demo_env(url, lean=True)
    raw = yaml.safe_load(path.read_text())
    demo = yaml.safe_load((Path(__file__).parents[2] / "config" / "demo.yml").read_text())
    assert (
        raw["sources"]["erp"]["tables"]["order_lines"]["query"]
        == demo["sources"]["erp"]["tables"]["order_lines"]["query"]
    )
    got = {}
    for reader in ("generic", "auto"):
        raw["lake"] = str(tmp_path / f"lake-{reader}")
        raw["sources"]["erp"]["tables"]["order_lines"]["reader"] = reader
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        cfg = load_config(path)
        res = extract_table(cfg, "erp", "order_lines", NIGHT)
        lake = Lake(cfg.lake)
        manifest = lake.table_manifest("erp", "order_lines", NIGHT)
        assert manifest is not None and manifest["method"] == (
            "generic" if reader == "generic" else FAST[kind]
        )
        table = pq.read_table(lake.table_partition("erp", "order_lines", NIGHT))
        got[reader] = (res.rows, table.sort_by([("order_id", "ascending"), ("line_no", "ascending")]))
    assert got["auto"][0] == got["generic"][0] > 1000
    assert got["auto"][1].equals(got["generic"][1], check_metadata=True)


def test_a_query_depending_on_the_session_zone_reads_alike_in_a_zone_west_of_utc(
    pg_database, tmp_path, monkeypatch
):
    """COPY leaves the server's session zone alone: `::date` and `::timestamp` of a timestamptz,
    and a wall-clock bind against one, mean what they mean on the generic path (New York here)."""
    url = pg_database()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER DATABASE \"{engine.url.database}\" SET TimeZone = 'America/New_York'")
        conn.exec_driver_sql("CREATE TABLE events (id integer PRIMARY KEY, at timestamptz)")
        conn.exec_driver_sql(
            "INSERT INTO events VALUES (1, '2026-11-22 02:30:00+00'), (2, '2026-11-22 23:59:59.999999-05'), "
            "(3, '2026-11-23 04:00:00+00'), (4, NULL), (5, '1850-01-01 12:00:00 America/New_York'), "
            "(6, '2026-11-23 06:00:00+00')"
        )
    engine.dispose()
    query = (
        "SELECT id, at, at::date AS day, at::timestamp AS wall, current_setting('TimeZone') AS zone "
        "FROM events WHERE at < :run_end OR at IS NULL"
    )
    got = {}
    for reader in ("generic", "auto"):
        cfg = _config(
            tmp_path, monkeypatch, url, f"lake-{reader}", dataset="none", query=query, reader=reader
        )
        extract_table(cfg, "src", "q", DAY2)
        got[reader] = _read(cfg, DAY2, ["id"])
    (generic, _), (fast, fman) = got["generic"], got["auto"]
    assert fman["method"] == "copy"
    _same(generic, fast)
    rows = {r["id"]: r for r in fast.to_pylist()}
    # run_end (midnight, wall clock) is 05:00 UTC in New York: 04:00 UTC is before it, 06:00 not
    assert set(rows) == {1, 2, 3, 4, 5}
    assert rows[1]["day"] == date(2026, 11, 21) and rows[1]["zone"] == "America/New_York"
    assert rows[2]["wall"] == datetime(2026, 11, 22, 23, 59, 59, 999999)
    assert rows[1]["at"] == datetime(2026, 11, 22, 2, 30, tzinfo=UTC)


def test_an_outer_join_nulls_a_not_null_column_and_the_word_null_stays_a_string(
    source, tmp_path, monkeypatch
):
    """MariaDB describes an inner join's NOT NULL columns as such (read without the NULL-safe
    mark) and clears the flag where an outer join can make them NULL."""
    kind, url, _ = source
    query = (
        "SELECT o.order_id, l.line_no, l.sku, l.updated_at, o.note FROM orders o "
        "LEFT JOIN items l ON l.order_id = o.order_id AND l.line_no = 1"
    )
    got = {}
    for name, q in (("outer", query), ("inner", query.replace("LEFT JOIN", "JOIN"))):
        for reader in ("generic", "auto"):
            cfg = _config(
                tmp_path, monkeypatch, url, f"lake-{name}-{reader}", dataset="none", query=q, reader=reader
            )
            extract_table(cfg, "src", "q", DAY2)
            got[name, reader] = _read(cfg, DAY2, ["order_id"])
    for name in ("outer", "inner"):
        (generic, _), (fast, manifest) = got[name, "generic"], got[name, "auto"]
        assert manifest["method"] == FAST[kind]
        _same(generic, fast)
    skus = got["outer", "auto"][0].column("sku").to_pylist()
    assert skus[-3:] == [None, None, None] and "NULL" in skus  # orders 25-27 have no items
    assert (
        got["inner", "auto"][0].num_rows == 24 and "NULL" in got["inner", "auto"][0].column("sku").to_pylist()
    )
