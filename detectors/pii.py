"""Personal data found at ingest, summed over a window: per field and kind, how many entities and
what share of the events had at least one.

Each event carries the counts its redaction found (``{"response": 2, "response.EMAIL": 2}``): a plain
field name holds the field's total and is present, at 0, whenever the field was scanned, so the
events in a share's denominator are exactly those whose field was looked at. An event with no counts
at all (redaction off) is in no denominator: no statistics, rather than zeros that would read as clean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PiiCount:
    """One field (``response``) or one kind in a field (``response.EMAIL``) over a window."""

    dimension: str
    scanned: int  # events whose field was scanned
    with_entities: int  # of those, events with at least one entity (of the kind)
    entities: int  # entities found

    @property
    def share(self) -> float:
        return self.with_entities / self.scanned if self.scanned else 0.0


def field_of(dimension: str) -> str:
    """``response`` of ``response.EMAIL`` (and of ``response``)."""
    return dimension.split(".", 1)[0]


def pii_counts(events: Sequence[Mapping[str, int] | None]) -> list[PiiCount]:
    """Per scanned field and per field and kind found, over ``events`` (each an event's counts or
    None/empty when it was not scanned), sorted by dimension. A kind found in no event of the window
    is left out (its share would be 0)."""
    scanned: dict[str, int] = {}
    with_entities: dict[str, int] = {}
    entities: dict[str, int] = {}
    for counts in events:
        if not counts:
            continue
        for name, count in counts.items():
            if "." not in name:
                scanned[name] = scanned.get(name, 0) + 1
            if count > 0:
                with_entities[name] = with_entities.get(name, 0) + 1
                entities[name] = entities.get(name, 0) + count
    names = set(scanned) | {name for name in entities if field_of(name) in scanned}
    return [
        PiiCount(name, scanned[field_of(name)], with_entities.get(name, 0), entities.get(name, 0))
        for name in sorted(names)
    ]
