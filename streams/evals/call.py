"""What an evaluator sees of a call: its texts, numbers and tags, plus the reference (a correction)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Call:
    event_id: str
    project: str
    model: str
    model_version: str
    timestamp: datetime
    status: str
    prompt: str
    response: str
    latency_ms: float | None = None
    cost_usd: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    context: str = ""  # retrieved context: the ``context`` tag or feature, when the app sends one
    reference: str = ""  # the call's correction (or label) by a person, when there is one
