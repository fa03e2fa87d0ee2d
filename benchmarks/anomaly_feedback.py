"""Incident-level precision/recall before and after analyst feedback, on the labelled synthetic panel
of ``benchmarks/anomaly_accuracy.py``.

An analyst looks at the incidents of the first week of the evaluated period (the week after the
year of warm-up) and labels every false one (no injected anomaly credits it, by the benchmark's own
rule) ``false_positive``, on the night after that week.  "After" scores the whole panel again with
those labels, exactly as the nightly run does (`pipelines.anomaly.feedback`): the labelled days
leave the baselines of the later days, and incidents that continue a labelled one are not alerted
again.  The figures that matter are those of the days after the labelling night (the analyst's
labels cannot help before it); the whole period is shown too.

Usage:
    .venv/bin/python benchmarks/anomaly_feedback.py [--series 600] [--seed 7] [--week 7]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.anomaly_accuracy import START, WARMUP, _false_incidents, build_panel, evaluate_incidents
from pipelines.anomaly import ScoreOptions, build_incidents, score
from pipelines.anomaly.feedback import RAW_COLUMNS, baseline_exclusions, build_labels, match_labels

log = logging.getLogger(__name__)


def analyst_labels(
    incidents: pd.DataFrame, truth: pd.DataFrame, first: pd.Timestamp, night: pd.Timestamp
) -> pd.DataFrame:
    """`seam_anomaly_feedback` rows: every false incident that started in [first, night) labelled
    false_positive on `night`, its days as they stood that night (clipped to the day before)."""
    week = incidents[(incidents["start"] >= first) & (incidents["start"] < night)]
    false = _false_incidents(week, truth)
    return pd.DataFrame(
        {
            "feedback_id": range(1, len(false) + 1),
            "incident_id": None,
            "metric": "m",
            "entity": false["unique_id"].to_numpy(),
            "start_ds": false["start"].to_numpy(),
            "end_ds": false["end"].clip(upper=night - pd.Timedelta(days=1)).to_numpy(),
            "label": "false_positive",
            "author": "analyst",
            "note": None,
            "created_at": night,
            "valid_from": night.date(),
        },
        columns=list(RAW_COLUMNS),
    )


def alerted(incidents: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The incidents the report ranks and the alerts send: not those continuing a quiet label."""
    keyed = incidents.assign(
        metric="m", entity=incidents["unique_id"], start_ds=incidents["start"], end_ds=incidents["end"]
    )
    said = match_labels(keyed, labels)
    return incidents[~said.isin(["false_positive", "expected"]).to_numpy()]


def figures(incidents: pd.DataFrame, truth: pd.DataFrame, since: pd.Timestamp) -> dict:
    m = evaluate_incidents(incidents[incidents["start"] >= since], truth[truth["start_ds"] >= since], since)
    return {k: m[k] for k in ("precision", "recall", "f1", "incidents", "false_incidents", "labels")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=600)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--week", type=int, default=7, help="days the analyst labels")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    panel = build_panel(args.series, args.seed)
    first = START + pd.Timedelta(days=WARMUP)
    night = first + pd.Timedelta(days=args.week)
    opts = ScoreOptions(n_jobs=2)
    t0 = time.perf_counter()
    before = build_incidents(score(panel.dirty, events=panel.events, options=opts))
    raw = analyst_labels(before, panel.labels, first, night)
    labels = build_labels(raw, night=night.date())
    days = baseline_exclusions(labels).rename(columns={"entity": "unique_id"})[["unique_id", "ds"]]
    scored = score(panel.dirty, events=panel.events, options=opts, feedback=days)
    after = alerted(build_incidents(scored), labels)
    result = {
        "command": f"python benchmarks/anomaly_feedback.py --series {args.series} --seed {args.seed} --week {args.week}",
        "series": args.series,
        "labelled_false_positives": len(labels),
        "labelled_days": len(days),
        "labelling_night": str(night.date()),
        "after_labelling_night": {
            "before": figures(before, panel.labels, night),
            "after": figures(after, panel.labels, night),
        },
        "whole_period": {
            "before": figures(before, panel.labels, first),
            "after": figures(after, panel.labels, first),
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "anomaly_feedback.json").write_text(json.dumps(result, indent=2, default=float))
    log.info(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
