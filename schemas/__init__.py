"""Contracts shared by every part of loopwatch: events, settings, topics and ClickHouse DDL.

Nothing here does I/O; detectors, streams and api all build on these types.
"""

from schemas.events import (
    AlertEvent,
    DeadLetter,
    FeedbackEvent,
    FeedbackKind,
    FeedbackSource,
    InferenceEvent,
    RetrainEvent,
)
from schemas.settings import Settings

__all__ = [
    "AlertEvent",
    "DeadLetter",
    "FeedbackEvent",
    "FeedbackKind",
    "FeedbackSource",
    "InferenceEvent",
    "RetrainEvent",
    "Settings",
]
