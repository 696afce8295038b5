"""Pure detectors of personal data and secrets in text: one concept per function, no I/O.

Each detector takes a text and returns the ``Span`` of every entity it finds (start, end, kind).
Candidates come from a regular expression; where a format has a checksum it decides (a card number
passes Luhn, an IBAN its mod-97 check, an address parses with ``ipaddress``, a phone number is valid
for ``phonenumbers``, Google's libphonenumber metadata), so a near miss stays in the text.

Each detector first asks a cheap question in C (``"@" in text``, a digit anywhere) before any regex
runs: most prompts hold no entity, and that is what keeps redaction cheap at ingest. The detectors of
numbers (cards, IBANs, phone numbers, IPv4 addresses) then run their regex only over the ``digit_areas``
of a text: the stretches around its digits up to the nearest letter none of them can match (``g``–``z``),
found with C-level byte searches, instead of over the whole text (Python's ``re`` tries every position of
a pattern that does not start with a literal, which cost more than everything else on a 1.5 KB prompt).
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import re
from collections.abc import Callable, Collection, Iterator
from typing import Literal, NamedTuple

import phonenumbers

EntityKind = Literal["EMAIL", "PHONE", "CARD", "IBAN", "IP", "SECRET", "URL_CREDENTIALS"]


class Span(NamedTuple):
    start: int
    end: int
    kind: str  # an ``EntityKind`` or a project's custom pattern name


_LOCAL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}\Z")
_DOMAIN = re.compile(r"[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}\b")


def emails(text: str) -> list[Span]:
    """E-mail addresses (``local@domain.tld``), found from each ``@`` outwards (no scan of the text)."""
    spans = []
    at = text.find("@")
    while at != -1:
        local = _LOCAL.search(text, max(0, at - 64), at)
        domain = _DOMAIN.match(text, at + 1) if local else None
        if local and domain:
            spans.append(Span(local.start(), domain.end(), "EMAIL"))
        at = text.find("@", at + 1)
    return spans


# A scheme, then ``user:password@``: the user and password are the credential, the host is kept.
_URL_CREDENTIALS = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://([^\s:/@]+:[^\s/@]+)@")


def url_credentials(text: str) -> list[Span]:
    """``user:password`` in a URL (``postgres://app:hunter2@db/prod``)."""
    if ":" not in text or "://" not in text:  # one character is found faster than three
        return []
    return [Span(m.start(1), m.end(1), "URL_CREDENTIALS") for m in _URL_CREDENTIALS.finditer(text)]


# Each format starts with a literal that is looked for first (``in``, in C); only then its regex runs.
_SECRETS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (markers, re.compile(regex))
    for markers, regex in [
        (("AKIA",), r"AKIA[0-9A-Z]{16}\b"),  # AWS access key id
        (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), r"gh[pousr]_[A-Za-z0-9]{36,255}\b"),  # GitHub tokens
        (("github_pat_",), r"github_pat_[A-Za-z0-9_]{22,255}\b"),
        (("sk-",), r"sk-(?:ant-|proj-|svcacct-)?[A-Za-z0-9_\-]{20,}"),  # OpenAI, Anthropic
        (("_live_", "_test_"), r"[spr]k_(?:live|test)_[A-Za-z0-9]{16,}\b"),  # Stripe
        (("xox",), r"xox[abprs]-[A-Za-z0-9\-]{10,}"),  # Slack
        (("AIza",), r"AIza[0-9A-Za-z_\-]{35}"),  # Google API key
        (("glpat-",), r"glpat-[A-Za-z0-9_\-]{20,}"),  # GitLab
        (("lw_",), r"lw_[A-Za-z0-9_\-]{43}"),  # loopwatch's own keys
        (("eyJ",), r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWT
        (("PRIVATE KEY-----",), r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    ]
)


_UNSEPARATED = frozenset({"AKIA", "AIza", "eyJ"})


def _gate(marker: str) -> str:
    """The characters of ``marker`` that are not lowercase letters: each is looked for alone first (one
    character is found with ``memchr``; ``"AKIA" in text`` steps through the whole text)."""
    return "".join(sorted({char for char in marker if not char.islower()})) or marker[0]


_GATES = {marker: _gate(marker) for markers, _ in _SECRETS for marker in markers}


def _has(text: str, marker: str) -> bool:
    return all(char in text for char in _GATES[marker]) and marker in text


def _starts_word(text: str, start: int) -> bool:
    return start == 0 or not text[start - 1].isalnum()


def secrets(text: str, formats: Collection[int] | None = None) -> list[Span]:
    """Well-known API key and token formats (AWS, GitHub, GitLab, OpenAI, Anthropic, Stripe, Slack,
    Google, loopwatch), JSON web tokens and PEM private keys. ``formats``: the only formats (indices in
    ``CANDIDATES["secret"]``) that may occur in the text, as the first pass found (then their markers
    are not looked for again)."""
    spans = []
    if formats is not None:
        for index in sorted(formats):
            regex = _SECRETS[index][1]
            spans += [Span(m.start(), m.end(), "SECRET") for m in regex.finditer(text) if _starts_word(text, m.start())]
        return spans  # in the order of the formats, as below
    separated = "_" in text or "-" in text  # every marker but AKIA, AIza and eyJ holds one
    for markers, regex in _SECRETS:
        if (separated or markers[0] in _UNSEPARATED) and any(_has(text, marker) for marker in markers):
            spans += [Span(m.start(), m.end(), "SECRET") for m in regex.finditer(text) if _starts_word(text, m.start())]
    return spans


def has_digits(text: str) -> bool:
    """Any ASCII digit (card, IBAN, phone and IPv4 detectors need some): one pass in C."""
    encoded = text.encode("utf-8", "surrogatepass")
    return len(encoded.translate(None, b"0123456789")) != len(encoded)


Areas = list[tuple[int, int]]

# One byte per character of a text (non-ASCII characters become "?"): "0" for an ASCII digit, "1" for "?"
# (a non-ASCII character may be a digit to ``\d``), "z" where no number detector ever matches (lowercase
# letters after the hex digits a to f), "." elsewhere.
_MARKS = bytes.maketrans(
    bytes(range(256)),
    bytes(
        ord("0") if 48 <= byte <= 57 else ord("1") if byte == ord("?") else ord("z") if 103 <= byte <= 122 else ord(".")
        for byte in range(256)
    ),
)


def digit_marks(text: str) -> bytes:
    """``text`` as one mark per character (``_MARKS``): an encode and a translate, both in C."""
    return text.encode("ascii", "replace").translate(_MARKS)


def areas_of(marks: bytes) -> Areas:
    """The stretches of a text (``digit_marks``) holding a digit, each up to (not including) the nearest
    ``g``–``z`` on either side: no match of a card, IBAN, phone or IPv4 pattern crosses such a letter, so
    running a pattern over each area (its lookarounds seeing the text around it) finds what it finds in
    the whole text. Empty without an ASCII digit (the detectors' gate)."""
    if b"0" not in marks:
        return []
    seeds = marks.replace(b"1", b"0")
    areas = []
    at = seeds.find(b"0")
    while at != -1:
        end = marks.find(b"z", at)
        if end == -1:
            end = len(marks)
        areas.append((marks.rfind(b"z", 0, at) + 1, end))
        at = seeds.find(b"0", end)
    return areas


def digit_areas(text: str) -> Areas:
    """``areas_of`` the text."""
    return areas_of(digit_marks(text))


def _in_areas(regex: re.Pattern[str], text: str, areas: Areas) -> Iterator[re.Match[str]]:
    """``regex.finditer(text)`` over ``areas`` only (each with the character after it, for ``\b`` and lookaheads)."""
    size = len(text)
    for start, end in areas:
        yield from regex.finditer(text, start, min(end + 1, size))


def _bounded(text: str, start: int, end: int) -> bool:
    """No letter or digit right before ``start`` or right after ``end`` (a whole token)."""
    return (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum())


# Digits in groups with one space or dash between them. People write numbers side by side ("call
# +44 20 7946 0958 4111 1111 1111 1111"), so a run is tried group by group, never only as a whole.
_CARD_RUN = re.compile(r"\d+(?:[ \-]\d+)*")
_GROUP = re.compile(r"\d+")
_CARD_DIGITS = (13, 19)


# A digit's ASCII code, doubled as Luhn does (9 subtracted from two-digit results), plus 48: so the sum
# of a translated string's bytes, less 48 per byte, is the sum of the doubled digits.
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (ASCII ones summed in C: bytes, a translate table, ``sum``;
    other digits ``\\d`` matched as their code point less 48, as they always were)."""
    if digits.isascii():
        backwards = digits[::-1].encode("ascii")
        return (sum(backwards[::2]) + sum(backwards[1::2].translate(_LUHN_DOUBLED)) - 48 * len(backwards)) % 10 == 0
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _windows(
    text: str, run: re.Match[str], fewest: int, most: int, accept: Callable[[int, int, int], bool]
) -> list[tuple[int, int]]:
    """Left to right over the digit groups of ``run``: from each group, the longest stretch of whole
    consecutive groups holding ``fewest``–``most`` digits that ``accept(start, end, digits)`` takes;
    after a hit, on from the group after it."""
    groups = [m.span() for m in _GROUP.finditer(text, run.start(), run.end())]
    if sum(end - start for start, end in groups) < fewest:
        return []
    found: list[tuple[int, int]] = []
    first = 0
    while first < len(groups):
        ends: list[tuple[int, int]] = []
        count = 0
        for last in range(first, len(groups)):
            count += groups[last][1] - groups[last][0]
            if count > most:
                break
            if count >= fewest:
                ends.append((last, count))
        start = groups[first][0]
        for last, count in reversed(ends):
            if accept(start, groups[last][1], count):
                found.append((start, groups[last][1]))
                first = last + 1
                break
        else:
            first += 1
    return found


def cards(text: str, areas: Areas | None = None) -> list[Span]:
    """Payment card numbers: 13–19 digits (one space or dash between groups) that pass Luhn."""
    areas = digit_areas(text) if areas is None else areas
    if not areas:
        return []

    def card(start: int, end: int, count: int) -> bool:
        digits = text[start:end].replace(" ", "").replace("-", "")
        return _bounded(text, start, end) and luhn_valid(digits) and bool(digits.strip("0"))

    spans = []
    for run in _in_areas(_CARD_RUN, text, areas):
        if run.end() - run.start() >= _CARD_DIGITS[0]:
            spans += [Span(start, end, "CARD") for start, end in _windows(text, run, *_CARD_DIGITS, card)]
    return spans


_IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")


def iban_valid(iban: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (spaces removed)."""
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in moved)) % 97 == 1


