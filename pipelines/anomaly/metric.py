"""Causal anomaly scoring of many daily metric series at once: :func:`score`."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.anomaly import model
from pipelines.anomaly.errors import AnomalyInputError
from pipelines.anomaly.options import ScoreOptions
from pipelines.anomaly.panel import (
    ALL_SERIES,
    SeriesPanel,
    build_event_table,
    build_series_panel,
    day_to_timestamp,
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
    first_day: np.ndarray
    last_day: np.ndarray
    codes: np.ndarray  # chunk-local series index of each value
    days: np.ndarray
    y: np.ndarray
    ev_codes: np.ndarray  # chunk-local series index of each event (-1 = all series)
    ev_days: np.ndarray
    ev_labels: np.ndarray
    only_after_day: int | None
    threshold: float
    min_history: int


def _score_chunk(chunk: _Chunk) -> dict[str, np.ndarray]:
    g0 = int(chunk.first_day.min())
    n_days = int(chunk.last_day.max()) - g0 + 1
    n = len(chunk.rows)
    y = np.full((n, n_days), np.nan)
    y[chunk.codes, chunk.days - g0] = chunk.y
    event = np.zeros((n, n_days), dtype=bool)
    labels: dict[tuple[int, int], str] = {}
    for code, day, label in zip(chunk.ev_codes, chunk.ev_days, chunk.ev_labels, strict=True):
        col = int(day) - g0
        if not 0 <= col < n_days:
            continue
        targets = range(n) if code < 0 else (int(code),)
        for row in targets:
            event[row, col] = True
            key = (row, col)
            labels[key] = f"{labels[key]}; {label}" if key in labels else str(label)
    start = 0 if chunk.only_after_day is None else max(0, chunk.only_after_day + 1 - g0)
    start = min(start, n_days)
    res = model.score_matrix(
        y, event, start, day0=g0, threshold=chunk.threshold, min_history=chunk.min_history
    )
    cols = np.arange(start, n_days) + g0
    mask = (cols[None, :] >= chunk.first_day[:, None]) & (cols[None, :] <= chunk.last_day[:, None])
    r, c = np.nonzero(mask)
    ev_out = event[:, start:][mask]
    ev_rows = np.flatnonzero(ev_out)
    ev_text = np.array([labels[(int(r[i]), int(c[i]) + start)] for i in ev_rows], dtype=object)
    shift = res.shift_start[mask]
    return {
        "series": chunk.rows[r],
        "day": cols[c],
        "y": y[:, start:][mask],
        "expected": res.expected[mask],
        "lower": res.lower[mask],
        "upper": res.upper[mask],
        "score": res.score[mask],
        "is_anomaly": res.is_anomaly[mask],
        "kind": res.kind[mask],
        "shift_day": np.where(shift >= 0, shift + g0, -1),
        "event_rows": ev_rows,
        "event_text": ev_text,
    }


def _build_chunks(panel: SeriesPanel, events: pd.DataFrame, opts: ScoreOptions) -> list[_Chunk]:
    only_after_day = None
    if opts.only_after is not None:
        only_after_day = int(np.datetime64(pd.Timestamp(opts.only_after).normalize().asm8, "D").astype(int))
    # Chunks of series with similar start dates keep the dense matrices small.
    order = np.lexsort((np.arange(len(panel.ids)), panel.first_day))
    value_order = np.argsort(panel.codes, kind="stable")
    bounds = np.searchsorted(panel.codes[value_order], np.arange(len(panel.ids) + 1))
    uid_to_row = {uid: i for i, uid in enumerate(panel.ids)}
    ev_series = np.array(
        [uid_to_row.get(u, -2) if u != ALL_SERIES else -1 for u in events["unique_id"]], dtype=np.int64
    )
    ev_days = events["day"].to_numpy(dtype=np.int64)
    ev_labels = events["event"].to_numpy(dtype=object)
    chunks = []
    for lo in range(0, len(order), opts.chunk_size):
        rows = np.sort(order[lo : lo + opts.chunk_size])
        local = np.full(len(panel.ids), -1)
        local[rows] = np.arange(len(rows))
        idx = np.concatenate([value_order[bounds[i] : bounds[i + 1]] for i in rows])
        ev_mask = (ev_series == -1) | np.isin(ev_series, rows)
        ev_codes = np.where(ev_series[ev_mask] == -1, -1, local[np.maximum(ev_series[ev_mask], 0)])
        chunks.append(
            _Chunk(
                rows=rows,
                first_day=panel.first_day[rows],
                last_day=panel.last_day[rows],
                codes=local[panel.codes[idx]],
                days=panel.days[idx],
                y=panel.y[idx],
                ev_codes=ev_codes,
                ev_days=ev_days[ev_mask],
                ev_labels=ev_labels[ev_mask],
                only_after_day=only_after_day,
                threshold=opts.threshold,
                min_history=opts.min_history,
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
    df: pd.DataFrame, *, events: pd.DataFrame | None = None, options: ScoreOptions | None = None
) -> pd.DataFrame:
    """Score every day of every series for anomalies, causally.

    Args:
        df: long frame ``unique_id`` (str), ``ds`` (midnight daily timestamps), ``y`` (float, NaN =
            no value); several series at once, one row per series and day.
        events: optional known events ``unique_id`` (None or "*" = every series), ``ds``, ``event``
            (e.g. "promotion"). Event days never alarm, are left out of the model's history and are
            named in the reason.
        options: :class:`ScoreOptions` (threshold, incremental ``only_after``, ``end``, processes).

    Returns:
        One row per series and calendar day between the series' first and last day (absent days
        inside that range are added with ``y = NaN`` and scored as ``missing`` when the series
        normally reports daily), sorted by ``unique_id, ds``, with columns ``unique_id, ds, y,
        expected, lower, upper, score, is_anomaly, kind, reason, model, event``. ``score`` is in
        [0, 1]: one minus the two-sided tail probability of the residual under the model. Only rows
        with ``ds > only_after`` are returned when ``options.only_after`` is set.

    Raises:
        AnomalyInputError: if ``df``, ``events`` or ``options`` break the contract.
    """
    t0 = time.perf_counter()
    opts = options or ScoreOptions()
    if not isinstance(opts, ScoreOptions):
        raise AnomalyInputError(f"`options` must be a ScoreOptions, got {type(opts).__name__}")
    panel = build_series_panel(df, end=opts.end)
    ev = build_event_table(events)
    if len(panel.ids) == 0:
        return _empty_output()
    chunks = _build_chunks(panel, ev, opts)
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
    offsets = np.cumsum([0] + [len(p["day"]) for p in parts])
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if not k.startswith("event_")}
    order = np.lexsort((cat["day"], cat["series"]))
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
            "ds": day_to_timestamp(cat["day"]),
            "y": cat["y"],
            "expected": cat["expected"],
            "lower": cat["lower"],
            "upper": cat["upper"],
            "score": cat["score"],
            "is_anomaly": cat["is_anomaly"],
            "kind": _KIND_NAMES[cat["kind"]],
            "reason": np.full(len(order), None, dtype=object),
            "model": model.MODEL_LABEL,
            "event": event,
        }
    )
    shift = cat["shift_day"]
    out["_shift_since"] = pd.Series(
        np.where(shift >= 0, day_to_timestamp(np.maximum(shift, 0)), np.datetime64("NaT")),
        index=out.index,
    )
    explain = np.flatnonzero(cat["is_anomaly"] | (cat["kind"] != model.KIND_NONE))
    ev_map = {int(i): e for i, e in zip(np.flatnonzero(event != None), event[event != None], strict=True)}  # noqa: E711
    out.loc[out.index[explain], "reason"] = build_point_reasons(out, explain, ev_map)
    return out.drop(columns="_shift_since")
