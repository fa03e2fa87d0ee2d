"""Analysts' labels (`seam_anomaly_feedback`) and the incidents already alerted
(`seam_anomaly_incident_alerts`) of one results database: read and write.

A label is analysts' input, not a night's result: it is appended (one INSERT, in one transaction
with the checks that make it valid) and never updated, so the labels in force on any earlier night
can be read back (`valid_from`).  The alerted incidents are a result of the alert task and are
upserted by key through `load_batch`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.anomaly.feedback import RAW_COLUMNS, FeedbackError, build_labels, check_label
from pipelines.config import Config, results_url
from pipelines.db import make_engine
from pipelines.load.batch import LoadResult, load_batch
from pipelines.results import ANOMALY_FEEDBACK

log = logging.getLogger(__name__)
_INCIDENT_SPAN = "incident_id, metric, entity, start_ds, end_ds"


@dataclass(frozen=True)
class LabelTarget:
    """What a label is about: an incident, or the day `ds` of one metric and entity."""

    incident_id: str | None = None
    metric: str | None = None
    entity: str | None = None
    ds: date | None = None

    def check(self) -> None:
        point = (self.metric, self.entity, self.ds)
        if self.incident_id is not None and any(p is not None for p in point):
            raise FeedbackError(
                "label either an incident (--incident ID) or a point (--metric --entity --date), not both"
            )
        if self.incident_id is None and any(p is None for p in point):
            raise FeedbackError(
                "say what the label is about: --incident ID, or --metric M --entity E --date D together"
            )


def has_feedback_table(conn: Connection) -> bool:
    return sa.inspect(conn).has_table("seam_anomaly_feedback")


def find_incident(engine: Engine, incident_id: str) -> dict[str, object] | None:
    """The stored incident `incident_id` (its span and severity), or None."""
    query = sa.text(
        f"SELECT {_INCIDENT_SPAN}, severity, status FROM seam_anomaly_incidents WHERE incident_id = :i"
    )
    with engine.connect() as conn:
        row = conn.execute(query, {"i": incident_id}).mappings().first()
    return dict(row) if row is not None else None


def write_label(
    engine: Engine,
    target: LabelTarget,
    *,
    label: str,
    author: str,
    note: str | None,
    valid_from: date,
) -> int:
    """Append one label after checking it (label, author, an existing incident or scored series);
    returns its `feedback_id`.  Raises `FeedbackError` and writes nothing when it is not valid.

    A label of an incident keeps the incident's metric, entity and days as they are now, so the
    nights after it leave exactly those days out of their baselines, whatever the incident becomes.
    """
    label, author = check_label(label, author)
    target.check()
    with engine.begin() as conn:
        if target.incident_id is not None:
            found = (
                conn.execute(
                    sa.text(f"SELECT {_INCIDENT_SPAN} FROM seam_anomaly_incidents WHERE incident_id = :i"),
                    {"i": target.incident_id},
                )
                .mappings()
                .first()
            )
            if found is None:
                raise FeedbackError(
                    f"unknown incident {target.incident_id!r} in {engine.url.database}; list incidents with "
                    f"SELECT incident_id, metric, entity FROM seam_v_open_incidents"
                )
            values = dict(found)
            for col in ("start_ds", "end_ds"):  # SQLite hands dates back as text
                values[col] = pd.Timestamp(values[col]).date()
        else:
            seen = conn.execute(
                sa.text(
                    "SELECT 1 FROM seam_anomaly_scores WHERE metric = :m AND entity = :e AND ds = :d"
                ).bindparams(sa.bindparam("d", type_=sa.Date)),
                {"m": target.metric, "e": target.entity, "d": target.ds},
            ).first()
            if seen is None:
                raise FeedbackError(
                    f"no score of metric {target.metric!r}, entity {target.entity!r} on {target.ds} in "
                    f"{engine.url.database}; check the names (SELECT DISTINCT metric, entity FROM "
                    f"seam_anomaly_scores) and the date"
                )
            values = {
                "incident_id": None,
                "metric": target.metric,
                "entity": target.entity,
                "start_ds": target.ds,
                "end_ds": target.ds,
            }
        result = conn.execute(
            ANOMALY_FEEDBACK.insert().values(
                **values, label=label, author=author, note=note or None, valid_from=valid_from
            )
        )
        key = result.inserted_primary_key
    feedback_id = int(key[0]) if key is not None and key[0] is not None else -1
    log.info("label %s written: %s by %s on %s", feedback_id, label, author, values)
    return feedback_id


def read_feedback(engine: Engine) -> pd.DataFrame:
    """Every row of `seam_anomaly_feedback` (empty, with a warning, before migration 007)."""
    with engine.connect() as conn:
        if not has_feedback_table(conn):
            log.warning(
                "%s has no seam_anomaly_feedback table yet (run `seam migrate`): no labels are used",
                engine.url.database,
            )
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in RAW_COLUMNS})
        return pd.read_sql(sa.text(f"SELECT {', '.join(RAW_COLUMNS)} FROM seam_anomaly_feedback"), conn)


def read_labels(engine: Engine, night: date | None = None) -> pd.DataFrame:
    """The valid labels in force on `night` (see `pipelines.anomaly.feedback.build_labels`)."""
    raw = read_feedback(engine)
    incidents = None
    ids = sorted({str(i) for i in raw["incident_id"].dropna()})
    if ids:
        query = sa.text(
            f"SELECT {_INCIDENT_SPAN} FROM seam_anomaly_incidents WHERE incident_id IN :ids"
        ).bindparams(sa.bindparam("ids", expanding=True))
        with engine.connect() as conn:
            incidents = pd.read_sql(query, conn, params={"ids": ids})
    return build_labels(raw, incidents, night=night)


def read_all_labels(cfg: Config, night: date | None) -> pd.DataFrame:
    """The labels in force on `night` (all when None) in the database of every source, with the
    `source` whose database holds each."""
    parts = []
    for name in sorted({s.name for s in cfg.sources}):
        engine = make_engine(results_url(cfg.source(name)), what=f"source {name!r}")
        try:
            parts.append(read_labels(engine, night).assign(source=name))
        finally:
            engine.dispose()
    return pd.concat(parts, ignore_index=True)


def read_alertable(engine: Engine, night: date) -> pd.DataFrame:
    """Open incidents tonight's load touched, with the severity they were last alerted at (or None)."""
    query = sa.text(
        "SELECT i.incident_id, i.metric, i.entity, i.start_ds, i.end_ds, i.peak_ds, i.peak_score, "
        "i.severity, i.kind, i.points, i.first_night, i.reason, a.severity AS alerted_severity "
        "FROM seam_anomaly_incidents i LEFT JOIN seam_anomaly_incident_alerts a "
        "ON a.incident_id = i.incident_id "
        "WHERE i.status = 'open' AND i.last_night = :night"
    ).bindparams(sa.bindparam("night", type_=sa.Date))
    with engine.connect() as conn:
        return pd.read_sql(query, conn, params={"night": night})


