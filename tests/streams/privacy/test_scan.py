"""The hyperscan first pass finds exactly what ``re`` alone finds, on any text, and decides which detectors run."""

from __future__ import annotations

import re

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.privacy import CustomPattern, RedactionPolicy
from streams.privacy import scan
from streams.privacy.redact import Redactor
from tests.privacy_samples import PLANTED, in_text

# A project's own patterns: plain, case-insensitive (reaches non-ASCII letters), with assertions and
# lookarounds (dropped for hyperscan), a negated class with a range, a non-ASCII literal, and two that
# hyperscan cannot compile at all (a back-reference, an atomic group): those run with ``re`` on every text.
CUSTOM = [
    CustomPattern(name="ORDER_ID", regex=r"ORD-\d{6}"),
    CustomPattern(name="KEY", regex=r"(?i)\bkey-\d{3,}\b"),
    CustomPattern(name="ACCOUNT", regex=r"(?<=acct=)\d{4}(?!\d)"),
    CustomPattern(name="QUOTED", regex=r"'[^'a-c]{2,6}'"),
    CustomPattern(name="NUMERO", regex=r"№\s?\d+"),
    CustomPattern(name="REPEAT", regex=r"(\w)\1{3}"),
    CustomPattern(name="ATOMIC", regex=r"(?>zz|z)z[0-9]"),
    CustomPattern(name="SPACED", regex=r"x\sy\Z"),
]
POLICY = RedactionPolicy(custom=CUSTOM)
FIRST_PASS = Redactor(POLICY)
RE_ONLY = Redactor(POLICY, first_pass=False)

# Near misses and hostile pieces: invalid numbers, non-ASCII digits and spaces, case-folding letters,
# an invalid surrogate, the separators number patterns backtrack over, custom patterns' triggers.
HOSTILE = [
    "4111 1111 1111 1112",
    "DE89 3704 0044 0532 0130 01",
    "999.1.1.1",
    "12:30:45",
    "dead::beef",
    "+1 000 000 0000",
    "٣٤٥٦٧٨٩٠١٢٣٤٥",
    "4111\u20031111\u20031111\u20031111",
    "KEY-1234",
    "\u212aey-555",  # a Kelvin sign: "k" to a case-insensitive pattern
    "\ud800",
    "\x1c",
    "acct=1234",
    "'xyz?'",
    "'é?é'",
    "№ 42",
    "ORD-123456",
    "zzz7",
    "aaaa",
    "x\u2003y",
    "x\x1fy",
    "ana@",
    "@example.com",
    "sk-",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "ghp_" + "a1B2" * 9,
    "(415) 555-2671",
]
ENTITIES = [in_text(kind, value) for kind, values in PLANTED.items() for value in values]
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzAKZ0123456789 ().-+:/@_'?é٣\u2003\n", max_size=20)
piece = st.one_of(st.sampled_from(ENTITIES), st.sampled_from(HOSTILE), words, st.text(max_size=12))


def same_spans(text: str) -> None:
    assert FIRST_PASS.spans(text) == RE_ONLY.spans(text), text


class TestSameAsRe:
    """The first pass never changes what is found: it only skips detectors that cannot find anything."""

    @settings(max_examples=400, deadline=None)
    @given(parts=st.lists(piece, max_size=12), separators=st.lists(st.sampled_from([" ", "", "\n", ", ", "-"])))
    def test_generated_texts(self, parts: list[str], separators: list[str]) -> None:
        text = ""
        for index, part in enumerate(parts):
            text += part + (separators[index % len(separators)] if separators else " ")
        same_spans(text)

    def test_every_hostile_piece_and_entity_alone(self) -> None:
        for value in HOSTILE + ENTITIES:
            for text in (value, f"x {value} y", f"é{value}é"):
                same_spans(text)

    @pytest.mark.parametrize(
        "text",
        [
            "7" * 100_000,
            "1 " * 50_000,
            ("4111 1111 1111 1111 " + "the order shipped " * 40) * 140,
            ("é" * 999 + " +44 20 7946 0958 ") * 100,
            " ".join(ENTITIES + HOSTILE) * 150,
        ],
        ids=["digits", "digit-runs", "cards-in-prose", "non-ascii", "everything"],
    )
    def test_texts_of_100_kb(self, text: str) -> None:
        assert len(text) >= 100_000
        same_spans(text)


