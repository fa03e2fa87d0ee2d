"""Every bulk reader survives any byte: PostgreSQL's COPY and MariaDB's client stream and SSCursor
return, row for row, what the generic SQLAlchemy path returns, and that is what was written; for
a table and for a query (a join) over it.

Hostile text is generated (hypothesis, derandomized: the same examples on every run): every
control character, tab, newline, carriage return, backslashes, quotes, `\\N`, the word NULL,
delimiters, the client reader's NULL-safe mark, emoji, leading and trailing spaces, empty strings
next to NULLs, values of ~100k characters.  Bytes columns get arbitrary bytes, invalid UTF-8
included.

What each database allows, and so what seam does:
- NUL: PostgreSQL text cannot hold it (the driver refuses the value, nothing is written); MariaDB
  text and both databases' bytes columns hold it and every reader returns it.
- Invalid UTF-8: neither server stores it in a text column (PostgreSQL refuses it, strict MariaDB
  refuses it), so text is always valid when read; bytes columns (bytea, BLOB, VARBINARY) are read
  as Arrow binary and kept byte for byte by every reader.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql

from pipelines.config import parse_config
from pipelines.extract import extract_table
from pipelines.lake import Lake

DAY = date(2026, 11, 22)
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples on every run: never flaky
    database=None,
    suppress_health_check=[
        # one database per test, emptied at the start of each example
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
CONTROL = [chr(i) for i in range(1, 32)] + ["\x7f"]
NASTY = ["\\", "\\N", "\\\\", "\\n", "\\t", "\\r", "NULL", "null", "~", "~NULL", '"', "'", "`", ",", ";", "|"]
NASTY += ["\r\n", "\n\r", " ", "\u00a0", "\u2028", "\u0085", "\ufeff", "😀", "👩‍👩‍👧", "é", "ß", "中"]


# the table through a query: its columns' types are the ones the database describes for the result
QUERY = "SELECT h.id, h.t, h.n, h.b, h.bn FROM hostile h JOIN hostile k ON k.id = h.id WHERE k.n LIKE '%'"


def texts(*, nul: bool, long: bool = True) -> st.SearchStrategy[str]:
    """Short strings of hostile pieces and any other character; sometimes (`long`) ~100k
    characters long."""
    chars = st.characters(exclude_categories=["Cs"], exclude_characters=[] if nul else ["\x00"])
    piece = st.one_of(st.sampled_from(CONTROL + NASTY + (["\x00"] if nul else [])), chars)
    short = st.lists(piece, max_size=12).map("".join)
    padded = short.map(lambda s: f"  {s}  ")
    if not long:
        return st.one_of(short, padded)
    huge = st.builds(lambda p, n: (p * n)[:100_000], short.filter(bool), st.integers(1, 100_000))
    return st.one_of(short, padded, huge)


INVALID_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\x80"]
BYTES = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from([*INVALID_UTF8, b"\x00", b"\r", b"\n", b"\t", b"\\", b"NULL", b"~", b"\\x"]))
    .map(b"".join)
    .map(lambda b: b[:255]),
)


def rows(*, nul: bool) -> st.SearchStrategy[list[dict[str, Any]]]:
    text = texts(nul=nul)
    row = st.fixed_dictionaries({"t": st.none() | text, "n": text, "b": st.none() | BYTES, "bn": BYTES})
    return st.lists(row, min_size=1, max_size=6)


def _table(dialect: str) -> sa.Table:
    if dialect == "postgresql":
        text, big_text, blob, short_blob = sa.Text(), sa.Text(), sa.LargeBinary(), sa.LargeBinary()
    else:
        text, big_text, blob, short_blob = (
            mysql.LONGTEXT(),
            mysql.MEDIUMTEXT(),
            mysql.LONGBLOB(),
            mysql.VARBINARY(255),
        )
    return sa.Table(
        "hostile",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("t", text, nullable=True),
        sa.Column("n", big_text, nullable=False),
        sa.Column("b", blob, nullable=True),
        sa.Column("bn", short_blob, nullable=False),
    )


class Source:
    """One database with the `hostile` table, read by extraction with any reader."""

    def __init__(self, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.engine = sa.create_engine(url)
        self.table = _table(self.engine.dialect.name)
        self.tmp_path = tmp_path
        self.env = f"SEAM_TEST_READER_URL_{uuid.uuid4().hex[:6].upper()}"
        monkeypatch.setenv(self.env, url)
        with self.engine.begin() as conn:
            self.table.create(conn)

    def write(self, values: list[dict[str, Any]], *, spread: int = 1) -> list[dict[str, Any]]:
        """Replace the table's rows; ids `spread` apart (a wide span makes MariaDB split it)."""
        rows = [{"id": i * spread, **v} for i, v in enumerate(values)]
        with self.engine.begin() as conn:
            conn.execute(self.table.delete())
            conn.execute(self.table.insert(), rows)
        return rows

    def read(self, reader: str, *, query: bool = False) -> tuple[pa.Table, dict[str, Any]]:
        """The extracted partition (sorted by id) and its manifest; of the table, or of a query
        joining it to itself."""
        lake = self.tmp_path / f"lake-{reader}{'-query' if query else ''}"
        what = {"query": QUERY} if query else {"table": "hostile"}
        raw = {
            "lake": str(lake),
            "sources": {
                "src": {
                    "url_env": self.env,
                    "tables": {"hostile": {"dataset": "none", "reader": reader, **what}},
                }
            },
        }
        cfg = parse_config(raw, base=self.tmp_path)
        extract_table(cfg, "src", "hostile", DAY)
        store = Lake(cfg.lake)
        manifest = store.table_manifest("src", "hostile", DAY)
        assert manifest is not None
        return pq.read_table(store.table_partition("src", "hostile", DAY)).sort_by("id"), manifest

    def dispose(self) -> None:
        self.engine.dispose()


