"""Short human sentences explaining why a point or an incident was scored as it was.

A sentence names the value, what was expected for that weekday (and time of day), the usual range,
and how often a value at least this unusual happens under the series' model, e.g. "0 against the
expected 17 for a Thursday (usual range 2 to 40); a value this low on a Thursday happens about once
in 3 years for this series". Ratios such as "3.2x the expected" are only given while they mean
something (an expected value of at least one unit and a ratio up to 20).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipelines.anomaly.cadence import DAILY, Cadence

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MAX_RATIO = 20.0
_WEEKS_PER_YEAR = 365.25 / 7.0


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


def format_recurrence(weeks: float) -> str:
    """ "about once in 3 weeks", "about once a year", "less than once in 1,000 years"."""
    if weeks < 9.0:
        n = max(2, round(weeks))
        return f"about once in {n} weeks"
    months = weeks * 7.0 / 30.44
    if months < 23.5:
        return f"about once in {round(months)} months"
    years = weeks / _WEEKS_PER_YEAR
    if years >= 1000.0:
        return "less than once in 1,000 years"
    return f"about once in {years:,.0f} years"


def _when(ds: pd.Timestamp, cad: Cadence) -> tuple[str, str]:
    """("a Tuesday", "on a Tuesday") for daily series, ("Tuesday 14:00", "on a Tuesday at 14:00")."""
    day = _WEEKDAYS[ds.weekday()]
    if cad.is_daily:
        return f"a {day}", f"on a {day}"
    return f"{day} {ds:%H:%M}", f"on a {day} at {ds:%H:%M}"


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
    tail: float = math.nan,
    shift_tail: float = math.nan,
    count_model: bool = False,
    feedback: bool = False,
    cadence: Cadence = DAILY,
) -> str:
    """Return one sentence explaining a scored point.

    ``tail`` is the one-sided probability, under the series' model, of a value at least this far
    from the expected one on that weekday (and time of day); it becomes "happens about once in N
    weeks / months / years". ``shift_tail`` is the same for the level-shift statistic, per day.
    ``count_model`` marks values scored by the sparse count model.
    """
    when, on_when = _when(ds, cadence)
    unit = cadence.unit_name()
    if kind == "missing" or (isinstance(y, float) and math.isnan(y)):
        stamp = f"{ds:%b %d}" if cadence.is_daily else f"{ds:%b %d %H:%M}"
        text = (
            f"no value on {_WEEKDAYS[ds.weekday()]} {stamp} although the series normally reports every {unit}"
        )
    else:
        exp = format_number(expected)
        if math.isnan(upper):
            band = "no usual range yet: no earlier non-zero value"
        else:
            band = f"usual range {format_number(lower)} to {format_number(upper)}"
        high = y > expected
        rarity = ""
        if not math.isnan(tail) and 0.0 <= tail < 0.5:
            word = "this high" if high else "this low"
            rarity = f"a value {word} {on_when} happens {format_recurrence(1.0 / max(tail, 1e-300))} for this series"
        if count_model:
            text = f"{format_number(y)}: {rarity}" if rarity else f"{format_number(y)} {on_when}"
            text += f" (expected {exp}; {band})"
        else:
            ratio = y / expected if expected > 0 and y >= 0 else math.nan
            if expected >= 1.0 and 1.5 <= ratio <= _MAX_RATIO:
                text = f"{format_number(y)} is {ratio:.1f}x the expected {exp} for {when}"
            elif y == 0 and expected > 0:
                text = f"0 against the expected {exp} for {when}"
            elif expected >= 1.0 and 0 < y <= expected / 1.5:
                text = (
                    f"{format_number(y)} is {100.0 * (1.0 - ratio):.0f}% below the expected {exp} for {when}"
                )
            else:
                text = f"{format_number(y)} is {'above' if high else 'below'} the expected {exp} for {when}"
            text += f" ({band})"
            text += f"; {rarity}" if rarity else ""
    if shift_since is not None:
        stamp = f"{shift_since:%b %d}" if cadence.is_daily else f"{shift_since:%b %d %H:%M}"
        text += f"; level shift since {stamp}"
        if not math.isnan(shift_tail) and 0.0 <= shift_tail < 0.5:
            # The shift's tail is per day (any day of the week): convert days to weeks.
            weeks = 1.0 / max(shift_tail, 1e-300) / 7.0
            text += f" (a run this far from the usual happens {format_recurrence(weeks)})"
    if event:
        text += f"; known event: {event} (not alerted)"
    if feedback:
        text += "; marked as expected by an analyst (not alerted)"
    return text


def build_point_reasons(
    frame: pd.DataFrame,
    rows: np.ndarray,
    events: dict[int, str],
    *,
    notes: pd.DataFrame | None = None,
    cadence: Cadence = DAILY,
) -> list[str]:
    """Build reasons for ``rows`` (positions) of a scored frame; ``events`` maps position -> label.

    ``notes`` (aligned with ``frame``) may hold ``shift_since``, ``tail``, ``count_model`` and
    ``feedback`` for each row.
    """
    out = []
    y = frame["y"].to_numpy()
    exp = frame["expected"].to_numpy()
    lo = frame["lower"].to_numpy()
    hi = frame["upper"].to_numpy()
    kind = frame["kind"].to_numpy(dtype=object)
    ds = frame["ds"].to_numpy()
    score = frame["score"].to_numpy() if "score" in frame else np.full(len(frame), np.nan)
    n = len(frame)
    since = notes["shift_since"].to_numpy() if notes is not None else np.full(n, np.datetime64("NaT"))
    tail = notes["tail"].to_numpy() if notes is not None else np.full(n, np.nan)
    counts = notes["count_model"].to_numpy() if notes is not None else np.zeros(n, dtype=bool)
    feedback = notes["feedback"].to_numpy() if notes is not None else np.zeros(n, dtype=bool)
    for i in rows:
        s = None if pd.isna(since[i]) else pd.Timestamp(since[i])
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
                tail=float(tail[i]),
                shift_tail=(1.0 - float(score[i])) / 2.0 if s is not None else math.nan,
                count_model=bool(counts[i]),
                feedback=bool(feedback[i]),
                cadence=cadence,
            )
        )
    return out
