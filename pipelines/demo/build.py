"""Build the demo ERP and CRM tables as DataFrames: seeded, vectorised, realistic.

Demand per SKU x warehouse has a weekly profile, yearly seasonality and a trend,
lifted by promotions and cut to zero by stock-outs.  Orders have returns,
cancellations, late-arriving rows and later updates (`updated_at`).  Labelled
anomalies (spikes, dips, level shifts, missing days, mispriced lines, ticket
bursts) are injected and returned in `seam_demo_labels`.

`DemoSize(demand="sparse")` builds a trading company's order book instead: many
SKU x warehouse series with a handful of lumpy orders each, products launched
during the history, no stock-out records and no trading at weekends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from pipelines.errors import ConfigError

DEFAULT_END = date(2026, 11, 22)
CATEGORIES = (
    "beverages",
    "snacks",
    "household",
    "personal care",
    "garden",
    "toys",
    "electronics",
    "stationery",
)
REGIONS = ("north", "south", "east", "west", "central")
CURRENCY_BY_REGION = {"north": "EUR", "south": "EUR", "east": "EUR", "west": "GBP", "central": "EUR"}
SEGMENTS = ("retail", "online", "wholesale")
CHANNEL_BY_SEGMENT = {"retail": "store", "online": "web", "wholesale": "b2b"}
_WORDS = (
    "Alpine",
    "Harbor",
    "Cedar",
    "Summit",
    "Maple",
    "Orion",
    "Nova",
    "Atlas",
    "Willow",
    "Granite",
    "Falcon",
    "Meadow",
    "Pioneer",
    "Vertex",
    "Lumen",
    "Copper",
    "Delta",
    "Echo",
    "Juniper",
    "Aurora",
)
_ITEMS = (
    "Water",
    "Crisps",
    "Detergent",
    "Shampoo",
    "Hose",
    "Puzzle",
    "Cable",
    "Notebook",
    "Soda",
    "Soap",
    "Seeds",
    "Blocks",
    "Charger",
    "Pens",
    "Juice",
    "Sponge",
)
_SUBJECTS = (
    "Late delivery",
    "Invoice question",
    "Damaged item",
    "Price query",
    "Return request",
    "Login problem",
    "Order change",
    "Missing item",
)


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is.  Defaults: about 2 years x 200 SKUs x 5 warehouses.

    `demand="sparse"` replaces the busy retail demand with a sparse wholesale order book
    (`sparse_orders_per_series` order lines per SKU x warehouse over the history on average,
    weekdays only); everything else about the tables is the same.

    `late_launches` is the share of SKUs launched in the last `launch_days` days (each on a day
    drawn evenly from them; nothing sells before): the new products of the forecast. 0 (default)
    leaves the demo exactly as without it.

    `upcoming_launches` products more are in the product master with a `launch_date` and no sale
    yet (`products.launch_date`, NULL for the others): one launched `UPCOMING_LAUNCH_DAYS[0]`
    days before `end_date` that has not sold, the others launching inside a 28-day horizon. They
    are added after everything else is drawn, so the other tables are the same with any number.
    """

    days: int = 730
    skus: int = 200
    warehouses: int = 5
    customers: int = 500
    end_date: date = DEFAULT_END
    seed: int = 42
    anomalies: bool = True
    demand: Literal["dense", "sparse"] = "dense"
    sparse_orders_per_series: float = 6.0
    late_launches: float = 0.0
    launch_days: int = 56
    upcoming_launches: int = 3

    def __post_init__(self) -> None:
        for name, low in (("days", 60), ("skus", 1), ("warehouses", 1), ("customers", 1)):
            value = getattr(self, name)
            if value < low:
                raise ConfigError(f"demo size: --{name} must be >= {low}, got {value}")
        if self.demand not in ("dense", "sparse"):
            raise ConfigError(f"demo size: demand must be 'dense' or 'sparse', got {self.demand!r}")
        if not self.sparse_orders_per_series > 0:
            raise ConfigError(
                f"demo size: sparse_orders_per_series must be > 0, got {self.sparse_orders_per_series}"
            )
        if self.upcoming_launches < 0:
            raise ConfigError(f"demo size: upcoming_launches must be >= 0, got {self.upcoming_launches}")
        if not 0.0 <= self.late_launches <= 1.0 or not 1 <= self.launch_days < self.days:
            raise ConfigError(
                f"demo size: late_launches must be in [0, 1] and launch_days in [1, days), got "
                f"{self.late_launches} and {self.launch_days}"
            )

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)


