"""Alert delivery: Slack and signed webhooks, retried, every attempt reported to the caller for storage."""

from schemas.channels import Channel, SlackChannel, WebhookChannel, parse_channel
from streams.delivery.sender import Deliverer, DeliveryAttempt, DeliveryOutcome
from streams.delivery.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign, verify
from streams.delivery.slack import slack_message, slack_resolved_message, slack_retrain_message
from streams.delivery.url_guard import UnsafeTargetError, check_target

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "Channel",
    "Deliverer",
    "DeliveryAttempt",
    "DeliveryOutcome",
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
