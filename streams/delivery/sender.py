"""Send one alert or retraining request to one channel, retrying until delivered or clearly failed.

One implementation for every channel type: ``_prepare`` builds what a channel sends (Slack blocks, the
signed event JSON, a PagerDuty Events API body, an email) once, and each attempt hands it to the
channel's transport: an HTTP POST (Slack, webhooks, PagerDuty) or an SMTP session (email). Retries,
backoff, the SSRF guard, error scrubbing and the report of every attempt are the same for all.

The sender owns no storage: every attempt is handed to ``on_attempt`` (``streams.monitors.dispatcher``
writes it to ``alert_deliveries``) and ``deliver`` returns an outcome instead of raising, so one bad
channel can never stop the dispatcher. Retries follow the usual contract of webhook receivers: connection
errors, timeouts, 408, 429 and 5xx are worth another try (after exponential backoff with full jitter,
or the receiver's ``Retry-After``); any other status, or a certificate that fails verification, is
final. Every attempt carries the same ``Idempotency-Key`` so a receiver can drop the duplicates that
retries create.

Before every attempt the target is resolved and vetted by ``url_guard`` and the request is sent to
that vetted address (Host header and TLS SNI keep the original name), so a DNS answer that changes
between check and connect (rebinding) cannot redirect the request into a private network. Redirects
are never followed for the same reason.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from types import TracebackType
from typing import Literal

import httpx
import structlog
from loopwatch_sdk.retry_after import retry_after_seconds
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)

from schemas.channels import (
    AnyChannel,
    ChannelType,
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
    channel_target,
    mailto,
    safe_url,
)
from schemas.events import AlertEvent, AlertGroup, AlertResolved, RetrainEvent
from schemas.settings import Settings
from streams import metrics
from streams.delivery import mail
from streams.delivery.pagerduty import pagerduty_event
from streams.delivery.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign
from streams.delivery.slack import slack_group_message, slack_message, slack_resolved_message, slack_retrain_message
from streams.delivery.url_guard import IPAddress, UnresolvableTargetError, UnsafeTargetError, resolve_target
from streams.storage.deliveries import DeliveryAttempt, EventType

log = structlog.get_logger(__name__)

USER_AGENT = "loopwatch-delivery/1"
EVENT_HEADER = "X-Loopwatch-Event"
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_ERROR_BODY_BYTES = 300
_MIN_SCRUB_LENGTH = 8  # shorter header values are too likely to be ordinary words to scrub safely

OnAttempt = Callable[["DeliveryAttempt"], Awaitable[object] | object]
Event = AlertEvent | RetrainEvent | AlertResolved | AlertGroup


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How a delivery ended; ``status_code`` and ``error`` are the last attempt's."""

    target_id: str
    channel: ChannelType
    status: Literal["delivered", "failed"]
    attempts: int
    status_code: int | None
    error: str | None