def _ts(days: pd.DatetimeIndex | pd.Series, hours: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(days) + pd.to_timedelta(np.round(hours * 3600), unit="s"))


@dataclass(frozen=True)
class _Demand:
    """Expected order lines per SKU x warehouse x day and what goes with them.

    `lam` times `lines_per_rate` is the Poisson mean of order lines per series-day; `line_size`
    (per SKU) is the mean units of a line for lumpy sizes, None for 1 + Poisson(1) units.
    """

    lam: np.ndarray
    promo_disc: np.ndarray
    promotions: pd.DataFrame
    stock_outs: pd.DataFrame
    labels: list[tuple]
    lines_per_rate: float
    line_size: np.ndarray | None = None


SPARSE_WEEKDAYS = np.array([1.25, 1.05, 1.0, 1.1, 0.85, 0.0, 0.0])  # Mon..Sun, no weekend trade


def _sparse_demand(
    rng: np.random.Generator, size: DemoSize, days: pd.DatetimeIndex, products: pd.DataFrame
) -> _Demand:
    """A wholesaler's order book: few, lumpy order lines per SKU x warehouse, weekdays only.

    SKU popularity and warehouse (market) size are log-normal, so a few series carry most of
    the volume and many have one or two lines; a third of the SKUs are launched during the
    history (nothing sells before); a mild yearly cycle; line sizes are lumpy (negative binomial,
    a per-SKU mean of 3 to 60 units).  Scaled so that a series has `sparse_orders_per_series`
    lines over the history on average.  No promotions, stock-outs or injected demand anomalies.
    """
    n_days, n_sku, n_wh = size.days, size.skus, size.warehouses
    dow = days.dayofweek.to_numpy()
    doy = days.dayofyear.to_numpy()
    popularity = np.exp(rng.normal(0.0, 0.9, n_sku))
    market = np.exp(rng.normal(0.0, 0.8, n_wh))
    launched = np.where(rng.random(n_sku) < 1 / 3, rng.integers(0, int(n_days * 0.8), n_sku), 0)
    yearly = 1 + 0.25 * np.cos(2 * np.pi * (doy - rng.uniform(0, 365)) / 365.25)
    day = SPARSE_WEEKDAYS[dow] * yearly  # (day,)
    alive = np.arange(n_days)[None, :] >= launched[:, None]  # (sku, day)
    shape = popularity[:, None, None] * market[None, :, None] * (day[None, :] * alive)[:, None, :]
    lam = shape * (size.sparse_orders_per_series * n_sku * n_wh / shape.sum())
    line_size = np.exp(rng.uniform(np.log(3.0), np.log(60.0), n_sku))
    return _Demand(
        lam=lam,
        promo_disc=np.zeros((n_sku, n_days)),
        promotions=pd.DataFrame(columns=["promo_id", "sku", "start_date", "end_date", "discount_rate"]),
        stock_outs=pd.DataFrame(columns=["sku", "warehouse_code", "stockout_date"]),
        labels=[],
        lines_per_rate=1.0,
        line_size=line_size,
    )


def _launch_late(size: DemoSize, lam: np.ndarray) -> np.ndarray:
    """`lam` (sku, warehouse, day) with `late_launches` of the SKUs selling only from a day in the
    last `launch_days` days (own generator: the rest of the demo is drawn as without launches)."""
    rng = np.random.default_rng([size.seed, 1])
    n_sku, n_days = lam.shape[0], lam.shape[2]
    count = max(1, round(size.late_launches * n_sku))
    chosen = rng.choice(n_sku, count, replace=False)
    launch = n_days - rng.integers(1, size.launch_days + 1, count)
    alive = np.ones_like(lam, dtype=bool)
    for sku, day in zip(chosen, launch, strict=True):
        alive[sku, :, :day] = False
    out: np.ndarray = np.where(alive, lam, 0.0)
    return out


