"""`seam_forecast_overrides` in a results database: read, add, expire.

The table is the planners' input (written with plain SQL or `seam override`), not a nightly result,
so it is written row by row in one transaction here, not through `pipelines.load`.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.db import connect, safe_url
from pipelines.errors import ConfigError
from pipelines.overrides.rules import INPUT_COLUMNS, OVERRIDE_COLUMNS, conform_overrides
from pipelines.results import FORECAST_OVERRIDES

TABLE = "seam_forecast_overrides"


def _require_table(conn: Connection, engine: Engine) -> None:
    inspector = sa.inspect(conn)
    exists = inspector.has_table(TABLE)
    columns = {c["name"] for c in inspector.get_columns(TABLE)} if exists else set()
    conn.rollback()  # end the inspection's implicit transaction: the caller begins its own
    if not exists:
        raise ConfigError(
            f"{safe_url(engine.url)} has no table {TABLE}; run `seam migrate --config FILE` "
            f"(migration 006_forecast_overrides)"
        )
    if "category" not in columns:
        raise ConfigError(
            f"{TABLE} in {safe_url(engine.url)} predates aggregate overrides; run "
            f"`seam migrate --config FILE` (migration 009_aggregate_overrides)"
        )


def read_overrides(engine: Engine) -> pd.DataFrame:
    """Every stored override (conformed: dates as Timestamps, created_at in UTC), by id."""
    with connect(engine, what="the overrides' database") as conn:
        _require_table(conn, engine)
        df = pd.read_sql(
            sa.text(f"SELECT {', '.join(OVERRIDE_COLUMNS)} FROM {TABLE} ORDER BY override_id"), conn
        )
    df["created_at"] = pd.to_datetime(df["created_at"].astype(str), utc=True, format="ISO8601")
    out = conform_overrides(df)
    out["override_id"] = out["override_id"].astype(int)
    return out


def read_forecast_series(engine: Engine) -> pd.DataFrame:
    """The series (`sku`, `warehouse`, and their `run_date`) of the latest night in
    `seam_forecasts`: the ones an override may name."""
    with connect(engine, what="the forecasts' database") as conn:
        if not sa.inspect(conn).has_table("seam_forecasts"):
            return pd.DataFrame({"sku": [], "warehouse": [], "run_date": []})
        return pd.read_sql(
            sa.text(
                "SELECT DISTINCT sku, warehouse, run_date FROM seam_forecasts "
                "WHERE run_date = (SELECT MAX(run_date) FROM seam_forecasts)"
            ),
            conn,
        )


def insert_overrides(engine: Engine, rows: pd.DataFrame, *, created_at: datetime) -> list[int]:
    """Insert checked overrides (`check_new_overrides`) in one transaction; returns their ids."""
    ids: list[int] = []
    with connect(engine, what="the overrides' database") as conn:
        _require_table(conn, engine)
        with conn.begin():
            for r in rows.to_dict("records"):
                values = {c: _plain(r.get(c)) for c in (*INPUT_COLUMNS, "expires_on")}
                values["created_at"] = created_at  # UTC; SQLAlchemy's DateTime stores it per dialect
                result = conn.execute(sa.insert(FORECAST_OVERRIDES).values(**values))
                key = result.inserted_primary_key
                assert key is not None
                ids.append(int(key[0]))
    return ids


def expire_overrides(engine: Engine, ids: list[int], *, last_night: date) -> list[int]:
    """Stop overrides from applying after `last_night` (their row stays, so the forecasts they
    shaped can still be traced); returns the ids that do not exist."""
    with connect(engine, what="the overrides' database") as conn:
        _require_table(conn, engine)
        with conn.begin():
            found = set(
                conn.execute(
                    sa.select(FORECAST_OVERRIDES.c.override_id).where(
                        FORECAST_OVERRIDES.c.override_id.in_(ids)
                    )
                ).scalars()
            )
            missing = [i for i in ids if i not in found]
            if not missing:
                conn.execute(
                    sa.update(FORECAST_OVERRIDES)
                    .where(FORECAST_OVERRIDES.c.override_id.in_(ids))
                    .values(expires_on=last_night)
                )
    return missing


def _plain(value: object) -> object:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    return value


VALUE_ADDED_SUMS = (
    "n_points",
    "n_overridden",
    "sum_actual",
    "sum_naive",
    "sum_statistical",
    "sum_final",
    "sum_abs_error_naive",
    "sum_abs_error_statistical",
    "sum_abs_error_final",
)


def read_value_added(engine: Engine) -> pd.DataFrame:
    """`seam_v_forecast_value_added` summed over every series, per lag_days (its sums only)."""
    sums = ", ".join(f"SUM({c}) AS {c}" for c in VALUE_ADDED_SUMS)
    with connect(engine, what="the forecasts' database") as conn:
        df = pd.read_sql(
            sa.text(
                f"SELECT lag_days, {sums} FROM seam_v_forecast_value_added GROUP BY lag_days ORDER BY lag_days"
            ),
            conn,
        )
    return df.astype(float).assign(lag_days=lambda d: d["lag_days"].astype(int))
