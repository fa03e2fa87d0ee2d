"""Keep `seam_anomaly_incidents` of one results database up to date with tonight's scores."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.anomaly.tracking import COLUMNS, merge_incidents, tonight_incidents
from pipelines.load.batch import LoadResult, load_batch

log = logging.getLogger(__name__)


def read_touchable(engine: Engine, since: date) -> pd.DataFrame:
    """Stored incidents tonight may extend or close: the open ones and those last seen since `since`."""
    query = sa.text(
        f"SELECT {', '.join(COLUMNS)} FROM seam_anomaly_incidents WHERE status = 'open' OR last_night >= :since"
    ).bindparams(sa.bindparam("since", type_=sa.Date))
    with engine.connect() as conn:
        return pd.read_sql(query, conn, params={"since": since})


def load_incidents(
    engine: Engine, run_date: date, scores: pd.DataFrame, *, thresholds: dict[str, float], window_days: int
) -> LoadResult:
    """Merge tonight's incidents (from the night's rows of `seam_anomaly_scores` for this database)
    with the stored ones and upsert the result, exactly once per night."""
    tonight = tonight_incidents(scores, run_date=run_date, thresholds=thresholds)
    stored = read_touchable(engine, run_date - timedelta(days=window_days + 1))
    rows = merge_incidents(stored, tonight, run_date=run_date)
    result = load_batch(engine, "seam_anomaly_incidents", run_date, rows)
    log.info(
        "incidents run_date=%s database=%s tonight=%d open=%d closed=%d",
        run_date,
        engine.url.database,
        len(tonight),
        int((rows["status"] == "open").sum()),
        int((rows["status"] == "closed").sum()),
    )
    return result