def _check_readers(
    source: Source, written: list[dict[str, Any]], fast: list[str], *, query: bool = False
) -> None:
    generic, manifest = source.read("generic", query=query)
    assert manifest["method"] == "generic"
    assert generic.to_pylist() == sorted(written, key=lambda r: r["id"])
    assert pa.types.is_binary(generic.schema.field("b").type)
    assert pa.types.is_binary(generic.schema.field("bn").type)
    for reader in fast:
        got, manifest = source.read(reader, query=query)
        assert manifest["method"] == reader
        assert got.schema == generic.schema, reader
        for i, (want, have) in enumerate(zip(generic.to_pylist(), got.to_pylist(), strict=True)):
            assert have == want, f"{reader}: row {i} differs"
        assert got.num_rows == generic.num_rows


# Explicit examples: the bytes every reader must survive, whatever the generator draws.
EVERY_CONTROL = "".join(CONTROL)
KNOWN = [
    {"t": EVERY_CONTROL, "n": "a\r\nb\rc", "b": b"\r\x00\xff\\", "bn": b"\\x00"},
    {"t": None, "n": "", "b": None, "bn": b""},
    {"t": "", "n": "NULL", "b": b"", "bn": b"NULL"},
    {"t": "NULL", "n": "\\N", "b": b"NULL", "bn": b"~"},
    {"t": "~", "n": " \t lead and trail \t ", "b": b"\\N", "bn": b"\xc3"},
]
LONG = [  # a separate example: a failure of the short ones prints short
    {"t": "x" * 100_000, "n": "😀" * 50_000, "b": bytes(range(256)) * 40, "bn": bytes(range(256))[:255]},
    {"t": "\r\n\\" * 30_000, "n": "\t" * 100_000, "b": b"\r" * 100_000, "bn": b"\\"},
]


@pytest.fixture
def pg_source(pg_database, tmp_path, monkeypatch):
    source = Source(pg_database(), tmp_path, monkeypatch)
    yield source
    source.dispose()


@pytest.fixture
def mariadb_source(mariadb_database, tmp_path, monkeypatch):
    source = Source(mariadb_database(), tmp_path, monkeypatch)
    yield source
    source.dispose()


@given(values=rows(nul=False))
@example(values=KNOWN)
@example(values=LONG)
@PROPERTY
def test_postgresql_copy_reads_hostile_rows_like_the_generic_path(pg_source, values):
    _check_readers(pg_source, pg_source.write(values), ["copy"])


