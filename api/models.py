"""Response bodies of the API (request bodies are the event contracts in ``schemas``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from streams.keys import KeyScope


class Accepted(BaseModel):
    accepted: int = Field(description="how many events were accepted for processing")
    ids: list[str] = Field(description="their ids, in request order (generated where the event had none)")


class InferenceSummary(BaseModel):
    event_id: str
    model: str
    model_version: str
    timestamp: datetime
    prompt: str
    response: str
    tags: dict[str, str]


class FeedbackItem(BaseModel):
    feedback_id: str
    inference_id: str
    timestamp: datetime
    kind: str
    value: float | str | None
    name: str
    text: str
    source: str
    user_id: str
    inference: InferenceSummary | None = Field(description="the joined inference, once it has arrived")


class FeedbackPage(BaseModel):
    items: list[FeedbackItem]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class InferenceDetail(BaseModel):
    event_id: str
    project: str
    model: str
    model_version: str
    provider: str
    timestamp: datetime
    latency_ms: float | None
    status: str
    error_type: str
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    cost_usd: float | None
    prompt: str
    response: str
    features: dict[str, Any]
    prediction: str
    tags: dict[str, str]
    feedback: list[FeedbackItem]


class CallSummary(BaseModel):
    """One call in a listing: its numbers and the start of its texts (the whole call: ``GET /v1/inferences/{id}``)."""

    event_id: str
    model: str
    model_version: str
    provider: str
    timestamp: datetime
    latency_ms: float | None
    status: str
    error_type: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    prompt_preview: str = Field(description="the prompt's first 300 characters")
    response_preview: str = Field(description="the response's first 300 characters")
    prompt_chars: int = Field(description="the prompt's length in characters")
    response_chars: int
    tags: dict[str, str]


class CallPage(BaseModel):
    items: list[CallSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class KeyCreated(BaseModel):
    key_id: str
    project: str
    name: str
    token: str = Field(description="shown once; only its hash is stored")
    scope: KeyScope | None = Field(default=None, description="ingest, read, admin; none: full project access")
    expires_at: datetime | None = Field(default=None, description="the key stops working then; null: never")
    rotated_from: str | None = Field(default=None, description="the key this one replaces (rotation)")


class KeyInfo(BaseModel):
    key_id: str
    project: str
    name: str
    created_at: datetime
    revoked: bool
    scope: KeyScope | None = None
    expires_at: datetime | None = Field(default=None, description="null: never expires")
    expired: bool = False
    rotated_from: str | None = Field(default=None, description="the key this one replaced (rotation)")
    last_used_at: datetime | None = Field(
        default=None, description="the last request with this key, to the minute; null: never used"
    )
