"""Sending an alert: e-mail over SMTP, and webhooks (JSON or Slack-compatible, optionally signed).

Every send returns an outcome instead of raising, so one channel that fails never blocks the others
or the evaluation; the outcome is recorded beside the alert. Secrets are resolved only here, at the
moment of sending, and never appear in a message, a log line or a recorded error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

from cdc_platform.alerts.rules import Channel, EmailChannel, TlsMode, WebhookChannel
from cdc_platform.clock import utc_text
from cdc_platform.secrets import resolve_secret


@dataclass(frozen=True)
class Notice:
    """What a notification says: the alert and whether it opened, is a reminder, or resolved."""

    kind: str  # triggered | reminder | resolved
    alert_id: int
    rule: str
    pipeline: str
    subject: str
    severity: str
    message: str
    value: float | None
    triggered_at: float
    resolved_at: float | None = None

    @property
    def title(self) -> str:
        state = {"triggered": "FIRING", "reminder": "STILL FIRING", "resolved": "RESOLVED"}[self.kind]
        return f"[{state}] [{self.severity}] {self.pipeline}: {self.rule} ({self.subject})"

    def as_dict(self) -> dict:
        return {**self.__dict__, "title": self.title}

    def text(self) -> str:
        when = f"{utc_text(self.triggered_at)} UTC"
        lines = [self.title, "", self.message, "", f"alert id {self.alert_id}, triggered {when}"]
        if self.resolved_at:
            lines.append(f"resolved {utc_text(self.resolved_at)} UTC")
        else:
            lines.append(f"acknowledge: cdc-platform alerts ack {self.alert_id} --by <name>")
        return "\n".join(lines)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str | None = None


def send(channel: Channel, notice: Notice, specs_dir: Path) -> Outcome:
    try:
        if isinstance(channel, EmailChannel):
            send_email(channel, notice, specs_dir)
        else:
            send_webhook(channel, notice, specs_dir)
        return Outcome(True)
    except Exception as exc:  # noqa: BLE001 - recorded and logged; the other channels still send
        return Outcome(False, f"{type(exc).__name__}: {exc}"[:500])


def send_email(channel: EmailChannel, notice: Notice, specs_dir: Path) -> None:
    message = EmailMessage()
    message["Subject"] = notice.title
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.recipients)
    message.set_content(notice.text())
    context = ssl.create_default_context()
    if channel.tls is TlsMode.ssl:
        client: smtplib.SMTP = smtplib.SMTP_SSL(channel.smtp_host, channel.smtp_port, timeout=channel.timeout_seconds,
                                                context=context)  # fmt: skip
    else:
        client = smtplib.SMTP(channel.smtp_host, channel.smtp_port, timeout=channel.timeout_seconds)
    with client:
        if channel.tls is TlsMode.starttls:
            client.starttls(context=context)
        if channel.username and channel.password:
            try:
                client.login(channel.username, resolve_secret(channel.password, specs_dir))
            except smtplib.SMTPAuthenticationError as exc:
                # the server's reply may echo what was sent: say only that the login was refused
                raise RuntimeError(
                    f"SMTP login as {channel.username} refused (code {exc.smtp_code})"
                ) from None
        client.send_message(message)


def webhook_body(channel: WebhookChannel, notice: Notice) -> bytes:
    if channel.format == "slack":
        payload = {"text": notice.title, "attachments": [{
            "color": {"critical": "#d00000", "warning": "#e8a200", "info": "#2f80ed"}[notice.severity]
            if notice.kind != "resolved" else "#2eb67d",
            "text": notice.text(),
            "fields": [{"title": k, "value": str(v), "short": True}
                       for k, v in (("pipeline", notice.pipeline), ("subject", notice.subject),
                                    ("rule", notice.rule), ("value", notice.value))],
        }]}  # fmt: skip
    else:
        payload = notice.as_dict()
    return json.dumps(payload, sort_keys=True).encode()


def send_webhook(channel: WebhookChannel, notice: Notice, specs_dir: Path) -> None:
    """POST with retries and exponential backoff; a 4xx other than 408/429 is not retried."""
    # lazy: only a tick that sends imports httpx, not every code-location load (0.1 s of it)
    import httpx

    body = webhook_body(channel, notice)
    headers = {"Content-Type": "application/json", "User-Agent": "cdc-platform-alerts"}
    if channel.secret is not None:
        key = resolve_secret(channel.secret, specs_dir).encode()
        headers["X-CDC-Signature"] = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    last = ""
    for attempt in range(channel.retries + 1):
        if attempt:
            time.sleep(channel.backoff_seconds * 2 ** (attempt - 1))
        try:
            response = httpx.post(channel.url, content=body, headers=headers, timeout=channel.timeout_seconds)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code < 300:
            return
        last = f"HTTP {response.status_code}"
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            break
    raise RuntimeError(f"webhook {_host(channel.url)} failed after {attempt + 1} attempt(s): {last}")


def _host(url: str) -> str:
    """The receiver without its path: a Slack hook's path is its secret."""
    return urlsplit(url).hostname or "?"