KNOWN_MARIADB = [*KNOWN, {"t": "nul\x00inside\x00", "n": "\x00", "b": b"\x00", "bn": b"\x00\x00"}]


@given(values=rows(nul=True))
@example(values=KNOWN_MARIADB)
@example(values=LONG)
@PROPERTY
def test_mariadb_readers_read_hostile_rows_like_the_generic_path(mariadb_source, values):
    # ids 600k apart: from three rows on, the client reads two key ranges on parallel streams
    _check_readers(mariadb_source, mariadb_source.write(values, spread=600_000), ["mysql_client", "sscursor"])


@given(values=rows(nul=False))
@example(values=KNOWN)
@PROPERTY
def test_postgresql_copy_reads_a_hostile_query_like_the_generic_path(pg_source, values):
    _check_readers(pg_source, pg_source.write(values), ["copy"], query=True)


@given(values=rows(nul=True))
@example(values=KNOWN_MARIADB)
@PROPERTY
def test_mariadb_readers_read_a_hostile_query_like_the_generic_path(mariadb_source, values):
    _check_readers(mariadb_source, mariadb_source.write(values), ["mysql_client", "sscursor"], query=True)


def test_postgresql_text_refuses_nul_and_invalid_utf8_with_nothing_written(pg_source):
    pg_source.write([{"t": "kept", "n": "kept", "b": None, "bn": b""}])
    with pytest.raises(sa.exc.DataError, match="NUL"):
        pg_source.write([{"t": "a\x00b", "n": "x", "b": None, "bn": b""}])
    with pytest.raises(sa.exc.DataError, match="invalid byte sequence"), pg_source.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM hostile"))
        conn.execute(
            sa.text("INSERT INTO hostile VALUES (1, convert_from('\\x61ff'::bytea, 'UTF8'), 'x', NULL, '')")
        )
    for reader in ("generic", "copy"):  # the refused writes left the earlier row as it was
        got, _ = pg_source.read(reader)
        assert got.column("t").to_pylist() == ["kept"]


def test_mariadb_text_refuses_invalid_utf8_with_nothing_written(mariadb_source):
    mariadb_source.write([{"t": "kept", "n": "kept", "b": None, "bn": b""}])
    with (
        pytest.raises(sa.exc.DataError, match="Incorrect string value"),
        mariadb_source.engine.begin() as conn,
    ):
        conn.execute(sa.text("DELETE FROM hostile"))
        conn.execute(sa.text("INSERT INTO hostile VALUES (1, x'61ff', 'x', NULL, '')"))
    for reader in ("generic", "mysql_client", "sscursor"):
        got, _ = mariadb_source.read(reader)
        assert got.column("t").to_pylist() == ["kept"]


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_one_column_table_keeps_its_null_and_empty_rows(kind, request, tmp_path, monkeypatch):
    """A row of one NULL (PostgreSQL's CSV) or one '' (MariaDB, a NOT NULL column) is an empty line."""
    url = request.getfixturevalue("pg_database" if kind == "postgresql" else "mariadb_database")()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE one (v VARCHAR(20))")
        conn.exec_driver_sql("CREATE TABLE one_nn (v VARCHAR(20) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO one VALUES (NULL), (''), ('x'), (NULL)")
        conn.exec_driver_sql("INSERT INTO one_nn VALUES (''), ('x'), ('')")
    engine.dispose()
    monkeypatch.setenv("SEAM_TEST_ONE_URL", url)
    fast = "copy" if kind == "postgresql" else "mysql_client"
    for table, want in (("one", [None, None, "", "x"]), ("one_nn", ["", "", "x"])):
        for reader in ("generic", fast):
            raw = {
                "lake": str(tmp_path / f"lake-{reader}"),
                "sources": {
                    "src": {
                        "url_env": "SEAM_TEST_ONE_URL",
                        "tables": {table: {"dataset": "none", "table": table, "reader": reader}},
                    }
                },
            }
            cfg = parse_config(raw, base=tmp_path)
            res = extract_table(cfg, "src", table, DAY)
            got = pq.read_table(Lake(cfg.lake).table_partition("src", table, DAY)).column("v").to_pylist()
            assert res.rows == len(want), (table, reader)
            assert sorted(got, key=lambda v: (v is not None, v)) == want, (table, reader)
