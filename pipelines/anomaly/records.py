"""Transaction anomalies on order lines: :func:`score_records`.

Each line's unit price, discount and quantity are compared with the earlier history (strictly earlier
order dates) of the same sku and of the same customer. Prices and quantities are compared on a log
scale (a 10x price is as unusual as a 0.1x one); the customer history uses prices and quantities
relative to the sku's usual value, so a customer with a negotiated price is not flagged. A value is
anomalous only if it is unusual for the sku AND for the customer (when both have history; discounts,
being negotiated per customer, are only scored once the customer has history). Lines that
repeat the same order, sku, quantity and unit price are flagged as duplicates.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from pipelines.anomaly.errors import AnomalyInputError
from pipelines.anomaly.model import t_quantile, two_sided_score
from pipelines.anomaly.options import RecordOptions
from pipelines.anomaly.reasons import format_number
from pipelines.anomaly.windows import quantile_sorted, sorted_count

logger = logging.getLogger(__name__)

RECORD_COLUMNS = (
    "order_id",
    "line_no",
    "order_date",
    "sku",
    "customer_id",
    "quantity",
    "unit_price",
    "discount",
)
OUTPUT_COLUMNS = (
    "record_id",
    "order_date",
    "sku",
    "customer_id",
    "field",
    "value",
    "expected",
    "lower",
    "upper",
    "score",
    "is_anomaly",
    "reason",
)
_MAD_TO_SD = 1.4826
_ROWS_PER_BLOCK = 100_000


def _validate(lines: object) -> pd.DataFrame:
    if not isinstance(lines, pd.DataFrame):
        raise AnomalyInputError(f"order_lines must be a pandas DataFrame, got {type(lines).__name__}")
    missing = [c for c in RECORD_COLUMNS if c not in lines.columns]
    if missing:
        raise AnomalyInputError(
            f"order_lines is missing column(s) {missing}: expected {list(RECORD_COLUMNS)}, "
            f"got {list(lines.columns)}; map source columns to the canonical order-line contract"
        )
    for col in ("order_id", "sku", "customer_id"):
        if lines[col].isna().any():
            raise AnomalyInputError(f"order_lines.{col} has {int(lines[col].isna().sum())} null value(s)")
    for col in ("line_no", "quantity", "unit_price", "discount"):
        dt = lines[col].dtype
        if not pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt):
            raise AnomalyInputError(
                f"order_lines.{col} must be numeric, got dtype {dt}; convert it with pd.to_numeric"
            )
    try:
        dates = pd.to_datetime(lines["order_date"])
    except (TypeError, ValueError) as err:
        raise AnomalyInputError(
            f"order_lines.order_date must hold dates or timestamps, got dtype {lines['order_date'].dtype}"
        ) from err
    if dates.isna().any():
        raise AnomalyInputError(f"order_lines.order_date has {int(dates.isna().sum())} null value(s)")
    out = lines.loc[:, list(RECORD_COLUMNS)].copy()
    out["order_date"] = dates.dt.normalize()
    for col in ("order_id", "sku", "customer_id"):
        out[col] = out[col].astype(str)
    dup = out.duplicated(["order_id", "line_no"])
    if dup.any():
        first = out.loc[dup].iloc[0]
        raise AnomalyInputError(
            f"order_lines has duplicate keys (order_id, line_no), e.g. ({first['order_id']!r}, "
            f"{first['line_no']!r}); expected one row per order line"
        )
    return out


def _causal_stats(
    group: np.ndarray, day: np.ndarray, value: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 1.4826 x MAD and count of the last ``window`` values of the same group on earlier days."""
    n = len(value)
    order = np.lexsort((day, group))
    g, d, v = group[order], day[order], value[order]
    idx = np.arange(n)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    new_block = new_group.copy()
    new_block[1:] |= d[1:] != d[:-1]
    gstart = np.maximum.accumulate(np.where(new_group, idx, 0))
    bstart = np.maximum.accumulate(np.where(new_block, idx, 0))
    med = np.empty(n)
    scale = np.empty(n)
    cnt = np.empty(n, dtype=np.int64)
    lags = np.arange(1, window + 1)
    for lo in range(0, n, _ROWS_PER_BLOCK):
        hi = min(n, lo + _ROWS_PER_BLOCK)
        pos = bstart[lo:hi, None] - lags[None, :]
        win = np.where(pos >= gstart[lo:hi, None], v[np.maximum(pos, 0)], np.nan)
        s, c = sorted_count(win)
        m = quantile_sorted(s, c, 0.5)
        dev, _ = sorted_count(np.abs(win - m[:, None]))
        med[lo:hi], scale[lo:hi], cnt[lo:hi] = m, _MAD_TO_SD * quantile_sorted(dev, c, 0.5), c
    out_m, out_s, out_c = np.empty(n), np.empty(n), np.empty(n, dtype=np.int64)
    out_m[order], out_s[order], out_c[order] = med, scale, cnt
    return out_m, out_s, out_c


