"""E-mail: the nightly report (HTML with inline charts + plain text) and failure alerts, over SMTP.

A send is retried a bounded number of times with exponential backoff; when it still fails the
caller gets `SourceUnavailableError` (retryable by Airflow).  Nothing here touches the data
steps, so a failed send never undoes results that were already loaded.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import smtplib
import time
from email.message import EmailMessage
from email.utils import make_msgid

from pipelines.config import Config, NotifySpec
from pipelines.errors import ConfigError, SourceUnavailableError

log = logging.getLogger(__name__)
_DATA_URI = re.compile(r'src="data:image/(png|svg\+xml);base64,([A-Za-z0-9+/=]+)"')


def build_report_message(
    html: str, text: str, *, subject: str, sender: str, to: tuple[str, ...]
) -> EmailMessage:
    """multipart/alternative: a plain-text part, and HTML whose charts are inline (cid:) images.

    The self-contained page embeds charts as data URIs, which many mail clients block; the
    e-mail carries them as related MIME parts instead.
    """
    if not to:
        raise ConfigError("no recipients: set notifications.report_to in the config")
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, sender, ", ".join(to)
    msg.set_content(text)
    images: list[tuple[str, str, bytes]] = []

    def to_cid(m: re.Match[str]) -> str:
        cid = make_msgid(domain="seam.report")
        images.append((cid, m.group(1), base64.b64decode(m.group(2))))
        return f'src="cid:{cid[1:-1]}"'

    msg.add_alternative(_DATA_URI.sub(to_cid, html), subtype="html")
    html_part = msg.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    for cid, kind, data in images:
        html_part.add_related(data, maintype="image", subtype=kind.split("+")[0], cid=cid)
    return msg


def _login(spec: NotifySpec) -> tuple[str, str] | None:
    if not spec.smtp.user_env:
        return None
    user = os.environ.get(spec.smtp.user_env)
    password = os.environ.get(spec.smtp.password_env or "", "")
    if not user:
        raise ConfigError(
            f"notifications.smtp.user_env: environment variable {spec.smtp.user_env} is not set"
        )
    return user, password


def send_message(spec: NotifySpec, msg: EmailMessage) -> None:
    """Send with bounded retries and exponential backoff; raises SourceUnavailableError at the end."""
    login = _login(spec)
    last: Exception | None = None
    for attempt in range(1, spec.retries + 1):
        try:
            cls = smtplib.SMTP_SSL if spec.smtp.ssl else smtplib.SMTP
            with cls(spec.smtp.host, spec.smtp.port, timeout=spec.smtp.timeout) as smtp:
                if spec.smtp.starttls:
                    smtp.starttls()
                if login:
                    smtp.login(*login)
                smtp.send_message(msg)
            log.info("sent %r to %s (attempt %d)", msg["Subject"], msg["To"], attempt)
            return
        except (TimeoutError, OSError, smtplib.SMTPException) as err:
            last = err
            log.warning(
                "sending %r failed (attempt %d of %d): %s", msg["Subject"], attempt, spec.retries, err
            )
            if attempt < spec.retries:
                time.sleep(spec.retry_wait_seconds * 2 ** (attempt - 1))
    raise SourceUnavailableError(
        f"could not send {msg['Subject']!r} through {spec.smtp.host}:{spec.smtp.port} after {spec.retries} "
        f"attempts: {last}"
    )


def send_failure_alert(
    cfg: Config, *, dag_id: str, task_id: str, logical_date: str, error: str, log_url: str | None
) -> bool:
    """E-mail the on-call engineers about a failed task; returns False (and logs) if it cannot."""
    spec = cfg.notifications
    if not spec.alerts_to:
        return False
    msg = EmailMessage()
    msg["Subject"] = f"[seam] {dag_id}.{task_id} failed for {logical_date}"
    msg["From"], msg["To"] = spec.sender, ", ".join(spec.alerts_to)
    msg.set_content(
        f"DAG:          {dag_id}\nTask:         {task_id}\nLogical date: {logical_date}\n"
        f"Error:        {error}\nLog:          {log_url or '(no log URL)'}\n\n"
        f"Re-run it with: airflow tasks clear {dag_id} -t {task_id} -s {logical_date} -e {logical_date}\n"
    )
    try:
        send_message(spec, msg)
        return True
    except Exception as err:  # an alert must never raise inside a failure callback
        log.error("could not send the failure alert: %s", err)
        return False
