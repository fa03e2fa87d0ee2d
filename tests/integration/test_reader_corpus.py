"""Thousands of generated hostile rows per bulk reader, in one extraction each.

`test_reader_bytes.py` runs each hypothesis example as its own table and extraction (shrinking a
failure to its smallest row set), so it affords tens of examples. Here the same strategies
(hypothesis, derandomized: the same rows on every run) generate a few thousand rows without
drawing a database round trip for each: they are written into one table, every reader extracts it
once as a table and once through a query, and each row is compared with what the generic path
read and with what was written. A
failure names the row and its values; re-running that row through `test_reader_bytes.py` shrinks it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.integration import test_reader_bytes as readers
from tests.integration.test_reader_bytes import BYTES, Source, texts

# the reader test's databases with its `hostile` table
pg_source = readers.pg_source
mariadb_source = readers.mariadb_source

ROWS = 3000  # per reader and database
PER_EXAMPLE = 50  # rows drawn per hypothesis example: far fewer examples to run, no overrun


def corpus(*, nul: bool, n: int = ROWS) -> list[dict[str, Any]]:
    """`n` (a multiple of `PER_EXAMPLE`) rows drawn from the reader test's strategies (short hostile texts and bytes)."""
    text = texts(nul=nul, long=False)
    row = st.fixed_dictionaries({"t": st.none() | text, "n": text, "b": st.none() | BYTES, "bn": BYTES})
    drawn: list[dict[str, Any]] = []

    @settings(
        max_examples=n // PER_EXAMPLE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(row, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def draw(values: list[dict[str, Any]]) -> None:
        drawn.extend(values)

    draw()
    assert len(drawn) == n, f"hypothesis drew {len(drawn)} of {n} rows"
    return drawn


def _compare(source: Source, written: list[dict[str, Any]], readers: list[str]) -> None:
    want = sorted(written, key=lambda r: r["id"])
    for query in (False, True):  # the table, and a query joining it to itself
        generic, manifest = source.read("generic", query=query)
        assert manifest["method"] == "generic"
        got = generic.to_pylist()
        assert len(got) == len(want)
        for w, g in zip(want, got, strict=True):
            assert g == w, f"generic: row id {w['id']} read back as {g!r}, written {w!r}"
        for reader in readers:
            table, manifest = source.read(reader, query=query)
            what = f"{reader}{' (query)' if query else ''}"
            assert manifest["method"] == reader, what
            assert table.schema == generic.schema, what
            for w, g in zip(got, table.to_pylist(), strict=True):
                assert g == w, f"{what}: row id {w['id']} read as {g!r}; the generic path read {w!r}"


def test_postgresql_copy_reads_thousands_of_hostile_rows_like_the_generic_path(pg_source):
    rows = corpus(nul=False)
    _compare(pg_source, pg_source.write(rows), ["copy"])


def test_mariadb_readers_read_thousands_of_hostile_rows_like_the_generic_path(mariadb_source):
    rows = corpus(nul=True)
    # ids 600 apart: 1.8M keys, so the client reads two key ranges on parallel streams
    _compare(mariadb_source, mariadb_source.write(rows, spread=600), ["mysql_client", "sscursor"])


def test_the_corpus_is_hostile_and_the_same_on_every_run():
    a, b = corpus(nul=True, n=400), corpus(nul=True, n=400)
    assert a == b  # derandomized
    text = "".join(r["n"] for r in a)
    assert {"\r", "\n", "\t", "\\", "\x00"} <= set(text)
    assert any(r["t"] is None for r in a) and any(r["b"] is None for r in a)
    assert any(r["n"] == "" for r in a) and any(r["n"] != r["n"].strip() for r in a)
    assert any(b"\xff" in r["bn"] or b"\xc3" in r["bn"] for r in a)