def _field_scores(
    z_value: np.ndarray, med: np.ndarray, scale: np.ndarray, cnt: np.ndarray, floor: float, min_history: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sc = np.fmax(scale, floor)
    dof = np.maximum(cnt - 1, 1).astype(np.float64)
    z = (z_value - med) / sc
    score = two_sided_score(z, dof)
    score = np.where((cnt >= min_history) & ~np.isnan(score), score, np.nan)
    return score, sc, dof


def score_records(order_lines: pd.DataFrame, *, options: RecordOptions | None = None) -> pd.DataFrame:
    """Score order lines for unusual unit price, discount and quantity, and flag duplicate lines.

    Args:
        order_lines: canonical order lines ``order_id, line_no, order_date, sku, customer_id,
            quantity, unit_price, discount`` (discount as a fraction 0..1).
        options: :class:`RecordOptions`.

    Returns:
        One row per line and field (``unit_price``, ``discount``, ``quantity``) plus one row per
        duplicate line (``field = "duplicate"``), with ``record_id`` ("<order_id>-<line_no>"),
        ``order_date, sku, customer_id, field, value, expected, lower, upper, score, is_anomaly,
        reason``. Scores use only lines of strictly earlier order dates; a line scores 0 until its sku
        has ``min_history`` earlier lines. Non-positive prices or quantities are not scored.

    Raises:
        AnomalyInputError: if ``order_lines`` breaks the contract.
    """
    t0 = time.perf_counter()
    opts = options or RecordOptions()
    lines = _validate(order_lines)
    day = lines["order_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    sku = pd.factorize(lines["sku"])[0]
    cust = pd.factorize(lines["customer_id"])[0]
    record_id = (lines["order_id"] + "-" + lines["line_no"].astype(np.int64).astype(str)).to_numpy(
        dtype=object
    )
    parts = []
    fields = (
        ("unit_price", True, opts.price_scale_floor),
        ("quantity", True, opts.quantity_scale_floor),
        ("discount", False, opts.discount_scale_floor),
    )
    for field, use_log, floor in fields:
        raw = lines[field].to_numpy(dtype=np.float64, na_value=np.nan)
        val = np.log(np.where(raw > 0, raw, np.nan)) if use_log else raw
        m_s, s_s, c_s = _causal_stats(sku, day, val, opts.window)
        score_s, sc_s, dof_s = _field_scores(val, m_s, s_s, c_s, floor, opts.min_history)
        rel = val - m_s
        m_c, s_c, c_c = _causal_stats(cust, day, rel, opts.window)
        score_c, _, _ = _field_scores(rel, m_c, s_c, c_c, floor, opts.min_history)
        # Unusual for the sku AND for the customer; either alone when only one has history.
        score = np.where(
            np.isnan(score_s), score_c, np.where(np.isnan(score_c), score_s, np.fmin(score_s, score_c))
        )
        if field == "discount":
            # Discounts are negotiated per customer: without the customer's history there is no basis.
            score = np.where(np.isnan(score_c), np.nan, score)
        score = np.nan_to_num(score, nan=0.0)
        half = t_quantile(dof_s, opts.threshold) * sc_s
        lo_, hi_ = m_s - half, m_s + half
        expected = np.exp(m_s) if use_log else m_s
        with np.errstate(over="ignore"):
            lower, upper = (np.exp(lo_), np.exp(hi_)) if use_log else (lo_, hi_)
        is_anom = score >= opts.threshold
        if field == "discount":
            out_of_range = (raw < 0) | (raw > 1)
            is_anom |= out_of_range
            score = np.where(out_of_range, 1.0, score)
        parts.append(
            pd.DataFrame(
                {
                    "record_id": record_id,
                    "order_date": lines["order_date"].to_numpy(),
                    "sku": lines["sku"].to_numpy(dtype=object),
                    "customer_id": lines["customer_id"].to_numpy(dtype=object),
                    "field": field,
                    "value": raw,
                    "expected": expected,
                    "lower": lower,
                    "upper": upper,
                    "score": score,
                    "is_anomaly": is_anom,
                    "reason": _field_reasons(field, raw, expected, is_anom, score_c, lines),
                }
            )
        )
    parts.append(_duplicates(lines, record_id))
    out = pd.concat(parts, ignore_index=True)
    logger.info(
        "anomaly.score_records: %d lines in, %d rows out, %d anomalies, %.1fs",
        len(lines),
        len(out),
        int(out["is_anomaly"].sum()),
        time.perf_counter() - t0,
    )
    return out


def _field_reasons(
    field: str,
    raw: np.ndarray,
    expected: np.ndarray,
    flagged: np.ndarray,
    score_c: np.ndarray,
    lines: pd.DataFrame,
) -> np.ndarray:
    reasons = np.full(len(raw), None, dtype=object)
    label = field.replace("_", " ")
    skus = lines["sku"].to_numpy(dtype=object)
    custs = lines["customer_id"].to_numpy(dtype=object)
    for i in np.flatnonzero(flagged):
        v, e = raw[i], expected[i]
        if field == "discount":
            if not 0 <= v <= 1:
                reasons[i] = f"discount {v:.0%} is outside 0% to 100%"
                continue
            text = f"discount {v:.0%} vs the usual {e:.0%} for sku {skus[i]}"
        elif np.isfinite(e) and e > 0 and (v / e >= 1.5 or v / e <= 1 / 1.5):
            text = (
                f"{label} {format_number(v)} is {v / e:.2g}x the usual {format_number(e)} for sku {skus[i]}"
            )
        else:
            text = f"{label} {format_number(v)} vs the usual {format_number(e)} for sku {skus[i]}"
        if not np.isnan(score_c[i]):
            text += f" and unusual for customer {custs[i]}"
        reasons[i] = text
    return reasons


def _duplicates(lines: pd.DataFrame, record_id: np.ndarray) -> pd.DataFrame:
    key = ["order_id", "sku", "quantity", "unit_price"]
    dup = lines.duplicated(key, keep="first").to_numpy()
    copies = lines.groupby(key, sort=False, dropna=False)["line_no"].transform("size").to_numpy()
    first_line = lines.groupby(key, sort=False, dropna=False)["line_no"].transform("min").to_numpy()
    idx = np.flatnonzero(dup)
    return pd.DataFrame(
        {
            "record_id": record_id[idx],
            "order_date": lines["order_date"].to_numpy()[idx],
            "sku": lines["sku"].to_numpy(dtype=object)[idx],
            "customer_id": lines["customer_id"].to_numpy(dtype=object)[idx],
            "field": "duplicate",
            "value": copies[idx].astype(np.float64),
            "expected": 1.0,
            "lower": np.nan,
            "upper": 1.0,
            "score": 1.0,
            "is_anomaly": True,
            "reason": [
                f"line repeats line {int(first_line[i])} of order {lines['order_id'].iloc[i]} "
                f"(same sku, quantity and unit price; {int(copies[i])} copies)"
                for i in idx
            ],
        }
    )
