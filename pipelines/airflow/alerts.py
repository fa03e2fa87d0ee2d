"""Alerts through Airflow's notifiers: one message per failed night, to every configured channel.

Channels (`notifications.alerts` in the config):
- `email`: `SmtpNotifier` of the SMTP provider, through the Airflow SMTP connection `conn_id`, or,
  without one, a connection made from `notifications.smtp` (login from its environment variables);
- `slack`: `SlackWebhookNotifier` of the Slack provider, through a Slack Incoming Webhook connection;
- `teams`: `TeamsWebhookNotifier` (below), through an HTTP connection whose password (or host) is
  the Microsoft Teams incoming webhook URL.
The same notifiers carry the night's new and escalated anomaly incidents to the channels of
`notifications.incident_alerts` (`incident_sender`, used by `pipelines.steps.run_incident_alerts`).
Secrets stay in Airflow connections (`AIRFLOW_CONN_*`) or the environment, never in the file.
A channel that cannot be reached is logged; the others still get the alert.
"""

from __future__ import annotations

import html
import json
import logging
import os
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseNotifier, Connection

from pipelines.config import AlertChannel, Config, NotifySpec
from pipelines.errors import ConfigError

log = logging.getLogger(__name__)
_DERIVED_SMTP = "seam_smtp"


@dataclass(frozen=True)
class Alert:
    """What went wrong with a night, ready for any channel."""

    subject: str
    lines: tuple[str, ...]  # one plain sentence per problem
    links: tuple[tuple[str, str], ...] = ()  # (label, URL) of logs
    footer: str = ""

    def text(self) -> str:
        body = [self.subject, "", *[f"- {line}" for line in self.lines]]
        if self.links:
            body += ["", "Logs:", *[f"- {label}: {url}" for label, url in self.links]]
        if self.footer:
            body += ["", self.footer]
        return "\n".join(body)

    def html(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.lines)
        links = "".join(
            f'<li><a href="{html.escape(url, quote=True)}">{html.escape(label)}</a></li>'
            for label, url in self.links
        )
        return (
            f"<h3>{html.escape(self.subject)}</h3><ul>{items}</ul>"
            + (f"<p>Logs:</p><ul>{links}</ul>" if links else "")
            + (f"<p>{html.escape(self.footer)}</p>" if self.footer else "")
        )


class TeamsWebhookNotifier(BaseNotifier):
    """Post a message to a Microsoft Teams incoming webhook (an Airflow connection holds the URL)."""

    template_fields = ("text",)

    def __init__(self, *, teams_webhook_conn_id: str, text: str, timeout: float = 30.0) -> None:
        super().__init__()
        self.teams_webhook_conn_id = teams_webhook_conn_id
        self.text = text
        self.timeout = timeout

    def webhook_url(self) -> str:
        conn = Connection.get(self.teams_webhook_conn_id)
        for candidate in (conn.password, conn.host):
            if candidate and "://" in candidate:
                return str(candidate)
        if conn.host:
            return f"{conn.schema or 'https'}://{conn.host}{':' + str(conn.port) if conn.port else ''}"
        raise ConfigError(
            f"Airflow connection {self.teams_webhook_conn_id!r} holds no webhook URL; put the Teams "
            f"incoming webhook URL in its password (or host)"
        )

    def notify(self, context: Any) -> None:
        del context
        payload = json.dumps({"text": self.text}).encode()
        request = urllib.request.Request(
            self.webhook_url(), data=payload, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            if response.status >= 300:
                raise OSError(f"the Teams webhook answered HTTP {response.status}")


def _derived_smtp_connection(spec: NotifySpec) -> str:
    """An Airflow SMTP connection made from `notifications.smtp` (for configs without `conn_id`)."""
    user = os.environ.get(spec.smtp.user_env or "", "") if spec.smtp.user_env else ""
    password = os.environ.get(spec.smtp.password_env or "", "") if spec.smtp.password_env else ""
    if spec.smtp.user_env and not user:
        raise ConfigError(
            f"notifications.smtp.user_env: environment variable {spec.smtp.user_env} is not set"
        )
    os.environ[f"AIRFLOW_CONN_{_DERIVED_SMTP.upper()}"] = json.dumps(
        {
            "conn_type": "smtp",
            "host": spec.smtp.host,
            "port": spec.smtp.port,
            "login": user or None,
            "password": password or None,
            "extra": {
                "disable_ssl": not spec.smtp.ssl,
                "disable_tls": not spec.smtp.starttls,
                "timeout": int(spec.smtp.timeout),
                "retry_limit": 3,
                "from_email": spec.sender,
            },
        }
    )
    return _DERIVED_SMTP


def notifier_for(channel: AlertChannel, alert: Alert, spec: NotifySpec) -> BaseNotifier:
    """The Airflow notifier that delivers `alert` to `channel`."""
    if channel.channel == "email":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(
            to=list(channel.to),
            from_email=spec.sender,
            smtp_conn_id=channel.conn_id or _derived_smtp_connection(spec),
            subject=alert.subject,
            html_content=alert.html(),
        )
    if channel.channel == "slack":
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        return SlackWebhookNotifier(slack_webhook_conn_id=str(channel.conn_id), text=alert.text())
    return TeamsWebhookNotifier(teams_webhook_conn_id=str(channel.conn_id), text=alert.text())


def send_alert(cfg: Config, alert: Alert, channels: Sequence[AlertChannel] | None = None) -> int:
    """Deliver one alert to every channel; returns how many channels took it (failures are logged)."""
    delivered = 0
    for channel in cfg.notifications.alerts if channels is None else channels:
        try:
            notifier_for(channel, alert, cfg.notifications).notify({})
            delivered += 1
        except Exception as err:  # one broken channel must not keep the alert from the others
            log.error("could not send the alert %r to %s: %s", alert.subject, channel.channel, err)
    return delivered


def incident_sender(cfg: Config) -> Callable[[AlertChannel, str, tuple[str, ...]], bool]:
    """`send(channel, subject, lines)` for `pipelines.steps.run_incident_alerts`: one message, one
    channel, through the notifier of that channel; True when the channel took it."""

    def send(channel: AlertChannel, subject: str, lines: tuple[str, ...]) -> bool:
        alert = Alert(
            subject=subject,
            lines=lines,
            footer=(
                "Not a problem? Say so, and it is neither alerted again nor learnt as normal: "
                "seam anomaly label --incident ID --label false_positive (or expected) --author NAME"
            ),
        )
        return send_alert(cfg, alert, [channel]) == 1

    return send
