"""Response bodies of the API (request bodies are the event contracts in ``schemas``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from streams.keys import KeyScope
from streams.storage.feedback import StoredFeedback
from streams.storage.inferences import CallSummary as StoredCallSummary
from streams.storage.inferences import JudgedCall, StoredInference


class Accepted(BaseModel):
    accepted: int = Field(description="how many events were accepted for processing")
    ids: list[str] = Field(description="their ids, in request order (generated where the event had none)")


# The calls and feedback the API returns are the storage records of ``streams.storage`` (one definition
# of their fields) as pydantic dataclasses, which add the API's names and descriptions (the OpenAPI is
# what it was when they were models of their own). They validate dicts: pass ``dataclasses.asdict``.


@pydantic_dataclass(frozen=True)
class InferenceSummary(JudgedCall):  # the call a feedback judges (no description in the OpenAPI)
    pass


@pydantic_dataclass(frozen=True)
class FeedbackItem(StoredFeedback):  # one feedback and the call it judges
    inference: Annotated[InferenceSummary | None, Field(description="the joined inference, once it has arrived")]


class FeedbackPage(BaseModel):
    items: list[FeedbackItem]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


@pydantic_dataclass(frozen=True)
class InferenceDetail(StoredInference):  # one call as stored (but its probabilities and embedding), its feedback
    feedback: list[FeedbackItem]


@pydantic_dataclass(frozen=True)
class CallSummary(StoredCallSummary):
    """One call in a listing: its numbers and the start of its texts (the whole call: ``GET /v1/inferences/{id}``)."""

    prompt_preview: Annotated[str, Field(description="the prompt's first 300 characters")]
    response_preview: Annotated[str, Field(description="the response's first 300 characters")]
    prompt_chars: Annotated[int, Field(description="the prompt's length in characters")]


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
