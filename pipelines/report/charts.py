"""Charts of the report, as PNG data URIs (matplotlib, headless)."""

from __future__ import annotations

import base64
import io
from typing import Any

import pandas as pd


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def forecast_chart(history: pd.DataFrame, fc: pd.DataFrame, title: str) -> str:
    """History (last 8 weeks) and forecast with 80%/95% bands, as a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    h = history.tail(56)
    ax.plot(h["ds"], h["y"], color="#334", lw=1, label="actual")
    t = pd.to_datetime(fc["target_date"])
    ax.fill_between(t, fc["yhat_lo_95"], fc["yhat_hi_95"], color="#9cf", alpha=0.5, label="95%")
    ax.fill_between(t, fc["yhat_lo_80"], fc["yhat_hi_80"], color="#58c", alpha=0.5, label="80%")
    ax.plot(t, fc["yhat"], color="#036", lw=1.5, label="forecast")
    ax.set_title(title, fontsize=9, parse_math=False)  # names from the ERP are text, never mathtext
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left", ncols=4, frameon=False)
    _date_axis(ax)
    return _png(fig)


def anomaly_chart(series: pd.DataFrame, ds: pd.Timestamp, lower: float, upper: float, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.0, 1.6))
    ax.plot(series["ds"], series["y"], color="#334", lw=1)
    point = series[series["ds"] == ds]
    ax.scatter(point["ds"], point["y"], color="#c22", zorder=3, s=18)
    ax.axhspan(lower, upper, color="#9c9", alpha=0.3)
    ax.set_title(title, fontsize=8, parse_math=False)
    ax.tick_params(labelsize=6)
    _date_axis(ax)
    return _png(fig)


def _date_axis(ax: Any) -> None:
    """Few, short date labels, so that small charts stay readable."""
    import matplotlib.dates as mdates

    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=5))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