def record_alerted(engine: Engine, night: date, rows: pd.DataFrame) -> LoadResult:
    """Remember the incidents alerted tonight (`incident_id, severity, channels`)."""
    frame = rows.assign(alerted_night=pd.Timestamp(night))[
        ["incident_id", "severity", "alerted_night", "channels"]
    ]
    return load_batch(engine, "seam_anomaly_incident_alerts", night, frame)


def alertable_incidents(cfg: Config, night: date, severities: set[str]) -> pd.DataFrame:
    """The incidents of every results database that tonight's alerts should tell about (new, or
    escalated past the severity they were alerted at; none labelled expected or false positive),
    with the `source` whose database holds each."""
    from pipelines.anomaly.tracking import select_alerts

    found = []
    for name in cfg.result_databases():
        engine = make_engine(results_url(cfg.source(name)), what=f"source {name!r}")
        try:
            picked = select_alerts(
                read_alertable(engine, night), read_labels(engine, night), severities=severities
            )
            found.append(picked.assign(source=name))
        finally:
            engine.dispose()
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame()


def record_reached(cfg: Config, night: date, sent: pd.DataFrame, reached: dict[str, list[str]]) -> None:
    """Record the incidents in `sent` as alerted, with the channels each reached (`reached`), in
    the database that holds each."""
    for name, rows in sent.groupby("source"):
        engine = make_engine(results_url(cfg.source(str(name))), write=True, what=f"source {name!r}")
        try:
            channels = rows["incident_id"].map(lambda i: ",".join(sorted(set(reached[i]))))
            record_alerted(engine, night, rows.assign(channels=channels))
        finally:
            engine.dispose()
