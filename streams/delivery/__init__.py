"""Alert delivery: Slack, signed webhooks, PagerDuty and email, retried, every attempt reported for storage."""

from schemas.channels import (
    AnyChannel,
    Channel,
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
    parse_channel,
)
from streams.delivery.sender import ChannelConfigError, Deliverer, DeliveryAttempt, DeliveryOutcome
from streams.delivery.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign, verify
from streams.delivery.slack import slack_message, slack_resolved_message, slack_retrain_message
from streams.delivery.url_guard import UnsafeTargetError, check_target

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "AnyChannel",
    "Channel",
    "ChannelConfigError",
    "Deliverer",
    "DeliveryAttempt",
    "DeliveryOutcome",
    "EmailChannel",
    "PagerDutyChannel",
    "SlackChannel",
    "UnsafeTargetError",
    "WebhookChannel",
    "check_target",
    "parse_channel",
    "sign",
    "slack_message",
    "slack_resolved_message",
    "slack_retrain_message",
    "verify",
]