def ibans(text: str, areas: Areas | None = None) -> list[Span]:
    """IBANs, with or without the spaces every four characters, that pass the mod-97 check."""
    areas = digit_areas(text) if areas is None else areas
    return [
        Span(m.start(), m.end(), "IBAN")
        for m in _in_areas(_IBAN, text, areas)
        if _starts_word(text, m.start()) and iban_valid(m.group().replace(" ", ""))
    ]


_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_IP_NEIGHBOURS = frozenset("0123456789.")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def ip_addresses(text: str, areas: Areas | None = None) -> list[Span]:
    """IPv4 and IPv6 addresses that parse (``ipaddress``): ``999.1.1.1`` or a clock time is no address."""
    spans = []
    if "." in text:
        for m in _in_areas(_IPV4, text, digit_areas(text) if areas is None else areas):
            start, end = m.start(), m.end()
            if (start and text[start - 1] in _IP_NEIGHBOURS) or text[end : end + 2][:1].isdigit():
                continue
            if text[end : end + 1] == "." and text[end + 1 : end + 2].isdigit():  # 1.2.3.4.5: a version
                continue
            try:
                ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            spans.append(Span(m.start(), m.end(), "IP"))
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            try:
                ipaddress.IPv6Address(m.group())
            except ValueError:
                continue
            spans.append(Span(m.start(), m.end(), "IP"))
    return spans


