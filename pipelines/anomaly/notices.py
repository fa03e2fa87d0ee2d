"""What an incident alert says: one message per channel listing the night's new and escalated
incidents of the severities routed to it (`notifications.incident_alerts`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from pipelines.config import AlertChannel, IncidentAlertRule

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Delivery:
    """What became of the night's notices: the channels each incident reached, and the notices
    whose channel did not take them, with the error."""

    reached: dict[str, list[str]]
    failed: list[tuple[IncidentNotice, str]]

    def undelivered(self, incident_ids: Iterable[str]) -> list[str]:
        """The incidents no channel took (a retry may still send them)."""
        return [i for i in incident_ids if i not in self.reached]

    def problem(self, night: date) -> str:
        """One sentence naming each channel that failed, its error and how many incidents it missed."""
        return f"night {night}: incident alerts did not reach every channel: " + "; ".join(
            f"{channel_name(n.channel)} missed {len(n.incident_ids)} incident(s) ({error})"
            for n, error in self.failed
        )


def channel_name(channel: AlertChannel) -> str:
    """`email to a@x`, `slack (connection slack_alerts)`: a channel in a message, never a secret."""
    if channel.channel == "email":
        return "email to " + ", ".join(channel.to)
    return f"{channel.channel} (connection {channel.conn_id})"


def deliver_notices(
    notices: list[IncidentNotice], send: Callable[[AlertChannel, str, tuple[str, ...]], bool]
) -> Delivery:
    """Hand each notice to `send(channel, subject, lines)` (True: the channel took it; an exception
    or False: it did not).  A failed channel is logged at ERROR and does not stop the others."""
    reached: dict[str, list[str]] = {}
    failed: list[tuple[IncidentNotice, str]] = []
    for notice in notices:
        try:
            ok = bool(send(notice.channel, notice.subject, notice.lines))
            error = "" if ok else "the channel did not take the message"
        except Exception as err:  # any channel's failure is reported below, never dropped
            ok, error = False, f"{type(err).__name__}: {str(err)[:300]}"
        if ok:
            for i in notice.incident_ids:
                reached.setdefault(i, []).append(notice.channel.channel)
        else:
            log.error(
                "incident alert %r to %s failed: %s", notice.subject, channel_name(notice.channel), error
            )
            failed.append((notice, error))
    return Delivery(reached, failed)
