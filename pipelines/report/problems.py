"""What went wrong with a night, in one plain sentence per problem, from the run ledger."""

from __future__ import annotations

from datetime import date

import pandas as pd

_LATER = ("report", "send_report", "prune")  # not finished when the report is written


def _why(error: object) -> str:
    text = str(error).strip() if isinstance(error, str) and error else ""
    return f": {text[:400]}" if text else ""


def build_problems(status: pd.DataFrame, *, run_date: date, results_night: date | None) -> list[str]:
    """Sentences for every step of the night that did not succeed (`status` as from
    `pipelines.state.summarize`), the ones readers act on first: results not written, stale
    forecasts or scores, tables not extracted, datasets that failed their checks."""
    if status.empty:
        return [f"Nothing of the night of {run_date} is recorded in the run ledger: the steps did not run."]
    rows = status[(status["run_date"] == run_date) & ~status["step"].isin(_LATER)]
    bad = rows[rows["status"].isin(("failed", "skipped", "interrupted", "not run"))]
    out: list[str] = []
    held = (
        f"the result tables still hold the night of {results_night}"
        if results_night
        else "no night has been loaded yet"
    )
    load = bad[bad["step"] == "load"]
    if len(load):
        r = load.iloc[0]
        out.append(
            f"Tonight's results were not written to the databases (load {r['status']}{_why(r['error'])}); {held}."
        )
    for kind, what in (
        ("forecast", "forecasts"),
        ("score", "anomaly scores"),
        ("score_records", "order-line anomaly scores"),
    ):
        shards = bad[bad["step"].str.startswith(f"{kind}:")]
        if len(shards):
            names = ", ".join(s.split(":", 1)[1] for s in shards["step"])
            first = shards.iloc[0]
            out.append(
                f"Tonight's {what} are incomplete: shard(s) {names} {first['status']}{_why(first['error'])}; "
                f"the report shows the last complete night's {what}."
            )
    for r in bad.itertuples(index=False):
        step = str(r.step)
        if step == "load" or step.startswith(("forecast:", "score:", "score_records:")):
            continue
        if step.startswith("extract:"):
            out.append(
                f"Table {step.split(':', 1)[1]} was not extracted tonight ({r.status}){_why(r.error)}."
            )
        elif step.startswith("validate:"):
            out.append(
                f"Dataset {step.split(':', 1)[1]} did not pass its quality checks ({r.status}){_why(r.error)}."
            )
        elif step == "plan":
            out.append(f"Tonight's forecasting and scoring could not be planned ({r.status}){_why(r.error)}.")
        else:
            out.append(f"Step {step} {r.status}{_why(r.error)}.")
    return out
