"""Incidents across nights: opening, extending and closing, and a re-run writes the same rows."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from pipelines.anomaly.tracking import COLUMNS, merge_incidents, tonight_incidents

TH = {"critical": 0.99999, "high": 0.9999, "medium": 0.9995}


def _scores(night: date, anomalous: list[date], days: int = 7) -> pd.DataFrame:
    ds = [night - timedelta(days=k) for k in range(days - 1, -1, -1)]
    return pd.DataFrame(
        {
            "run_date": pd.Timestamp(night),
            "metric": "demand",
            "entity": "SKU-1|WH1",
            "ds": pd.to_datetime(ds),
            "score": [0.999995 if d in anomalous else 0.4 for d in ds],
            "is_anomaly": [d in anomalous for d in ds],
            "kind": ["spike" if d in anomalous else None for d in ds],
            "reason": ["120 is far above the expected 20" if d in anomalous else None for d in ds],
        }
    )


def _night(stored: pd.DataFrame, night: date, anomalous: list[date]) -> pd.DataFrame:
    rows = merge_incidents(
        stored, tonight_incidents(_scores(night, anomalous), run_date=night, thresholds=TH), run_date=night
    )
    kept = stored[~stored["incident_id"].isin(rows["incident_id"])]
    return pd.concat([kept, rows], ignore_index=True)[list(COLUMNS)]


def test_an_incident_opens_extends_and_closes_over_three_nights():
    n1, n2, n3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
    empty = pd.DataFrame(columns=list(COLUMNS))
    after1 = _night(empty, n1, [n1])
    (inc,) = after1.to_dict("records")
    assert (inc["status"], inc["start_ds"], inc["end_ds"], inc["severity"]) == (
        "open",
        pd.Timestamp(n1),
        pd.Timestamp(n1),
        "critical",
    )
    after2 = _night(after1, n2, [n1, n2])  # the problem goes on: the same incident, one day longer
    (inc2,) = after2.to_dict("records")
    assert (
        inc2["incident_id"] == inc["incident_id"]
        and inc2["end_ds"] == pd.Timestamp(n2)
        and inc2["status"] == "open"
    )
    assert (inc2["first_night"], inc2["last_night"]) == (pd.Timestamp(n1), pd.Timestamp(n2))
    after3 = _night(after2, n3, [n1, n2])  # nothing tonight: it is over
    (inc3,) = after3.to_dict("records")
    assert (
        inc3["incident_id"] == inc["incident_id"]
        and inc3["status"] == "closed"
        and inc3["end_ds"] == pd.Timestamp(n2)
    )
    again = _night(after3, n3, [n1, n2])  # a re-run of the night writes the same rows
    pd.testing.assert_frame_equal(
        again.reset_index(drop=True), after3.reset_index(drop=True), check_dtype=False
    )


def test_a_quiet_night_closes_an_open_incident_tonights_scoring_does_not_carry():
    n1, n2 = date(2026, 11, 21), date(2026, 11, 22)
    after1 = _night(pd.DataFrame(columns=list(COLUMNS)), n1, [n1])
    after2 = _night(after1, n2, [])  # re-scoring no longer flags the day
    assert after2["status"].tolist() == ["closed"]
