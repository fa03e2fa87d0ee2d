"""The sampling period of the scored series and the model's windows measured in periods.

The metric scorer works on a dense (series x period) matrix. Daily series use the windows the model was
designed with (a level over 4 weeks, weekday offsets over 8 weeks, a yearly correction). Series sampled
several times a day (hourly, every 15 minutes, ...) use the same model with windows chosen in time:
seasonal cycles of one week (hour of week) and one day (hour of day), a level over one week refreshed
at each midnight, and slow statistics refreshed once a day. Periods are numbered from
1970-01-01 00:00 (a Thursday), so every window is tied to the calendar: a run over any range of
periods computes the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipelines.anomaly.errors import AnomalyInputError

_DAY_NS = 86_400 * 10**9
_MIN_PERIOD_NS = 60 * 10**9  # one minute


@dataclass(frozen=True)
class Cadence:
    """Sampling period and window lengths, all in periods.

    Attributes:
        period_ns: length of one period in nanoseconds (a whole divisor of a day).
        per_day: periods per day (1 for daily series).
        cycles: seasonal cycles in periods, longest first: ``(7,)`` (weekday) for daily series,
            ``(7 * per_day, per_day)`` (period of the week, then period of the day) otherwise. The
            seasonal offset comes from the longest cycle with at least two past values.
        level: periods in the level window (whole weeks, so it is neutral to the seasonal cycles).
        level_step: the level is refreshed every ``level_step`` periods (at each midnight).
        level_trim: 0 for a median level; else a mean without this share of the lowest and of the
            highest values.
        offset_cycles: past cycles whose median gives the seasonal offset.
        year: periods in a year of whole weeks (364 days) for the yearly correction; 0 = none.
        year_half: half-width, in periods, of the window around ``t - year``.
        scale: periods of residuals behind the residual scale.
        select: periods of residuals behind the choice of the residual model.
        scan: longest window of the level-shift scan, in periods.
        missing: periods looked back at to decide whether a series normally reports every period.
        anchor_every: slow statistics are refreshed every ``anchor_every`` periods ...
        anchor_phase: ... at periods whose number is ``anchor_phase`` modulo ``anchor_every``.
        long: periods of history behind the count model of sparse series (frequency and sizes).
    """

    period_ns: int
    per_day: int
    cycles: tuple[int, ...]
    level: int
    level_step: int
    level_trim: float
    offset_cycles: int
    year: int
    year_half: int
    scale: int
    select: int
    scan: int
    missing: int
    anchor_every: int
    anchor_phase: int
    long: int

    @property
    def is_daily(self) -> bool:
        """True for one period per day (the original daily model)."""
        return self.per_day == 1

    @property
    def required_history(self) -> int:
        """Periods of history before ``t`` that any statistic at ``t`` reads.

        Shift scan + model-selection window + anchors of the slow statistics + yearly window +
        seasonal offsets + level window (and its refresh step).
        """
        return (
            self.scan
            + self.select
            + 1
            + 2 * self.anchor_every
            + self.year
            + (self.year_half if self.year else 0)
            + self.cycles[0] * self.offset_cycles
            + self.level
            + self.level_step
            - 1
        )

    def unit_name(self) -> str:
        """Name of one period for messages ("day", "hour", "15-minute period")."""
        if self.is_daily:
            return "day"
        minutes = self.period_ns // (60 * 10**9)
        if minutes == 60:
            return "hour"
        if minutes % 60 == 0:
            return f"{minutes // 60}-hour period"
        return f"{minutes}-minute period"


def cadence_for(period_ns: int) -> Cadence:
    """Return the :class:`Cadence` of series sampled every ``period_ns`` nanoseconds.

    Raises:
        AnomalyInputError: if the period is shorter than a minute or does not divide a day.
    """
    if period_ns < _MIN_PERIOD_NS or _DAY_NS % period_ns != 0:
        raise AnomalyInputError(
            f"the sampling period must divide a day into whole periods of at least a minute, got "
            f"{pd.Timedelta(period_ns, unit='ns')}; aggregate to e.g. 1 hour, 15 minutes or 1 day first"
        )
    m = _DAY_NS // period_ns
    if m == 1:
        return Cadence(
            period_ns=period_ns,
            per_day=1,
            cycles=(7,),
            level=28,
            level_step=1,
            level_trim=0.0,
            offset_cycles=8,
            year=364,
            year_half=14,
            scale=56,
            select=168,
            scan=14,
            missing=28,
            anchor_every=7,
            anchor_phase=0,  # 1970-01-01, day 0, is a Thursday
            long=364,
        )
    return Cadence(
        period_ns=period_ns,
        per_day=m,
        cycles=(7 * m, m),
        level=7 * m,
        level_step=m,
        level_trim=0.05,
        offset_cycles=8,
        year=0,
        year_half=0,
        scale=7 * m,
        select=14 * m,
        scan=m,
        missing=7 * m,
        anchor_every=m,
        anchor_phase=m - 1,  # the last period of each day: statistics refresh at midnight
        long=56 * m,
    )


DAILY = cadence_for(_DAY_NS)


def parse_freq(freq: str | pd.Timedelta) -> int:
    """Period length in nanoseconds of a pandas frequency such as ``"h"``, ``"15min"`` or ``"D"``.

    Raises:
        AnomalyInputError: if ``freq`` is not a fixed duration.
    """
    try:
        return int(pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).value)
    except (ValueError, TypeError) as err:
        raise AnomalyInputError(
            f"`freq` must be a fixed duration such as 'D', 'h' or '15min', got {freq!r}"
        ) from err


def required_history(freq: str | pd.Timedelta = "D") -> pd.Timedelta:
    """History before the first scored period that an incremental run needs to equal a full run.

    ``required_history("D")`` is :data:`pipelines.anomaly.REQUIRED_HISTORY_DAYS` days.
    """
    cad = cadence_for(parse_freq(freq))
    return pd.Timedelta(cad.required_history * cad.period_ns, unit="ns")
