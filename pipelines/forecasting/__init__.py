"""Forecasting stage: per-series model selection, combination and calibrated intervals.

`forecast(history, horizon, freq, levels)` is the stage's contract; `run_forecast` takes a
`ForecastOptions` for callers that need to tune it, and `Peers` (categories and warehouses of the
series) with which a series with a short history is forecast from its peers (`peers`), and
`Drivers` (promotions and holidays known ahead, see `drivers`) whose effect the forecast includes.

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
    from pipelines.forecasting.hierarchy import HierarchySpec, forecast_hierarchy
    from pipelines.forecasting.options import ForecastOptions, build_options
    from pipelines.forecasting.peers import Peers, PeerStats

_EXPORTS = {
    "DriverPrior": "drivers",
    "DriverStats": "drivers",
    "Drivers": "drivers",
    "ForecastInputError": "errors",
    "ForecastOptions": "options",
    "HierarchySpec": "hierarchy",
    "PeerStats": "peers",
    "Peers": "peers",
    "build_options": "options",
    "forecast": "api",
    "forecast_hierarchy": "hierarchy",
    "run_forecast": "api",
}

__all__ = [
    "DriverPrior",
    "DriverStats",
    "Drivers",
    "ForecastInputError",
    "ForecastOptions",
    "HierarchySpec",
    "PeerStats",
    "Peers",
    "build_options",
    "forecast",
    "forecast_hierarchy",
    "run_forecast",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
