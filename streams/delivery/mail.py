"""Alert emails: the message (plain text and HTML) and one SMTP send with STARTTLS.

A message says what Slack says (the breach in words from ``wording``, project, model, window) with
links to the dashboard, as plain text and as HTML in which every value is escaped. Its ``Message-ID``
is derived from what it announces, so mail systems can drop the duplicates a retry may create.

``send`` runs in the delivery thread (``asyncio.to_thread``): it connects to the address ``url_guard``
vetted (the SMTP host is the operator's setting, but the same private-network rule applies: a loopback
or private server needs ``LOOPWATCH_ALLOW_PRIVATE_WEBHOOKS=true``), upgrades with STARTTLS, verifying
the certificate against the host *name*, logs in when a username is set and sends. SMTP replies map
onto retries as HTTP statuses do: 4xx and lost connections are worth another try, 5xx is final.
"""

from __future__ import annotations

import email.policy
import hashlib
import html
import os
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from schemas.events import AlertEvent, AlertGroup, AlertResolved, RetrainEvent
from schemas.settings import Settings
from streams.delivery.url_guard import IPAddress

SUBJECT_MAX = 200
# Headers up to RFC 5322's hard limit on one line: folding a subject at 78 characters makes some readers
# (Python's own among them) show it with a stray leading space.
_POLICY = email.policy.default.clone(max_line_length=998)
_MAX_LISTED = 50  # alerts listed in one grouped message; the rest are counted


class SmtpConfigError(Exception):
    """The SMTP settings cannot send (no host, a password variable that is not set); final, said plainly."""


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how alert emails are sent (``LOOPWATCH_SMTP_*``)."""

    host: str
    port: int
    sender: str
    starttls: bool = True
    username: str | None = None
    password_env: str | None = None
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpServer | None:
        if not settings.smtp_host:
            return None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password_env=settings.smtp_password_env,
            ca_file=settings.smtp_ca_file,
        )

    @property
    def url(self) -> str:
        """The server as a URL ``url_guard`` can vet (the scheme only picks a default port)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def password(self) -> str | None:
        if not self.username:
            return None
        if not self.password_env:
            raise SmtpConfigError("LOOPWATCH_SMTP_USERNAME is set but LOOPWATCH_SMTP_PASSWORD_ENV is not")
        value = os.environ.get(self.password_env)
        if not value:
            raise SmtpConfigError(f"environment variable {self.password_env} (the SMTP password) is not set")
        return value


@dataclass(frozen=True, slots=True)
class Entry:
    """One alert (or resolution, or request) as a message lists it."""

    title: str
    said: str
    facts: tuple[tuple[str, str], ...]
    links: tuple[tuple[str, str], ...]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _links(*pairs: tuple[str, str | None]) -> tuple[tuple[str, str], ...]:
    """Dashboard links only (people sign in there); anything not http(s) is left out."""
    return tuple((text, url) for text, url in pairs if url and url.startswith(("https://", "http://")))


def alert_entry(alert: AlertEvent) -> Entry:
    said = alert.summary or f"{alert.metric} {alert.value:.4g} (threshold {alert.threshold:.4g})"
    model = f"{alert.model} ({alert.model_version})" if alert.model_version else alert.model
    return Entry(
        title=f"{alert.monitor_name or alert.monitor_id} on {alert.model}",
        said=said,
        facts=(
            ("Severity", alert.severity),
            ("Project", alert.project),
            ("Model", model),
            ("Metric", alert.metric + (f" [{alert.dimension}]" if alert.dimension else "")),
            ("Window", f"{_when(alert.window_start)} – {_when(alert.window_end)}"),
            ("Alert", alert.alert_id),
        ),
        links=_links(("Open alert", alert.alert_url), ("Open window", alert.window_url)),
    )


def resolved_entry(event: AlertResolved) -> Entry:
    windows = f"{event.calm_windows} evaluated window{'s' if event.calm_windows != 1 else ''}"
    return Entry(
        title=f"Resolved: {event.monitor_name or event.monitor_id} on {event.model}",
        said=f"No breach in {windows} since {_when(event.calm_since)}"
        + (f"; was: {event.summary}" if event.summary else ""),
        facts=(("Project", event.project), ("Model", event.model), ("Alert", event.alert_id)),
        links=_links(("Open alert", event.alert_url)),
    )


def retrain_entry(event: RetrainEvent) -> Entry:
    return Entry(
        title=f"Retraining requested: {event.model}",
        said=f"{len(event.reason)} alert(s) asked for it: {', '.join(event.reason[:10])}",
        facts=(
            ("Project", event.project),
            ("Model", event.model),
            ("Window", f"{_when(event.window_start)} – {_when(event.window_end)}"),
            ("Request", event.request_id),
        ),
        links=(),
    )


def entry(event: AlertEvent | AlertResolved | RetrainEvent) -> Entry:
    if isinstance(event, AlertEvent):
        return alert_entry(event)
    if isinstance(event, AlertResolved):
        return resolved_entry(event)
    return retrain_entry(event)


def _text(heading: str, entries: Sequence[Entry]) -> str:
    lines = [heading, ""]
    for item in entries[:_MAX_LISTED]:
        if len(entries) > 1:
            lines.append(f"• {item.title}")
        lines.append(item.said)
        lines += [f"  {label}: {value}" for label, value in item.facts]
        lines += [f"  {text}: {url}" for text, url in item.links]
        lines.append("")
    if len(entries) > _MAX_LISTED:
        lines.append(f"…and {len(entries) - _MAX_LISTED} more (see the dashboard's alert list)")
    return "\n".join(lines).rstrip() + "\n"


