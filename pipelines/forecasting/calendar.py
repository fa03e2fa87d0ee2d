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


@dataclass(frozen=True)
class PanelWeek:
    """The panel's share of the week: what every series' calendar is built against.

    Attributes:
        period: phases in the cycle.
        closed: (P,) phases in which the panel never trades.
        pool: (P,) pooled share of demand per phase (0 on closed phases, sums to 1).
        prior_demands: demands the pooled profile is worth in a series' own profile.
    """

    period: int
    closed: np.ndarray
    pool: np.ndarray
    prior_demands: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form; floats keep every bit (JSON writes their shortest exact repr)."""
        return {
            "period": self.period,
            "closed": [bool(c) for c in self.closed],
            "pool": [float(v) for v in self.pool],
            "prior_demands": self.prior_demands if np.isfinite(self.prior_demands) else "inf",
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PanelWeek:
        period = int(data["period"])  # type: ignore[call-overload]
        closed = np.array(data["closed"], dtype=bool)
        pool = np.array(data["pool"], dtype=np.float64)
        if closed.shape != (period,) or pool.shape != (period,):
            raise ValueError(f"panel week: closed and pool must have {period} phases")
        return cls(period, closed, pool, float(data["prior_demands"]))  # type: ignore[arg-type]


class WeekStats:
    """The figures the panel week is estimated from, gathered over batches of series.

    A night forecast in shards adds every shard's series here first, so that each shard's
    calendars are built against the week of the whole panel and a series' forecast does not
    depend on which other series share its shard.
    """

    def __init__(self, freq: str, season_lengths: Sequence[float]) -> None:
        self.freq = freq
        self.season_lengths = tuple(season_lengths)
        self.step = fixed_step(to_offset(freq))
        self.first: int | None = None
        self.last: int | None = None
        self.ids: list[np.ndarray] = []  # per batch: the series' unique_id
        # per candidate period: the phase statistics of each batch, rows in order of `ids`
        self.batches: dict[int, list[_PhaseStats]] = {p: [] for p in self._candidates()}

    def _candidates(self) -> list[int]:
        """Periods of every cycle the frequency could use (the span decides at the end)."""
        if self.step is None or self.step <= pd.Timedelta(0):
            return []
        seasons = {round(p) for p in self.season_lengths if float(p).is_integer()}
        ratios = [cycle / self.step for cycle in CYCLES]
        return [round(r) for r in ratios if r >= 2 and float(r).is_integer() and round(r) in seasons]

    @property
    def needed(self) -> bool:
        """Whether the frequency can have a weekly cycle at all (else `finish` is None)."""
        return bool(self.batches)

    def add(self, series: Sequence[SeriesInput]) -> None:
        """Gather a batch of series (each unique_id in one batch only)."""
        if not self.batches or self.step is None or not series:
            return
        step_ns = self.step.value
        start = min(s.last_ds.value - (len(s.y) - 1) * step_ns for s in series)
        end = max(s.last_ds.value for s in series)
        self.first = start if self.first is None else min(self.first, start)
        self.last = end if self.last is None else max(self.last, end)
        self.ids.append(np.array([s.unique_id for s in series], dtype=object))
        for period, batches in self.batches.items():
            first = _first_phases(series, self.step, period)
            stats = _PhaseStats.empty(len(series), period, np.int32)  # counts of periods
            for i, s in enumerate(series):
                stats.add(i, s.y, int(first[i]))
            batches.append(stats)

    def span(self) -> int:
        """Periods the panel covers."""
        if self.first is None or self.last is None or self.step is None:
            return 0
        return int((self.last - self.first) // self.step.value) + 1

    def finish(self) -> PanelWeek | None:
        """The panel week, or None when the frequency or the span has no weekly cycle.

        Raises:
            ValueError: a series was added twice.
        """
        if self.first is None:
            return None
        period = choose_cycle(self.freq, self.season_lengths, self.span())
        if period is None or period not in self.batches:
            return None
        ids = np.concatenate(self.ids)
        order = np.argsort(ids, kind="stable")
        if len(ids) > 1 and (ids[order][1:] == ids[order][:-1]).any():
            raise ValueError("panel week: a series was added twice (each unique_id in one batch only)")
        batches = self.batches[period]
        # counts of periods: their sums do not depend on the order of the series
        counts = sum(
            (b.counts.sum(axis=0, dtype=np.int64) for b in batches), np.zeros(period, dtype=np.int64)
        )
        nonzero = sum(
            (b.nonzero.sum(axis=0, dtype=np.int64) for b in batches), np.zeros(period, dtype=np.int64)
        )
        closed = _closed_phases(counts, nonzero, self.season_lengths)
        # each series' own shares, a batch at a time, put in order of unique_id
        rank = np.empty(len(ids), dtype=np.int64)
        rank[order] = np.arange(len(ids))
        own, demands = np.empty((len(ids), period)), np.empty(len(ids))
        start = 0
        for b in batches:
            at = rank[start : start + len(b.demands)]
            own[at], demands[at] = _usable_shares(b, closed)
            start += len(b.demands)
        pool, prior = _pool(own, demands, closed)
        return PanelWeek(period, closed, pool, prior)


def panel_week(series: Sequence[SeriesInput], freq: str, season_lengths: Sequence[float]) -> PanelWeek | None:
    """The week of one panel of series (see `WeekStats` for panels gathered in batches)."""
    stats = WeekStats(freq, season_lengths)
    stats.add(series)
    return stats.finish()


def build_calendars(
    series: Sequence[SeriesInput],
    freq: str,
    season_lengths: Sequence[float],
    week: PanelWeek | None = None,
) -> list[SeriesCalendar] | None:
    """One calendar per series (same order), or None when the frequency has no weekly cycle.

    `week` is the panel's week (`WeekStats`); without it, it is estimated from `series`. Pooled
    figures are summed over the series in order of `unique_id`, so they do not depend on the
    order of the input rows, and a series' calendar depends only on its own values and the week.
    """
    if not series:
        return None
    if week is None:
        week = panel_week(series, freq, season_lengths)
    step = fixed_step(to_offset(freq))
    if week is None or step is None:
        return None
    first = _first_phases(series, step, week.period)
    stats = _PhaseStats.empty(len(series), week.period)
    for i, s in enumerate(series):
        stats.add(i, s.y, int(first[i]))
    factors = _series_factors(stats, week)
    return [
        SeriesCalendar(factors[i], int((first[i] + len(s.y)) % week.period)) for i, s in enumerate(series)
    ]


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
    def empty(cls, n_series: int, period: int, count_type: type[np.integer] = np.int64) -> _PhaseStats:
        """Zero statistics of `n_series` series (`count_type`: the integers the counts are kept in)."""
        shape = (n_series, period)
        return cls(
            np.zeros(shape, dtype=count_type),
            np.zeros(shape, dtype=count_type),
            np.zeros(shape, dtype=count_type),
            np.zeros(shape),
            np.zeros(n_series, dtype=count_type),
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


def _usable_shares(stats: _PhaseStats, closed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Own shares (0 rows where unusable) and effective demands (0 where unusable) per series."""
    share = _own_shares(stats, closed)
    usable = np.isfinite(share).all(axis=1)
    own = np.where(usable[:, None], share, 0.0)
    demands = np.where(usable, stats.effective_demands(), 0.0)
    return own, demands


