"""Group anomalous days into incidents: one alert per problem, not one per day."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd

from pipelines.anomaly.cadence import cadence_for
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
_DAY_NS = 86_400 * 10**9


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
    """Deterministic incident id: the first 16 hex digits of sha1("<unique_id>|<start date>"), with
    the start's time ("<date>T<hh:mm:ss>") when it is not midnight (series sampled several times a day)."""
    ts = pd.Timestamp(start)
    when = f"{ts:%Y-%m-%d}" if ts == ts.normalize() else ts.isoformat()
    return hashlib.sha1(f"{unique_id}|{when}".encode()).hexdigest()[:16]


def _unit_name(period_ns: int) -> str:
    try:
        return cadence_for(period_ns).unit_name()
    except AnomalyInputError:
        return "period"


def _period_ns(scored: pd.DataFrame) -> int:
    """The sampling period of scored rows: the greatest common divisor of the steps between a
    series' consecutive timestamps (one day when no series has two rows)."""
    frame = scored[["unique_id", "ds"]].sort_values(["unique_id", "ds"])
    stamps = frame["ds"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    same = frame["unique_id"].to_numpy()[1:] == frame["unique_id"].to_numpy()[:-1]
    steps = np.unique(np.diff(stamps)[same])
    steps = steps[steps > 0]
    return int(np.gcd.reduce(steps)) if len(steps) else _DAY_NS


def build_incidents(
    scored: pd.DataFrame,
    *,
    thresholds: dict[str, float] | None = None,
    max_gap_days: int = 1,
    max_gap_periods: int | None = None,
) -> pd.DataFrame:
    """Group consecutive anomalous periods (days, hours, ...) of each series into incidents.

    Args:
        scored: output of :func:`pipelines.anomaly.score` (needs ``unique_id, ds, score, is_anomaly,
            kind, reason``).
        thresholds: severity name -> minimum peak score, e.g. ``{"critical": 0.99999, "high": 0.9999,
            "medium": 0.9995}``; an incident below all of them gets severity "low".
        max_gap_days: normal days allowed inside one incident (1 = a single quiet day does not split).
        max_gap_periods: normal periods allowed inside one incident, for series sampled several times
            a day (e.g. 1 = a single quiet hour does not split); defaults to ``max_gap_days`` counted
            in periods. The period is inferred from the steps between timestamps.

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
    if max_gap_periods is not None and max_gap_periods < 0:
        raise AnomalyInputError(f"`max_gap_periods` must be >= 0, got {max_gap_periods}")
    max_gap = max_gap_days if max_gap_periods is None else max_gap_periods
    last_day = scored.groupby("unique_id", sort=False)["ds"].max()
    anom = scored.loc[scored["is_anomaly"].astype(bool), list(_REQUIRED)].sort_values(["unique_id", "ds"])
    if anom.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in INCIDENT_COLUMNS})
    uid = anom["unique_id"].to_numpy(dtype=object)
    ds = anom["ds"].to_numpy(dtype="datetime64[ns]")
    period = _period_ns(scored)
    daily = period == _DAY_NS
    unit = _unit_name(period)
    gap = np.diff(ds.astype(np.int64)) // period
    new = np.ones(len(anom), dtype=bool)
    new[1:] = (uid[1:] != uid[:-1]) | (gap > max_gap + 1)
    anom = anom.assign(_inc=np.cumsum(new), _rank=anom["kind"].map(_KIND_RANK).fillna(0))
    rows = []
    for _, g in anom.groupby("_inc", sort=True):
        peak = g.loc[g["score"].idxmax()]
        kinds = set(g["kind"].dropna())
        kind = "level_shift" if "level_shift" in kinds else peak["kind"]
        start, end = g["ds"].iloc[0], g["ds"].iloc[-1]
        u = g["unique_id"].iloc[0]
        severity = next((name for name, thr in levels if peak["score"] >= thr), "low")
        span = f"{len(g)} {unit}{'s' if len(g) > 1 else ''}"
        fmt = "%b %d" if daily else "%b %d %H:%M"
        when = f"{start:{fmt}}" if start == end else f"{start:{fmt}} to {end:{fmt}}"
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
                "reason": f"{peak['reason']} ({span}, {when})",
            }
        )
    out = pd.DataFrame(rows, columns=list(INCIDENT_COLUMNS))
    logger.info("anomaly.build_incidents: %d anomalous rows in, %d incidents out", len(anom), len(out))
    return out
