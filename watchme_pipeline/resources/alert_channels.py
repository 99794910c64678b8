"""Where alerts go: mail over SMTP and a chat webhook, each on when configured.

Mail is sent with the standard library's ``smtplib``, as Dagster's own
``make_email_on_run_failure_sensor`` does; we do not use that factory because it sends one mail
per failed run (no grouping), needs a login over TLS (so no plain relay on a private network)
and takes the password as a plain string. The webhook gets ``{"text": ...}`` by HTTP POST:
what Slack's and Mattermost's incoming webhooks and Teams' workflow webhooks accept.
"""

from __future__ import annotations

import email.policy
import json
import smtplib
import ssl
import urllib.request
from email.message import EmailMessage

import dagster as dg
from pydantic import Field

from watchme_pipeline.alerts import Message
from watchme_pipeline.secrets import redact
from watchme_pipeline.settings import Deployment

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
# What turns a channel on (docs/operations.md, "Alerts"): named wherever alerts go nowhere.
CHANNEL_VARIABLES = ("WATCHME_ALERT_WEBHOOK_URL", "WATCHME_ALERT_EMAIL_TO")
NO_CHANNEL = "no channel: alerts are logged, not sent"


def no_channel_warning() -> str:
    return (f"{NO_CHANNEL.capitalize()}. Set {' or '.join(CHANNEL_VARIABLES)} to receive "
            "failed runs, overdue charts, silent devices and the daily digest; `python -m "
            "watchme_pipeline alerts --test` sends a test message through each channel")


class AlertDeliveryError(RuntimeError):
    """A channel refused or could not be reached; the message names the channel, never a
    secret."""


class AlertChannels(dg.ConfigurableResource):
    """The configured channels: ``email`` when ``email_to`` is set, ``webhook`` when
    ``webhook_url`` is. Neither: alerts are evaluated and logged (counts), nothing is sent."""

    email_to: list[str] = Field(default_factory=list)
    email_from: str = "watchme@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 0  # 0: the security's usual port
    smtp_security: str = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = None  # give it as dg.EnvVar("WATCHME_ALERT_EMAIL_PASSWORD")
    webhook_url: str | None = None  # give it as dg.EnvVar: a webhook URL is a credential
    timeout_s: float = 10.0

    def channels(self) -> list[str]:
        return (["email"] if self.email_to else []) + (["webhook"] if self.webhook_url else [])

    def send(self, message: Message, channel: str) -> None:
        """Deliver to one channel or raise AlertDeliveryError (the caller retries later)."""
        try:
            if channel == "email":
                self._send_email(message)
            elif channel == "webhook":
                self._post_webhook(message)
            else:
                raise ValueError(f"unknown alert channel {channel!r}")
        except (OSError, smtplib.SMTPException, ValueError) as exc:
            text = f"{channel}: {type(exc).__name__}: {exc}"
            for secret in (self.smtp_password, self.webhook_url):
                if secret:
                    text = text.replace(secret, "***")
            raise AlertDeliveryError(redact(text)) from None

    def _send_email(self, message: Message) -> None:
        # Subjects name a partition and an error class: keep them on one header line.
        mail = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=200))
        mail["Subject"] = f"[WatchMe] {message.title}"
        mail["From"] = self.email_from
        mail["To"] = ", ".join(self.email_to)
        mail["X-WatchMe-Alert"] = message.kind
        mail.set_content(message.body)
        port = self.smtp_port or DEFAULT_PORTS[self.smtp_security]
        if self.smtp_security == "ssl":
            server: smtplib.SMTP = smtplib.SMTP_SSL(self.smtp_host, port, timeout=self.timeout_s,
                                                    context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(self.smtp_host, port, timeout=self.timeout_s)
        with server:
            if self.smtp_security == "starttls":
                server.starttls(context=ssl.create_default_context())
            if self.smtp_user:
                server.login(self.smtp_user, self.smtp_password or "")
            server.send_message(mail)

    def _post_webhook(self, message: Message) -> None:
        body = json.dumps({"text": f"*[WatchMe] {message.title}*\n{message.body}"}).encode()
        request = urllib.request.Request(str(self.webhook_url), data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            if response.status >= 300:
                raise OSError(f"HTTP {response.status}")


def test_message() -> Message:
    return Message("test", "test alert", "A test message from `python -m watchme_pipeline "
                   "alerts --test`: this channel reaches you.")


def send_test_messages(channels: AlertChannels) -> dict[str, str | None]:
    """One test message through each configured channel: channel -> None when delivered,
    else the reason it was not (secrets removed)."""
    outcome: dict[str, str | None] = {}
    for channel in channels.channels():
        try:
            channels.send(test_message(), channel)
            outcome[channel] = None
        except AlertDeliveryError as exc:
            outcome[channel] = str(exc)
    return outcome


def alert_channels_for(deployment: Deployment) -> AlertChannels:
    """The channels the deployment configures; its secrets handed on as ``dg.EnvVar``."""
    alerts = deployment.alerts
    return AlertChannels(
        email_to=list(alerts.email_to),
        email_from=alerts.email_from,
        smtp_host=alerts.smtp_host,
        smtp_port=alerts.smtp_port,
        smtp_security=alerts.smtp_security,
        smtp_user=alerts.smtp_user,
        smtp_password=(dg.EnvVar("WATCHME_ALERT_EMAIL_PASSWORD")
                       if alerts.smtp_password_set else None),
        webhook_url=dg.EnvVar("WATCHME_ALERT_WEBHOOK_URL") if alerts.webhook_set else None,
    )