def _pool(own: np.ndarray, demands: np.ndarray, closed: np.ndarray) -> tuple[np.ndarray, float]:
    """The pooled shares and the demands they are worth in a series' profile, from the series'
    own shares and effective demands (`_usable_shares`, rows in order of unique_id).

    The pool is the series' shares weighted by their effective demands (capped), with a little
    even spread mixed in. A series' own shares get the weight m / (m + K), m its effective
    demands: K is the sampling variance of one demand's share over the variance of the true
    shares between series, both estimated from the panel (method of moments).
    """
    period = len(closed)
    open_count = int((~closed).sum())
    even = np.where(closed, 0.0, 1.0 / max(open_count, 1))
    weight = np.minimum(demands, POOL_CAP_PER_PHASE * period)
    prior = POOL_PRIOR_PER_PHASE * period
    pool = ((own * weight[:, None]).sum(axis=0) + prior * even) / (weight.sum() + prior)
    pool = np.where(closed, 0.0, np.maximum(pool, POOL_FLOOR * even))
    pool = pool / pool.sum()
    k = _prior_demands(own, demands, demands >= 1.0, pool, closed)
    return pool, k


def _series_factors(stats: _PhaseStats, week: PanelWeek) -> np.ndarray:
    """Per series: P x (own shares shrunk towards the pooled shares), mean 1 over the phases."""
    own, demands = _usable_shares(stats, week.closed)
    k = week.prior_demands
    with np.errstate(divide="ignore", invalid="ignore"):
        own_weight = np.where(demands > 0, demands / (demands + k), 0.0)[:, None]
    mixed = own_weight * own + (1.0 - own_weight) * week.pool[None, :]
    mixed = np.where(week.closed[None, :], 0.0, mixed)
    out: np.ndarray = week.period * mixed / mixed.sum(axis=1, keepdims=True)
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
