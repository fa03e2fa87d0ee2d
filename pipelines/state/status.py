"""`seam status`: the health of the last nights, read from the run ledger."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from pipelines.config import Config, results_url
from pipelines.db import connect, make_engine


def read_status(cfg: Config, *, days: int = 7) -> pd.DataFrame:
    """Latest attempt of every step for the last `days` nights that have ledger rows."""
    engine = make_engine(results_url(cfg.source(cfg.results.ledger)))
    try:
        with connect(engine, what="the run ledger") as conn:
            if not sa.inspect(conn).has_table("seam_run_ledger"):
                return pd.DataFrame()
            df = pd.read_sql(sa.text("SELECT * FROM seam_run_ledger"), conn)
    finally:
        engine.dispose()
    if df.empty:
        return df
    df["run_date"] = pd.to_datetime(df["run_date"]).dt.date
    nights = sorted(df["run_date"].unique())[-days:]
    df = df[df["run_date"].isin(nights)].sort_values(["run_date", "step", "attempt"])
    latest = df.groupby(["run_date", "step"], as_index=False).tail(1).copy()
    latest["attempts"] = latest.merge(
        df.groupby(["run_date", "step"]).size().rename("n").reset_index(), on=["run_date", "step"]
    )["n"].to_numpy()
    start, end = (
        pd.to_datetime(latest["started_at"], utc=True),
        pd.to_datetime(latest["finished_at"], utc=True),
    )
    latest["seconds"] = (end - start).dt.total_seconds().round(1)
    return latest[["run_date", "step", "status", "attempts", "seconds", "rows_in", "rows_out", "error"]]


def format_status(df: pd.DataFrame) -> str:
    if df.empty:
        return "no runs recorded yet (the run ledger is empty)"
    lines = []
    for night, g in df.groupby("run_date"):
        bad = g[g["status"] != "success"]
        lines.append(f"{night}: {'OK' if bad.empty else 'PROBLEM'} ({len(g)} steps)")
        for r in g.itertuples(index=False):
            rows = "" if pd.isna(r.rows_out) else f" rows_out={int(r.rows_out)}"
            err = f"  {str(r.error)[:160]}" if isinstance(r.error, str) and r.error else ""
            lines.append(f"  {r.step:<28} {r.status:<8} attempts={r.attempts} {r.seconds}s{rows}{err}")
    return "\n".join(lines)