# Digits with the separators people write between them; at least 7 digits (checked below).
_PHONE_RUN = re.compile(r"(?:\+|\()?\d[\d ().\-]*\d")
_PHONE_DIGITS = (7, 15)  # E.164 allows at most 15 digits


@functools.cache
def _national_lengths(region: str) -> frozenset[int]:
    """How many digits a number of ``region`` may have, written nationally (with a trunk prefix: one more)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.general_desc is None:
        return frozenset(range(_PHONE_DIGITS[0], _PHONE_DIGITS[1] + 1))
    lengths = set(metadata.general_desc.possible_length or ())
    return frozenset(lengths | {length + 1 for length in lengths})


@functools.lru_cache(maxsize=4096)
def valid_phone(candidate: str, region: str) -> bool:
    """libphonenumber's verdict on one candidate (the costly step: ~30 µs). Remembered for the last
    4,096 candidates of the process (in memory only): a support line in every system prompt, a
    customer's number in every turn of a conversation, are validated once."""
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(candidate, region))
    except phonenumbers.NumberParseException:
        return False


def phones(text: str, region: str = "US", areas: Areas | None = None) -> list[Span]:
    """Phone numbers valid for libphonenumber: international (``+44 20 7946 0958``) or national to
    ``region`` (``(415) 555-2671``)."""
    areas = digit_areas(text) if areas is None else areas
    if not areas:
        return []

    national = _national_lengths(region)

    def valid(start: int, end: int, digits: int) -> bool:
        if not _bounded(text, start, end):
            return False
        if start and text[start - 1] in "+(":  # the country code's plus, a bracketed area code
            start -= 1
        if text[start] != "+" and digits not in national:
            return False  # no parse needed: no number of the region has this many digits
        candidate = text[start:end]
        if candidate.count(".") >= 3:  # a dotted quad is an IP address, not a phone number
            return False
        return valid_phone(candidate, region)

    spans = []
    for run in _in_areas(_PHONE_RUN, text, areas):
        for first, end in _windows(text, run, *_PHONE_DIGITS, valid):
            spans.append(Span(first - 1 if first and text[first - 1] in "+(" else first, end, "PHONE"))
    return spans