def _lumpy_sizes(rng: np.random.Generator, mean: np.ndarray) -> np.ndarray:
    """Units per order line: 1 + negative binomial with the given means (dispersion 1.5)."""
    shape = 1.5
    extra = np.maximum(mean - 1.0, 1e-9)
    out: np.ndarray = 1 + rng.negative_binomial(shape, shape / (shape + extra))
    return out


def _dense_demand(
    rng: np.random.Generator,
    size: DemoSize,
    days: pd.DatetimeIndex,
    cat_idx: np.ndarray,
    products: pd.DataFrame,
    wh: pd.DataFrame,
) -> _Demand:
    """Busy retail demand: weekly profile, yearly cycle, trend, promotions, anomalies, stock-outs."""
    n_days, n_sku, n_wh = size.days, size.skus, size.warehouses
    t = np.arange(n_days)
    doy = days.dayofyear.to_numpy()
    dow = days.dayofweek.to_numpy()
    weekly = rng.uniform(0.6, 1.4, (len(CATEGORIES), 7))
    weekly[:, 5:] *= rng.uniform(0.5, 1.6, (len(CATEGORIES), 1))  # weekend effect per category
    weekly /= weekly.mean(axis=1, keepdims=True)
    amp = rng.uniform(0.0, 0.45, len(CATEGORIES))
    peak = rng.uniform(0, 365, len(CATEGORIES))
    base = np.exp(rng.normal(np.log(1.5), 0.8, n_sku))
    intermittent = rng.random(n_sku) < 0.15
    base[intermittent] = rng.uniform(0.05, 0.4, intermittent.sum())
    growth = rng.normal(0.05, 0.1, n_sku)
    wh_factor = rng.uniform(0.5, 1.5, n_wh)

    c = cat_idx[:, None]
    sku_day = (
        base[:, None]
        * weekly[c, dow[None, :]]
        * (1 + amp[c] * np.cos(2 * np.pi * (doy[None, :] - peak[c]) / 365.25))
        * np.clip(1 + growth[:, None] * t[None, :] / 365.0, 0.3, None)
    )  # (sku, day)

    # Promotions: about one every 90 days per SKU, 7-14 days, 10-30% off, lifting demand 1.4-2.2x.
    promo_rows = []
    promo_lift = np.ones((n_sku, n_days))
    promo_disc = np.zeros((n_sku, n_days))
    pid = 0
    for s in range(n_sku):
        for _ in range(rng.poisson(n_days / 90)):
            a = int(rng.integers(0, n_days - 7))
            length = int(rng.integers(7, 15))
            b = min(n_days - 1, a + length - 1)
            rate = float(np.round(rng.uniform(0.1, 0.3), 2))
            if promo_disc[s, a : b + 1].any():
                continue
            pid += 1
            promo_lift[s, a : b + 1] = rng.uniform(1.4, 2.2)
            promo_disc[s, a : b + 1] = rate
            promo_rows.append((pid, products.sku[s], days[a].date(), days[b].date(), rate))
    promo_rows += _planned_promotions(size, products.sku.to_numpy(), promo_disc, days, pid)
    promotions = pd.DataFrame(
        promo_rows, columns=["promo_id", "sku", "start_date", "end_date", "discount_rate"]
    )
    lam = (sku_day * promo_lift)[:, None, :] * wh_factor[None, :, None]  # (sku, wh, day)

    labels: list[tuple] = []
    sku_ids = products.sku.to_numpy()
    wh_ids = wh.warehouse_code.to_numpy()
    warm = min(120, n_days // 3)
    if size.anomalies:
        _inject_demand(rng, lam, labels, sku_ids, wh_ids, days, warm)

    # Stock-outs: about one episode every 180 days per series, 2-6 days with no sales at all.
    stock = np.zeros_like(lam, dtype=bool)
    so_rows = []
    for s in range(n_sku):
        for w in range(n_wh):
            for _ in range(rng.poisson(n_days / 180)):
                a = int(rng.integers(0, n_days - 2))
                b = min(n_days, a + int(rng.integers(2, 7)))
                stock[s, w, a:b] = True
    for s, w, d in zip(*np.nonzero(stock), strict=True):
        so_rows.append((sku_ids[s], wh_ids[w], days[d].date()))
    stock_outs = pd.DataFrame(so_rows, columns=["sku", "warehouse_code", "stockout_date"])
    lam = np.where(stock, 0.0, lam)
    return _Demand(lam, promo_disc, promotions, stock_outs, labels, lines_per_rate=0.5)


PLANNED_DAYS = 90  # how far ahead the ERP knows its promotions


def _planned_promotions(
    size: DemoSize, skus: np.ndarray, promo_disc: np.ndarray, days: pd.DatetimeIndex, last_id: int
) -> list[tuple]:
    """Promotions the ERP has planned after the last day (the same rate, lengths and depths as the
    history's), so a night's forecast horizon holds some; none starts before a running one ends.
    Own generator: the rest of the demo is drawn as without them."""
    rng = np.random.default_rng([size.seed, 2])
    end = days[-1]
    rows = []
    for s, sku in enumerate(skus):
        running = np.flatnonzero(promo_disc[s] > 0)
        free = 1 if not running.size or running[-1] < len(days) - 1 else 2 + int(rng.integers(0, 7))
        for a in sorted(int(rng.integers(free, PLANNED_DAYS)) for _ in range(rng.poisson(PLANNED_DAYS / 90))):
            if a < free:
                continue
            length = int(rng.integers(7, 15))
            last_id += 1
            start = (end + pd.Timedelta(days=a)).date()
            rows.append(
                (
                    last_id,
                    sku,
                    start,
                    start + timedelta(days=length - 1),
                    float(np.round(rng.uniform(0.1, 0.3), 2)),
                )
            )
            free = a + length
    return rows


def build_erp(size: DemoSize) -> dict[str, pd.DataFrame]:
    """All ERP tables (and `seam_demo_labels`) as DataFrames keyed by table name."""
    rng = np.random.default_rng(size.seed)
    start = pd.Timestamp(size.start_date)
    days = pd.date_range(start, periods=size.days, freq="D")
    n_days, n_sku, n_wh = size.days, size.skus, size.warehouses

    wh = pd.DataFrame(
        {
            "warehouse_code": [f"WH{i + 1:02d}" for i in range(n_wh)],
            "name": [f"{_WORDS[i % len(_WORDS)]} Distribution Centre" for i in range(n_wh)],
            "region": [REGIONS[i % len(REGIONS)] for i in range(n_wh)],
        }
    )
    cat_idx = rng.integers(0, len(CATEGORIES), n_sku)
    list_price = np.round(np.exp(rng.normal(np.log(12), 0.8, n_sku)), 2)
    products = pd.DataFrame(
        {
            "sku": [f"SKU-{i + 1:04d}" for i in range(n_sku)],
            "product_name": [
                f"{_WORDS[i % len(_WORDS)]} {_ITEMS[(i // 3) % len(_ITEMS)]} {i + 1}" for i in range(n_sku)
            ],
            "category": [CATEGORIES[c] for c in cat_idx],
            "list_price": list_price,
            "created_at": start - pd.Timedelta(days=30),
            "updated_at": _ts(pd.DatetimeIndex([start] * n_sku), rng.uniform(0, 24, n_sku)),
        }
    )
    seg = rng.choice(len(SEGMENTS), size.customers, p=[0.5, 0.3, 0.2])
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, size.customers + 1),
            "customer_name": [
                f"{_WORDS[i % len(_WORDS)]} {_WORDS[(i * 7 + 3) % len(_WORDS)]} {i + 1} Ltd"
                for i in range(size.customers)
            ],
            "region": [REGIONS[i] for i in rng.integers(0, len(REGIONS), size.customers)],
            "segment": [SEGMENTS[s] for s in seg],
            "created_at": start - pd.Timedelta(days=60),
            "updated_at": start - pd.Timedelta(days=60),
        }
    )

    # --- daily demand rate per series (sku x warehouse) -------------------------------------------
    if size.demand == "sparse":
        demand = _sparse_demand(rng, size, days, products)
    else:
        demand = _dense_demand(rng, size, days, cat_idx, products, wh)
    lam, promo_disc, promotions, labels = demand.lam, demand.promo_disc, demand.promotions, demand.labels
    if size.late_launches > 0:
        lam = _launch_late(size, lam)
    sku_ids = products.sku.to_numpy()
    wh_ids = wh.warehouse_code.to_numpy()
    warm = min(120, n_days // 3)

    # --- order lines ---------------------------------------------------------------------------
    n_lines = rng.poisson(lam * demand.lines_per_rate)  # order lines per series-day
    s_idx, w_idx, d_idx = np.nonzero(n_lines)
    reps = n_lines[s_idx, w_idx, d_idx]
    s_l, w_l, d_l = np.repeat(s_idx, reps), np.repeat(w_idx, reps), np.repeat(d_idx, reps)
    n = len(s_l)
    qty = 1 + rng.poisson(1.0, n) if demand.line_size is None else _lumpy_sizes(rng, demand.line_size[s_l])
    # Group lines into orders: per (day, warehouse), shuffled, geometric order sizes (mean 2 lines).
    order_key = rng.random(n)
    perm = np.lexsort((order_key, w_l, d_l))
    s_l, w_l, d_l, qty = s_l[perm], w_l[perm], d_l[perm], qty[perm]
    group_start = np.r_[True, (d_l[1:] != d_l[:-1]) | (w_l[1:] != w_l[:-1])]
    new_order = group_start | (rng.random(n) < 0.5)
    order_no = np.cumsum(new_order)
    first_of_order = np.r_[0, np.nonzero(np.diff(order_no))[0] + 1]
    line_no = np.arange(n) - np.repeat(first_of_order, np.diff(np.r_[first_of_order, n])) + 1
    n_orders = int(order_no[-1]) if n else 0

    cust_weight = rng.pareto(1.5, size.customers) + 0.1
    cust = rng.choice(size.customers, n_orders, p=cust_weight / cust_weight.sum())
    o_first = first_of_order
    o_day = d_l[o_first]
    o_wh = w_l[o_first]
    created_hours = rng.uniform(6, 22, n_orders)
    late = rng.random(n_orders) < 0.02  # entered one or two days after the order date
    created_hours[late] += 24 * rng.integers(1, 3, late.sum())
    o_created = _ts(days[o_day], created_hours)
    o_seg = seg[cust]
    orders = pd.DataFrame(
        {
            "order_id": np.arange(1, n_orders + 1),
            "customer_id": cust + 1,
            "warehouse_code": wh_ids[o_wh],
            "order_date": days[o_day].date,
            "channel": [CHANNEL_BY_SEGMENT[SEGMENTS[s]] for s in o_seg],
            "currency": [CURRENCY_BY_REGION[r] for r in wh.region.to_numpy()[o_wh]],
            "created_at": o_created,
            "updated_at": o_created,
        }
    )

    wholesale = (o_seg == SEGMENTS.index("wholesale"))[order_no - 1]
    line_disc = promo_disc[s_l, d_l] + np.where(wholesale, rng.choice([0.05, 0.1, 0.15], n), 0.0)
    disc = np.round(np.clip(line_disc, 0, 0.6), 4)
    price = np.round(list_price[s_l] * (1 - disc), 2)
    end_ts = pd.Timestamp(size.end_date) + pd.Timedelta(hours=23, minutes=59)
    line_created = o_created.to_numpy()[order_no - 1]
    status = np.full(n, "shipped", dtype=object)
    returned = np.zeros(n)
    updated = line_created.copy()
    cancel = rng.random(n) < 0.02
    status[cancel] = "cancelled"
    ret = (~cancel) & (rng.random(n) < 0.03)
    returned[ret] = np.ceil(qty[ret] * rng.uniform(0.2, 1.0, ret.sum()))
    status[ret] = "returned"
    later = cancel | ret
    updated[later] = updated[later] + pd.to_timedelta(rng.uniform(1, 20, later.sum()), unit="D").to_numpy()
    recent = d_l >= n_days - 2
    status[recent & ~cancel] = "open"
    returned[recent] = 0
    updated = np.minimum(updated, end_ts.to_datetime64())
    updated = np.maximum(updated, line_created).astype("datetime64[s]")

    lines = pd.DataFrame(
        {
            "order_id": order_no,
            "line_no": line_no,
            "sku": sku_ids[s_l],
            "qty": qty.astype(float),
            "unit_price": price,
            "discount_rate": disc,
            "returned_qty": returned,
            "line_status": status,
            "updated_at": updated,
        }
    )
    if size.anomalies:
        lines = _inject_lines(rng, lines, orders, labels, days, warm, wh_ids)
    # Rows entered after the end of the last day have not arrived yet.
    arrived = orders.created_at <= end_ts
    orders = orders[arrived & orders.order_id.isin(lines.order_id)].reset_index(drop=True)
    lines = lines[lines.order_id.isin(orders.order_id)].reset_index(drop=True)
    orders["updated_at"] = orders.order_id.map(lines.groupby("order_id").updated_at.max()).fillna(
        orders.updated_at
    )

    return {
        "warehouses": wh,
        "products": _with_upcoming_launches(products, size),
        "customers": customers,
        "sales_orders": orders,
        "sales_order_lines": lines,
        "promotions": promotions,
        "stock_outs": demand.stock_outs,
        "seam_demo_labels": _labels_frame(labels, "erp"),
    }


# days from the demo's last day to each upcoming launch (cycled): one already launched without a
# sale, the others inside a 28-day horizon
UPCOMING_LAUNCH_DAYS = (-10, 5, 12, 19)


def _with_upcoming_launches(products: pd.DataFrame, size: DemoSize) -> pd.DataFrame:
    """The product master with `launch_date` (NULL: on sale) and `size.upcoming_launches` more
    products that have not sold yet, in the categories of the first products in turn."""
    out = products.assign(launch_date=None)
    n, first = size.upcoming_launches, len(products) + 1
    if n == 0:
        return out
    end = pd.Timestamp(size.end_date)
    new = pd.DataFrame(
        {
            "sku": [f"SKU-{first + i:04d}" for i in range(n)],
            "product_name": [f"New {_ITEMS[i % len(_ITEMS)]} {first + i}" for i in range(n)],
            "category": [products["category"].iloc[i % len(products)] for i in range(n)],
            "list_price": [round(12.0 + 3 * i, 2) for i in range(n)],
            "created_at": end - pd.Timedelta(days=20),
            "updated_at": end - pd.Timedelta(days=20),
            "launch_date": [
                (end + pd.Timedelta(days=UPCOMING_LAUNCH_DAYS[i % len(UPCOMING_LAUNCH_DAYS)])).date()
                for i in range(n)
            ],
        }
    )
    return pd.concat([out, new], ignore_index=True)


def build_order_lines(erp: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The demo's order lines in the canonical `order_lines` shape, without a database.

    The same rows and names as the `order_lines` query of `config/demo.yml` (lines joined to their
    orders), with `order_date` as datetime64; for benchmarks and tests that skip extraction.
    """
    orders = erp["sales_orders"][
        ["order_id", "order_date", "customer_id", "warehouse_code", "channel", "currency"]
    ]
    lines = erp["sales_order_lines"].merge(orders, on="order_id", how="inner", validate="many_to_one")
    return pd.DataFrame(
        {
            "order_id": lines["order_id"].astype(str),
            "line_no": lines["line_no"].astype("int64"),
            "order_date": pd.to_datetime(lines["order_date"]),
            "customer_id": lines["customer_id"].astype(str),
            "warehouse": lines["warehouse_code"].astype(str),
            "channel": lines["channel"].astype(str),
            "sku": lines["sku"].astype(str),
            "quantity": lines["qty"].astype(float),
            "returned_quantity": lines["returned_qty"].astype(float),
            "unit_price": lines["unit_price"].astype(float),
            "discount": lines["discount_rate"].astype(float),
            "currency": lines["currency"].astype(str),
            "status": lines["line_status"].astype(str),
            "updated_at": pd.to_datetime(lines["updated_at"]),
        }
    )


def _inject_demand(
    rng: np.random.Generator,
    lam: np.ndarray,
    labels: list[tuple],
    sku_ids: list[str],
    wh_ids: list[str],
    days: pd.DatetimeIndex,
    warm: int,
) -> None:
    """Spikes, dips and level shifts on the demand rate, recorded as labels."""
    n_sku, n_wh, n_days = lam.shape
    busy = np.argwhere(lam[:, :, warm:].mean(axis=2) >= 1.5)
    if len(busy) == 0:
        return
    order = rng.permutation(len(busy))
    n_series = n_sku * n_wh
    plan = (
        ["spike"] * max(3, n_series // 25)
        + ["dip"] * max(2, n_series // 60)
        + ["level_shift"] * max(2, n_series // 60)
    )
    for kind, k in zip(plan, order, strict=False):
        s, w = busy[k]
        a = int(rng.integers(warm, n_days - 10))
        if kind == "spike":
            mag = float(rng.uniform(4, 8))
            lam[s, w, a] *= mag
            b = a
        elif kind == "dip":
            mag = 0.05
            b = a + 2
            lam[s, w, a : b + 1] *= mag
        else:
            mag = float(rng.choice([0.35, 2.2]))
            b = min(n_days - 1, a + int(rng.integers(30, 90)))
            lam[s, w, a : b + 1] *= mag
        labels.append(
            ("erp", "demand", f"{sku_ids[s]}|{wh_ids[w]}", days[a].date(), days[b].date(), kind, mag)
        )


def _inject_lines(
    rng: np.random.Generator,
    lines: pd.DataFrame,
    orders: pd.DataFrame,
    labels: list[tuple],
    days: pd.DatetimeIndex,
    warm: int,
    wh_ids: list[str],
) -> pd.DataFrame:
    """Mispriced lines and whole missing warehouse-days (an interface that dropped a day)."""
    late = orders.order_id[orders.order_date >= days[warm].date()].to_numpy()
    cand = np.nonzero(np.isin(lines.order_id.to_numpy(), late))[0]
    if len(cand) == 0:
        return lines
    picks = rng.choice(cand, min(len(cand), 20), replace=False)
    order_date = orders.set_index("order_id").order_date
    for i in picks:
        factor = float(rng.choice([10.0, 0.1]))
        lines.loc[i, "unit_price"] = round(float(lines.loc[i, "unit_price"]) * factor, 2)
        d = order_date[lines.loc[i, "order_id"]]
        labels.append(
            (
                "erp",
                "unit_price",
                f"{lines.loc[i, 'order_id']}-{lines.loc[i, 'line_no']}",
                d,
                d,
                "mispriced",
                factor,
            )
        )
    for _ in range(2):
        d = days[int(rng.integers(warm, len(days) - 5))].date()
        w = wh_ids[int(rng.integers(0, len(wh_ids)))]
        gone = orders.order_id[(orders.order_date == d) & (orders.warehouse_code == w)]
        lines = lines[~lines.order_id.isin(gone)]
        labels.append(("erp", "order_count", w, d, d, "missing", 0.0))
    return lines.reset_index(drop=True)


def _labels_frame(labels: list[tuple], source: str) -> pd.DataFrame:
    df = pd.DataFrame(
        labels, columns=["source", "metric", "entity", "start_date", "end_date", "kind", "magnitude"]
    )
    df = df[df.source == source].reset_index(drop=True)
    df.insert(0, "label_id", np.arange(1, len(df) + 1))
    return df


def build_crm(size: DemoSize, erp_customers: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """CRM tables linked to the ERP customers, and the CRM's own labels."""
    rng = np.random.default_rng(size.seed + 1)
    start = pd.Timestamp(size.start_date)
    days = pd.date_range(start, periods=size.days, freq="D")
    n_cust = len(erp_customers)
    n_prospects = max(1, n_cust // 10)
    n_acc = n_cust + n_prospects
    account_ids = np.array([f"A{i + 1:05d}" for i in range(n_acc)])
    erp_ids = [str(c) for c in erp_customers.customer_id] + [None] * n_prospects
    names = list(erp_customers.customer_name) + [f"Prospect {i + 1} GmbH" for i in range(n_prospects)]
    accounts = pd.DataFrame(
        {
            "account_id": account_ids,
            "account_name": names,
            "erp_customer_id": erp_ids,
            "industry": rng.choice(["retail", "hospitality", "manufacturing", "public", "services"], n_acc),
            "owner": rng.choice(["Dana Reyes", "Sam Okafor", "Lea Novak", "Ravi Iyer"], n_acc),
            "created_at": start - pd.Timedelta(days=90),
            "updated_at": start - pd.Timedelta(days=90),
        }
    )
    n_contacts = rng.integers(1, 4, n_acc)
    c_acc = np.repeat(np.arange(n_acc), n_contacts)
    contacts = pd.DataFrame(
        {
            "contact_id": np.arange(1, len(c_acc) + 1),
            "account_id": account_ids[c_acc],
            "full_name": [
                f"{_WORDS[i % len(_WORDS)]} {_WORDS[(i * 3) % len(_WORDS)]}son" for i in range(len(c_acc))
            ],
            "email": [f"contact{i + 1}@example.com" for i in range(len(c_acc))],
            "updated_at": start - pd.Timedelta(days=90),
        }
    )
    n_opp = rng.poisson(size.days / 120, n_acc)
    o_acc = np.repeat(np.arange(n_acc), n_opp)
    created_d = rng.integers(0, size.days, len(o_acc))
    created = _ts(days[created_d], rng.uniform(8, 18, len(o_acc)))
    age = size.days - 1 - created_d
    stage = np.where(
        age > 90,
        rng.choice(["closed_won", "closed_lost"], len(o_acc)),
        rng.choice(["prospecting", "qualification", "proposal", "negotiation"], len(o_acc)),
    )
    end_ts = pd.Timestamp(size.end_date) + pd.Timedelta(hours=23)
    opportunities = pd.DataFrame(
        {
            "opportunity_id": np.arange(1, len(o_acc) + 1),
            "account_id": account_ids[o_acc],
            "stage": stage,
            "amount": np.round(np.exp(rng.normal(np.log(8000), 1.0, len(o_acc))), 2),
            "currency": "EUR",
            "close_date": (
                days[created_d] + pd.to_timedelta(rng.integers(30, 120, len(o_acc)), unit="D")
            ).date,
            "created_at": created,
            "updated_at": (created + pd.to_timedelta(np.minimum(age, 60), unit="D")).clip(upper=end_ts),
        }
    )

    # Tickets: Poisson per account-day, fewer at weekends, bigger accounts file more.
    rate = (0.01 + 0.06 * rng.gamma(1.0, 1.0, n_acc))[:, None]
    dow = days.dayofweek.to_numpy()
    rate = rate * np.where(dow >= 5, 0.3, 1.15)[None, :]
    counts = rng.poisson(rate)
    labels: list[tuple] = []
    if size.anomalies:
        warm = min(120, size.days // 3)
        busy = rng.permutation(np.argsort(-rate[:, 0])[: max(3, n_acc // 10)])[: max(2, n_acc // 100)]
        for a in busy:
            d = int(rng.integers(warm, size.days - 3))
            extra = int(rng.integers(8, 16))
            counts[a, d] += extra
            labels.append(
                ("crm", "tickets", account_ids[a], days[d].date(), days[d].date(), "spike", float(extra))
            )
    a_idx, d_idx = np.nonzero(counts)
    reps = counts[a_idx, d_idx]
    t_acc, t_day = np.repeat(a_idx, reps), np.repeat(d_idx, reps)
    opened = _ts(days[t_day], rng.uniform(7, 20, len(t_acc)))
    closed = rng.random(len(t_acc)) < np.where(t_day < size.days - 5, 0.95, 0.4)
    tickets = pd.DataFrame(
        {
            "ticket_id": np.arange(1, len(t_acc) + 1),
            "account_id": account_ids[t_acc],
            "opened_at": opened,
            "priority": rng.choice(["low", "normal", "high", "urgent"], len(t_acc), p=[0.3, 0.5, 0.15, 0.05]),
            "status": np.where(closed, "closed", "open"),
            "subject": rng.choice(_SUBJECTS, len(t_acc)),
            "updated_at": (
                opened + pd.to_timedelta(np.where(closed, rng.uniform(0.1, 5, len(t_acc)), 0), unit="D")
            ).clip(upper=end_ts),
        }
    )
    return {
        "accounts": accounts,
        "contacts": contacts,
        "opportunities": opportunities,
        "support_tickets": tickets,
        "seam_demo_labels": _labels_frame(labels, "crm"),
    }
