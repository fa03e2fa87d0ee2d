"""Exceptions raised by the anomaly stage."""

from __future__ import annotations

from pipelines.errors import DataError


class AnomalyInputError(DataError, ValueError):
    """The input of an anomaly scorer breaks its contract (columns, dtypes, keys or options).

    It is a data error: retrying does not help; fix the input or the options named in the message.
    """
