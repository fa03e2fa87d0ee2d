"""Transaction anomalies on order lines: :func:`score_records`.

Each line's unit price, discount and quantity are compared with the earlier history (strictly earlier
order dates) of the same sku and of the same customer. Prices and quantities are compared on a log
scale (a 10x price is as unusual as a 0.1x one); the customer history uses values relative to the
sku's usual value, so a customer with a negotiated price is not flagged. A value is anomalous only if
it is unusual for the sku AND for the customer; prices and discounts, being negotiated per customer,
need the customer's history (quantities fall back on the sku's alone).

Three consistency rules keep ordinary business out of the alerts:

* price: a line's unit price is also compared before its own discount (``unit_price / (1 -
  discount)``). Where unit_price is the net price, that gross price is stable across promotions and
  customer discounts; where it is the list price, the net price is. A price is flagged only if both
  are unusual.
* discount: flagged only if unusual for the sku and customer AND not reflected in the price (the gross
  price is unusual too): a discount the net price agrees with was applied, e.g. a promotion. Discounts
  outside 0..1 are always flagged.
* quantity: small integer quantities have a long right tail on the log scale, so a quantity is flagged
  only if it is also unusual under a count model (Poisson or negative binomial) of the sku's quantities.

Lines repeating the same order, sku, quantity and unit price are duplicates when chance repetition
does not explain them (see :func:`_duplicates`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from pipelines.anomaly.errors import AnomalyInputError
from pipelines.anomaly.model import t_quantile, two_sided_score
from pipelines.anomaly.options import RecordOptions
from pipelines.anomaly.reasons import format_number
from pipelines.anomaly.windows import quantile_sorted, sorted_count
from pipelines.contracts import SOURCE, source_local_ids

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
    # a union of sources: order 1001 of each source is its own order (keys, ids and duplicates)
    if SOURCE in lines.columns:
        out["order_id"] = source_local_ids(out.assign(**{SOURCE: lines[SOURCE]}), "order_id")
    dup = out.duplicated(["order_id", "line_no"])
    if dup.any():
        first = out.loc[dup].iloc[0]
        raise AnomalyInputError(
            f"order_lines has duplicate keys (order_id, line_no), e.g. ({first['order_id']!r}, "
            f"{first['line_no']!r}); expected one row per order line"
        )
    return out


def _causal_stats(
    group: np.ndarray,
    day: np.ndarray,
    value: np.ndarray,
    window: int,
    *,
    moments: bool = False,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 1.4826 x MAD and count of the last ``window`` values of the same group on earlier days.

    With ``moments`` the first two arrays are the mean and the (n - 1) variance instead.  With
    ``rows`` (indices), only those rows' statistics, in that order: every row still counts in
    its group's history.
    """
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
    # each wanted row's place in the sorted order
    at = np.empty(n, dtype=np.intp)
    at[order] = idx
    targets = at if rows is None else at[rows]
    m_out = np.empty(len(targets))
    s_out = np.empty(len(targets))
    c_out = np.empty(len(targets), dtype=np.int64)
    lags = np.arange(1, window + 1)
    for lo in range(0, len(targets), _ROWS_PER_BLOCK):
        hi = min(len(targets), lo + _ROWS_PER_BLOCK)
        t = targets[lo:hi]
        pos = bstart[t, None] - lags[None, :]
        win = np.where(pos >= gstart[t, None], v[np.maximum(pos, 0)], np.nan)
        if moments:
            c = np.count_nonzero(~np.isnan(win), axis=1)
            total = np.nansum(win, axis=1)
            m = np.where(c > 0, total / np.maximum(c, 1), np.nan)
            ss = np.nansum((win - m[:, None]) ** 2, axis=1)
            m_out[lo:hi], s_out[lo:hi], c_out[lo:hi] = (
                m,
                np.where(c > 1, ss / np.maximum(c - 1, 1), np.nan),
                c,
            )
            continue
        s, c = sorted_count(win)
        m = quantile_sorted(s, c, 0.5)
        dev, _ = sorted_count(np.abs(win - m[:, None]))
        m_out[lo:hi], s_out[lo:hi], c_out[lo:hi] = m, _MAD_TO_SD * quantile_sorted(dev, c, 0.5), c
    return m_out, s_out, c_out


