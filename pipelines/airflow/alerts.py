"""Alerts through Airflow's notifiers: one message per failed night, to every configured channel.

Channels (`notifications.alerts` in the config):
- `email`: `SmtpNotifier` of the SMTP provider, through the Airflow SMTP connection `conn_id`, or,
  without one, a connection made from `notifications.smtp` (login from its environment variables);
- `slack`: `SlackWebhookNotifier` of the Slack provider (`SlackNotifier`, below), through a Slack Incoming Webhook connection
  (conn_type `slackwebhook`, the webhook URL in its password), as Slack `mrkdwn` text;
- `teams`: `TeamsWebhookNotifier` (below), through an HTTP connection whose password (or host) is
  the Microsoft Teams webhook URL (a Workflows "When a Teams webhook request is received" flow, or
  a legacy incoming webhook); the message is an Adaptive Card, the one format both accept.
The same notifiers carry the night's new and escalated anomaly incidents to the channels of
`notifications.incident_alerts` (`incident_sender`, used by `pipelines.steps.run_incident_alerts`,
from the DAG's `alert_incidents` task and from `seam run`).  `seam run` also sends the run alert of
a failed night (`send_night_failed`), as the DAG's verdict does.
Secrets stay in Airflow connections (`AIRFLOW_CONN_*`) or the environment, never in the file, and
never in a log line: a failed delivery is logged with the channel, its connection id and the error.
A channel that cannot be reached is logged at ERROR; the others still get the alert.
"""

from __future__ import annotations

import html
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.sdk import BaseNotifier, Connection

from pipelines.anomaly.notices import channel_name
from pipelines.config import AlertChannel, Config, NotifySpec
from pipelines.errors import ConfigError

if TYPE_CHECKING:
    from pipelines.state import NightScope

log = logging.getLogger(__name__)
_DERIVED_SMTP = "seam_smtp"
_SLACK_CLIENT_LOG = logging.getLogger(f"{__name__}.slack_sdk")
# slack_sdk logs the webhook URL (the secret) when it sends (DEBUG) and retries (INFO): its client
# gets a logger of its own that keeps only warnings and errors (they carry no URL)
_SLACK_CLIENT_LOG.setLevel(logging.WARNING)


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


def slack_text(alert: Alert) -> str:
    """The alert as Slack `mrkdwn`: bold subject, one bullet per problem, linked log pages.
    `&`, `<` and `>` are escaped, as Slack requires of text that is not markup."""

    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    body = [f"*{esc(alert.subject)}*", *[f"\u2022 {esc(line)}" for line in alert.lines]]
    if alert.links:
        body += ["Logs: " + ", ".join(f"<{url}|{esc(label)}>" for label, url in alert.links)]
    if alert.footer:
        body += [f"_{esc(alert.footer)}_"]
    return "\n".join(body)


def adaptive_card(alert: Alert) -> dict[str, Any]:
    """The alert as an Adaptive Card (1.4): a bold title, one wrapped line per problem, the log
    pages as links.  Teams Workflows webhooks take only Adaptive Cards; legacy incoming webhooks
    take them too."""

    def block(text: str, **style: Any) -> dict[str, Any]:
        return {"type": "TextBlock", "text": text, "wrap": True, **style}

    body = [block(alert.subject, weight="Bolder", size="Medium")]
    body += [block(f"- {line}", spacing="Small") for line in alert.lines]
    body += [block(f"[{label}]({url})", spacing="Small") for label, url in alert.links]
    if alert.footer:
        body.append(block(alert.footer, isSubtle=True, spacing="Medium"))
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }


class SlackNotifier(SlackWebhookNotifier):
    """The Slack provider's `SlackWebhookNotifier`, whose client logs through a logger that never
    prints the webhook URL (the provider hands the client the hook's own logger, which does)."""

    @cached_property
    def hook(self) -> SlackWebhookHook:
        return SlackWebhookHook(
            slack_webhook_conn_id=self.slack_webhook_conn_id,
            proxy=self.proxy,
            timeout=self.timeout,
            retry_handlers=self.retry_handlers,
            logger=_SLACK_CLIENT_LOG,
        )