class ChannelConfigError(Exception):
    """The channel cannot be sent from this process as configured (a routing key or SMTP setting is
    missing); the message says which, and is safe to store and show."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    """Everything an attempt needs, built once so every retry sends the same bytes and key.

    ``url`` is what ``url_guard`` vets before each attempt: the HTTP target, or the SMTP server."""

    target_id: str
    event_type: EventType
    channel: ChannelType
    url: str
    safe_url: str
    body: bytes
    headers: dict[str, str]
    secret: str | None
    scrub: tuple[tuple[str, str], ...]  # (secret text, replacement) for error messages
    mail: EmailMessage | None = None  # set for email: sent over SMTP instead of POSTed


@dataclass(frozen=True, slots=True)
class _Sent:
    """What one transport call ended with (status: HTTP status or SMTP reply code)."""

    status: int | None
    error: str | None
    retryable: bool
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class _Try:
    attempt: DeliveryAttempt
    retry_after: float | None


def _target(event: Event) -> tuple[str, EventType]:
    if isinstance(event, AlertEvent):
        return event.alert_id, "alert"
    if isinstance(event, AlertResolved):
        return event.resolution_id, "alert.resolved"
    if isinstance(event, AlertGroup):
        return event.group_id, "alert.group"
    return event.request_id, "retrain"


def _slack_payload(event: Event) -> dict[str, object]:
    if isinstance(event, AlertEvent):
        return slack_message(event)
    if isinstance(event, AlertResolved):
        return slack_resolved_message(event)
    if isinstance(event, AlertGroup):
        return slack_group_message(event)
    return slack_retrain_message(event)


def _prepare(event: Event, channel: AnyChannel, smtp: mail.SmtpServer | None = None) -> _Prepared:
    target_id, event_type = _target(event)
    if isinstance(channel, EmailChannel):
        if smtp is None:
            raise ChannelConfigError("email channels need an SMTP server: set LOOPWATCH_SMTP_HOST")
        message = mail.event_message(event, sender=smtp.sender, to=channel.to)
        return _Prepared(
            target_id=target_id,
            event_type=event_type,
            channel="email",
            url=smtp.url,
            safe_url=mailto(channel.to),
            body=b"",
            headers={},
            secret=None,
            scrub=(),
            mail=message,
        )
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        IDEMPOTENCY_HEADER: target_id,
        EVENT_HEADER: event_type,
    }
    if isinstance(channel, SlackChannel):
        payload = _slack_payload(event)
        url, secret = channel.webhook_url, None
        body = json.dumps(payload, ensure_ascii=False).encode()
        scrub: list[tuple[str, str]] = [(url, safe_url(url, "slack"))]
        path = httpx.URL(url).path
        if len(path) > 1:
            scrub.append((path, "/…"))
    elif isinstance(channel, PagerDutyChannel):
        if isinstance(event, AlertGroup):
            raise ChannelConfigError("PagerDuty channels take alerts one by one (an incident each), not groups")
        routing_key = os.environ.get(channel.routing_key_env, "")
        if not routing_key:
            raise ChannelConfigError(
                f"environment variable {channel.routing_key_env} (the PagerDuty routing key) is not set "
                "in the process that delivers"
            )
        url, secret = channel.url, None
        body = json.dumps(pagerduty_event(event, routing_key), ensure_ascii=False).encode()
        scrub = [(routing_key, "***")]
    else:
        url, secret = channel.url, channel.secret.get_secret_value()
        body = event.model_dump_json().encode()
        headers = {**channel.headers, **headers}  # channel headers cannot override ours (validated)
        scrub = [(url, safe_url(url, "webhook")), (secret, "***")]
        scrub += [(value, "***") for value in channel.headers.values() if len(value) >= _MIN_SCRUB_LENGTH]
    return _Prepared(
        target_id=target_id,
        event_type=event_type,
        channel=channel.type,
        url=url,
        safe_url=safe_url(url, "slack" if channel.type == "slack" else "webhook"),
        body=body,
        headers=headers,
        secret=secret,
        scrub=tuple(scrub),
    )


def _scrubbed(text: str, prepared: _Prepared) -> str:
    for secret, replacement in prepared.scrub:
        text = text.replace(secret, replacement)
    return text


def _describe(exc: BaseException, prepared: _Prepared) -> str:
    message = str(exc)
    return _scrubbed(f"{type(exc).__name__}: {message}" if message else type(exc).__name__, prepared)


def _retryable_status(status: int) -> bool:
    return status in (408, 429) or 500 <= status <= 599


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retryable_error(exc: httpx.HTTPError) -> bool:
    """Network trouble and timeouts may pass; a request we cannot build or a bad certificate will not."""
    if not isinstance(exc, httpx.TransportError):
        return False
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return False
    return not _caused_by(exc, ssl.SSLCertVerificationError)


async def _read_prefix(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the body: enough for an error hint, bounded against huge replies."""
    chunks = bytearray()
    try:
        async for chunk in response.aiter_raw():
            chunks += chunk
            if len(chunks) >= limit:
                break
    except httpx.HTTPError:
        pass  # the status already tells the story; the body is only a hint
    return bytes(chunks[:limit])


