"""The typed result-table definitions (`pipelines.results`) agree with every dialect's migrated DDL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from pipelines.db import make_engine
from pipelines.results import METADATA
from pipelines.state import migrate

pytestmark = pytest.mark.integration


def kind(t: sa.types.TypeEngine) -> str:
    """A dialect-independent name of a column type (what the contract promises)."""
    if isinstance(t, sa.Boolean) or (isinstance(t, mysql.TINYINT) and t.display_width == 1):
        return "boolean"
    if isinstance(t, sa.BigInteger):
        return "bigint"
    if isinstance(t, sa.Integer):
        return "integer"
    if isinstance(t, sa.Float | sa.Double | sa.REAL) or (isinstance(t, sa.Numeric) and not t.asdecimal):
        return "float"
    if isinstance(t, sa.DateTime):
        return "timestamp"
    if isinstance(t, sa.Date):
        return "date"
    if isinstance(t, sa.Text):
        return "text"
    if isinstance(t, sa.String):
        return f"varchar({t.length})" if t.length else "text"
    raise AssertionError(f"unexpected column type {t!r}")


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'results.db'}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("pg_database")()
    else:
        url = request.getfixturevalue("mariadb_database")()
    engine = make_engine(url, write=True)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("table", sorted(METADATA.tables))
def test_migrated_table_matches_its_definition(migrated: sa.Engine, table: str) -> None:
    want = METADATA.tables[table]
    got = sa.Table(table, sa.MetaData(), autoload_with=migrated)
    assert [c.name for c in got.columns] == [c.name for c in want.columns]
    for w in want.columns:
        g = got.columns[w.name]
        assert (kind(g.type), bool(g.nullable)) == (kind(w.type), bool(w.nullable)), f"{table}.{w.name}"
        if migrated.dialect.name == "postgresql" and isinstance(w.type, sa.DateTime):
            assert g.type.timezone == w.type.timezone, f"{table}.{w.name} time zone"
    assert [c.name for c in got.primary_key.columns] == [c.name for c in want.primary_key.columns]
