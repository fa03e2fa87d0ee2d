"""A second ERP (PostgreSQL) and CRM (MariaDB) that nobody shaped for seam, and the config mapping them.

The ERP keeps invoices as `invoice_head` / `invoice_pos` in a schema of its own (`vertrieb`), with
German and abbreviated names, integer keys, no line numbers, gross prices beside a discount in
percent, a NUMERIC weight per position, no currency column, a `region` column on the warehouses that
is an obsolete code (the region planners mean is `vertriebsgebiet`), no promotions and no stock-outs.
It trades on weekdays only; its 60 articles x 8 warehouses are sparse series with a handful of orders
each. The CRM has companies, opportunities with German stage names and DECIMAL amounts, and a contact
log that is no canonical dataset; it has no tickets.

Everything is deterministic for a seed. `build_erp`/`build_crm` create the tables with plain SQL and
fill them through SQLAlchemy; `write_config` writes the seam config that maps them, from config alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa
import yaml

GROUPS = ("Werkzeug", "Befestigung", "Elektro", "Sanitaer", "Farbe")
AREAS = ("Nord", "Sued", "West", "Ost")
CHANNELS = ("EDI", "Telefon", "Web")
PHASES = ("Erstkontakt", "Qualifiziert", "Angebot", "Verhandlung", "Gewonnen", "Verloren")


@dataclass(frozen=True)
class ForeignSize:
    products: int = 60
    locations: int = 8
    customers: int = 120
    accounts: int = 80
    start: date = date(2025, 6, 2)
    end: date = date(2026, 11, 23)  # the last day with data (a Monday)
    invoices_per_day: float = 12.0
    seed: int = 20
    # the sparse series that gets one ordinary order on `end`: (article index, location index)
    planted: tuple[int, int] = (59, 7)
    planted_history: tuple[str, ...] = field(default=("2025-09-03", "2026-01-14", "2026-05-20", "2026-09-09"))


def artnr(i: int) -> str:
    return f"A-{10001 + i}"


def lager_nr(j: int) -> str:
    return f"L{j + 1:02d}"


def weekdays(size: ForeignSize) -> list[date]:
    days = (size.end - size.start).days + 1
    all_days = (size.start + timedelta(days=d) for d in range(days))
    return [d for d in all_days if d.weekday() < 5]


ERP_DDL = """
CREATE SCHEMA vertrieb;
CREATE TABLE vertrieb.artikel (
    artnr VARCHAR(12) PRIMARY KEY, bezeichnung VARCHAR(80) NOT NULL, warengruppe VARCHAR(20) NOT NULL,
    listenpreis NUMERIC(10, 2) NOT NULL, geaendert_am TIMESTAMP NOT NULL);
CREATE TABLE vertrieb.lager (
    lager_nr VARCHAR(3) PRIMARY KEY, lager_name VARCHAR(40) NOT NULL,
    region VARCHAR(10) NOT NULL,              -- an obsolete region code nobody uses any more
    vertriebsgebiet VARCHAR(10) NOT NULL);    -- the sales area planners call "region"
CREATE TABLE vertrieb.kunde (
    kdnr INTEGER PRIMARY KEY, firma VARCHAR(80) NOT NULL, region VARCHAR(10),
    angelegt_am TIMESTAMP NOT NULL);
CREATE TABLE vertrieb.invoice_head (
    beleg_nr INTEGER PRIMARY KEY, beleg_datum DATE NOT NULL, kdnr INTEGER NOT NULL,
    lager_nr VARCHAR(3) NOT NULL, kanal VARCHAR(10) NOT NULL, storniert BOOLEAN NOT NULL DEFAULT false,
    erfasst_am TIMESTAMP NOT NULL);
CREATE TABLE vertrieb.invoice_pos (
    pos_id BIGINT PRIMARY KEY, beleg_nr INTEGER NOT NULL REFERENCES vertrieb.invoice_head,
    artnr VARCHAR(12) NOT NULL, menge NUMERIC(12, 3) NOT NULL,
    brutto_preis NUMERIC(12, 2) NOT NULL,     -- list price per unit, before the discount
    rabatt_pct NUMERIC(5, 2) NOT NULL,        -- discount in percent
    gewicht_kg NUMERIC(10, 3),                -- shipping weight, sometimes unknown
    geaendert_am TIMESTAMP NOT NULL);
