"""Forecasting stage: per-series model selection, combination and calibrated intervals.

`forecast(history, horizon, freq, levels)` is the stage's contract; `run_forecast` takes a
`ForecastOptions` for callers that need to tune it.
"""

from pipelines.forecasting.api import forecast, run_forecast
from pipelines.forecasting.errors import ForecastInputError
from pipelines.forecasting.options import ForecastOptions, build_options

__all__ = ["ForecastInputError", "ForecastOptions", "build_options", "forecast", "run_forecast"]