def _html(heading: str, entries: Sequence[Entry]) -> str:
    esc = html.escape
    parts = [f"<h2>{esc(heading)}</h2>"]
    for item in entries[:_MAX_LISTED]:
        if len(entries) > 1:
            parts.append(f"<h3>{esc(item.title)}</h3>")
        parts.append(f"<p><strong>{esc(item.said)}</strong></p>")
        rows = "".join(
            f"<tr><th align='left'>{esc(label)}</th><td>{esc(value)}</td></tr>" for label, value in item.facts
        )
        parts.append(f"<table>{rows}</table>")
        if item.links:
            links = " · ".join(f'<a href="{esc(url, quote=True)}">{esc(text)}</a>' for text, url in item.links)
            parts.append(f"<p>{links}</p>")
    if len(entries) > _MAX_LISTED:
        parts.append(f"<p>…and {len(entries) - _MAX_LISTED} more (see the dashboard's alert list)</p>")
    return "<!doctype html><html><body>" + "".join(parts) + "</body></html>"


def message(
    *, subject: str, heading: str, entries: Sequence[Entry], sender: str, to: Sequence[str], key: str
) -> EmailMessage:
    """A multipart/alternative message; ``key`` (what it announces, and to whom) makes its Message-ID."""
    mail = EmailMessage(policy=_POLICY)
    # Header values are folded and encoded by the email package; line breaks in names cannot add headers.
    mail["Subject"] = _clip(" ".join(subject.split()), SUBJECT_MAX)
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = formatdate(usegmt=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    mail["Message-ID"] = f"<{digest}@loopwatch.invalid>"
    mail.set_content(_text(heading, entries))
    mail.add_alternative(_html(heading, entries), subtype="html")
    return mail


def event_message(
    event: AlertEvent | AlertResolved | RetrainEvent | AlertGroup, *, sender: str, to: Sequence[str]
) -> EmailMessage:
    """One event's email; a group lists its alerts, one section each."""
    recipients = ",".join(to)
    if isinstance(event, AlertGroup):
        shared = {"Project", "Window"} if event.window_start is not None else {"Project"}
        entries = [
            replace(
                item,
                title=alert.model + (f" [{alert.dimension}]" if alert.dimension else ""),
                facts=tuple(fact for fact in item.facts if fact[0] not in shared),
            )
            for alert, item in ((alert, alert_entry(alert)) for alert in event.alerts)
        ]
        name = event.monitor_name or event.monitor_id
        models = len({alert.model for alert in event.alerts})
        if event.window_start is not None:
            heading = (
                f"{name}: {len(entries)} alerts, {models} models, window {_when(event.window_start)} ({event.project})"
            )
        else:
            heading = f"{name}: {len(entries)} alerts in the last {event.digest_minutes} minutes ({event.project})"
        severity = "critical" if any(alert.severity == "critical" for alert in event.alerts) else "warning"
        subject = f"[loopwatch] {severity}: {heading}"
        return message(
            subject=subject,
            heading=heading,
            entries=entries,
            sender=sender,
            to=to,
            key=f"{event.group_id}/{recipients}",
        )
    item = entry(event)
    if isinstance(event, AlertEvent):
        subject = f"[loopwatch] {event.severity}: {item.title}: {item.said}"
        key = event.alert_id
    elif isinstance(event, AlertResolved):
        subject = f"[loopwatch] {item.title}"
        key = event.resolution_id
    else:
        subject = f"[loopwatch] {item.title}"
        key = event.request_id
    return message(subject=subject, heading=item.title, entries=[item], sender=sender, to=to, key=f"{key}/{recipients}")


def _context(server: SmtpServer) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server.ca_file) if server.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def send(server: SmtpServer, address: IPAddress, mail: EmailMessage, *, timeout: float) -> list[str]:
    """Send ``mail`` through ``server`` at the vetted ``address``; the recipients the server refused
    (when it took the others). Blocking.

    Raises ``smtplib.SMTPException`` / ``OSError`` / ``ssl.SSLError`` for the caller to classify.
    """
    password = server.password()
    with smtplib.SMTP(timeout=timeout) as smtp:
        smtp.connect(str(address), server.port)
        # STARTTLS checks the certificate against the name the operator configured, not the address.
        vars(smtp)["_host"] = server.host  # smtplib takes the TLS server name from here
        smtp.ehlo()
        if server.starttls:
            smtp.starttls(context=_context(server))
            smtp.ehlo()
        if server.username and password is not None:
            smtp.login(server.username, password)
        refused = smtp.send_message(mail)
    return sorted(refused)


def classify(exc: BaseException) -> tuple[int | None, bool]:
    """``(SMTP code or None, worth retrying)`` for an error ``send`` raised."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return (codes[0] if codes else None), bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code, 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPNotSupportedError | smtplib.SMTPAuthenticationError | SmtpConfigError):
        return None, False
    if isinstance(exc, ssl.SSLCertVerificationError):
        return None, False
    return None, isinstance(exc, smtplib.SMTPServerDisconnected | OSError)
