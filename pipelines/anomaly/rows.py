"""Scorer output -> rows of `seam_anomaly_scores`, with severities from the configured thresholds."""

from __future__ import annotations

from datetime import date

import pandas as pd


def severity_of(scores: pd.Series, thresholds: dict[str, float], flagged: pd.Series) -> pd.Series:
    """Severity label per score from the configured thresholds (None when not an anomaly)."""
    sev = pd.Series([None] * len(scores), index=scores.index, dtype=object)
    for name, cut in sorted(thresholds.items(), key=lambda kv: kv[1]):
        sev[(scores >= cut) & flagged] = name
    sev[flagged & sev.isna()] = "low"
    return sev


def build_score_rows(
    scored: pd.DataFrame, keys: pd.DataFrame, *, run_date: date, thresholds: dict[str, float]
) -> pd.DataFrame:
    """Rows of `seam_anomaly_scores` from `score`'s output; `keys` maps each `unique_id` to its
    `metric` and `entity` (the series frame's columns: ids are never parsed back into keys)."""
    names = keys[["unique_id", "metric", "entity"]].drop_duplicates("unique_id").set_index("unique_id")
    metric_entity = names.reindex(scored["unique_id"].to_numpy())
    if metric_entity.isna().any().any():
        raise ValueError("build_score_rows: scored series without metric and entity in `keys`")
    flagged = scored["is_anomaly"].astype(bool)
    return pd.DataFrame(
        {
            "run_date": pd.Timestamp(run_date),
            "metric": metric_entity["metric"].to_numpy(),
            "entity": metric_entity["entity"].to_numpy(),
            "ds": scored["ds"],
            "value": scored["y"],
            "expected": scored["expected"],
            "lower_bound": scored["lower"],
            "upper_bound": scored["upper"],
            "score": scored["score"].astype(float),
            "is_anomaly": flagged,
            "severity": severity_of(scored["score"], thresholds, flagged),
            "kind": scored["kind"],
            "reason": scored["reason"],
            "model": scored["model"].astype(str),
        }
    )


def build_record_rows(rec: pd.DataFrame, *, run_date: date, thresholds: dict[str, float]) -> pd.DataFrame:
    """Rows of `seam_anomaly_scores` from `score_records`' flagged order lines."""
    if rec.empty:
        return pd.DataFrame()
    flagged = rec["is_anomaly"].astype(bool)
    return pd.DataFrame(
        {
            "run_date": pd.Timestamp(run_date),
            "metric": "order_line_" + rec["field"].astype(str),
            "entity": rec["record_id"].astype(str),
            "ds": pd.to_datetime(rec["order_date"]),
            "value": rec["value"].astype(float),
            "expected": rec["expected"].astype(float),
            "lower_bound": rec["lower"].astype(float),
            "upper_bound": rec["upper"].astype(float),
            "score": rec["score"].astype(float),
            "is_anomaly": flagged,
            "severity": severity_of(rec["score"], thresholds, flagged),
            "kind": rec["field"].map(lambda f: "duplicate" if f == "duplicate" else "record"),
            "reason": rec["reason"],
            "model": "records",
        }
    ).drop_duplicates(["metric", "entity", "ds"])