def _field_scores(
    z_value: np.ndarray, med: np.ndarray, scale: np.ndarray, cnt: np.ndarray, floor: float, min_history: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sc = np.fmax(scale, floor)
    dof = np.maximum(cnt - 1, 1).astype(np.float64)
    z = (z_value - med) / sc
    score = two_sided_score(z, dof)
    score = np.where((cnt >= min_history) & ~np.isnan(score), score, np.nan)
    return score, sc, dof


def _count_scores(
    qty: np.ndarray, sku: np.ndarray, day: np.ndarray, opts: RecordOptions, rows: np.ndarray | None = None
) -> np.ndarray:
    """Two-sided tail score of integer quantities under a count model of the sku's recent quantities.

    The model is the predictive distribution of a new count: Poisson when the sku's quantities are not
    over-dispersed, else the negative binomial with their mean and variance; the variance is inflated
    by ``1 + 1/n`` for the uncertainty of the mean estimated from ``n`` lines. NaN where the quantity is
    not a positive integer or the sku has fewer than ``min_history`` earlier lines.  With ``rows``,
    the scores of those rows only.
    """
    ok = (qty > 0) & (qty == np.round(qty))
    mean, var, cnt = _causal_stats(sku, day, np.where(ok, qty, np.nan), opts.window, moments=True, rows=rows)
    if rows is not None:
        qty, ok = qty[rows], ok[rows]
    usable = ok & (cnt >= opts.min_history) & (mean > 0)
    n = np.maximum(cnt, 1)
    m = np.where(usable, mean, 1.0)
    v = np.fmax(np.nan_to_num(var, nan=0.0), m) * (1.0 + 1.0 / n)
    x = np.where(usable, qty, 0.0)
    over = v > m * (1.0 + 1e-9)
    r = np.where(over, m * m / np.where(over, v - m, 1.0), 1.0)
    p = np.where(over, m / v, 0.5)
    upper = np.where(over, stats.nbinom.sf(x - 1, r, p), stats.poisson.sf(x - 1, m))
    lower = np.where(over, stats.nbinom.cdf(x, r, p), stats.poisson.cdf(x, m))
    score = 1.0 - np.minimum(1.0, 2.0 * np.minimum(upper, lower))
    return np.where(usable, score, np.nan)


def _log_positive(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.where(x > 0, x, np.nan))


def _both(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Score of "unusual by a AND by b"; either alone where the other has no basis (NaN)."""
    return np.where(np.isnan(a), b, np.where(np.isnan(b), a, np.fmin(a, b)))


_FITS = ("gross", "unit_price", "quantity", "discount")
# the lines' canonical order: ties of a sku's (or customer's) history within a day are broken the
# same way whether the night is scored whole or in shards
_CANONICAL = ["order_date", "order_id", "line_no"]
_PAIR_KINDS = ("same_quantity", "same_price", "neither", "both")


def _floors(opts: RecordOptions) -> dict[str, float]:
    return {
        "gross": opts.price_scale_floor,
        "unit_price": opts.price_scale_floor,
        "quantity": opts.quantity_scale_floor,
        "discount": opts.discount_scale_floor,
    }


@dataclass(frozen=True)
class RecordFits:
    """What the lines of a set of whole SKUs say about themselves (:func:`record_fits`): per line,
    its keys, raw values and, for each compared value, the sku's causal score, median, scale and
    degrees of freedom and the value relative to the sku's median (what the customer's history is
    made of); and the repeat-pair counts per order date (`day`, days since 1970, and one count per
    kind of pair) of the duplicate check."""

    lines: pd.DataFrame
    pairs: pd.DataFrame


def record_fits(
    order_lines: pd.DataFrame, *, options: RecordOptions | None = None, after: pd.Timestamp | None = None
) -> RecordFits:
    """The first half of :func:`score_records`, over the lines of whole SKUs (every line of each
    sku present: a shard of SKUs).  The other half, :func:`score_fitted`, needs every line of each
    customer, so the two halves can run over different partitions of a night's lines.

    With `after`, only the lines :func:`night_fits` keeps for a night whose window starts after
    `after` are fitted and returned (the same rows as `night_fits(record_fits(lines).lines,
    after=after)`): every line still counts in its sku's history and in the repeat pairs, but the
    windows of history are gathered for the night's lines only, not for the whole history's."""
    opts = options or RecordOptions()
    lines = _validate(order_lines).sort_values(_CANONICAL, kind="stable").reset_index(drop=True)
    day = lines["order_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    sku = pd.factorize(lines["sku"])[0]
    rows = None if after is None else np.flatnonzero(_night_lines(lines, after=after, window=opts.window))
    kept = lines if rows is None else lines.iloc[rows].reset_index(drop=True)
    raw = {
        f: lines[f].to_numpy(dtype=np.float64, na_value=np.nan)
        for f in ("unit_price", "quantity", "discount")
    }
    # Price before the line's own discount. Where unit_price is the net price (list x (1 - discount)),
    # it is stable across promotions and customer discounts; where unit_price is the list price, the
    # net price itself is the stable one. A price is flagged only if neither is usual.
    valid_disc = (raw["discount"] >= 0) & (raw["discount"] < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gross = np.where(valid_disc, raw["unit_price"] / (1.0 - raw["discount"]), np.nan)
    values = {
        "gross": _log_positive(gross),
        "unit_price": _log_positive(raw["unit_price"]),
        "quantity": _log_positive(raw["quantity"]),
        "discount": raw["discount"],
    }
    pick = slice(None) if rows is None else rows
    cols: dict[str, object] = {
        "record_id": (kept["order_id"] + "-" + kept["line_no"].astype(np.int64).astype(str)).to_numpy(
            dtype=object
        ),
        **{c: kept[c].to_numpy() for c in ("order_id", "line_no", "order_date", "sku", "customer_id")},
        **{f: r[pick] for f, r in raw.items()},
    }
    floors = _floors(opts)
    for name, val in values.items():
        m_s, s_s, c_s = _causal_stats(sku, day, val, opts.window, rows=rows)
        mine = val[pick]
        score_s, sc_s, dof_s = _field_scores(mine, m_s, s_s, c_s, floors[name], opts.min_history)
        cols |= {
            f"{name}_score": score_s,
            f"{name}_median": m_s,
            f"{name}_scale": sc_s,
            f"{name}_dof": dof_s,
            f"{name}_rel": mine - m_s,
        }
    cols["quantity_count"] = _count_scores(raw["quantity"], sku, day, opts, rows=rows)
    key = ["order_id", "sku", "quantity", "unit_price"]
    grouped = lines.groupby(key, sort=False, dropna=False)["line_no"]
    cols["duplicate"] = lines.duplicated(key, keep="first").to_numpy()[pick]
    cols["copies"] = grouped.transform("size").to_numpy(dtype=np.int64)[pick]
    cols["first_line"] = grouped.transform("min").to_numpy()[pick]
    return RecordFits(pd.DataFrame(cols), _repeat_pair_counts(lines, day))


def _night_lines(lines: pd.DataFrame, *, after: pd.Timestamp, window: int) -> np.ndarray:
    """Which of `lines` (in their canonical order) a night whose window starts after `after`
    needs: the lines ordered after it, and before them each customer's last `window` lines."""
    recent = (lines["order_date"] > pd.Timestamp(after)).to_numpy()
    context = lines[~recent].groupby("customer_id", sort=False).tail(window).index
    keep = recent.copy()
    keep[lines.index.get_indexer(context)] = True
    return keep


def night_fits(
    lines: pd.DataFrame, *, after: pd.Timestamp, options: RecordOptions | None = None
) -> pd.DataFrame:
    """The fitted lines (`RecordFits.lines` of whole SKUs) a night's `score_fitted(...,
    only_after=after)` needs: the lines ordered after `after`, and before them each customer's
    last `window` lines.  A line's customer history is the last `window` of the customer's lines
    on earlier days, so no older line can count; the night's last `window` lines of a customer
    before `after` are among those of every shard's, so each shard's are enough.  This bounds what
    the partitions of customers read by the night's window, not by the whole history."""
    opts = options or RecordOptions()
    lines = lines.sort_values(_CANONICAL, kind="stable").reset_index(drop=True)
    return lines[_night_lines(lines, after=after, window=opts.window)].reset_index(drop=True)


def recent_lines(lines: pa.Table, *, after: pd.Timestamp, options: RecordOptions | None = None) -> pa.Table:
    """Of fitted lines in Arrow (`RecordFits.lines` of several shards, as a partition of
    customers gathers them), the ones :func:`night_fits` can keep, found on the dates alone: the
    lines ordered after `after`, and of each customer's earlier lines those on or after the latest
    day from which the customer has `window` lines (all of them, when fewer).  Every line of a
    customer's last `window` before `after` is on or after that day (the lines of later days are
    fewer than `window`), so :func:`night_fits` gives the same lines from these; the ties of that
    day come along.  Every shard sends each customer's last `window` lines, so a partition
    gathers shards x `window` lines a customer, of which this keeps about `window`, before any
    of them becomes a Python object."""
    opts = options or RecordOptions()
    if lines.num_rows == 0:
        return lines
    dates = lines.column("order_date")
    recent = pc.greater(dates, pa.scalar(pd.Timestamp(after).to_pydatetime()).cast(dates.type))
    earlier = lines.filter(pc.invert(recent))
    if earlier.num_rows == 0:
        return lines
    days = (
        pa.table({"customer": earlier.column("customer_id"), "day": earlier.column("order_date")})
        .group_by(["customer", "day"], use_threads=False)
        .aggregate([([], "count_all")])
    )
    customers = pc.unique(days.column("customer"))
    codes = pc.index_in(days.column("customer"), value_set=customers).to_numpy()
    day = days.column("day").cast(pa.int64()).to_numpy()
    count = days.column("count_all").to_numpy()
    order = np.lexsort((-day, codes))  # by customer, latest day first
    codes, day, count = codes[order], day[order], count[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    total = np.cumsum(count)
    before = np.repeat(np.r_[0, total[starts[1:] - 1]], ends - starts)
    reached = total - before >= opts.window
    # per customer: the first day (latest first) by which `window` lines are reached, else its earliest
    position = np.where(reached, np.arange(len(codes)), len(codes))
    first = np.minimum.reduceat(position, starts)
    cutoff = day[np.where(first < ends, first, ends - 1)]
    threshold = pa.array(cutoff, type=pa.int64()).cast(dates.type)
    at = pc.index_in(lines.column("customer_id"), value_set=customers)
    kept = pc.or_kleene(recent, pc.greater_equal(dates, pc.take(threshold, at)))
    return lines.filter(kept, null_selection_behavior="drop")


class HistoryCutoffs:
    """Each customer's cut-off day for a night's partitions of customers, counted from the night's
    order lines a batch at a time (`add`, the extracted rows, before the score shards read them):
    the latest day by which the customer has `window` lines ordered on or before `after` (the
    day the night's window starts after).  A customer's last `window` lines before the window are
    all on or after its cut-off day, so a score shard need not send the older ones; a customer
    with fewer lines has none.  Only the latest days of each customer are kept, `window` lines'
    worth: a few days a customer, not the night.

    The rows counted can hold a line twice (two versions of it in an incremental table, a row
    the quality gate quarantined), which puts a cut-off later than the lines the shards score
    warrant: :func:`short_histories` finds the customers that then come with fewer than `window`
    lines, and the partition reads the lines the cut-off left out."""

    merge_rows = 1 << 16  # the batches' counts held before a merge, at least

    def __init__(self, after: pd.Timestamp, options: RecordOptions | None = None) -> None:
        self.after = pd.Timestamp(after).normalize()
        self.window = (options or RecordOptions()).window
        self._last = (self.after - pd.Timestamp("1970-01-01")).days
        self._days = pd.DataFrame({"customer": pd.Series(dtype=object), "day": [], "lines": []})
        self._pending: list[pd.DataFrame] = []  # batches' counts not yet merged into `_days`
        self._pending_rows = 0

    def add(self, customers: pa.Array | pa.ChunkedArray, dates: pa.Array | pa.ChunkedArray) -> None:
        """Count a batch of order lines: their `customer_id` and `order_date` columns (a line
        without a customer has no history to cut)."""
        day = pc.cast(pc.cast(dates, pa.date32(), safe=False), pa.int32())
        # the ids as text, as the shards' lines and the partitions' hash have them
        rows = pa.table({"customer": pc.cast(customers, pa.string()), "day": day})
        rows = rows.filter(pc.and_(pc.less_equal(day, self._last), pc.is_valid(rows.column("customer"))))
        counted = rows.group_by(["customer", "day"], use_threads=False).aggregate([([], "count_all")])
        self._pending.append(counted.to_pandas().rename(columns={"count_all": "lines"}))
        self._pending_rows += counted.num_rows
        # merged once the batches' counts outgrow what is kept: each row is merged a few times,
        # not once per batch (a night of many customers keeps many days)
        if self._pending_rows > max(len(self._days), self.merge_rows):
            self._merge()

    def _merge(self) -> None:
        """Merge the pending counts into each customer's latest days that can count."""
        if not self._pending:
            return
        both = pd.concat([self._days, *self._pending], ignore_index=True)
        self._pending, self._pending_rows = [], 0
        both = both.groupby(["customer", "day"], as_index=False, sort=False)["lines"].sum()
        both = both.sort_values(["customer", "day"], ascending=[True, False], kind="stable")
        later = both.groupby("customer", sort=False)["lines"].cumsum() - both["lines"]
        self._days = both[later < self.window].reset_index(drop=True)  # the days that can count

    def finish(self) -> pd.DataFrame:
        """Per customer with `window` lines or more, in order of `customer_id`: its `cutoff`, in
        days since 1970."""
        self._merge()
        days = self._days
        enough = days.groupby("customer", sort=False)["lines"].transform("sum") >= self.window
        cut = days[enough].groupby("customer", sort=True)["day"].min()
        return pd.DataFrame({"customer_id": cut.index.astype(object), "cutoff": cut.to_numpy(dtype=np.int32)})


def left_out(lines: pd.DataFrame, *, after: pd.Timestamp, cutoffs: pa.Table | None) -> np.ndarray:
    """Which of a shard's fitted lines (`night_fits`) the night's cut-offs (`HistoryCutoffs`,
    as `pipelines.state.record_cutoffs` reads them) leave out: the lines ordered on or before
    `after` on a day before their customer's cut-off."""
    if cutoffs is None or not cutoffs.num_rows or lines.empty:
        return np.zeros(len(lines), dtype=bool)
    day = lines["order_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    customers = pc.cast(pa.array(lines["customer_id"], from_pandas=True), pa.string())
    at = pc.index_in(customers, value_set=cutoffs.column("customer_id"))
    cut = pc.take(cutoffs.column("cutoff"), at).to_numpy(zero_copy_only=False)  # NaN: none
    earlier = (lines["order_date"] <= pd.Timestamp(after)).to_numpy()
    return earlier & (day < np.nan_to_num(cut.astype(np.float64), nan=-np.inf))


def short_histories(
    lines: pa.Table,
    customers: list[str],
    *,
    after: pd.Timestamp,
    options: RecordOptions | None = None,
) -> bool:
    """Whether any of `customers` (the partition's customers with a cut-off) comes with fewer
    than `window` lines before `after` in `lines` (what the shards sent of them): then their
    cut-off was too late (`HistoryCutoffs`), and the lines it left out are needed."""
    opts = options or RecordOptions()
    if not customers:
        return False
    dates = lines.column("order_date")
    earlier = lines.column("customer_id").filter(
        pc.less_equal(dates, pa.scalar(pd.Timestamp(after).to_pydatetime()).cast(dates.type))
    )
    counts = pc.value_counts(earlier)
    have = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
    return any(have.get(c, 0) < opts.window for c in customers)


def empty_record_fits() -> RecordFits:
    """The fits of a shard without order lines."""
    empty = pd.DataFrame(
        {
            "order_id": pd.Series(dtype=object),
            "line_no": pd.Series(dtype=np.int64),
            "order_date": pd.Series(dtype="datetime64[ns]"),
            "sku": pd.Series(dtype=object),
            "customer_id": pd.Series(dtype=object),
            **{c: pd.Series(dtype=np.float64) for c in ("quantity", "unit_price", "discount")},
        }
    )
    return record_fits(empty)


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
        reason``. Scores use only lines of strictly earlier order dates (duplicates: pairs up to the
        line's order date); a price or discount scores 0 until its sku and its customer have
        ``min_history`` earlier lines, a quantity until its sku has. Non-positive prices or quantities
        are not scored. A duplicate's score is the probability that it is a double entry.

    Raises:
        AnomalyInputError: if ``order_lines`` breaks the contract.

    The same as :func:`score_fitted` over :func:`record_fits`: a night too large for one process
    runs the first over shards of SKUs and the second over partitions of customers.
    """
    fits = record_fits(order_lines, options=options)
    return score_fitted(fits.lines, [fits.pairs], options=options)


def score_fitted(
    fits: pd.DataFrame,
    pairs: Sequence[pd.DataFrame],
    *,
    options: RecordOptions | None = None,
    only_after: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The second half of :func:`score_records`: `fits` holds every line of each of its customers
    (:attr:`RecordFits.lines`, of any number of SKU shards), `pairs` the repeat-pair counts of every
    shard of the night.  Returns :func:`score_records`' rows for those lines (only the ones ordered
    after `only_after`, when given)."""
    t0 = time.perf_counter()
    opts = options or RecordOptions()
    lines = fits.sort_values(_CANONICAL, kind="stable").reset_index(drop=True)
    day = lines["order_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    cust = pd.factorize(lines["customer_id"])[0]
    floors = _floors(opts)
    keep = (
        np.ones(len(lines), dtype=bool)
        if only_after is None
        else (lines["order_date"] > pd.Timestamp(only_after)).to_numpy()
    )
    final: dict[str, np.ndarray] = {}
    customer: dict[str, np.ndarray] = {}
    for name in _FITS:
        rel = lines[f"{name}_rel"].to_numpy(dtype=np.float64)
        m_c, s_c, c_c = _causal_stats(cust, day, rel, opts.window)
        score_c, _, _ = _field_scores(rel, m_c, s_c, c_c, floors[name], opts.min_history)
        score_s = lines[f"{name}_score"].to_numpy(dtype=np.float64)
        # Prices and discounts are negotiated per customer: without the customer's history there is
        # no basis to call them unusual. A value is unusual only if unusual for the sku AND for the
        # customer.
        final[name] = _both(score_s, score_c) if name == "quantity" else np.minimum(score_s, score_c)
        customer[name] = score_c
    sel = np.flatnonzero(keep)
    part = lines.iloc[sel].reset_index(drop=True)
    parts = []
    for field in ("unit_price", "quantity", "discount"):
        raw = part[field].to_numpy(dtype=np.float64)
        use_log = field != "discount"
        score = final[field][sel]
        if field == "quantity":
            # Small counts such as 1 + Poisson(1) have a much longer right tail on the log scale than
            # a Gaussian: a quantity is unusual only if it is unusual on the log scale AND under a count
            # model of the sku's quantities.
            score = _both(score, part["quantity_count"].to_numpy(dtype=np.float64))
        if field in ("unit_price", "discount"):
            # unit_price: unusual both as charged and before the line's discount. discount: unusual for
            # the sku and customer AND not reflected in the price (a discount the net price agrees with
            # is an applied promotion or agreement, not an entry error).
            score = _both(score, final["gross"][sel])
        score = np.nan_to_num(score, nan=0.0)
        med_s = part[f"{field}_median"].to_numpy(dtype=np.float64)
        half = t_quantile(part[f"{field}_dof"].to_numpy(dtype=np.float64), opts.threshold) * part[
            f"{field}_scale"
        ].to_numpy(dtype=np.float64)
        lo_, hi_ = med_s - half, med_s + half
        expected = np.exp(med_s) if use_log else med_s
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
                    "record_id": part["record_id"].to_numpy(dtype=object),
                    "order_date": part["order_date"].to_numpy(),
                    "sku": part["sku"].to_numpy(dtype=object),
                    "customer_id": part["customer_id"].to_numpy(dtype=object),
                    "field": field,
                    "value": raw,
                    "expected": expected,
                    "lower": lower,
                    "upper": upper,
                    "score": score,
                    "is_anomaly": is_anom,
                    "reason": _field_reasons(field, raw, expected, is_anom, customer[field][sel], part),
                }
            )
        )
    parts.append(_duplicates(part, day[sel], pairs))
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


def _repeat_pair_counts(lines: pd.DataFrame, day: np.ndarray) -> pd.DataFrame:
    """Per order date, counts of pairs of lines of the same order and sku by what they share:
    `day` (days since 1970) and one column per kind (same quantity only, same unit price only,
    neither, both), for the days that have pairs.  Pairs never span SKUs, so the counts of shards
    of SKUs add up to the night's."""
    key = lines[["order_id", "sku"]].copy()
    key["_row"] = np.arange(len(lines))
    size = key.groupby(["order_id", "sku"], sort=False)["_row"].transform("size").to_numpy()
    multi = key[size > 1]
    pairs = multi.merge(multi, on=["order_id", "sku"], suffixes=("_a", "_b"))
    pairs = pairs[pairs["_row_a"] < pairs["_row_b"]]
    a, b = pairs["_row_a"].to_numpy(), pairs["_row_b"].to_numpy()
    qty = lines["quantity"].to_numpy(dtype=np.float64, na_value=np.nan)
    price = lines["unit_price"].to_numpy(dtype=np.float64, na_value=np.nan)
    same_q, same_p = qty[a] == qty[b], price[a] == price[b]
    kind = np.select([same_q & ~same_p, ~same_q & same_p, ~same_q & ~same_p], [0, 1, 2], 3)
    days, at = np.unique(day[a], return_inverse=True)
    counts = np.zeros((len(days), 4), dtype=np.int64)
    np.add.at(counts, (at, kind), 1)
    return pd.DataFrame({"day": days.astype(np.int64), **dict(zip(_PAIR_KINDS, counts.T, strict=True))})


def _cumulative_pairs(pairs: Sequence[pd.DataFrame], day: np.ndarray) -> np.ndarray:
    """The night's repeat-pair counts up to and including each of `day` (one row per day, four
    columns), from the counts of every shard."""
    frames = [p for p in pairs if len(p)]
    if not frames:
        return np.zeros((len(day), 4))
    total = pd.concat(frames, ignore_index=True).groupby("day", sort=True)[list(_PAIR_KINDS)].sum()
    cum = np.vstack([np.zeros((1, 4)), np.cumsum(total.to_numpy(dtype=np.float64), axis=0)])
    return cum[np.searchsorted(total.index.to_numpy(dtype=np.int64), day, side="right")]


def _duplicates(lines: pd.DataFrame, day: np.ndarray, pairs: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Lines repeating an earlier line of the same order (same sku, quantity and unit price).

    Orders may legitimately hold several lines of one sku, and two such lines share quantity and
    price by chance. Among pairs of lines of the same order and sku seen up to the line's order date,
    with ``a`` = same quantity only, ``b`` = same price only, ``c`` = neither, ``d`` = both, chance
    alone (quantity and price agreeing independently) explains ``E = a * b / c`` of the ``d`` identical
    pairs (the independence estimate of a 2x2 table). The score of an identical repeat is the share of
    identical pairs chance does not explain, ``(d - E) / d``: the probability that it is a double entry.
    It is an anomaly when that probability is at least one half.
    """
    idx = np.flatnonzero(lines["duplicate"].to_numpy(dtype=bool))
    copies = lines["copies"].to_numpy()
    first_line = lines["first_line"].to_numpy()
    order_id = lines["order_id"].to_numpy(dtype=object)
    a, b, c, d = _cumulative_pairs(pairs, day[idx]).T
    # Haldane-Anscombe correction (+1/2 per cell): few pairs are weak evidence either way.
    chance = (a + 0.5) * (b + 0.5) / (c + 0.5)
    posterior = np.clip((d - chance) / np.maximum(d, 1.0), 0.0, 1.0)
    return pd.DataFrame(
        {
            "record_id": lines["record_id"].to_numpy(dtype=object)[idx],
            "order_date": lines["order_date"].to_numpy()[idx],
            "sku": lines["sku"].to_numpy(dtype=object)[idx],
            "customer_id": lines["customer_id"].to_numpy(dtype=object)[idx],
            "field": "duplicate",
            "value": copies[idx].astype(np.float64),
            "expected": 1.0,
            "lower": np.nan,
            "upper": 1.0,
            "score": posterior,
            "is_anomaly": posterior >= 0.5,
            "reason": [
                f"line repeats line {int(first_line[i])} of order {order_id[i]} "
                f"(same sku, quantity and unit price; {int(copies[i])} copies; "
                f"{p:.0%} likely a double entry)"
                for i, p in zip(idx, posterior, strict=True)
            ],
        }
    )
