"""What happened each night, from the run ledger: `seam status`, the report and the alerts.

A night is OK only when every step the config asks for succeeded: each table's extraction, each
dataset's validation, the plan, every planned forecast and score shard, the load, the report (and
the e-mail when it has recipients).  Every attempt of a step is kept; a step whose latest attempt
is still `running` while nobody holds the night was interrupted (its process was killed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import sqlalchemy as sa

from pipelines.config import Config, results_url
from pipelines.db import connect, make_engine
from pipelines.state.shard_plans import partition_count

PROBLEMS = ("failed", "skipped", "interrupted", "not run")


@dataclass(frozen=True)
class NightScope:
    """What a run of a night was asked to do: only some sources, or no report e-mail."""

    sources: tuple[str, ...] | None = None
    send_report: bool = True


def expected_steps(cfg: Config, shards: int | None, scope: NightScope = NightScope()) -> list[str]:
    """The ledger names of the steps a complete night of this config has (shards: from its plan)."""
    chosen = [s for s in cfg.sources if scope.sources is None or s.name in scope.sources]
    steps = [f"extract:{s.name}.{t.name}" for s in chosen for t in s.tables]
    steps += [f"validate:{d}" for d in sorted({t.dataset for s in chosen for t in s.tables})]
    steps.append("plan")
    steps += [f"{kind}:{k}" for kind in ("forecast", "score") for k in range(shards or 0)]
    parts = partition_count(shards, cfg.scale.worker_slots) if shards else 0
    steps += [f"score_records:{k}" for k in range(parts)]
    steps += ["reconcile", "adjust"] if shards else []
    steps += ["load"] + (["alert_incidents"] if cfg.notifications.incident_alerts else [])
    steps += ["report"] + (["send_report"] if cfg.notifications.report_to and scope.send_report else [])
    return steps


def read_ledger(
    cfg: Config, *, nights: list[date] | None = None, days: int = 7
) -> tuple[pd.DataFrame, set[date]]:
    """Ledger rows of the given nights (or the last `days` nights that have rows), and the nights
    currently locked by a run."""
    engine = make_engine(results_url(cfg.source(cfg.results.ledger)), what=f"source {cfg.results.ledger!r}")
    try:
        with connect(engine, what="the run ledger") as conn:
            inspector = sa.inspect(conn)
            if not inspector.has_table("seam_run_ledger"):
                return pd.DataFrame(), set()
            df = pd.read_sql(sa.text("SELECT * FROM seam_run_ledger"), conn)
            locked = (
                set(
                    pd.to_datetime(
                        pd.read_sql(sa.text("SELECT run_date FROM seam_night_locks"), conn)["run_date"]
                    ).dt.date
                )
                if inspector.has_table("seam_night_locks")
                else set()
            )
    finally:
        engine.dispose()
    if df.empty:
        return df, locked
    df["run_date"] = pd.to_datetime(df["run_date"]).dt.date
    wanted = nights if nights is not None else sorted(df["run_date"].unique())[-days:]
    return df[df["run_date"].isin(wanted)].copy(), locked


def summarize(
    cfg: Config, ledger: pd.DataFrame, locked: set[date], scope: NightScope = NightScope()
) -> pd.DataFrame:
    """One row per night and step: the latest attempt's status (running steps of an unlocked night
    are `interrupted`), attempts, duration, rows, error; expected steps with no row are `not run`."""
    rows = []
    for night, g in ledger.groupby("run_date", sort=True):
        g = g.sort_values(["step", "attempt"])
        latest = g.groupby("step", as_index=False).tail(1).set_index("step")
        plan = latest["rows_out"].get("plan")
        shards = int(plan) if plan is not None and pd.notna(plan) else None
        for step in dict.fromkeys([*expected_steps(cfg, shards, scope), *latest.index]):
            if step not in latest.index:
                rows.append({"run_date": night, "step": step, "status": "not run", "attempts": 0})
                continue
            r = latest.loc[step]
            status = r["status"]
            if status == "running" and night not in locked:
                status = "interrupted"
            seconds = (
                pd.to_datetime(r["finished_at"], utc=True) - pd.to_datetime(r["started_at"], utc=True)
            ).total_seconds()
            rows.append(
                {
                    "run_date": night,
                    "step": step,
                    "status": status,
                    "attempts": int((g["step"] == step).sum()),
                    "interrupted_before": int(
                        (
                            (g["step"] == step) & (g["status"] == "running") & (g["attempt"] < r["attempt"])
                        ).sum()
                    ),
                    "seconds": None if pd.isna(seconds) else round(seconds, 1),
                    "rows_in": r["rows_in"],
                    "rows_out": r["rows_out"],
                    "error": r["error"] if isinstance(r["error"], str) else None,
                    "finished_at": r["finished_at"],
                }
            )
    return pd.DataFrame(rows)


def read_status(cfg: Config, *, days: int = 7) -> pd.DataFrame:
    """Every configured step of the last `days` nights that have ledger rows (see `summarize`)."""
    ledger, locked = read_ledger(cfg, days=days)
    return summarize(cfg, ledger, locked) if len(ledger) else pd.DataFrame()


def night_problems(status: pd.DataFrame) -> pd.DataFrame:
    """The steps of a night's status that did not succeed."""
    return status[status["status"].isin(PROBLEMS)] if len(status) else status


def format_status(df: pd.DataFrame) -> str:
    if df.empty:
        return "no runs recorded yet (the run ledger is empty)"
    lines = []
    for night, g in df.groupby("run_date", sort=True):
        bad = night_problems(g)
        running = g[g["status"] == "running"]
        verdict = "PROBLEM" if len(bad) else "RUNNING" if len(running) else "OK"
        lines.append(f"{night}: {verdict} ({len(g) - len(bad)} of {len(g)} steps succeeded)")
        for r in g.itertuples(index=False):
            rows = "" if pd.isna(r.rows_out) else f" rows_out={int(r.rows_out)}"
            took = "" if r.seconds is None or pd.isna(r.seconds) else f" {r.seconds}s"
            killed = (
                f" ({int(r.interrupted_before)} interrupted before)"
                if getattr(r, "interrupted_before", 0)
                else ""
            )
            err = f"  {str(r.error)[:160]}" if isinstance(r.error, str) and r.error else ""
            lines.append(f"  {r.step:<32} {r.status:<11} attempts={r.attempts}{killed}{took}{rows}{err}")
    return "\n".join(lines)
