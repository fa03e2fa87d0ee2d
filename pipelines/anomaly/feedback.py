"""Analyst feedback on anomalies: which labels count on a night, and what they change.

Analysts label an incident or the days of one series (`seam_anomaly_feedback`):
- ``expected`` / ``false_positive``: the days are left out of the baselines of later nights (as
  missing values) and the incident is not alerted or ranked as new again;
- ``confirmed``: a real problem, shown until someone labels it ``fixed``.

The functions here are pure: the rows come from the database through `pipelines.load.feedback`.
A night uses only the labels valid on it (``valid_from <= night``; ``valid_from`` defaults to the
day the label was written), so a backfill of an earlier night scores as that night did.  Rows that
break the contract (unknown label, no author, no target, unknown incident) are skipped with a
warning naming their ``feedback_id``: they can be written by plain SQL, and one bad row must not
stop the night.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Literal

import pandas as pd

from pipelines.anomaly.errors import AnomalyInputError

logger = logging.getLogger(__name__)

Label = Literal["expected", "false_positive", "confirmed", "fixed"]
LABELS: tuple[str, ...] = ("expected", "false_positive", "confirmed", "fixed")
#: Labels whose days leave the baselines and whose incidents are never alerted or ranked as new again.
QUIET_LABELS: frozenset[str] = frozenset({"expected", "false_positive"})
RAW_COLUMNS = (
    "feedback_id",
    "incident_id",
    "metric",
    "entity",
    "start_ds",
    "end_ds",
    "label",
    "author",
    "note",
    "created_at",
    "valid_from",
)
LABEL_COLUMNS = RAW_COLUMNS
#: An incident of tonight continues a labelled target when it starts at most this many days after it.
_ADJOIN = pd.Timedelta(days=2)


class FeedbackError(AnomalyInputError):
    """A label an analyst tried to write breaks the contract (nothing is written): bad input, exit 2."""

    exit_code = 2


def check_label(label: str | None, author: str | None) -> tuple[str, str]:
    """The (label, author) of a new label, checked; raises `FeedbackError` naming the fix."""
    if label not in LABELS:
        raise FeedbackError(f"unknown label {label!r}; expected one of {list(LABELS)}")
    if author is None or not str(author).strip():
        raise FeedbackError("a label needs an author: pass --author NAME (who is saying this)")
    return str(label), str(author).strip()


def _day(value: object) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def build_labels(
    raw: pd.DataFrame, incidents: pd.DataFrame | None = None, *, night: date | None = None
) -> pd.DataFrame:
    """The valid labels in force on `night` (all of them when None), the latest per target.

    Args:
        raw: rows of `seam_anomaly_feedback` (``RAW_COLUMNS``).
        incidents: rows of `seam_anomaly_incidents` (``incident_id, metric, entity, start_ds,
            end_ds``) to resolve labels that name only an incident (written by plain SQL); a label
            naming an incident in neither is skipped.
        night: the night being scored or reported.

    Returns:
        ``LABEL_COLUMNS``, one row per target (an incident, or a metric, entity and first day),
        with ``metric, entity, start_ds, end_ds`` always filled (``start_ds, end_ds`` as midnight
        timestamps).
    """
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise AnomalyInputError(f"feedback rows lack column(s) {missing}; expected {list(RAW_COLUMNS)}")
    if raw.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in LABEL_COLUMNS})
    spans = (
        incidents.drop_duplicates("incident_id").set_index("incident_id")
        if incidents is not None and len(incidents)
        else None
    )
    rows, skipped = [], []
    for r in raw.to_dict("records"):
        problem = None
        inc = r["incident_id"] if isinstance(r["incident_id"], str) and r["incident_id"] else None
        if r["label"] not in LABELS:
            problem = f"unknown label {r['label']!r} (expected one of {list(LABELS)})"
        elif not isinstance(r["author"], str) or not r["author"].strip():
            problem = "no author"
        elif inc is None and (pd.isna(r["metric"]) or pd.isna(r["entity"]) or pd.isna(r["start_ds"])):
            problem = "neither incident_id nor metric, entity and start_ds"
        elif inc is not None and pd.isna(r["metric"]):
            if spans is None or inc not in spans.index:
                problem = f"unknown incident {inc!r}"
            else:
                s = spans.loc[inc]
                r = {**r, "metric": s["metric"], "entity": s["entity"]}
                r |= {"start_ds": s["start_ds"], "end_ds": s["end_ds"]}
        if problem is None and pd.isna(r["created_at"]):
            problem = "no created_at"
        if problem is not None:
            skipped.append(f"feedback_id {r['feedback_id']}: {problem}")
            continue
        start = _day(r["start_ds"])
        end = start if pd.isna(r["end_ds"]) else _day(r["end_ds"])
        if end < start:
            skipped.append(f"feedback_id {r['feedback_id']}: end_ds {end:%Y-%m-%d} before start_ds")
            continue
        created = pd.Timestamp(r["created_at"])
        if created.tzinfo is not None:
            created = created.tz_convert("UTC").tz_localize(None)
        valid = created.normalize() if pd.isna(r["valid_from"]) else _day(r["valid_from"])
        rows.append(
            {
                **r,
                "incident_id": inc,
                "start_ds": start,
                "end_ds": end,
                "created_at": created,
                "valid_from": valid,
            }
        )
    if skipped:
        logger.warning(
            "skipped %d invalid label(s) of seam_anomaly_feedback: %s; fix or delete these rows",
            len(skipped),
            "; ".join(skipped),
        )
    out = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    if night is not None:
        out = out[out["valid_from"] <= pd.Timestamp(night)]
    if out.empty:
        return out.reset_index(drop=True)
    target = out["incident_id"].where(
        out["incident_id"].notna(),
        "point|"
        + out["metric"].astype(str)
        + "|"
        + out["entity"].astype(str)
        + "|"
        + out["start_ds"].astype(str),
    )
    out = out.assign(_target=target).sort_values(["created_at", "feedback_id"])
    out = out.drop_duplicates("_target", keep="last").drop(columns="_target")
    return out.sort_values(["created_at", "feedback_id"]).reset_index(drop=True)


def baseline_exclusions(labels: pd.DataFrame) -> pd.DataFrame:
    """The days (``metric, entity, ds``) that ``expected`` / ``false_positive`` labels take out of
    the baselines: every day of each labelled span."""
    quiet = labels[labels["label"].isin(QUIET_LABELS)]
    if quiet.empty:
        return pd.DataFrame({"metric": [], "entity": [], "ds": pd.Series([], dtype="datetime64[ns]")})
    parts = [
        pd.DataFrame(
            {"metric": r.metric, "entity": r.entity, "ds": pd.date_range(r.start_ds, r.end_ds, freq="D")}
        )
        for r in quiet.itertuples(index=False)
    ]
    return pd.concat(parts, ignore_index=True).drop_duplicates(ignore_index=True)


def match_labels(incidents: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    """The label of each incident (``incident_id, metric, entity, start_ds, end_ds``), or None.

    An incident carries a label given to its id, or to a span of its series that it overlaps or
    continues (starting at most two days after the span ends, as the nightly merge joins them);
    the latest such label wins.
    """
    out = pd.Series([None] * len(incidents), index=incidents.index, dtype=object)
    if labels.empty or incidents.empty:
        return out
    by_series = {k: g for k, g in labels.groupby(["metric", "entity"], sort=False)}
    for idx, inc in incidents.iterrows():
        mine = by_series.get((inc["metric"], inc["entity"]))
        if mine is None:
            continue
        start, end = pd.Timestamp(inc["start_ds"]), pd.Timestamp(inc["end_ds"])
        hit = (mine["incident_id"] == inc["incident_id"]) | (
            (mine["start_ds"] <= end) & (mine["end_ds"] + _ADJOIN >= start)
        )
        if hit.any():
            out[idx] = mine.loc[hit].sort_values(["created_at", "feedback_id"])["label"].iloc[-1]
    return out


def summarize_labels(labels: pd.DataFrame) -> dict[str, float | int | None]:
    """Counts per label and the precision analysts measured: (confirmed + fixed) / (confirmed +
    fixed + false_positive); None before any of those labels (a ``fixed`` problem was a real one)."""
    counts = {name: int((labels["label"] == name).sum()) for name in LABELS}
    real = counts["confirmed"] + counts["fixed"]
    judged = real + counts["false_positive"]
    return {**counts, "targets": len(labels), "precision": real / judged if judged else None}
