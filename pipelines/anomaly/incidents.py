"""Group anomalous days into incidents: one alert per problem, not one per day."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd

from pipelines.anomaly.errors import AnomalyInputError
from pipelines.anomaly.options import DEFAULT_SEVERITIES

logger = logging.getLogger(__name__)

INCIDENT_COLUMNS = (
    "unique_id",
    "incident_id",
    "start",
    "end",
    "peak_score",
    "peak_ds",
    "kind",
    "severity",
    "status",
    "points",
    "reason",
)
_REQUIRED = ("unique_id", "ds", "score", "is_anomaly", "kind", "reason")
#: Kinds ranked by how much they say about the incident as a whole.
_KIND_RANK = {"level_shift": 4, "spike": 3, "dip": 3, "missing": 1}


def _check_thresholds(thresholds: dict[str, float]) -> list[tuple[str, float]]:
    if not isinstance(thresholds, dict) or not thresholds:
        raise AnomalyInputError(
            f"`thresholds` must be a non-empty dict of severity -> minimum peak score, got {thresholds!r}; "
            f"e.g. {DEFAULT_SEVERITIES}"
        )
    for name, value in thresholds.items():
        if not isinstance(name, str) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise AnomalyInputError(
                f"`thresholds` entries must map a severity name to a score in [0, 1], got {name!r}: {value!r}"
            )
    return sorted(thresholds.items(), key=lambda kv: kv[1], reverse=True)


def incident_id(unique_id: str, start: pd.Timestamp) -> str:
    """Deterministic incident id: the first 16 hex digits of sha1("<unique_id>|<start date>")."""
    return hashlib.sha1(f"{unique_id}|{pd.Timestamp(start):%Y-%m-%d}".encode()).hexdigest()[:16]


def build_incidents(
    scored: pd.DataFrame, *, thresholds: dict[str, float] | None = None, max_gap_days: int = 1
) -> pd.DataFrame:
    """Group consecutive anomalous days of each series into incidents.

    Args:
        scored: output of :func:`pipelines.anomaly.score` (needs ``unique_id, ds, score, is_anomaly,
            kind, reason``).
        thresholds: severity name -> minimum peak score, e.g. ``{"critical": 0.99999, "high": 0.9999,
            "medium": 0.9995}``; an incident below all of them gets severity "low".
        max_gap_days: normal days allowed inside one incident (1 = a single quiet day does not split).

    Returns:
        One row per incident: ``unique_id, incident_id, start, end, peak_score, peak_ds, kind,
        severity, status, points, reason``. ``status`` is "open" when the incident reaches the last
        scored day of its series, else "closed"; ``kind`` is level_shift if any day is one, else the
        kind of the peak day; ``points`` counts anomalous days.

    Raises:
        AnomalyInputError: on missing columns or invalid thresholds.
    """
    levels = _check_thresholds(DEFAULT_SEVERITIES if thresholds is None else thresholds)
    if not isinstance(scored, pd.DataFrame):
        raise AnomalyInputError(
            f"`scored` must be the DataFrame returned by score(), got {type(scored).__name__}"
        )
    missing = [c for c in _REQUIRED if c not in scored.columns]
    if missing:
        raise AnomalyInputError(
            f"`scored` is missing column(s) {missing}; expected the output of pipelines.anomaly.score()"
        )
    if max_gap_days < 0:
        raise AnomalyInputError(f"`max_gap_days` must be >= 0, got {max_gap_days}")
    last_day = scored.groupby("unique_id", sort=False)["ds"].max()
    anom = scored.loc[scored["is_anomaly"].astype(bool), list(_REQUIRED)].sort_values(["unique_id", "ds"])
    if anom.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in INCIDENT_COLUMNS})
    uid = anom["unique_id"].to_numpy(dtype=object)
    ds = anom["ds"].to_numpy(dtype="datetime64[ns]")
    gap = np.diff(ds).astype("timedelta64[D]").astype(np.int64)
    new = np.ones(len(anom), dtype=bool)
    new[1:] = (uid[1:] != uid[:-1]) | (gap > max_gap_days + 1)
    anom = anom.assign(_inc=np.cumsum(new), _rank=anom["kind"].map(_KIND_RANK).fillna(0))
    rows = []
    for _, g in anom.groupby("_inc", sort=True):
        peak = g.loc[g["score"].idxmax()]
        kinds = set(g["kind"].dropna())
        kind = "level_shift" if "level_shift" in kinds else peak["kind"]
        start, end = g["ds"].iloc[0], g["ds"].iloc[-1]
        u = g["unique_id"].iloc[0]
        severity = next((name for name, thr in levels if peak["score"] >= thr), "low")
        span = f"{len(g)} day{'s' if len(g) > 1 else ''}"
        period = f"{start:%b %d}" if start == end else f"{start:%b %d} to {end:%b %d}"
        rows.append(
            {
                "unique_id": u,
                "incident_id": incident_id(u, start),
                "start": start,
                "end": end,
                "peak_score": float(peak["score"]),
                "peak_ds": peak["ds"],
                "kind": kind,
                "severity": severity,
                "status": "open" if end >= last_day[u] else "closed",
                "points": len(g),
                "reason": f"{peak['reason']} ({span}, {period})",
            }
        )
    out = pd.DataFrame(rows, columns=list(INCIDENT_COLUMNS))
    logger.info("anomaly.build_incidents: %d anomalous rows in, %d incidents out", len(anom), len(out))
    return out
