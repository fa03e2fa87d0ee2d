"""Causal anomaly scoring of many metric series (daily, hourly, ...) at once: :func:`score`."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.anomaly import model
from pipelines.anomaly.cadence import Cadence
from pipelines.anomaly.errors import AnomalyInputError
from pipelines.anomaly.options import ScoreOptions
from pipelines.anomaly.panel import (
    ALL_SERIES,
    SeriesPanel,
    build_event_table,
    build_feedback_table,
    build_series_panel,
    period_of,
    period_to_timestamp,
)
from pipelines.anomaly.reasons import build_point_reasons

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS = (
    "unique_id",
    "ds",
    "y",
    "expected",
    "lower",
    "upper",
    "score",
    "is_anomaly",
    "kind",
    "reason",
    "model",
    "event",
)
_KIND_NAMES = np.array([model.KIND_LABELS[k] for k in sorted(model.KIND_LABELS)], dtype=object)


@dataclass(frozen=True)
class _Chunk:
    """Everything one worker needs to score a chunk of series."""

    rows: np.ndarray  # global series index of each chunk row
    first: np.ndarray  # first period of each chunk row
    last: np.ndarray
    codes: np.ndarray  # chunk-local series index of each value
    periods: np.ndarray
    y: np.ndarray
    ev_codes: np.ndarray  # chunk-local series index of each event (-1 = all series)
    ev_periods: np.ndarray
    ev_labels: np.ndarray
    fb_codes: np.ndarray  # chunk-local series index of each point marked as expected
    fb_periods: np.ndarray
    only_after: int | None  # last period not returned
    threshold: float
    min_history: int
    cadence: Cadence


def _score_chunk(chunk: _Chunk) -> dict[str, np.ndarray]:
    g0 = int(chunk.first.min())
    n_cols = int(chunk.last.max()) - g0 + 1
    n = len(chunk.rows)
    y = np.full((n, n_cols), np.nan)
    y[chunk.codes, chunk.periods - g0] = chunk.y
    event = np.zeros((n, n_cols), dtype=bool)
    labels: dict[tuple[int, int], str] = {}
    for code, period, label in zip(chunk.ev_codes, chunk.ev_periods, chunk.ev_labels, strict=True):
        col = int(period) - g0
        if not 0 <= col < n_cols:
            continue
        targets = range(n) if code < 0 else (int(code),)
        for row in targets:
            event[row, col] = True
            key = (row, col)
            labels[key] = f"{labels[key]}; {label}" if key in labels else str(label)
    feedback = np.zeros((n, n_cols), dtype=bool)
    fb_cols = chunk.fb_periods - g0
    inside = (fb_cols >= 0) & (fb_cols < n_cols)
    feedback[chunk.fb_codes[inside], fb_cols[inside]] = True
    start = 0 if chunk.only_after is None else max(0, chunk.only_after + 1 - g0)
    start = min(start, n_cols)
    # Points marked as expected are handled like known events: left out of every later baseline and
    # never alarmed; unlike events they are not named as one.
    res = model.score_matrix(
        y,
        event | feedback,
        start,
        day0=g0,
        threshold=chunk.threshold,
        min_history=chunk.min_history,
        cadence=chunk.cadence,
    )
    cols = np.arange(start, n_cols) + g0
    mask = (cols[None, :] >= chunk.first[:, None]) & (cols[None, :] <= chunk.last[:, None])
    r, c = np.nonzero(mask)
    ev_out = event[:, start:][mask]
    ev_rows = np.flatnonzero(ev_out)
    ev_text = np.array([labels[(int(r[i]), int(c[i]) + start)] for i in ev_rows], dtype=object)
    shift = res.shift_start[mask]
    return {
        "series": chunk.rows[r],
        "period": cols[c],
        "y": y[:, start:][mask],
        "expected": res.expected[mask],
        "lower": res.lower[mask],
        "upper": res.upper[mask],
        "score": res.score[mask],
        "tail": res.tail[mask],
        "is_anomaly": res.is_anomaly[mask],
        "kind": res.kind[mask],
        "count_model": res.count_model[mask],
        "feedback": feedback[:, start:][mask],
        "shift_period": np.where(shift >= 0, shift + g0, -1),
        "event_rows": ev_rows,
        "event_text": ev_text,
    }


def _local_codes(uids: pd.Series, uid_to_row: dict[str, int]) -> np.ndarray:
    """Global series index of each id (-1 = every series, -2 = a series not in the input)."""
    return np.array([uid_to_row.get(u, -2) if u != ALL_SERIES else -1 for u in uids], dtype=np.int64).reshape(
        -1
    )


def _build_chunks(
    panel: SeriesPanel, events: pd.DataFrame, feedback: pd.DataFrame, opts: ScoreOptions
) -> list[_Chunk]:
    cad = panel.cadence
    only_after = None if opts.only_after is None else period_of(opts.only_after, cad)
    # Chunks of series with similar start dates keep the dense matrices small. Series sampled
    # several times a day have many more periods, so their chunks hold fewer series.
    size = opts.chunk_size if cad.is_daily else max(1, opts.chunk_size * 7 // cad.per_day)
    order = np.lexsort((np.arange(len(panel.ids)), panel.first))
    value_order = np.argsort(panel.codes, kind="stable")
    bounds = np.searchsorted(panel.codes[value_order], np.arange(len(panel.ids) + 1))
    uid_to_row = {uid: i for i, uid in enumerate(panel.ids)}
    ev_series = _local_codes(events["unique_id"], uid_to_row)
    ev_periods = events["period"].to_numpy(dtype=np.int64)
    ev_labels = events["event"].to_numpy(dtype=object)
    fb_series = _local_codes(feedback["unique_id"], uid_to_row)
    fb_periods = feedback["period"].to_numpy(dtype=np.int64)
    chunks = []
    for lo in range(0, len(order), size):
        rows = np.sort(order[lo : lo + size])
        local = np.full(len(panel.ids), -1)
        local[rows] = np.arange(len(rows))
        idx = np.concatenate([value_order[bounds[i] : bounds[i + 1]] for i in rows])
        ev_mask = (ev_series == -1) | np.isin(ev_series, rows)
        ev_codes = np.where(ev_series[ev_mask] == -1, -1, local[np.maximum(ev_series[ev_mask], 0)])
        fb_mask = np.isin(fb_series, rows)
        chunks.append(
            _Chunk(
                rows=rows,
                first=panel.first[rows],
                last=panel.last[rows],
                codes=local[panel.codes[idx]],
                periods=panel.periods[idx],
                y=panel.y[idx],
                ev_codes=ev_codes,
                ev_periods=ev_periods[ev_mask],
                ev_labels=ev_labels[ev_mask],
                fb_codes=local[fb_series[fb_mask]],
                fb_periods=fb_periods[fb_mask],
                only_after=only_after,
                threshold=opts.threshold,
                min_history=opts.min_history,
                cadence=cad,
            )
        )
    return chunks


def _empty_output() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_id": pd.Series([], dtype=str),
            "ds": pd.Series([], dtype="datetime64[ns]"),
            **{c: pd.Series([], dtype=float) for c in ("y", "expected", "lower", "upper", "score")},
            "is_anomaly": pd.Series([], dtype=bool),
            "kind": pd.Series([], dtype=object),
            "reason": pd.Series([], dtype=object),
            "model": pd.Series([], dtype=object),
            "event": pd.Series([], dtype=object),
        }
    )


def score(
    df: pd.DataFrame,
    *,
    events: pd.DataFrame | None = None,
    options: ScoreOptions | None = None,
    feedback: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score every period of every series for anomalies, causally.

    Args:
        df: long frame ``unique_id`` (str), ``ds`` (timestamps), ``y`` (float, NaN = no value);
            several series at once, one row per series and period. The period is inferred from
            ``ds`` (midnight timestamps: daily; otherwise e.g. hourly or every 15 minutes) unless
            ``options.freq`` names it; all series share it.
        events: optional known events ``unique_id`` (None or "*" = every series), ``ds``, ``event``
            (e.g. "promotion"). Event periods never alarm, are left out of the model's history and
            are named in the reason. For series sampled several times a day, an event at midnight
            covers the whole day.
        options: :class:`ScoreOptions` (threshold, incremental ``only_after``, ``end``, ``freq``,
            processes).
        feedback: optional points ``unique_id, ds`` that analysts marked as expected (false
            positives). They are left out of the baseline of every later period, exactly as missing
            values, and are reported with ``is_anomaly = False`` and a reason saying so; other columns
            are ignored. The output is a function of ``df``, ``events`` and ``feedback`` only, so a
            re-run with the same feedback gives the same rows.

    Returns:
        One row per series and period between the series' first and last period (absent periods
        inside that range are added with ``y = NaN`` and scored as ``missing`` when the series
        normally reports every period), sorted by ``unique_id, ds``, with columns ``unique_id, ds,
        y, expected, lower, upper, score, is_anomaly, kind, reason, model, event``. ``score`` is in
        [0, 1]: one minus twice the one-sided tail probability of the value under the series' model
        (``model``: ``causal-robust-decomposition``, a decomposition with a Student-t residual, or
        ``causal-compound-count`` for sparse non-negative series), per day: for series sampled
        several times a day the period's probability times the periods per day, so thresholds keep
        their daily meaning. ``expected`` is the model's mean (for the count model: the chance of a
        non-zero value times the mean earlier non-zero value); ``lower``/``upper`` bound the values
        whose score stays below the threshold (``upper`` is NaN while a sparse series has no earlier
        non-zero value) and are never negative for a series without negative values. ``reason`` says
        how often a value this unusual happens for that weekday (and time of day). Only rows with
        ``ds > only_after`` are returned when ``options.only_after`` is set.

    Raises:
        AnomalyInputError: if ``df``, ``events``, ``feedback`` or ``options`` break the contract.
    """
    t0 = time.perf_counter()
    opts = options or ScoreOptions()
    if not isinstance(opts, ScoreOptions):
        raise AnomalyInputError(f"`options` must be a ScoreOptions, got {type(opts).__name__}")
    panel = build_series_panel(df, end=opts.end, freq=opts.freq)
    ev = build_event_table(events, panel.cadence)
    fb = build_feedback_table(feedback, panel.cadence)
    if len(panel.ids) == 0:
        return _empty_output()
    chunks = _build_chunks(panel, ev, fb, opts)
    if opts.n_jobs > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(max_workers=opts.n_jobs) as pool:
            parts = list(pool.map(_score_chunk, chunks))
    else:
        parts = [_score_chunk(c) for c in chunks]
    out = _assemble(panel, parts)
    logger.info(
        "anomaly.score: %d series, %d rows in, %d rows out, %d anomalies, %.1fs",
        len(panel.ids),
        len(df),
        len(out),
        int(out["is_anomaly"].sum()),
        time.perf_counter() - t0,
    )
    return out


