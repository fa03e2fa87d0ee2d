"""Options of the anomaly scorers, as frozen dataclasses with documented, meaningful defaults."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipelines.anomaly.cadence import cadence_for, parse_freq
from pipelines.anomaly.errors import AnomalyInputError

#: Default alert threshold on ``score``. A score is one minus the two-sided tail probability of the
#: residual under the model, so 0.9995 means "a residual this large happens 1 day in 2,000 under the
#: model"; it matches the modified z-score cut-off of 3.5 of Iglewicz & Hoaglin for a Gaussian.
DEFAULT_THRESHOLD = 0.9995

#: Default incident severities: the peak score an incident must reach for each level.
DEFAULT_SEVERITIES: dict[str, float] = {"critical": 0.99999, "high": 0.9999, "medium": 0.9995}


@dataclass(frozen=True)
class ScoreOptions:
    """Options of :func:`pipelines.anomaly.score`.

    Attributes:
        threshold: minimum ``score`` for ``is_anomaly`` (see :data:`DEFAULT_THRESHOLD`).
        only_after: if set, return only rows with ``ds > only_after`` (incremental nightly scoring).
            The values are identical to a full scoring as long as the input holds at least
            :data:`pipelines.anomaly.model.REQUIRED_HISTORY_DAYS` days before ``only_after`` (for other
            periods :func:`pipelines.anomaly.required_history`).
        end: if set, every series is extended with absent (missing) periods up to the period holding
            this timestamp (the day, for daily series), so a feed that stopped reporting shows up as
            ``missing``; by default a series ends at its last row.
        min_history: number of valid past values a series needs before any value can be an alarm.
        n_jobs: processes used to score chunks of series (1 = in this process).
        chunk_size: series per chunk (bounds memory: about 1 GB per 1,000 two-year daily series);
            series sampled several times a day are scored in chunks of ``chunk_size * 7 /
            periods per day`` series.
        freq: sampling period of the series, e.g. "D", "h" or "15min"; inferred from ``df.ds`` when
            None (midnight timestamps: daily).
    """

    threshold: float = DEFAULT_THRESHOLD
    only_after: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    min_history: int = 14
    n_jobs: int = 1
    chunk_size: int = 500
    freq: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise AnomalyInputError(
                f"`threshold` must be in (0, 1), got {self.threshold!r}; "
                "pass e.g. ScoreOptions(threshold=0.9995)"
            )
        if self.min_history < 1:
            raise AnomalyInputError(f"`min_history` must be >= 1, got {self.min_history!r}")
        if self.n_jobs < 1:
            raise AnomalyInputError(f"`n_jobs` must be >= 1, got {self.n_jobs!r}")
        if self.chunk_size < 1:
            raise AnomalyInputError(f"`chunk_size` must be >= 1, got {self.chunk_size!r}")
        if self.freq is not None:
            cadence_for(parse_freq(self.freq))


@dataclass(frozen=True)
class RecordOptions:
    """Options of :func:`pipelines.anomaly.score_records`.

    Attributes:
        threshold: minimum ``score`` for ``is_anomaly`` on price, discount and quantity.
        min_history: earlier records of a sku (or customer) needed before its history is used.
        window: number of most recent earlier records of a sku/customer used as history.
        price_scale_floor: smallest scale of log unit prices (0.05 = price moves within about 5% are
            noise even when a sku's price never changed), so list-price updates are not flagged.
        quantity_scale_floor: smallest scale of log quantities (0.5: order sizes vary a lot, so only
            quantities many times the usual one, such as unit or typing errors, are flagged).
        discount_scale_floor: smallest scale of discounts (fraction; 0.02 = 2 percentage points).
    """

    threshold: float = DEFAULT_THRESHOLD
    min_history: int = 5
    window: int = 50
    price_scale_floor: float = 0.05
    quantity_scale_floor: float = 0.5
    discount_scale_floor: float = 0.02

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise AnomalyInputError(f"`threshold` must be in (0, 1), got {self.threshold!r}")
        if self.min_history < 1:
            raise AnomalyInputError(f"`min_history` must be >= 1, got {self.min_history!r}")
        if self.window < self.min_history:
            raise AnomalyInputError(
                f"`window` must be >= `min_history` ({self.min_history}), got {self.window!r}"
            )
