"""Cheap, offline descriptors of LLM inputs/outputs, tracked as numeric drift features.

No model, vocabulary or network: every descriptor is a deterministic function of the
string, so a shift in its distribution (tested with the usual numeric drift tests)
means the texts changed, not the tooling. ``None`` texts give NaN in every
descriptor -- a missing response is dropped by drift tests and should be counted
separately, not mistaken for an empty one.

Descriptors (one float64 array each, aligned with the input):

``length_chars``
    ``len(text)`` in code points (evidently's ``TextLength``). Catches truncation and
    verbosity changes.
``word_count``
    Whitespace-separated tokens, ``len(text.split())``. evidently's ``WordCount``
    first deletes everything but ASCII letters, which counts 0 words in Cyrillic or
    CJK; we keep Unicode words.
``sentence_count``
    evidently's ``SentenceCount`` rule: split on whitespace that follows ``.`` or
    ``?`` unless it looks like an abbreviation (``e.g.``, ``Mr.``); at least 1 for
    non-blank text, 0 for blank text (evidently says 1).
``mean_word_length``
    Non-whitespace characters / ``word_count`` (0 without words).
``non_letter_share``
    Share of characters that are neither letters (``str.isalpha``) nor the space
    character -- evidently's ``NonLetterCharacterPercentage`` / 100. Rises with code,
    markup, numbers and emoji.
``uppercase_share``
    Uppercase letters / letters (0 without letters). Shouting, acronyms, code constants.
``digit_share``
    ``str.isdigit`` characters / characters. Tables, IDs, numeric answers.
``newline_count``
    ``text.count("\\n")``. Formatting changes (lists, code, paragraphs).
``has_question``
    1 if the text contains ``?``. For outputs: the model asking back instead of answering.
``refusal``
    1 if a common refusal/deflection phrase appears (``I can't``, ``I cannot``,
    ``I'm unable to``, ``as an AI``, ``I'm sorry, but`` ...; case-insensitive, straight
    or curly apostrophes). A heuristic marker for refusal-rate drift, not a classifier.
``has_code_block``
    1 if a Markdown code fence `````` ``` `````` appears.

Everything is computed for all texts at once (~0.5 us/text): the texts are joined
with NUL separators, viewed as UTF-32 code points and classified with a lookup table
built from Python's own ``str`` predicates (so counts equal per-character Python,
including ``str.split`` word boundaries), then summed per text with cumulative
sums; the regexes run once over the joined string and matches are mapped back to
their text. A NUL inside a text acts as a word boundary.
"""

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

DESCRIPTOR_NAMES: tuple[str, ...] = (
    "length_chars",
    "word_count",
    "sentence_count",
    "mean_word_length",
    "non_letter_share",
    "uppercase_share",
    "digit_share",
    "newline_count",
    "has_question",
    "refusal",
    "has_code_block",
)
YES_NO_DESCRIPTORS: frozenset[str] = frozenset({"has_question", "refusal", "has_code_block"})  # 1.0 yes, 0.0 no

_SENTENCE_SPLIT = re.compile(r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?)\s")
"""Copied from evidently ``legacy/features/sentence_count_feature.py``."""

_APOS = "['\u2019]"
_REFUSAL = re.compile(
    r"(?=[iIaA])"  # every alternative starts with i/a: lets the scanner skip most positions
    r"(?:\bi\s+(?:can" + _APOS + r"?t|cannot|can\s+not|won" + _APOS + r"t\s+be\s+able)\b"
    r"|\bi(?:" + _APOS + r"m|\s+am)\s+(?:unable|not\s+able)\s+to\b"
    r"|\bas\s+an\s+ai\b"
    r"|\bi(?:" + _APOS + r"m|\s+am)\s+sorry,?\s+but\b"
    r"|\bi\s+(?:must|have\s+to)\s+decline\b)",
    re.IGNORECASE,
)

_ALPHA, _UPPER, _DIGIT, _SPACE_CHAR, _WHITESPACE = 1, 2, 4, 8, 16
_SEPARATOR = "\x00"
"""Joins the texts; it is never whitespace, a letter or matched by the regexes' lookbehinds,
so no match can straddle two texts."""


@lru_cache(maxsize=1)
def _bmp_table() -> np.ndarray:
    """Class bits for every Basic Multilingual Plane code point (built once, ~30 ms)."""
    return np.fromiter((_classify(chr(cp)) for cp in range(0x10000)), dtype=np.uint8, count=0x10000)


def _classify(ch: str) -> int:
    bits = 0
    if ch.isalpha():
        bits |= _ALPHA
        if ch.isupper():
            bits |= _UPPER
    if ch.isdigit():
        bits |= _DIGIT
    if ch == " ":
        bits |= _SPACE_CHAR
    if ch.isspace():
        bits |= _WHITESPACE
    return bits


