"""Short human sentences explaining why a point or an incident was scored as it was."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipelines.anomaly.cadence import DAILY, Cadence

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def format_number(v: float) -> str:
    """Format a value compactly for business users (3 significant digits, thousands separators)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10 or a == 0:
        return f"{v:.0f}"
    return f"{v:.3g}"


def build_point_reason(
    *,
    y: float,
    expected: float,
    lower: float,
    upper: float,
    kind: str | None,
    ds: pd.Timestamp,
    shift_since: pd.Timestamp | None,
    event: str | None,
) -> str:
    """Return one sentence explaining a scored point, e.g. "380 is 3.2x the expected 120 for a Tuesday"."""
    day = _WEEKDAYS[ds.weekday()]
    if kind == "missing" or (isinstance(y, float) and math.isnan(y)):
        text = f"no value on {day} {ds:%b %d} although the series normally reports every day"
    else:
        exp = format_number(expected)
        band = f"usual range {format_number(lower)} to {format_number(upper)}"
        if expected > 0 and y >= 0 and y >= 1.5 * expected:
            text = f"{format_number(y)} is {y / expected:.1f}x the expected {exp} for a {day} ({band})"
        elif expected > 0 and y >= 0 and y <= expected / 1.5:
            pct = 100.0 * (1.0 - y / expected)
            text = f"{format_number(y)} is {pct:.0f}% below the expected {exp} for a {day} ({band})"
        else:
            word = "above" if y > expected else "below"
            text = f"{format_number(y)} is {word} the expected {exp} for a {day} ({band})"
    if shift_since is not None:
        text += f"; level shift since {shift_since:%b %d}"
    if event:
        text += f"; known event: {event} (not alerted)"
    return text


def build_point_reasons(
    frame: pd.DataFrame,
    rows: np.ndarray,
    events: dict[int, str],
    *,
    notes: pd.DataFrame | None = None,
    cadence: Cadence = DAILY,
) -> list[str]:
    """Build reasons for ``rows`` (positions) of a scored frame; ``events`` maps position -> label."""
    out = []
    y = frame["y"].to_numpy()
    exp = frame["expected"].to_numpy()
    lo = frame["lower"].to_numpy()
    hi = frame["upper"].to_numpy()
    kind = frame["kind"].to_numpy(dtype=object)
    ds = frame["ds"].to_numpy()
    since = notes["shift_since"].to_numpy() if notes is not None else None
    for i in rows:
        s = None
        if since is not None and not pd.isna(since[i]):
            s = pd.Timestamp(since[i])
        out.append(
            build_point_reason(
                y=float(y[i]),
                expected=float(exp[i]),
                lower=float(lo[i]),
                upper=float(hi[i]),
                kind=kind[i],
                ds=pd.Timestamp(ds[i]),
                shift_since=s,
                event=events.get(int(i)),
            )
        )
    return out
