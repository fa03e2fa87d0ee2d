"""Forecasting stage: per-series model selection, combination and calibrated intervals.

`forecast(history, horizon, freq, levels)` is the stage's contract; `run_forecast` takes a
`ForecastOptions` for callers that need to tune it, and `Peers` (categories and warehouses of the
series) with which a series with a short history is forecast from its peers (`peers`), and
`Drivers` (promotions and holidays known ahead, see `drivers`) whose effect the forecast includes.
`forecast_hierarchy_by_shard` reconciles every level of the product hierarchy one shard of SKUs at
a time (the nightly step); `forecast_hierarchy` does it in memory, with every option (`hierarchy`).

The names below are imported when first used: the models pull in statsmodels and scipy (about two
seconds), which steps that only read forecasts or score their accuracy (`accuracy`) do not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.lazy import lazy_exports

if TYPE_CHECKING:
    from pipelines.forecasting.api import forecast, run_forecast
    from pipelines.forecasting.drivers import DriverPrior, Drivers, DriverStats
    from pipelines.forecasting.errors import ForecastInputError
    from pipelines.forecasting.hierarchy import (
        HierarchyShards,
        HierarchySpec,
        forecast_hierarchy,
        forecast_hierarchy_by_shard,
    )
    from pipelines.forecasting.options import ForecastOptions, build_options
    from pipelines.forecasting.peers import Peers, PeerStats

_EXPORTS = {
    "DriverPrior": "drivers",
    "DriverStats": "drivers",
    "Drivers": "drivers",
    "ForecastInputError": "errors",
    "ForecastOptions": "options",
    "HierarchyShards": "hierarchy",
    "HierarchySpec": "hierarchy",
    "PeerStats": "peers",
    "Peers": "peers",
    "build_options": "options",
    "forecast": "api",
    "forecast_hierarchy": "hierarchy",
    "forecast_hierarchy_by_shard": "hierarchy",
    "run_forecast": "api",
}

__all__ = [
    "DriverPrior",
    "DriverStats",
    "Drivers",
    "ForecastInputError",
    "ForecastOptions",
    "HierarchyShards",
    "HierarchySpec",
    "PeerStats",
    "Peers",
    "build_options",
    "forecast",
    "forecast_hierarchy",
    "forecast_hierarchy_by_shard",
    "run_forecast",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
