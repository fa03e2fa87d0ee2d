"""Exceptions raised by the forecasting stage.

`ForecastInputError` is a `ValueError` so callers that already catch `ValueError` (and the
project-wide data-error handling, once `pipelines.errors` exists) treat it as a data error that
must not be retried.
"""

from __future__ import annotations


class ForecastInputError(ValueError):
    """The history frame or the call arguments violate the forecasting input contract."""