"""

CRM_DDL = """
CREATE TABLE firmen (
    firma_id INT PRIMARY KEY, firmenname VARCHAR(80) NOT NULL, branche VARCHAR(30),
    erp_kdnr INT NULL, aktualisiert DATETIME NOT NULL);
CREATE TABLE chancen (
    chance_id INT PRIMARY KEY, firma_id INT NOT NULL, phase VARCHAR(20) NOT NULL,
    betrag DECIMAL(12, 2) NOT NULL, abschluss DATE, angelegt DATETIME NOT NULL, geaendert DATETIME NOT NULL);
CREATE TABLE kontakte (
    kontakt_id INT PRIMARY KEY, firma_id INT NOT NULL, kanal VARCHAR(10) NOT NULL,
    zeitpunkt DATETIME NOT NULL, dauer_min DECIMAL(6, 1));
"""


def _execute_ddl(engine: sa.Engine, ddl: str) -> None:
    with engine.begin() as conn:
        for stmt in filter(str.strip, ddl.split(";")):
            conn.exec_driver_sql(stmt)


def _insert(conn: sa.Connection, table: str, rows: list[dict]) -> None:
    if rows:
        cols = list(rows[0])
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"
        conn.execute(sa.text(sql), rows)


def _at(day: date, rng: np.random.Generator) -> datetime:
    """A moment during office hours of `day`."""
    return datetime.combine(day, time(7)) + timedelta(minutes=int(rng.integers(0, 10 * 60)))


def build_erp(url: str, size: ForeignSize = ForeignSize()) -> dict[str, int]:
    """Create and fill the ERP; returns row counts per table."""
    rng = np.random.default_rng(size.seed)
    engine = sa.create_engine(url)
    _execute_ddl(engine, ERP_DDL)
    created = datetime.combine(size.start, time(6))
    prices = np.round(rng.lognormal(3.0, 0.8, size.products), 2)
    artikel = [
        {
            "artnr": artnr(i),
            "bezeichnung": f"Artikel {i + 1} {GROUPS[i % len(GROUPS)]}",
            "warengruppe": GROUPS[i % len(GROUPS)],
            "listenpreis": float(prices[i]),
            "geaendert_am": created,
        }
        for i in range(size.products)
    ]
    lager = [
        {
            "lager_nr": lager_nr(j),
            "lager_name": f"Lager {j + 1}",
            "region": f"R{j % 3}",
            "vertriebsgebiet": AREAS[j % len(AREAS)],
        }
        for j in range(size.locations)
    ]
    kunde = [
        {"kdnr": 50001 + k, "firma": f"Kunde {k + 1} GmbH", "region": AREAS[k % 4], "angelegt_am": created}
        for k in range(size.customers)
    ]
    # sparse demand: a few articles sell often, most a handful of times per warehouse
    art_w = 1.0 / np.arange(1, size.products + 1) ** 1.1
    art_w[list(range(size.planted[0], size.products))] = 0.0  # the planted series' article: by hand
    art_w /= art_w.sum()
    loc_w = rng.dirichlet(np.full(size.locations, 4.0))
    heads: list[dict] = []
    positions: list[dict] = []

    def invoice(day: date, loc: int, lines: list[tuple[int, float]], cancelled: bool = False) -> None:
        beleg = 700001 + len(heads)
        at = _at(day, rng)
        heads.append(
            {
                "beleg_nr": beleg,
                "beleg_datum": day,
                "kdnr": 50001 + int(rng.integers(0, size.customers)),
                "lager_nr": lager_nr(loc),
                "kanal": CHANNELS[int(rng.integers(0, len(CHANNELS)))],
                "storniert": cancelled,
                "erfasst_am": at,
            }
        )
        for art, qty in lines:
            rabatt = float(rng.choice([0, 0, 0, 5, 10, 15, 30]))
            weight = None if rng.random() < 0.1 else round(float(rng.uniform(0.1, 25)), 3)
            positions.append(
                {
                    # ids of every invoice's positions are neither 1.. nor contiguous
                    "pos_id": 9_000_000 + 7 * len(positions) + int(rng.integers(0, 7)),
                    "beleg_nr": beleg,
                    "artnr": artnr(art),
                    "menge": qty,
                    "brutto_preis": float(prices[art]),
                    "rabatt_pct": rabatt,
                    "gewicht_kg": weight,
                    "geaendert_am": at,
                }
            )

    planted_days = {date.fromisoformat(d) for d in size.planted_history}
    for day in weekdays(size):
        for _ in range(int(rng.poisson(size.invoices_per_day))):
            loc = int(rng.choice(size.locations, p=loc_w))
            n = int(rng.integers(1, 4))
            arts = rng.choice(size.products, size=n, replace=False, p=art_w)
            lines = [(int(a), float(1 + rng.geometric(0.4) - 1)) for a in arts]
            invoice(day, loc, lines, cancelled=bool(rng.random() < 0.02))
        if day in planted_days or day == size.end:
            # the sparse series: one or two units a few times a year, one ordinary unit on the last day
            invoice(
                day,
                size.planted[1],
                [(size.planted[0], 1.0 if day == size.end else float(1 + len(heads) % 2))],
            )
    with engine.begin() as conn:
        _insert(conn, "vertrieb.artikel", artikel)
        _insert(conn, "vertrieb.lager", lager)
        _insert(conn, "vertrieb.kunde", kunde)
        _insert(conn, "vertrieb.invoice_head", heads)
        _insert(conn, "vertrieb.invoice_pos", positions)
    engine.dispose()
    return {"artikel": len(artikel), "invoice_head": len(heads), "invoice_pos": len(positions)}


def build_crm(url: str, size: ForeignSize = ForeignSize()) -> dict[str, int]:
    """Create and fill the CRM; returns row counts per table."""
    rng = np.random.default_rng(size.seed + 1)
    engine = sa.create_engine(url)
    _execute_ddl(engine, CRM_DDL)
    created = datetime.combine(size.start, time(6))
    firmen = [
        {
            "firma_id": 301 + a,
            "firmenname": f"Firma {a + 1} AG",
            "branche": ("Bau", "Handel", "Industrie", None)[a % 4],
            "erp_kdnr": 50001 + a if a % 3 else None,
            "aktualisiert": created,
        }
        for a in range(size.accounts)
    ]
    chancen: list[dict] = []
    kontakte: list[dict] = []
    for day in weekdays(size):
        for _ in range(int(rng.poisson(1.5))):
            at = _at(day, rng)
            chancen.append(
                {
                    "chance_id": 8001 + len(chancen),
                    "firma_id": 301 + int(rng.integers(0, size.accounts)),
                    "phase": PHASES[int(rng.integers(0, len(PHASES)))],
                    "betrag": round(float(rng.lognormal(8, 1)), 2),
                    "abschluss": day + timedelta(days=int(rng.integers(20, 120))),
                    "angelegt": at,
                    "geaendert": at,
                }
            )
        for _ in range(int(rng.poisson(6))):
            kontakte.append(
                {
                    "kontakt_id": 1 + len(kontakte),
                    "firma_id": 301 + int(rng.integers(0, size.accounts)),
                    "kanal": ("Mail", "Telefon", "Besuch")[int(rng.choice(3, p=[0.6, 0.3, 0.1]))],
                    "zeitpunkt": _at(day, rng),
                    "dauer_min": round(float(rng.uniform(1, 90)), 1),
                }
            )
    with engine.begin() as conn:
        _insert(conn, "firmen", firmen)
        _insert(conn, "chancen", chancen)
        _insert(conn, "kontakte", kontakte)
    engine.dispose()
    return {"firmen": len(firmen), "chancen": len(chancen), "kontakte": len(kontakte)}


# The ERP's order lines: line numbers derived per invoice over all its positions *before* the
# incremental filter (a line keeps its number when only some positions changed), the net price
# derived from the gross price and the discount in percent.
ORDER_LINES_QUERY = """\
SELECT x.* FROM (
  SELECT CAST(p.beleg_nr AS VARCHAR(12)) AS order_id,
         row_number() OVER (PARTITION BY p.beleg_nr ORDER BY p.pos_id) AS line_no,
         h.beleg_datum AS order_date, h.kdnr AS customer_id, h.lager_nr AS warehouse,
         h.kanal AS channel, p.artnr AS sku, p.menge AS quantity,
         ROUND(p.brutto_preis * (1 - p.rabatt_pct / 100), 4) AS unit_price,
         p.rabatt_pct / 100 AS discount,
         CASE WHEN h.storniert THEN 'cancelled' ELSE 'shipped' END AS status,
         p.gewicht_kg, p.geaendert_am AS updated_at
  FROM vertrieb.invoice_pos p
  JOIN vertrieb.invoice_head h ON h.beleg_nr = p.beleg_nr
  WHERE h.erfasst_am < :run_end
) x
WHERE x.updated_at < :run_end
  AND (CAST(:watermark AS TIMESTAMP) IS NULL OR x.updated_at >= CAST(:watermark AS TIMESTAMP))
