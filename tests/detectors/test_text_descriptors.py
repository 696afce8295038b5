"""Text descriptors equal per-character Python definitions and evidently's matching features."""

from __future__ import annotations

import re

import numpy as np
import pytest

from detectors import DESCRIPTOR_NAMES, text_descriptors

SAMPLES: list[str | None] = [
    "Hello world. How are you?",
    None,
    "",
    "   \n\t ",
    "I can\u2019t help with that.\n```python\nprint('hi')\n```",
    "Привет МИР 123 😀 — ok",
    "Mr. Smith e.g. went home. Then? Yes! Done.",
    "AS AN AI language model I am unable to comply",
    "i cannot do that",
    "a\u3000b\u00a0c\u2028d\x85e",
    "x" * 500,
    "Numbers: 1, 2, 3.14 and ٣ (arabic three)",
    "I'm sorry, but no",
    "We scan cannot-words? no refusal here; Iran is a country.",
]

_SENTENCE = re.compile(r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?)\s")


def _reference(text: str) -> dict[str, float]:
    """Straightforward per-character definitions of every descriptor."""
    n = len(text)
    words = len(text.split())
    letters = sum(c.isalpha() for c in text)
    non_blank = sum(not c.isspace() for c in text)
    return {
        "length_chars": n,
        "word_count": words,
        "sentence_count": 0 if not text.strip() else max(1, len(_SENTENCE.split(text))),
        "mean_word_length": non_blank / words if words else 0.0,
        "non_letter_share": sum(not c.isalpha() and c != " " for c in text) / n if n else 0.0,
        "uppercase_share": sum(c.isupper() and c.isalpha() for c in text) / letters if letters else 0.0,
        "digit_share": sum(c.isdigit() for c in text) / n if n else 0.0,
        "newline_count": text.count("\n"),
        "has_question": float("?" in text),
        "refusal": float(
            any(
                phrase in text.lower().replace("\u2019", "'")
                for phrase in ("i can't", "i cannot", "i am unable to", "as an ai", "i'm sorry, but")
            )
        ),
        "has_code_block": float("```" in text),
    }


class TestTextDescriptors:
    """Vectorised descriptors against per-text Python and evidently's features."""

    def test_matches_reference_definitions(self) -> None:
        result = text_descriptors(SAMPLES)
        assert tuple(result) == DESCRIPTOR_NAMES
        for i, text in enumerate(SAMPLES):
            if text is None:
                assert all(np.isnan(result[name][i]) for name in DESCRIPTOR_NAMES)
                continue
            expected = _reference(text)
            for name in DESCRIPTOR_NAMES:
                assert result[name][i] == pytest.approx(expected[name], abs=1e-12), (name, text)

    def test_refusal_markers(self) -> None:
        flags = text_descriptors(
            [
                "I can't do that",
                "I won't be able to help",
                "I'm unable to",
                "As an AI, I",
                "icannot",
                "Can I?",
            ]
        )["refusal"]
        np.testing.assert_array_equal(flags, [1, 1, 1, 1, 0, 0])

    def test_equal_to_evidently_features(self) -> None:
        pytest.importorskip("evidently")
        from evidently.legacy.features.non_letter_character_percentage_feature import (
            NonLetterCharacterPercentage,
        )
        from evidently.legacy.features.sentence_count_feature import SentenceCount
        from evidently.legacy.features.text_length_feature import TextLength

        texts = [t for t in SAMPLES if t and t.strip()]
        result = text_descriptors(texts)
        non_letter, sentences, length = NonLetterCharacterPercentage("t"), SentenceCount("t"), TextLength("t")
        for i, text in enumerate(texts):
            assert result["non_letter_share"][i] * 100 == pytest.approx(non_letter.apply(text))
            assert result["sentence_count"][i] == sentences.apply(text)
            assert result["length_chars"][i] == length.apply(text)

    def test_empty_input(self) -> None:
        result = text_descriptors([])
        assert all(values.size == 0 for values in result.values())
        assert text_descriptors([""])["sentence_count"][0] == 0.0
