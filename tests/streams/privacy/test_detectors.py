"""Each detector finds what it should on planted examples and leaves near misses alone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.privacy import detectors
from streams.privacy.detectors import Span

# (detector, entity, near misses that must stay)
CASES = {
    "email": (detectors.emails, ["ana.lopez+shop@example.co.uk", "j_doe@mail.example.com"], ["user@localhost", "a@b"]),
    "phone": (
        detectors.phones,
        ["+44 20 7946 0958", "(415) 555-2671", "+1 415-555-2671", "+33 1 42 68 53 00"],
        ["12345", "2026-11-23", "555-0000", "+1 000 000 0000"],
    ),
    "card": (
        detectors.cards,
        ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"],
        ["4111 1111 1111 1112", "1234567890123", "0000 0000 0000 0000"],
    ),
    "iban": (
        detectors.ibans,
        ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606"],
        ["DE89 3704 0044 0532 0130 01", "GB82WEST12345698765433"],
    ),
    "ip": (
        detectors.ip_addresses,
        ["192.168.10.42", "2001:db8::8a2e:370:7334", "8.8.8.8"],
        ["999.1.1.1", "12:30:45", "1.2.3", "version 1.2.3.4.5"],
    ),
    "secret": (
        detectors.secrets,
        [
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_" + "a1B2" * 9,
            "sk-proj-" + "Xy9_" * 8,
            "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
            "xoxb-1234567890-abcdefghij",
            "lw_" + "Q" * 43,
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ],
        ["AKIA123", "ghp_short", "skeleton key", "task-force"],
    ),
    "url_credentials": (
        detectors.url_credentials,
        ["app:hunter2"],
        ["https://example.com/path", "https://user@example.com"],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_finds_every_planted_example(name: str) -> None:
    detect, planted, _ = CASES[name]
    for value in planted:
        text = f"please contact postgres://{value}@db.internal/x now" if name == "url_credentials" else f"x {value} y"
        found = [text[span.start : span.end] for span in detect(text)]
        assert found == [value], (name, value, found)


@pytest.mark.parametrize("name", sorted(CASES))
def test_leaves_near_misses(name: str) -> None:
    detect, _, misses = CASES[name]
    for value in misses:
        text = f"x {value} y"
        assert detect(text) == [], (name, value)


def test_luhn_and_iban_checksums() -> None:
    assert detectors.luhn_valid("4111111111111111")
    assert not detectors.luhn_valid("4111111111111112")
    assert detectors.iban_valid("DE89370400440532013000")
    assert not detectors.iban_valid("DE89370400440532013001")


def test_placeholders_are_never_detected_again() -> None:
    text = "call <PHONE:415555267100> or <EMAIL> about <CARD:411111111111>"
    found = detectors.phones(text) + detectors.cards(text) + detectors.emails(text)
    assert detectors.resolve(found, text) == []


def test_overlaps_go_to_the_first_detector() -> None:
    text = "card 4111 1111 1111 1111"
    spans = detectors.cards(text) + detectors.phones(text)
    assert [span.kind for span in detectors.resolve(spans, text)] == ["CARD"]


def test_custom_pattern() -> None:
    import re

    detect = detectors.pattern(re.compile(r"ORD-\d{6}"), "ORDER_ID")
    assert detect("order ORD-123456 shipped") == [Span(6, 16, "ORDER_ID")]


words = st.text(alphabet="abcdefghij klmnop,.!?", max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    before=words, after=words, name=st.sampled_from(sorted(set(CASES) - {"url_credentials"})), pick=st.integers(0, 6)
)
def test_planted_in_any_text(before: str, after: str, name: str, pick: int) -> None:
    """Planted anywhere between ordinary words, every entity is found with its exact bounds."""
    detect, planted, _ = CASES[name]
    value = planted[pick % len(planted)]
    text = f"{before} {value} {after}"
    found = [text[span.start : span.end] for span in detect(text)]
    assert value in found


# Characters that make the number patterns start, continue, stop or backtrack: ASCII and non-ASCII digits,
# their separators, uppercase (IBAN), hex letters (IPv6), letters g–z (where areas end), other text.
_NUMBERISH = st.text(alphabet="0123456789 ().-+:/AZDEabcfgxz٣_é\n", max_size=80)
_PATTERNS = {
    "card": detectors._CARD_RUN,
    "iban": detectors._IBAN,
    "ipv4": detectors._IPV4,
    "phone": detectors._PHONE_RUN,
}


@settings(max_examples=400, deadline=None)
@given(text=_NUMBERISH, name=st.sampled_from(sorted(_PATTERNS)))
def test_digit_areas_find_what_the_whole_text_holds(text: str, name: str) -> None:
    """Running a number pattern over the digit areas only finds exactly what a scan of the whole text finds."""
    regex = _PATTERNS[name]
    whole = [m.span() for m in regex.finditer(text)] if detectors.has_digits(text) else []
    areas = [m.span() for m in detectors._in_areas(regex, text, detectors.digit_areas(text))]
    assert areas == whole


def test_valid_phone_is_remembered() -> None:
    detectors.valid_phone.cache_clear()
    assert detectors.phones("call +44 20 7946 0958 or +44 20 7946 0958") == [
        Span(5, 21, "PHONE"),
        Span(25, 41, "PHONE"),
    ]
    assert detectors.valid_phone.cache_info().hits == 1


def _luhn_by_digit(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = (ord(char) - 48) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


@settings(max_examples=500, deadline=None)
@given(digits=st.text(alphabet="0123456789", min_size=1, max_size=25))
def test_luhn_summed_in_c_is_luhn(digits: str) -> None:
    """The byte-table Luhn sum agrees with the digit-by-digit definition."""
    assert detectors.luhn_valid(digits) == _luhn_by_digit(digits)
