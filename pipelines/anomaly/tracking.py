"""Incidents across nights: tonight's incidents merged with the ones already stored.

A night re-scores the last `window_days` days, so its incidents (`build_incidents` over tonight's
scores) may continue one stored from an earlier night.  `merge_incidents` decides, from tonight's
incidents and the stored ones that could be touched (open ones, and those last seen in the window),
the rows to write: a continuing problem extends its incident (same id, earliest start, latest end,
highest peak), a new one opens, and a stored open incident tonight's scoring no longer extends to
the last night is closed.  The result depends only on its inputs, so a re-run of a night writes the
same rows.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from pipelines.series import join_keys

COLUMNS = (
    "incident_id",
    "metric",
    "entity",
    "start_ds",
    "end_ds",
    "peak_ds",
    "peak_score",
    "severity",
    "kind",
    "status",
    "points",
    "first_night",
    "last_night",
    "reason",
)
_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
_ONE_DAY = pd.Timedelta(days=1)


def tonight_incidents(scores: pd.DataFrame, *, run_date: date, thresholds: dict[str, float]) -> pd.DataFrame:
    """Incidents of tonight's scored rows (`seam_anomaly_scores` form) as rows of the table."""
    from pipelines.anomaly.incidents import build_incidents

    flagged_series = scores.loc[scores["is_anomaly"].astype(bool), ["metric", "entity"]].drop_duplicates()
    if flagged_series.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    rows = scores.merge(flagged_series, on=["metric", "entity"])
    # a stable, unambiguous id per (metric, entity) (incident ids derive from it), mapped back
    # through `pairs`, never parsed
    rows = rows.assign(unique_id=join_keys(rows["metric"], rows["entity"]), kind=rows["kind"].fillna("spike"))
    pairs = rows.drop_duplicates("unique_id").set_index("unique_id")[["metric", "entity"]]
    rows = rows.assign(reason=rows["reason"].fillna(""))
    found = build_incidents(
        rows[["unique_id", "ds", "score", "is_anomaly", "kind", "reason"]], thresholds=thresholds
    )
    if found.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    pair = pairs.loc[found["unique_id"].to_numpy()]
    night = pd.Timestamp(run_date)
    return pd.DataFrame(
        {
            "incident_id": found["incident_id"],
            "metric": pair["metric"].to_numpy(),
            "entity": pair["entity"].to_numpy(),
            "start_ds": pd.to_datetime(found["start"]).dt.normalize(),
            "end_ds": pd.to_datetime(found["end"]).dt.normalize(),
            "peak_ds": pd.to_datetime(found["peak_ds"]).dt.normalize(),
            "peak_score": found["peak_score"].astype(float),
            "severity": found["severity"].astype(str),
            "kind": found["kind"].astype(str),
            "status": found["status"].astype(str),
            "points": found["points"].astype("int64"),
            "first_night": night,
            "last_night": night,
            "reason": found["reason"],
        }
    )[list(COLUMNS)]


def merge_incidents(stored: pd.DataFrame, tonight: pd.DataFrame, *, run_date: date) -> pd.DataFrame:
    """The rows of `seam_anomaly_incidents` to upsert tonight (see the module docstring)."""
    night = pd.Timestamp(run_date)
    stored = stored.assign(
        **{
            c: pd.to_datetime(stored[c])
            for c in ("start_ds", "end_ds", "peak_ds", "first_night", "last_night")
        }
    )
    out: list[dict[str, object]] = []
    touched: set[str] = set()
    for t in tonight.sort_values(["metric", "entity", "start_ds"]).to_dict("records"):
        same = stored[(stored["metric"] == t["metric"]) & (stored["entity"] == t["entity"])]
        near = same[
            (same["end_ds"] >= t["start_ds"] - _ONE_DAY * 2)
            & (same["start_ds"] <= t["end_ds"] + _ONE_DAY * 2)
        ]
        if len(near):
            e = near.sort_values("start_ds").iloc[0].to_dict()
            touched.update(near["incident_id"])
            peak = t if t["peak_score"] >= e["peak_score"] else e
            row = {
                **t,
                "incident_id": e["incident_id"],
                "start_ds": min(e["start_ds"], t["start_ds"]),
                "end_ds": max(e["end_ds"], t["end_ds"]),
                "peak_ds": peak["peak_ds"],
                "peak_score": max(e["peak_score"], t["peak_score"]),
                "severity": max(e["severity"], t["severity"], key=lambda s: _RANK.get(str(s), 0)),
                "points": max(int(e["points"]), int(t["points"])),
                "first_night": min(e["first_night"], night),
            }
        else:
            row = dict(t)
        row["status"] = "open" if pd.Timestamp(row["end_ds"]) >= night else "closed"  # reaches tonight
        row["last_night"] = night
        out.append(row)
    for e in stored[(stored["status"] == "open") & ~stored["incident_id"].isin(touched)].to_dict("records"):
        out.append({**e, "status": "closed"})  # tonight's scoring does not carry it on: it is over
    frame = pd.DataFrame(out, columns=list(COLUMNS))
    return frame.drop_duplicates("incident_id", keep="first").reset_index(drop=True)


def select_alerts(alertable: pd.DataFrame, labels: pd.DataFrame, *, severities: set[str]) -> pd.DataFrame:
    """The incidents to alert tonight, one row each, worst first.

    Args:
        alertable: open incidents tonight touched, with ``alerted_severity`` (one row per severity
            they were alerted at, None when never alerted), as `pipelines.load.feedback.read_alertable`
            returns them.
        labels: the labels in force tonight (`pipelines.anomaly.feedback.build_labels`).
        severities: the severities some channel takes (`notifications.incident_alerts`).

    An incident is alerted when its severity is one of `severities` and it was never alerted at
    that severity or a higher one (new tonight, or escalated), unless analysts labelled it
    ``expected`` or ``false_positive``.
    """
    from pipelines.anomaly.feedback import QUIET_LABELS, match_labels

    if alertable.empty:
        return alertable.assign(label=pd.Series([], dtype=object))
    rank = alertable["alerted_severity"].map(lambda s: _RANK.get(s, 0) if isinstance(s, str) else 0)
    best = rank.groupby(alertable["incident_id"]).max()
    names = {v: k for k, v in _RANK.items()}
    inc = alertable.drop_duplicates("incident_id").reset_index(drop=True)
    inc = inc.assign(
        start_ds=pd.to_datetime(inc["start_ds"]),
        end_ds=pd.to_datetime(inc["end_ds"]),
        alerted_severity=[names.get(int(best[i])) for i in inc["incident_id"]],
    )
    inc = inc.assign(label=match_labels(inc, labels))
    now = inc["severity"].map(lambda s: _RANK.get(str(s), 0))
    keep = (
        inc["severity"].isin(severities)
        & (now > inc["incident_id"].map(best).fillna(0))
        & ~inc["label"].isin(QUIET_LABELS)
    )
    out = inc[keep].assign(_rank=now[keep])
    return (
        out.sort_values(["_rank", "peak_score"], ascending=False).drop(columns="_rank").reset_index(drop=True)
    )
