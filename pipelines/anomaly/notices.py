"""What an incident alert says: one message per channel listing the night's new and escalated
incidents of the severities routed to it (`notifications.incident_alerts`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from pipelines.config import AlertChannel, IncidentAlertRule


@dataclass(frozen=True)
class IncidentNotice:
    """One channel's message: its subject, one line per incident, and the incidents it names."""

    channel: AlertChannel
    subject: str
    lines: tuple[str, ...]
    incident_ids: tuple[str, ...]


def incident_notices(
    incidents: pd.DataFrame, rules: tuple[IncidentAlertRule, ...], night: date
) -> list[IncidentNotice]:
    """The messages for `incidents` (columns of `select_alerts`): one per channel that has any."""
    severities: dict[AlertChannel, set[str]] = {}
    for rule in rules:
        severities.setdefault(rule.target, set()).add(rule.severity)
    notices = []
    for channel, wanted in severities.items():
        mine = incidents[incidents["severity"].isin(wanted)]
        if mine.empty:
            continue
        notices.append(
            IncidentNotice(
                channel,
                f"[seam] night {night}: {len(mine)} new or escalated incident(s)",
                tuple(incident_line(r, night) for r in mine.to_dict("records")),
                tuple(str(i) for i in mine["incident_id"]),
            )
        )
    return notices


def incident_line(r: dict[str, Any], night: date) -> str:
    """`CRITICAL demand SKU|WH: reason (days a to b, new tonight, incident id)`."""
    if isinstance(r["alerted_severity"], str):
        news = f"escalated from {r['alerted_severity']}"
    elif pd.Timestamp(r["first_night"]).date() == night:
        news = "new tonight"
    else:
        news = "open since night " + str(pd.Timestamp(r["first_night"]).date())
    return (
        f"{str(r['severity']).upper()} {r['metric']} {r['entity']}: {r['reason'] or r['kind']} "
        f"(days {pd.Timestamp(r['start_ds']).date()} to {pd.Timestamp(r['end_ds']).date()}, {news}, "
        f"incident {r['incident_id']})"
    )