class Deliverer:
    """Delivers events to channels over one shared ``httpx.AsyncClient``.

    Pass ``client`` to share a pool or configure proxies/TLS; otherwise one is created (and closed by
    ``aclose``) with ``trust_env=False``: an environment proxy would resolve the target itself and
    silently bypass the private-network guard, so proxies must be chosen explicitly.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        on_attempt: OnAttempt | None = None,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        max_retry_after_seconds: float = 60.0,
        timeout_seconds: float = 5.0,
        allow_private: bool = False,
        smtp: mail.SmtpServer | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if backoff_seconds <= 0 or timeout_seconds <= 0:
            raise ValueError("backoff_seconds and timeout_seconds must be positive")
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(trust_env=False)
        self._on_attempt = on_attempt
        self._max_attempts = max_attempts
        self._backoff = wait_random_exponential(multiplier=backoff_seconds, max=max_backoff_seconds)
        self._max_retry_after = max_retry_after_seconds
        self._timeout = timeout_seconds
        self._allow_private = allow_private
        self._smtp = smtp

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        on_attempt: OnAttempt | None = None,
    ) -> Deliverer:
        """A deliverer configured by the ``LOOPWATCH_DELIVERY_*`` and ``ALLOW_PRIVATE_WEBHOOKS`` settings."""
        return cls(
            client=client,
            on_attempt=on_attempt,
            max_attempts=settings.delivery_max_attempts,
            backoff_seconds=settings.delivery_backoff_seconds,
            timeout_seconds=settings.delivery_timeout_seconds,
            allow_private=settings.allow_private_webhooks,
            smtp=mail.SmtpServer.from_settings(settings),
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this deliverer created it; an injected client is the caller's."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Deliverer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def deliver(self, event: Event, channel: AnyChannel) -> DeliveryOutcome:
        """Deliver ``event`` to ``channel``; report each attempt; return how it ended. Never raises for
        delivery problems (cancellation still propagates)."""
        target_id, event_type = _target(event)
        id_key = {
            "alert": "alert_id",
            "alert.resolved": "resolution_id",
            "retrain": "request_id",
            "alert.group": "group_id",
        }[event_type]
        bound = log.bind(**{id_key: target_id}, channel=channel.type)
        try:
            prepared = _prepare(event, channel, self._smtp)
        except Exception as exc:  # a payload bug must cost one delivery, not the dispatcher
            if isinstance(exc, ChannelConfigError):
                bound.error("delivery.channel_unconfigured", error=str(exc))
                error = str(exc)
            else:
                bound.exception("delivery.prepare_failed")
                error = f"could not build the request: {type(exc).__name__}"
            attempt = DeliveryAttempt(
                target_id=target_id,
                event_type=event_type,
                channel=channel.type,
                url=channel_target(channel),
                attempt=1,
                status_code=None,
                error=error,
                latency_ms=0.0,
                succeeded=False,
                final=True,
                at=datetime.now(UTC),
            )
            await self._report(attempt, bound)
            return self._outcome(attempt)

        last: _Try | None = None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_result(lambda result: not result.attempt.final),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        async for manager in retrying:
            with manager:
                last = await self._attempt(prepared, manager.retry_state.attempt_number, bound)
            if manager.retry_state.outcome is not None and not manager.retry_state.outcome.failed:
                manager.retry_state.set_result(last)
        assert last is not None  # tenacity makes at least one attempt
        outcome = self._outcome(last.attempt)
        if outcome.status == "delivered":
            bound.info("delivery.delivered", attempts=outcome.attempts, url=prepared.safe_url)
        else:
            bound.error(
                "delivery.failed",
                attempts=outcome.attempts,
                status_code=outcome.status_code,
                error=outcome.error,
                url=prepared.safe_url,
            )
        return outcome

    @staticmethod
    def _outcome(attempt: DeliveryAttempt) -> DeliveryOutcome:
        return DeliveryOutcome(
            target_id=attempt.target_id,
            channel=attempt.channel,
            status="delivered" if attempt.succeeded else "failed",
            attempts=attempt.attempt,
            status_code=attempt.status_code,
            error=attempt.error,
        )

    def _wait(self, state: RetryCallState) -> float:
        """The receiver's ``Retry-After`` (capped) when it gave one, else full-jitter backoff."""
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            result = outcome.result()
            if isinstance(result, _Try) and result.retry_after is not None:
                return min(result.retry_after, self._max_retry_after)
        return float(self._backoff(state))

    def _request(self, prepared: _Prepared, address: IPAddress) -> httpx.Request:
        """The POST for one attempt, aimed at the vetted ``address``, freshly signed."""
        url = httpx.URL(prepared.url)
        headers = dict(prepared.headers)
        if prepared.secret is not None:
            # Signed per attempt: a retry after a long backoff must not arrive with a stale timestamp.
            headers[SIGNATURE_HEADER] = sign(prepared.secret, prepared.body, int(time.time()))
        extensions: dict[str, str] = {}
        if url.host != str(address):
            headers["Host"] = url.netloc.decode("ascii")
            # The pool keys connections by address; a kept-alive TLS connection made for another name
            # on the same address would be reused with the wrong SNI.
            headers["Connection"] = "close"
            if url.scheme == "https":
                extensions["sni_hostname"] = url.raw_host.decode("ascii")
            url = url.copy_with(host=str(address))
        return self._client.build_request(
            "POST", url, content=prepared.body, headers=headers, timeout=self._timeout, extensions=extensions
        )

    async def _send_http(self, prepared: _Prepared, address: IPAddress) -> _Sent:
        """The HTTP transport: one POST; 2xx delivers, 408/429/5xx and network trouble are retried."""
        response = await self._client.send(self._request(prepared, address), stream=True, follow_redirects=False)
        try:
            status = response.status_code
            hint = (await _read_prefix(response, _ERROR_BODY_BYTES)).decode("utf-8", "replace").strip()
        finally:
            await response.aclose()
        if 200 <= status < 300:
            return _Sent(status, None, retryable=False)
        error = f"HTTP {status}" + (f": {_scrubbed(hint, prepared)}" if hint else "")
        if 300 <= status < 400:
            error += " (redirects are not followed)"
        retry_after = (
            retry_after_seconds(response.headers.get("Retry-After")) if status in _RETRY_AFTER_STATUSES else None
        )
        return _Sent(status, error, retryable=_retryable_status(status), retry_after=retry_after)

    async def _send_smtp(self, prepared: _Prepared, address: IPAddress) -> _Sent:
        """The SMTP transport: one session in a worker thread; 4xx replies and lost connections are retried."""
        assert prepared.mail is not None
        assert self._smtp is not None
        try:
            refused = await asyncio.to_thread(mail.send, self._smtp, address, prepared.mail, timeout=self._timeout)
        except (smtplib.SMTPException, OSError, mail.SmtpConfigError) as exc:
            code, retryable = mail.classify(exc)
            return _Sent(code, _describe(exc, prepared), retryable=retryable)
        return _Sent(250, f"refused by the server: {', '.join(refused)}" if refused else None, retryable=False)

    async def _attempt(self, prepared: _Prepared, number: int, bound: structlog.typing.FilteringBoundLogger) -> _Try:
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        retryable = False
        try:
            addresses = await asyncio.to_thread(resolve_target, prepared.url, allow_private=self._allow_private)
            if prepared.mail is not None:
                sent = await self._send_smtp(prepared, addresses[0])
            else:
                sent = await self._send_http(prepared, addresses[0])
            status, error, retryable, retry_after = sent.status, sent.error, sent.retryable, sent.retry_after
        except UnresolvableTargetError as exc:
            error, retryable = _describe(exc, prepared), True  # DNS trouble is usually transient
        except UnsafeTargetError as exc:
            error = _describe(exc, prepared)
        except httpx.HTTPError as exc:
            error, retryable = _describe(exc, prepared), _retryable_error(exc)
        except Exception as exc:  # unexpected: record it as a final failure rather than crash the agent
            bound.exception("delivery.attempt_crashed", attempt=number)
            error = _describe(exc, prepared)

        succeeded = status is not None and 200 <= status < 300
        attempt = DeliveryAttempt(
            target_id=prepared.target_id,
            event_type=prepared.event_type,
            channel=prepared.channel,
            url=prepared.safe_url,
            attempt=number,
            status_code=status,
            error=error,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            succeeded=succeeded,
            final=succeeded or not retryable or number >= self._max_attempts,
            at=datetime.now(UTC),
        )
        level = bound.info if succeeded else bound.warning
        level(
            "delivery.attempt",
            attempt=number,
            status_code=status,
            error=error,
            latency_ms=attempt.latency_ms,
            final=attempt.final,
            url=prepared.safe_url,
        )
        await self._report(attempt, bound)
        return _Try(attempt=attempt, retry_after=retry_after)

    async def _report(self, attempt: DeliveryAttempt, bound: structlog.typing.FilteringBoundLogger) -> None:
        """Hand the attempt to the caller; a failing recorder is logged, never allowed to stop delivery."""
        metrics.delivery_attempted(attempt)
        if self._on_attempt is None:
            return
        try:
            result = self._on_attempt(attempt)
            if inspect.isawaitable(result):
                await result
        except Exception:
            bound.exception("delivery.on_attempt_failed", attempt=attempt.attempt)
