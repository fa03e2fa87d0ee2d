"""Analysts' labels (pipelines.anomaly.feedback) and the incidents to alert (tracking.select_alerts)."""

from __future__ import annotations

import logging
from datetime import date

import pandas as pd
import pytest

from pipelines.anomaly.feedback import (
    RAW_COLUMNS,
    FeedbackError,
    baseline_exclusions,
    build_labels,
    check_label,
    match_labels,
    summarize_labels,
)
from pipelines.anomaly.tracking import select_alerts

N1, N2, N3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)


def raw(*rows: dict) -> pd.DataFrame:
    base = dict.fromkeys(RAW_COLUMNS)
    return pd.DataFrame([{**base, **r} for r in rows], columns=list(RAW_COLUMNS))


def point(
    fid: int, label: str, day: str, *, valid: date = N1, author: str = "ana", entity: str = "A"
) -> dict:
    return {
        "feedback_id": fid,
        "metric": "demand",
        "entity": entity,
        "start_ds": day,
        "label": label,
        "author": author,
        "created_at": pd.Timestamp(valid) + pd.Timedelta(hours=fid),
        "valid_from": valid,
    }


@pytest.mark.parametrize(
    ("label", "author", "message"),
    [
        ("bogus", "ana", "unknown label 'bogus'"),
        ("expected", None, "needs an author"),
        ("fixed", "  ", "author"),
    ],
)
def test_bad_labels_are_refused_with_the_fix(label, author, message) -> None:
    with pytest.raises(FeedbackError, match=message):
        check_label(label, author)


def test_only_labels_valid_on_the_night_count_and_the_latest_wins() -> None:
    rows = raw(point(1, "confirmed", "2026-11-18"), point(2, "fixed", "2026-11-18", valid=N3))
    assert build_labels(rows, night=N1)["label"].tolist() == ["confirmed"]
    assert build_labels(rows, night=N3)["label"].tolist() == ["fixed"]  # one target, the latest label
    assert build_labels(rows, night=date(2026, 11, 19)).empty  # before any label: a backfill sees none


def test_invalid_rows_are_skipped_with_a_warning_naming_them(caplog) -> None:
    rows = raw(
        point(1, "false_positive", "2026-11-18"),
        point(7, "False Positive", "2026-11-18", entity="B"),
        point(8, "expected", "2026-11-18", author="", entity="C"),
        {"feedback_id": 9, "incident_id": "nope", "label": "expected", "author": "x", "created_at": N1},
        {"feedback_id": 10, "label": "expected", "author": "x", "created_at": N1},
    )
    with caplog.at_level(logging.WARNING):
        out = build_labels(
            rows, pd.DataFrame(columns=["incident_id", "metric", "entity", "start_ds", "end_ds"])
        )
    assert out["feedback_id"].tolist() == [1]
    text = caplog.text
    for fid, why in ((7, "unknown label"), (8, "no author"), (9, "unknown incident 'nope'"), (10, "neither")):
        assert f"feedback_id {fid}: {why}" in text


def test_an_incident_label_without_a_span_takes_the_incident_s() -> None:
    incidents = pd.DataFrame(
        [
            {
                "incident_id": "i1",
                "metric": "demand",
                "entity": "A",
                "start_ds": "2026-11-10",
                "end_ds": "2026-11-12",
            }
        ]
    )
    rows = raw({"feedback_id": 3, "incident_id": "i1", "label": "expected", "author": "bo", "created_at": N1})
    labels = build_labels(rows, incidents, night=N1)
    days = baseline_exclusions(labels)
    assert days["ds"].dt.strftime("%m-%d").tolist() == ["11-10", "11-11", "11-12"]
    assert set(days["entity"]) == {"A"}


def test_quiet_labels_follow_an_incident_that_goes_on_and_precision_counts_fixed_as_real() -> None:
    labels = build_labels(
        raw(
            point(1, "false_positive", "2026-11-18"),
            point(2, "confirmed", "2026-11-10", entity="B"),
            point(3, "fixed", "2026-11-01", entity="C"),
            point(4, "expected", "2026-11-02", entity="D"),
        )
    )
    tonight = pd.DataFrame(
        {
            "incident_id": ["x", "y", "z"],
            "metric": "demand",
            "entity": ["A", "A", "B"],
            "start_ds": pd.to_datetime(["2026-11-19", "2026-11-25", "2026-11-10"]),
            "end_ds": pd.to_datetime(["2026-11-20", "2026-11-25", "2026-11-11"]),
        }
    )
    assert match_labels(tonight, labels).tolist() == ["false_positive", None, "confirmed"]
    s = summarize_labels(labels)
    assert (s["false_positive"], s["confirmed"], s["fixed"], s["expected"]) == (1, 1, 1, 1)
    assert s["precision"] == pytest.approx(2 / 3)
    assert summarize_labels(labels.iloc[:0])["precision"] is None


def alertable(rows: list[tuple[str, str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "incident_id": i,
                "metric": "demand",
                "entity": i.upper(),
                "start_ds": "2026-11-20",
                "end_ds": "2026-11-20",
                "peak_ds": "2026-11-20",
                "peak_score": 0.99999,
                "severity": sev,
                "kind": "spike",
                "points": 1,
                "first_night": "2026-11-20",
                "reason": "far above",
                "alerted_severity": was,
            }
            for i, sev, was in rows
        ]
    )


def test_alerts_go_to_new_and_escalated_incidents_once_and_never_to_labelled_ones() -> None:
    inc = alertable(
        [
            ("new", "critical", None),
            ("sent", "critical", "critical"),
            ("up", "critical", "high"),
            ("low", "high", None),
            ("fp", "critical", None),
        ]
    )
    labels = build_labels(raw(point(1, "false_positive", "2026-11-20", entity="FP")))
    out = select_alerts(inc, labels, severities={"critical"})
    assert sorted(out["incident_id"]) == ["new", "up"]
    assert out.set_index("incident_id")["alerted_severity"].fillna("-").to_dict() == {
        "new": "-",
        "up": "high",
    }
    assert select_alerts(inc.iloc[:0], labels, severities={"critical"}).empty
