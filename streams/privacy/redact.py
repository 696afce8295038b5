"""One policy applied to text and to records, in place, before they are stored or sent on."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial

from msgspec import UNSET, UnsetType

from schemas.privacy import DetectorName, RedactionPolicy
from schemas.records import FEEDBACK_TEXT_FIELDS, FeedbackRecord, InferenceRecord
from streams.privacy import detectors, scan
from streams.privacy.detectors import Span

Detector = Callable[..., list[Span]]  # (text) -> spans; the detectors of numbers take ``areas=`` too

_BUILT_IN: dict[DetectorName, Detector] = {
    "url_credentials": detectors.url_credentials,
    "secret": detectors.secrets,
    "email": detectors.emails,
    "iban": detectors.ibans,
    "card": detectors.cards,
    "ip": detectors.ip_addresses,
}

PII_COUNT_MAX = 65_535  # the stored column is a UInt16 per field and kind

_NEED_DIGITS: frozenset[DetectorName] = frozenset({"card", "iban", "phone", "ip"})


class Redactor:
    """A ``RedactionPolicy`` ready to run: detectors in priority order, the HMAC key for pseudonyms, the
    first pass (``scan.Scanner``: one hyperscan scan) that decides which detectors run on a text.

    ``findings`` counts what was found by kind (never the values), for logs and metrics.
    """

    def __init__(
        self, policy: RedactionPolicy, *, key: bytes | None = None, phone_region: str = "US", first_pass: bool = True
    ) -> None:
        if policy.mode == "pseudonymize" and not key:
            raise ValueError("pseudonymize needs a key (LOOPWATCH_REDACTION_KEY)")
        self.policy = policy
        self._key = key or b""
        found: list[tuple[Detector, bool]] = []  # (detector, finds nothing in a text without digits)
        candidates: list[tuple[str, tuple[re.Pattern[str], ...]]] = []  # the first pass's groups of patterns
        self._owners: list[tuple[int, int]] = []  # per group: its detector, and which secret format (else -1)
        self._secret = -1  # the secrets detector's index
        for name in detectors_in_order(policy.detectors):
            detect = partial(detectors.phones, region=phone_region) if name == "phone" else _BUILT_IN[name]
            if name == "secret":  # a group per format: only the formats found run
                self._secret = len(found)
                for index, regex in enumerate(detectors.CANDIDATES[name]):
                    candidates.append((name, (regex,)))
                    self._owners.append((len(found), index))
            else:
                candidates.append((name, detectors.CANDIDATES[name]))
                self._owners.append((len(found), -1))
            found.append((detect, name in _NEED_DIGITS))
        # A project's own regexes run with ``re`` on every text, never behind the first pass: rewriting
        # any Python pattern into one hyperscan matches at least as widely (escapes of non-ASCII
        # characters, ``{,n}``, comments, inline flags, ...) is a parser of Python's regex syntax to get
        # right for every input, and a miss would store a customer's value in clear. The built-in
        # candidates are a fixed set, proven equal to ``re`` by tests/streams/privacy/test_scan.py.
        self._custom: set[int] = set()
        for custom in policy.custom:
            self._custom.add(len(found))
            found.append((detectors.pattern(re.compile(custom.regex), custom.name), False))
        self._detectors = found
        # without the first pass every detector runs on every text: ``re`` alone, the reference the
        # first pass is tested against
        self._scanner = scan.scanner(tuple(candidates)) if candidates and first_pass else None
        self._all = set(range(len(found)))
        self.active = policy.mode != "off" and bool(found) and bool(policy.fields)
        fields = set(policy.fields)
        self._prompt = self.active and "prompt" in fields
        self._response = self.active and "response" in fields
        self._feedback_text = self.active and "feedback_text" in fields
        self._tags = self.active and "tags" in fields
        self._features = self.active and "features" in fields
        self.findings: Counter[str] = Counter()

    def spans(self, text: str) -> list[Span]:
        """What the policy's detectors find in ``text``, without overlaps."""
        found: list[Span] = []
        # one hyperscan pass: which detectors' candidates occur in the text at all (most texts: none)
        hits, formats = self._first_pass(text)
        if not hits:
            return found
        # once per text (and again after a find changed it): where card, IBAN, phone and IPv4 patterns
        # run; none finds anything without a digit (an IPv6 address without one, "dead::beef", has colons)
        marks = detectors.digit_marks(text)
        areas: detectors.Areas | None = detectors.areas_of(marks)
        digits = bool(areas) or ":" in text
        scan = text
        last = max(hits)  # no need to blank what the last detector to run found
        for index, (detect, needs_digits) in enumerate(self._detectors):
            if index not in hits:
                continue
            if index == self._secret and formats is not None:
                spans = detectors.secrets(scan, formats)
            elif not needs_digits:
                spans = detect(scan)
            elif digits:
                if areas is None:
                    areas = detectors.areas_of(marks)
                spans = detect(scan, areas=areas)
            else:
                continue
            if spans:  # what a detector found is blanked for the next ones (a card is no phone number)
                found += spans
                if index < last:
                    scan, marks, areas = _blank(scan, spans), _blank_marks(marks, spans), None
        return detectors.resolve(found, text) if found else found

    def candidates(self, text: str) -> set[int]:
        """The detectors (their indices, in priority order) the first pass finds a candidate for in ``text``."""
        return self._first_pass(text)[0]

    def _first_pass(self, text: str) -> tuple[set[int], set[int] | None]:
        """The detectors to run on ``text`` and the secret formats that may occur in it (None: all)."""
        if self._scanner is None:
            return self._all, None
        groups = self._scanner.hits(text)
        if not groups:
            return set(self._custom), None
        owners = self._owners
        return {owners[group][0] for group in groups} | self._custom, {
            owners[group][1] for group in groups if owners[group][1] >= 0
        }

    def token(self, kind: str, value: str) -> str:
        """The placeholder of one finding under this policy's mode."""
        if self.policy.mode == "pseudonymize":
            digest = hmac.new(self._key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()[:12]
            return f"<{kind}:{digest}>"
        return f"<{kind}>"

    def text(self, text: str | None, counts: Counter[str] | None = None, field: str = "") -> str | None:
        """``text`` redacted (None: dropped under ``drop``); unchanged under ``off`` and ``detect``.
        ``counts``: where to add what was found, as ``field`` and ``field.KIND`` (``pii_counts``)."""
        if not text or not self.active:
            return text
        spans = self.spans(text)
        if not spans:
            return text
        self.findings.update(span.kind for span in spans)
        if counts is not None:
            counts[field] += len(spans)
            counts.update(f"{field}.{span.kind}" for span in spans)
        mode = self.policy.mode
        if mode == "detect":
            return text
        if mode == "drop":
            return None
        parts, last = [], 0
        for span in spans:
            parts += [text[last : span.start], self.token(span.kind, text[span.start : span.end])]
            last = span.end
        parts.append(text[last:])
        return "".join(parts)

    def _mapping(self, values: dict[str, str], counts: Counter[str], field: str) -> None:
        for name, value in list(values.items()):
            if isinstance(value, str):
                redacted = self.text(value, counts, field)
                if redacted is None:
                    del values[name]
                else:
                    values[name] = redacted

    def inference(self, record: InferenceRecord) -> None:
        """Redact ``record`` in place and set its ``pii`` counts: each scanned field (0 when clean, so
        a clean event counts in a share's denominator) and each field and kind found; None when off.

        Counts the record already carries (the API's, on an envelope a worker scans again without a
        valid mark) are kept where higher: a second scan finds placeholders, not entities."""
        before = record.pii
        if not self.active:
            record.pii = UNSET
            return
        counts: Counter[str] = Counter()
        if self._prompt:
            counts["prompt"] += 0
            record.prompt = self.text(record.prompt, counts, "prompt")
        if self._response:
            counts["response"] += 0
            record.response = self.text(record.response, counts, "response")
        if self._tags:
            counts["tags"] += 0
            if record.tags:
                self._mapping(record.tags, counts, "tags")
        if self._features:
            counts["features"] += 0
            if record.features:
                self._mapping(record.features, counts, "features")  # type: ignore[arg-type]  # only strings
        record.pii = _final_counts(counts, before)

    def feedback(self, record: FeedbackRecord) -> None:
        """Redact the text of ``record`` in place and set its ``pii`` counts as ``inference`` does, the
        text counted under the feedback's kind when it is a correction or a comment (``correction``,
        ``correction.EMAIL``); {} for other kinds (their text, if any, is redacted, not counted)."""
        before = record.pii
        if not self.active:
            record.pii = UNSET
            return
        counts: Counter[str] = Counter()
        if self._feedback_text:
            if record.kind in FEEDBACK_TEXT_FIELDS:
                counts[record.kind] += 0
                record.text = self.text(record.text, counts, record.kind)
            else:
                record.text = self.text(record.text)
        record.pii = _final_counts(counts, before)

    def inferences(self, records: Sequence[InferenceRecord]) -> None:
        for record in records:
            self.inference(record)

    def feedbacks(self, records: Sequence[FeedbackRecord]) -> None:
        for record in records:
            self.feedback(record)


def _final_counts(counts: Counter[str], before: dict[str, int] | UnsetType | None) -> dict[str, int]:
    """``counts`` capped, taking the counts a record already carried where higher for a field scanned
    now (the API's, on an envelope a worker scans again without a valid mark: a second scan finds
    placeholders, not entities)."""
    for name, count in (before if isinstance(before, dict) else {}).items():
        if name.split(".", 1)[0] in counts and isinstance(count, int) and count > counts[name]:
            counts[name] = count
    return {name: min(count, PII_COUNT_MAX) for name, count in counts.items()}


def _blank(text: str, spans: list[Span]) -> str:
    """``text`` with each span replaced by as many spaces: positions stay, the value is gone."""
    parts, last = [], 0
    for span in sorted(spans):
        if span.start >= last:
            parts += [text[last : span.start], " " * (span.end - span.start)]
            last = span.end
    parts.append(text[last:])
    return "".join(parts)


def _blank_marks(marks: bytes, spans: list[Span]) -> bytes:
    """``detectors.digit_marks`` of ``_blank(text, spans)``, from the text's marks (a blank is a ".")."""
    blanked = bytearray(marks)
    for span in spans:
        blanked[span.start : span.end] = b"." * (span.end - span.start)
    return bytes(blanked)


def detectors_in_order(names: Sequence[DetectorName]) -> list[DetectorName]:
    """The chosen detectors in priority order: a URL's credentials before the e-mail address they look
    like, a card or IBAN before the phone number its digits could also be."""
    order: list[DetectorName] = ["url_credentials", "secret", "email", "iban", "card", "ip", "phone"]
    return [name for name in order if name in set(names)]
