"""Review queues: which calls a queue takes (rules), and the form its reviewers fill in (score fields).

Each score field becomes one feedback item per review (source ``annotator``, ``user_id`` = the
reviewer): ``range`` a ``score`` named after the field, ``labels`` a ``label``, ``boolean`` a
``score`` of 1 or 0, ``correction`` a ``correction`` (the corrected response), ``comment`` a
``comment``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import Field, model_validator

from schemas.events import StrictModel, UtcDatetime

ScoreType = Literal["range", "labels", "boolean", "correction", "comment"]
FieldName = str
QUEUE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ScoreField(StrictModel):
    """One question of the review form."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,59}$", description="also the feedback's name")
    type: ScoreType
    min: float | None = Field(default=None, description="range: lowest value")
    max: float | None = Field(default=None, description="range: highest value")
    step: float = Field(default=1.0, gt=0, description="range: step of the slider")
    labels: list[str] = Field(default_factory=list, max_length=20, description="labels: the choices")
    required: bool = True

    @model_validator(mode="after")
    def _fits_type(self) -> Self:
        if self.type == "range" and (self.min is None or self.max is None or self.min >= self.max):
            raise ValueError("a range field needs min < max")
        if self.type == "labels" and len(set(self.labels)) < 2:
            raise ValueError("a labels field needs at least two distinct labels")
        if self.type != "labels" and self.labels:
            raise ValueError(f"labels are for a labels field, not a {self.type} field")
        return self


class QueueRule(StrictModel):
    """Calls a queue takes when it is filled, at creation and as calls and their feedback arrive: every
    filter set must match; ``sample_rate`` of them are taken (by a hash of the call id, so refilling
    takes the same calls)."""

    sample_rate: float = Field(default=1.0, gt=0, le=1)
    model: str | None = Field(default=None, max_length=200)
    model_version: str | None = Field(default=None, max_length=200)
    thumbs_down: bool = Field(default=False, description="calls with a thumbs-down")
    errors: bool = Field(default=False, description="failed calls")
    drifted: bool = Field(default=False, description="calls of windows whose drift monitor flagged drift")
    evaluator_below: float | None = Field(
        default=None, description="calls with an evaluator's score (feedback of source 'evaluator') below this"
    )
    evaluator_name: str | None = Field(default=None, max_length=200, description="only this evaluator's score")
    since: UtcDatetime | None = None
    until: UtcDatetime | None = None


class QueueCreate(StrictModel):
    queue_id: str = Field(pattern=QUEUE_ID_PATTERN)
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2000)
    rules: list[QueueRule] = Field(default_factory=list, max_length=20, description="filled by these (any matches)")
    fields: list[ScoreField] = Field(min_length=1, max_length=20)
    reviews_per_item: int = Field(default=1, ge=1, le=10, description="reviewers each item gets (agreement > 1)")
    hold_seconds: int = Field(default=300, ge=10, le=3600, description="how long a reviewer holds an item")
    max_fill: int = Field(default=1000, ge=1, le=100_000, description="calls one fill adds at most")
    max_items: int = Field(
        default=10_000, ge=1, le=1_000_000, description="the queue takes no more calls by its rules past this size"
    )

    @model_validator(mode="after")
    def _unique_fields(self) -> Self:
        names = [field.name for field in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("field names must be unique")
        return self


class Queue(QueueCreate):
    project: str
    created_at: datetime


ScoreValue = float | str | bool | None