def _class_bits(code_points: np.ndarray) -> np.ndarray:
    bits: np.ndarray = _bmp_table()[np.minimum(code_points, 0xFFFF)]
    astral = code_points > 0xFFFF
    if astral.any():
        uniq, inverse = np.unique(code_points[astral], return_inverse=True)
        bits[astral] = np.asarray([_classify(chr(int(cp))) for cp in uniq], dtype=np.uint8)[inverse]
    return bits


class _Segments:
    """Maps per-character flags and regex matches of the joined string back to texts."""

    def __init__(self, starts: np.ndarray, lengths: np.ndarray, total: int) -> None:
        self.starts = starts
        self.empty = lengths == 0
        # reduceat needs in-range indices; empty texts are zeroed afterwards.
        self._indices = np.minimum(starts, max(total - 1, 0))
        # reduceat segments run up to the next start, i.e. they include the separator.
        self._in_text = np.ones(total, dtype=bool)
        self._in_text[starts[1:] - 1] = False

    def sums(self, flags: np.ndarray) -> np.ndarray:
        """Per-text sum of a boolean per-character flag (``np.add.reduceat`` + empty-text fix)."""
        if flags.size == 0:
            return np.zeros(self.starts.size, dtype=np.float64)
        masked = (flags & self._in_text).view(np.uint8)
        out = np.add.reduceat(masked, self._indices, dtype=np.int64).astype(np.float64)
        out[self.empty] = 0.0
        return out

    def count_positions(self, positions: list[int]) -> np.ndarray:
        """Number of match positions that fall in each text."""
        owner = np.searchsorted(self.starts, np.asarray(positions, dtype=np.int64), side="right") - 1
        return np.bincount(owner, minlength=self.starts.size).astype(np.float64)


_CODE_FENCE = re.compile("```")
_SENTENCE_CANDIDATE = re.compile(r"[.?]\s")
"""Cheap necessary condition for :data:`_SENTENCE_SPLIT`; the full rule (with its
lookbehinds) is then checked only at these positions -- 5x faster than scanning."""


def _sentence_breaks(joined: str) -> list[int]:
    match = _SENTENCE_SPLIT.match
    return [m.start() + 1 for m in _SENTENCE_CANDIDATE.finditer(joined) if match(joined, m.start() + 1)]


def _match_starts(pattern: re.Pattern[str], joined: str) -> list[int]:
    return [m.start() for m in pattern.finditer(joined)]


def text_descriptors(texts: Sequence[str | None]) -> dict[str, np.ndarray]:
    """Compute every descriptor in :data:`DESCRIPTOR_NAMES` for each text (see module docstring)."""
    n = len(texts)
    present = np.fromiter((t is not None for t in texts), dtype=bool, count=n)
    strings = [t if t is not None else "" for t in texts]
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    starts = np.concatenate(([0], np.cumsum(lengths[:-1] + 1))) if n else np.zeros(0, dtype=np.int64)
    joined = _SEPARATOR.join(strings)
    segments = _Segments(starts, lengths, len(joined))
    code_points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)

    bits = _class_bits(code_points)
    alpha = (bits & _ALPHA) != 0
    whitespace = (bits & _WHITESPACE) != 0
    boundary = whitespace | (code_points == 0)
    word_start = ~boundary & np.concatenate(([True], boundary[:-1]))

    chars = lengths.astype(np.float64)
    words = segments.sums(word_start)
    letters = segments.sums(alpha)
    non_blank = chars - segments.sums(whitespace)
    sentence_breaks = segments.count_positions(_sentence_breaks(joined))
    with np.errstate(divide="ignore", invalid="ignore"):
        result = {
            "length_chars": chars,
            "word_count": words,
            "sentence_count": np.where(non_blank > 0, sentence_breaks + 1, 0.0),
            "mean_word_length": np.where(words > 0, non_blank / words, 0.0),
            "non_letter_share": np.where(chars > 0, segments.sums(~alpha & ((bits & _SPACE_CHAR) == 0)) / chars, 0.0),
            "uppercase_share": np.where(letters > 0, segments.sums((bits & _UPPER) != 0) / letters, 0.0),
            "digit_share": np.where(chars > 0, segments.sums((bits & _DIGIT) != 0) / chars, 0.0),
            "newline_count": segments.sums(code_points == 10),
            "has_question": (segments.sums(code_points == 63) > 0).astype(np.float64),
            "refusal": (segments.count_positions(_match_starts(_REFUSAL, joined)) > 0).astype(np.float64),
            "has_code_block": (segments.count_positions(_match_starts(_CODE_FENCE, joined)) > 0).astype(np.float64),
        }
    if not present.all():
        for values in result.values():
            values[~present] = np.nan
    return result


__all__ = ["DESCRIPTOR_NAMES", "text_descriptors"]
