"""The business's week: the periods it never trades in and how its demand spreads over the week.

A panel forecast together is one business's demand, and two facts about its week help every
series, most of all the sparse ones, which cannot show them on their own:

- Closed periods: phases of the week (weekdays for daily data, hours of the week for hourly data)
  in which no series of the panel has ever had demand, although the panel had enough demand
  elsewhere for that not to be chance. They are forecast as 0 with 0-wide intervals, and the
  models see the open periods only (a weekday-only series is modelled as a series of trading days).
- The weekly profile: the share of a week's demand that falls in each phase. Forecasts without a
  weekly shape of their own (intermittent demand, low-volume series whose own weekly pattern is
  not significant) spread their level over the week in proportion to the series' own profile
  shrunk towards the panel's pooled profile, by empirical Bayes: how far a series' own shares
  are trusted depends on how much demand it has seen (its number of demands, discounted for
  lumpy sizes) and on how much the series' true profiles differ, estimated from the panel. A
  series with three orders follows the business's week; a busy one whose profile differs from
  the others' follows its own.

The cycle is a week (or a day, when the history is too short for weeks) of a fixed-step
frequency whose period is one of the season lengths: 7 for daily data, 168 (or 24) for hourly
data, 48 for half-hours. Other frequencies (weekly, monthly, business days) have no such cycle
and are forecast exactly as without this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from pipelines.forecasting.validation import SeriesInput, fixed_step

# Phase 0 is Monday 00:00 (a Monday, far back enough for every timestamp in use).
ANCHOR = pd.Timestamp("1970-01-05")
# Cycles tried, longest first, and how many whole cycles the panel must span to use one.
CYCLES = (pd.Timedelta(weeks=1), pd.Timedelta(days=1))
MIN_CYCLES = 4
# A phase is closed when the panel never had demand in it although, were demand spread evenly
# over the phases, it would have had at least this many non-zero periods there (P(0) ~ e^-20).
CLOSED_MIN_EXPECTED = 20.0
# Pseudo-demands of an even spread in the pooled profile, per phase (a panel of a few sparse
# series has an almost even week, not the shape of its few orders).
POOL_PRIOR_PER_PHASE = 1.0
# Cap on a series' weight (effective demands) in the pooled profile, per phase: busy series tell
# the shape of the week, but must not drown out the many sparse ones.
POOL_CAP_PER_PHASE = 4.0
# Series needed to estimate how much the series' profiles differ; with fewer, a series' own
# shares count as much as this many demands per phase of the pool.
MIN_SERIES_FOR_SPREAD = 8
DEFAULT_PRIOR_PER_PHASE = 4.0
# Smallest pooled share of an open phase, relative to an even spread.
POOL_FLOOR = 0.02


@dataclass(frozen=True)
class SeriesCalendar:
    """Where one series' periods fall in the week and how its demand spreads over them.

    Attributes:
        factors: (P,) demand multiplier per phase: mean 1 over the P phases, 0 on closed phases.
        end_phase: phase of the period that follows the series' last value.
    """

    factors: np.ndarray
    end_phase: int

    @property
    def period(self) -> int:
        """Number of phases in the cycle."""
        return len(self.factors)

    def phases_before(self, n: int) -> np.ndarray:
        """Phases of the last `n` periods of the history, oldest first."""
        return (self.end_phase - n + np.arange(n)) % self.period

    def phases_after(self, n: int) -> np.ndarray:
        """Phases of the `n` periods after the history."""
        return (self.end_phase + np.arange(n)) % self.period

    def shifted(self, steps: int) -> SeriesCalendar:
        """The calendar of the same series cut `steps` periods before its end."""
        return SeriesCalendar(self.factors, (self.end_phase - steps) % self.period)


def choose_cycle(freq: str, season_lengths: Sequence[float], span: int) -> int | None:
    """Phases in the cycle used for `freq` (see the module docstring), or None.

    `span` is the number of periods the panel covers; a cycle needs `MIN_CYCLES` of them.
    """
    step = fixed_step(to_offset(freq))
    if step is None or step <= pd.Timedelta(0):
        return None
    integer_seasons = {round(p) for p in season_lengths if float(p).is_integer()}
    for cycle in CYCLES:
        ratio = cycle / step
        if ratio >= 2 and float(ratio).is_integer() and round(ratio) in integer_seasons:
            period = round(ratio)
            if span >= MIN_CYCLES * period:
                return period
    return None


def _first_phases(series: Sequence[SeriesInput], step: pd.Timedelta, period: int) -> np.ndarray:
    """Phase of each series' first period."""
    step_ns = step.value
    out = np.empty(len(series), dtype=np.int64)
    for i, s in enumerate(series):
        first = s.last_ds.value - (len(s.y) - 1) * step_ns
        out[i] = ((first - ANCHOR.value) // step_ns) % period
    return out


def build_calendars(
    series: Sequence[SeriesInput], freq: str, season_lengths: Sequence[float]
) -> list[SeriesCalendar] | None:
    """One calendar per series (same order), or None when the frequency has no weekly cycle.

    Pooled figures are summed over the series in order of `unique_id`, so they do not depend on
    the order of the input rows.
    """
    if not series:
        return None
    step = fixed_step(to_offset(freq))
    if step is None:
        return None
    step_ns = step.value
    starts = [s.last_ds.value - (len(s.y) - 1) * step_ns for s in series]
    span = (max(s.last_ds.value for s in series) - min(starts)) // step_ns + 1
    period = choose_cycle(freq, season_lengths, int(span))
    if period is None:
        return None
    order = sorted(range(len(series)), key=lambda i: series[i].unique_id)
    first = _first_phases(series, step, period)
    stats = _PhaseStats.empty(len(series), period)
    for row, i in enumerate(order):
        stats.add(row, series[i].y, first[i])
    closed = _closed_phases(stats.counts.sum(axis=0), stats.nonzero.sum(axis=0), season_lengths)
    factors = _series_factors(stats, closed)
    out: list[SeriesCalendar | None] = [None] * len(series)
    for row, i in enumerate(order):
        end_phase = int((first[i] + len(series[i].y)) % period)
        out[i] = SeriesCalendar(factors[row], end_phase)
    return [c for c in out if c is not None]


@dataclass
class _PhaseStats:
    """Per series (rows) and phase (columns): periods, observed values, non-zero values and
    positive demand; per series, the number and the sum of squares of the positive demands."""

    counts: np.ndarray
    observed: np.ndarray
    nonzero: np.ndarray
    volume: np.ndarray
    demands: np.ndarray
    square: np.ndarray

    @classmethod
    def empty(cls, n_series: int, period: int) -> _PhaseStats:
        shape = (n_series, period)
        return cls(
            np.zeros(shape, dtype=np.int64),
            np.zeros(shape, dtype=np.int64),
            np.zeros(shape, dtype=np.int64),
            np.zeros(shape),
            np.zeros(n_series, dtype=np.int64),
            np.zeros(n_series),
        )

    def add(self, row: int, y: np.ndarray, first_phase: int) -> None:
        period = self.counts.shape[1]
        phase = (first_phase + np.arange(len(y))) % period
        finite = np.isfinite(y)
        positive = np.maximum(np.where(finite, y, 0.0), 0.0)
        self.counts[row] = np.bincount(phase, minlength=period)
        self.observed[row] = np.bincount(phase[finite], minlength=period)
        self.nonzero[row] = np.bincount(phase[finite & (y != 0)], minlength=period)
        self.volume[row] = np.bincount(phase, weights=positive, minlength=period)
        self.demands[row] = int(np.count_nonzero(positive))
        self.square[row] = float(np.sum(positive * positive))

    def effective_demands(self) -> np.ndarray:
        """Number of demands discounted for the spread of their sizes: n / (1 + CV^2)."""
        n = self.demands.astype(np.float64)
        mean = self.volume.sum(axis=1) / np.maximum(n, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            cv2 = np.where((n > 1) & (mean > 0), self.square / np.maximum(n, 1.0) / mean**2 - 1.0, 0.0)
        out: np.ndarray = n / (1.0 + np.maximum(cv2, 0.0))
        return out


def _closed_phases(
    opportunities: np.ndarray, nonzero: np.ndarray, season_lengths: Sequence[float] = ()
) -> np.ndarray:
    """Phases without any demand in the panel where even spread would have put plenty.

    Shorter cycles that divide the week (the hours of a day in hourly data) are tested too, on
    the phases folded onto them: an hour that is never busy on any day is closed on every day,
    although each hour of the week alone may have too little evidence.
    """
    period = len(nonzero)
    closed = _closed(opportunities, nonzero)
    for length in sorted({round(p) for p in season_lengths if float(p).is_integer()}):
        if 2 <= length < period and period % length == 0:
            folded = np.arange(period) % length
            sub = _closed(
                np.bincount(folded, weights=opportunities, minlength=length),
                np.bincount(folded, weights=nonzero, minlength=length),
            )
            closed |= sub[folded]
    return closed


def _closed(opportunities: np.ndarray, nonzero: np.ndarray) -> np.ndarray:
    total_nonzero, total = float(nonzero.sum()), float(opportunities.sum())
    if total_nonzero == 0 or total == 0:
        return np.zeros(len(nonzero), dtype=bool)
    expected = total_nonzero * opportunities / total
    closed: np.ndarray = (nonzero == 0) & (expected >= CLOSED_MIN_EXPECTED)
    return closed


def _own_shares(stats: _PhaseStats, closed: np.ndarray) -> np.ndarray:
    """Each series' share of demand per phase (demand per observed period, normalised); NaN rows
    where a series has no demand or an open phase was never observed."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(stats.observed > 0, stats.volume / stats.observed, np.nan)
    rate[:, closed] = 0.0
    total = rate.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        share: np.ndarray = np.where(np.isfinite(total) & (total > 0), rate / total, np.nan)
    return share


def _series_factors(stats: _PhaseStats, closed: np.ndarray) -> np.ndarray:
    """Per series: P x (own shares shrunk towards the pooled shares), mean 1 over the phases.

    The pool is the series' shares weighted by their effective demands (capped), with a little
    even spread mixed in. A series' own shares get the weight m / (m + K), m its effective
    demands: K is the sampling variance of one demand's share over the variance of the true
    shares between series, both estimated from the panel (method of moments).
    """
    period = len(closed)
    open_count = int((~closed).sum())
    even = np.where(closed, 0.0, 1.0 / max(open_count, 1))
    share = _own_shares(stats, closed)
    usable = np.isfinite(share).all(axis=1)
    own = np.where(usable[:, None], share, 0.0)
    demands = np.where(usable, stats.effective_demands(), 0.0)
    weight = np.minimum(demands, POOL_CAP_PER_PHASE * period)
    prior = POOL_PRIOR_PER_PHASE * period
    pool = ((own * weight[:, None]).sum(axis=0) + prior * even) / (weight.sum() + prior)
    pool = np.where(closed, 0.0, np.maximum(pool, POOL_FLOOR * even))
    pool = pool / pool.sum()
    k = _prior_demands(own, demands, usable & (demands >= 1.0), pool, closed)
    with np.errstate(divide="ignore", invalid="ignore"):
        own_weight = np.where(demands > 0, demands / (demands + k), 0.0)[:, None]
    mixed = own_weight * own + (1.0 - own_weight) * pool[None, :]
    mixed = np.where(closed[None, :], 0.0, mixed)
    out: np.ndarray = period * mixed / mixed.sum(axis=1, keepdims=True)
    return out


def _prior_demands(
    own: np.ndarray, demands: np.ndarray, rows: np.ndarray, pool: np.ndarray, closed: np.ndarray
) -> float:
    """Demands the pooled profile is worth in a series' profile (inf: the series do not differ)."""
    period = len(closed)
    if rows.sum() < MIN_SERIES_FOR_SPREAD:
        return DEFAULT_PRIOR_PER_PHASE * period
    binomial = pool * (1.0 - pool)
    # E[(own - pool)^2] = between-series variance + binomial / demands, per open phase
    excess = (own[rows] - pool[None, :]) ** 2 - binomial[None, :] / demands[rows][:, None]
    between = float(np.mean(excess[:, ~closed]))
    if between <= 0:
        return float("inf")
    return float(np.mean(binomial[~closed])) / between