def pattern(regex: re.Pattern[str], kind: str) -> Callable[[str], list[Span]]:
    """A detector for a project's own regular expression; its matches are called ``kind``."""

    def detect(text: str) -> list[Span]:
        return [Span(m.start(), m.end(), kind) for m in regex.finditer(text) if m.end() > m.start()]

    return detect


# What each built-in detector needs before it can find anything: patterns every one of its findings (or
# the candidate its code starts from) matches, for the first pass (``scan.Scanner``) to decide which
# detectors run on a text. The detectors' own patterns where they are their candidates; a card needs 13
# digits with at most one separator between two, a phone number 7 digits among its separators.
CANDIDATES: dict[str, tuple[re.Pattern[str], ...]] = {
    "url_credentials": (_URL_CREDENTIALS,),
    "secret": tuple(regex for _, regex in _SECRETS),
    "email": (re.compile("@"),),
    "iban": (_IBAN,),
    "card": (re.compile(r"\d(?:[ \-]?\d){12}"),),
    "ip": (_IPV4, _IPV6),
    "phone": (re.compile(r"\d(?:[\d ().\-]*\d){6}"),),
}


# Placeholders a redaction already wrote (``<EMAIL>``, ``<PHONE:9f2c…>``): never detected again, so
# redacting twice (the API before Kafka, then the worker) changes nothing.
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*(?::[0-9a-f]{12})?>")


def resolve(found: list[Span], text: str) -> list[Span]:
    """Non-overlapping spans in text order: where two overlap, the one found first wins (the order of
    detectors is their priority); spans inside an existing placeholder are dropped. What is taken is kept
    sorted (disjoint spans): each span is checked against its two neighbours only, so a text with
    thousands of findings (a custom pattern over 100 KB) costs no more than one with a few."""
    starts: list[int] = []
    ends: list[int] = []
    if "<" in text:
        for m in PLACEHOLDER.finditer(text):
            starts.append(m.start())
            ends.append(m.end())
    chosen: list[Span] = []
    for span in found:
        at = bisect.bisect_right(starts, span.start)
        if (at and ends[at - 1] > span.start) or (at < len(starts) and starts[at] < span.end):
            continue
        starts.insert(at, span.start)
        ends.insert(at, span.end)
        chosen.append(span)
    return sorted(chosen)
