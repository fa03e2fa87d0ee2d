"""E-mail of the nightly report (HTML with inline charts + plain text) over SMTP.

One attempt per call: a failed send raises `SourceUnavailableError`, which the send_report task's
Airflow retries (or the next `seam send-report`) repeat.  Nothing here touches the data steps, so
a failed send never undoes results that were already loaded.  Alerts go through Airflow's
notifiers (`pipelines.airflow.alerts`).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

from pipelines.config import NotifySpec
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
    """Send one message; raises SourceUnavailableError when the server cannot be reached or refuses."""
    login = _login(spec)
    try:
        cls = smtplib.SMTP_SSL if spec.smtp.ssl else smtplib.SMTP
        with cls(spec.smtp.host, spec.smtp.port, timeout=spec.smtp.timeout) as smtp:
            if spec.smtp.starttls:
                smtp.starttls()
            if login:
                smtp.login(*login)
            smtp.send_message(msg)
    except (TimeoutError, OSError, smtplib.SMTPException) as err:
        raise SourceUnavailableError(
            f"could not send {msg['Subject']!r} through {spec.smtp.host}:{spec.smtp.port}: {err}"
        ) from None
    log.info("sent %r to %s", msg["Subject"], msg["To"])