class TestFirstPass:
    """One scan tells which detectors have a candidate; the others do not run."""

    def test_clean_text_runs_no_detector(self) -> None:
        redactor = Redactor(RedactionPolicy())
        assert redactor.candidates("the parcel has not moved for three days, please reply") == set()

    def test_only_the_detectors_with_candidates_run(self) -> None:
        redactor = Redactor(RedactionPolicy(detectors=["email", "card", "phone"]))
        assert redactor.candidates("mail ana@example.com") == {0}  # email
        assert redactor.candidates("card 4111 1111 1111 1111") == {1, 2}  # a card's digits are a phone's candidate
        assert redactor.candidates("call (415) 555-2671") == {2}

    def test_a_pattern_hyperscan_cannot_compile_runs_with_re_and_is_logged(self) -> None:
        repeat = re.compile(r"(\w)\1{3}")
        with structlog.testing.capture_logs() as logs:
            scanner = scan.Scanner([("REPEAT", (repeat,)), ("ORDER_ID", (re.compile(r"ORD-\d{6}"),))])
        assert [(log["event"], log["kind"], log["fallback"]) for log in logs] == [
            ("redaction_pattern_not_compiled", "REPEAT", "re")
        ]
        assert scanner.hits("nothing here") == {0}  # always run
        redactor = Redactor(RedactionPolicy(detectors=[], custom=[CustomPattern(name="REPEAT", regex=repeat.pattern)]))
        assert redactor.text("id aaaa7") == "id <REPEAT>7"

    def test_a_projects_own_patterns_run_on_every_text(self) -> None:
        """Custom regexes are never behind the first pass: syntax a rewrite for hyperscan could miss
        (an escaped non-ASCII letter, Python's ``{,n}``, a comment inside a lookahead) still redacts."""
        custom = [
            CustomPattern(name="CAFE", regex=r"caf\xe9"),
            CustomPattern(name="SHORT", regex=r"ORD-\d{,6}"),
            CustomPattern(name="COMMENTED", regex=r"(?=a(?#(b))a7"),
            CUSTOM[1],
        ]
        redactor = Redactor(RedactionPolicy(detectors=["email"], custom=custom))
        assert redactor.candidates("a clean text") == {1, 2, 3, 4}  # email (0) has no candidate
        text = "caf\xe9 ORD-12 a7 \u212aey-555 ana@example.com"
        assert redactor.text(text) == "<CAFE> <SHORT> <COMMENTED> <KEY> <EMAIL>"
        assert redactor.text(text) == Redactor(
            RedactionPolicy(detectors=["email"], custom=custom), first_pass=False
        ).text(text)

    def test_a_pattern_the_rewrite_cannot_follow_runs_with_re(self) -> None:
        commented = re.compile(r"(?=a(?#(b))a7")
        with structlog.testing.capture_logs() as logs:
            scanner = scan.Scanner([("COMMENTED", (commented,))])
        assert [(log["event"], log["fallback"]) for log in logs] == [("redaction_pattern_not_compiled", "re")]
        assert scanner.hits("nothing here") == {0}


class TestHyperscanForm:
    """Patterns rewritten to match at least what ``re`` matches on a text written as ASCII and ``?``."""

    @pytest.mark.parametrize(
        ("pattern", "form", "exact"),
        [
            (r"AKIA[0-9A-Z]{16}\b", "AKIA[0-9A-Z]{16}", True),
            (r"(?<![\w:])a(?![\w:])", "a", True),
            (r"\d[\d ().\-]*\d", "[0-9?][0-9? ().\\-]*[0-9?]", True),
            (r"^x\s$", "x[\\s\\x1c-\\x1f?]", True),
            (r"[^\s:/@?]+", "[^\\s:/@]+", True),
            (r"[^a-c]", "[^a-c]", False),
            (r"[^\S]", "[^\\S]", False),
            (r"[]a]", "[]a]", True),
            (r"(?P<id>\d)", "(?:[0-9?])", True),
        ],
    )
    def test_forms(self, pattern: str, form: str, exact: bool) -> None:
        assert scan.hyperscan_form(pattern) == (form, exact)
