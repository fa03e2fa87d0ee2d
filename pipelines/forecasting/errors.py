"""Exceptions raised by the forecasting stage."""

from __future__ import annotations

from pipelines.errors import DataError


class ForecastInputError(DataError, ValueError):
    """The history frame or the call arguments violate the forecasting input contract.

    A data error: retrying does not help (no Airflow retry, CLI exit code 4); fix the input or the
    options named in the message.  Also a `ValueError`, for callers that catch that.
    """