"""


def config(erp_env: str, crm_env: str, lake: Path, reports: Path) -> dict:
    """The seam config of the foreign ERP and CRM: every difference mapped in the file."""
    return {
        "lake": str(lake),
        "timezone": "Europe/Berlin",
        "sources": {
            "erp": {
                "url_env": erp_env,
                "schema": "vertrieb",
                "tables": {
                    "positionen": {
                        "dataset": "order_lines",
                        "query": ORDER_LINES_QUERY,
                        "mode": "incremental",
                        "lookback": "3d",
                        "constants": {"currency": "EUR"},
                        "casts": {"customer_id": "string"},
                        # nobody orders at the weekend: Monday's night sees Friday's lines as newest
                        "freshness": {"max_age": "4d", "severity": "error"},
                    },
                    "artikel": {
                        "dataset": "products",
                        "columns": {
                            "sku": "artnr",
                            "name": "bezeichnung",
                            "category": "warengruppe",
                            "list_price": "listenpreis",
                            "updated_at": "geaendert_am",
                        },
                    },
                    "lager": {
                        "dataset": "warehouses",
                        # `region` is taken over by the sales area; the table's own `region` is obsolete
                        "columns": {
                            "warehouse": "lager_nr",
                            "name": "lager_name",
                            "region": "vertriebsgebiet",
                        },
                    },
                    "kunde": {
                        "dataset": "customers",
                        "columns": {"customer_id": "kdnr", "name": "firma"},
                        "casts": {"customer_id": "string"},
                    },
                },
            },
            "crm": {
                "url_env": crm_env,
                "tables": {
                    "firmen": {
                        "dataset": "accounts",
                        "columns": {
                            "account_id": "firma_id",
                            "name": "firmenname",
                            "industry": "branche",
                            "erp_customer_id": "erp_kdnr",
                            "updated_at": "aktualisiert",
                        },
                        "casts": {"account_id": "string", "erp_customer_id": "string"},
                    },
                    "chancen": {
                        "dataset": "opportunities",
                        "columns": {
                            "opportunity_id": "chance_id",
                            "account_id": "firma_id",
                            "stage": "phase",
                            "amount": "betrag",
                            "close_date": "abschluss",
                            "created_at": "angelegt",
                            "updated_at": "geaendert",
                        },
                        "casts": {"opportunity_id": "string", "account_id": "string"},
                        "constants": {"currency": "EUR"},
                        "as_of": "created_at",
                    },
                    "kontakte": {"dataset": "kontakte", "as_of": "zeitpunkt"},
                },
            },
        },
        "value_sets": {"opportunity_stages": list(PHASES)},
        "forecast": {"horizon": 14, "freq": "D", "levels": [80, 95], "history_days": 400},
        "anomaly": {
            "metrics": ["demand", "revenue", "order_count", "pipeline_value"],
            "window_days": 7,
            "history_days": 365,
            "custom_metrics": {
                "kontakte_je_kanal": {
                    "dataset": "kontakte",
                    "date": "zeitpunkt",
                    "value": "count",
                    "entity": "kanal",
                }
            },
        },
        "results": {"ledger": "erp", "forecasts": "erp"},
        "report": {"directory": str(reports)},
    }


def write_config(path: Path, *, erp_env: str, crm_env: str, lake: Path, reports: Path) -> Path:
    path.write_text(yaml.safe_dump(config(erp_env, crm_env, lake, reports), sort_keys=False))
    return path