class TeamsWebhookNotifier(BaseNotifier):
    """Post an Adaptive Card to a Microsoft Teams webhook (an Airflow connection holds the URL).

    The request body is the message envelope Teams documents for webhooks: `{"type": "message",
    "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}`.
    Any answer but 2xx (Workflows answer 202, legacy webhooks 200) raises, naming the status and
    the start of the answer's body, never the URL (it is the secret)."""

    template_fields = ("card",)

    def __init__(self, *, teams_webhook_conn_id: str, card: dict[str, Any], timeout: float = 30.0) -> None:
        super().__init__()
        self.teams_webhook_conn_id = teams_webhook_conn_id
        self.card = card
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
            f"webhook URL in its password (or host)"
        )

    def payload(self) -> dict[str, Any]:
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": self.card,
                }
            ],
        }

    def notify(self, context: Any) -> None:
        del context
        request = urllib.request.Request(
            self.webhook_url(),
            data=json.dumps(self.payload()).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, answer = response.status, response.read(300)
        except urllib.error.HTTPError as err:
            status, answer = err.code, err.read(300)
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise OSError(f"the Teams webhook could not be reached: {reason}") from None
        if not 200 <= status < 300:
            raise OSError(
                f"the Teams webhook answered HTTP {status}: {answer.decode(errors='replace').strip()[:200]!r}"
            )


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
        return SlackNotifier(slack_webhook_conn_id=str(channel.conn_id), text=slack_text(alert))
    return TeamsWebhookNotifier(teams_webhook_conn_id=str(channel.conn_id), card=adaptive_card(alert))


def send_alert(cfg: Config, alert: Alert, channels: Sequence[AlertChannel] | None = None) -> int:
    """Deliver one alert to every channel; returns how many channels took it (failures are logged)."""
    delivered = 0
    for channel in cfg.notifications.alerts if channels is None else channels:
        try:
            notifier_for(channel, alert, cfg.notifications).notify({})
            delivered += 1
        except Exception as err:  # one broken channel must not keep the alert from the others
            log.error(
                "could not send the alert %r to %s: %s: %s",
                alert.subject,
                channel_name(channel),
                type(err).__name__,
                str(err)[:500],
            )
    return delivered


def incident_sender(cfg: Config) -> Callable[[AlertChannel, str, tuple[str, ...]], bool]:
    """`send(channel, subject, lines)` for `pipelines.steps.run_incident_alerts`: one message, one
    channel, through the notifier of that channel; True when the channel took it, else the
    notifier's error is raised (`pipelines.anomaly.notices.deliver_notices` reports it)."""

    def send(channel: AlertChannel, subject: str, lines: tuple[str, ...]) -> bool:
        alert = Alert(
            subject=subject,
            lines=lines,
            footer=(
                "Not a problem? Say so, and it is neither alerted again nor learnt as normal: "
                "seam anomaly label --incident ID --label false_positive (or expected) --author NAME"
            ),
        )
        notifier_for(channel, alert, cfg.notifications).notify({})  # its error says why it failed
        return True

    return send


def problem_lines(cfg: Config, night: date, scope: NightScope | None = None) -> list[str] | None:
    """One line per step of `night` that did not succeed, from the run ledger (`step: status
    (error)`; empty: every step succeeded); None when the ledger holds nothing of that night."""
    from pipelines.state import NightScope, night_problems, read_ledger, summarize

    ledger, locked = read_ledger(cfg, nights=[night])
    if ledger.empty:
        return None
    problems = night_problems(summarize(cfg, ledger, locked - {night}, scope or NightScope()))
    return [
        f"{p.step}: {p.status}" + (f" ({str(p.error)[:300]})" if isinstance(p.error, str) and p.error else "")
        for p in problems.itertuples(index=False)
    ]


def send_night_failed(cfg: Config, night: date, error: BaseException) -> int:
    """The run alert of a night `seam run` could not finish: ONE message to every channel of
    `notifications.alerts`, one line per step that did not succeed (from the ledger, as the DAG's
    verdict says it), or the error itself when the ledger has nothing.  Returns how many channels
    took it; the ones that did not are logged."""
    lines: list[str] | None
    try:
        lines = problem_lines(cfg, night)
    except Exception as err:  # the ledger's database may be what failed: alert with the error itself
        log.error("night %s: could not read the run ledger for the alert: %s", night, err)
        lines = None
    lines = lines or [f"{type(error).__name__}: {error}"]
    alert = Alert(
        subject=f"[seam] night {night} failed (seam run)",
        lines=tuple(lines),
        footer=f"Fix the cause, then run the night again: seam run --date {night}",
    )
    sent = send_alert(cfg, alert)
    log.error("night %s failed; alert sent to %d channel(s):\n%s", night, sent, alert.text())
    return sent