def _assemble(panel: SeriesPanel, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    cad = panel.cadence
    offsets = np.cumsum([0] + [len(p["period"]) for p in parts])
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if not k.startswith("event_")}
    order = np.lexsort((cat["period"], cat["series"]))
    ev_rows = np.concatenate([p["event_rows"] + off for p, off in zip(parts, offsets, strict=False)])
    ev_text = np.concatenate([p["event_text"] for p in parts])
    event = np.full(len(order), None, dtype=object)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    event[inv[ev_rows]] = ev_text
    cat = {k: v[order] for k, v in cat.items()}
    out = pd.DataFrame(
        {
            "unique_id": pd.Categorical.from_codes(cat["series"], categories=panel.ids.astype(str)).astype(
                str
            ),
            "ds": period_to_timestamp(cat["period"], cad),
            "y": cat["y"],
            "expected": cat["expected"],
            "lower": cat["lower"],
            "upper": cat["upper"],
            "score": cat["score"],
            "is_anomaly": cat["is_anomaly"],
            "kind": _KIND_NAMES[cat["kind"]],
            "reason": np.full(len(order), None, dtype=object),
            "model": np.where(cat["count_model"], model.COUNT_MODEL_LABEL, model.MODEL_LABEL),
            "event": event,
        }
    )
    shift = cat["shift_period"]
    notes = pd.DataFrame(
        {
            "shift_since": np.where(
                shift >= 0, period_to_timestamp(np.maximum(shift, 0), cad), np.datetime64("NaT")
            ),
            "tail": cat["tail"],
            "count_model": cat["count_model"],
            "feedback": cat["feedback"],
        },
        index=out.index,
    )
    explain = np.flatnonzero(cat["is_anomaly"] | (cat["kind"] != model.KIND_NONE) | cat["feedback"])
    ev_map = {int(i): e for i, e in zip(np.flatnonzero(event != None), event[event != None], strict=True)}  # noqa: E711
    out.loc[out.index[explain], "reason"] = build_point_reasons(
        out, explain, ev_map, notes=notes, cadence=cad
    )
    return out
