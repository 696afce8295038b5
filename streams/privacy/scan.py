"""The first pass of redaction: one hyperscan scan of a text tells which detectors may find anything in it.

Every built-in detector's candidate patterns (``detectors.CANDIDATES``; a project's own regexes always
run with ``re``, see ``redact.Redactor``) are compiled into
one hyperscan database, each pattern reporting its first match only (``HS_FLAG_SINGLEMATCH``): a text
costs one call into C, and a detector whose candidates never match is not run. Python's ``re`` stays
the definition of what a detector finds; hyperscan only has to match *at least* what ``re`` matches,
so each pattern is compiled in a form that can match more, never less:

* assertions are dropped (``\\b``, ``^``, ``$``, ``\\A``, ``\\Z``, lookarounds): hyperscan reports every
  match, not the leftmost-longest sequence ``re`` walks, and supports no lookaround;
* the text is scanned as ASCII with every other character written ``?`` (one byte per character), and
  ``\\d``, ``\\w``, ``\\s`` also match ``?``; ``\\s`` also matches ``\\x1c``–``\\x1f``, as in ``re``;
* a pattern whose case-insensitive matching may reach non-ASCII letters (the Kelvin sign is a ``k``),
  or that holds non-ASCII characters or verbose syntax, counts as matched on every non-ASCII text.

A pattern hyperscan cannot compile even so (back-references, atomic groups, …) is logged when its
scanner is built (``redaction_pattern_not_compiled``, once per process for a policy's patterns) and its
detector runs with ``re`` on every text: redaction is never lost, it is only slower for that pattern.

Positions (``HS_FLAG_SOM_LEFTMOST``, every match reported) were tried, to run the detectors of numbers
only where their candidates are: hyperscan reports every end offset (a card's 16 digits several times),
~60 Python callbacks for a 1.5 KB text with six entities, which cost more than they saved (those
detectors already run over a text's digit areas only).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from typing import cast

import hyperscan
import structlog

log = structlog.get_logger(__name__)

_ASSERTIONS = frozenset("bBAZ")
_LOOKAROUNDS = ("(?=", "(?!", "(?<=", "(?<!")
_CASELESS = re.compile(r"\(\?[a-zA-Z]*i[a-zA-Z\-]*[:)]")
_CLASS_ESCAPES = {"d": "0-9?", "w": "\\w?", "s": "\\s\\x1c-\\x1f?"}
_ESCAPES = {name: f"[{escape}]" for name, escape in _CLASS_ESCAPES.items()}
# first match of each pattern only; empty matches allowed (a pattern whose assertions were dropped may
# match the empty string: then it matches every text, which only means its detector runs)
_FLAGS = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY


def _group_end(pattern: str, start: int) -> int:
    """The index after the ``)`` closing the group that opens at ``start``."""
    depth, index, in_class = 0, start, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[index + 1 : index + 2] == "]":  # a literal "]" first in a class
                index += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise ValueError("unbalanced group")


def hyperscan_form(pattern: str) -> tuple[str, bool]:
    """``pattern`` (Python ``re`` syntax, ASCII) rewritten to match at least what it matches in a text
    written as ASCII with ``?`` for every other character (see the module's docstring), and whether that
    holds on non-ASCII texts too: a negated class with a range or ``\\D``, ``\\W``, ``\\S`` in it may leave
    out the ``?`` a non-ASCII character became (on ASCII texts it is exact)."""
    out: list[str] = []
    index, class_start, negated, non_ascii_exact = 0, -1, False, True
    while index < len(pattern):
        char = pattern[index]
        in_class = class_start >= 0
        if char == "\\":
            escaped = pattern[index + 1 : index + 2]
            if in_class:
                if negated and escaped in "DWS":
                    non_ascii_exact = False
                if escaped in _CLASS_ESCAPES and not negated:
                    out.append(_CLASS_ESCAPES[escaped])
                elif escaped == "b":
                    out.append("\\x08")
                elif not (negated and escaped == "?"):  # "?" may stand for any non-ASCII character
                    out.append(pattern[index : index + 2])
            elif escaped in _ESCAPES:
                out.append(_ESCAPES[escaped])
            elif escaped not in _ASSERTIONS:
                out.append(pattern[index : index + 2])
            index += 2
            continue
        if in_class:
            if char == "]" and index > class_start:
                class_start = -1
            elif char == "-" and negated and index > class_start and pattern[index + 1 : index + 2] not in ("]", ""):
                non_ascii_exact = False  # a range: it may hold the "?"
            if not (negated and char == "?" and class_start >= 0):
                out.append(char)
        elif char == "[":
            negated = pattern[index + 1 : index + 2] == "^"
            out.append("[^" if negated else "[")
            index += 2 if negated else 1
            class_start = index  # a "]" right here is a literal
            continue
        elif pattern.startswith(_LOOKAROUNDS, index):
            index = _group_end(pattern, index)
            continue
        elif pattern.startswith("(?P<", index):
            index = pattern.index(">", index) + 1
            out.append("(?:")
            continue
        elif char not in "^$":
            out.append(char)
        index += 1
    return "".join(out), non_ascii_exact


def _flags(regex: re.Pattern[str]) -> int:
    flags = _FLAGS
    if regex.flags & re.IGNORECASE:
        flags |= hyperscan.HS_FLAG_CASELESS
    if regex.flags & re.DOTALL:
        flags |= hyperscan.HS_FLAG_DOTALL
    return flags


def _ascii_only(regex: re.Pattern[str]) -> bool:
    """Whether ``regex`` matches nothing different on a text's non-ASCII characters written ``?``:
    no non-ASCII literal, no case-insensitive matching (``k`` matches the Kelvin sign), no verbose syntax."""
    return (
        regex.pattern.isascii()
        and not regex.flags & (re.IGNORECASE | re.VERBOSE)
        and not _CASELESS.search(regex.pattern)
    )


@functools.lru_cache(maxsize=1024)
def _compiles(form: str, flags: int) -> str | None:
    """None if hyperscan compiles ``form``, else hyperscan's reason."""
    try:
        hyperscan.Database().compile(expressions=[form.encode()], ids=[0], elements=1, flags=[flags])
    except hyperscan.error as exc:
        return str(exc)
    return None


def _on_match(pattern_id: int, start: int, end: int, flags: int, hits: object) -> None:
    cast("set[int]", hits).add(pattern_id)


class Scanner:
    """One hyperscan database for groups of patterns (a group per detector, in the redactor's order):
    ``hits(text)`` is the set of groups one of whose patterns may match ``text``."""

    def __init__(self, groups: Sequence[tuple[str, Sequence[re.Pattern[str]]]]) -> None:
        forms: list[bytes] = []
        ids: list[int] = []
        flags: list[int] = []
        self._always: set[int] = set()  # groups run on every text (a pattern hyperscan cannot take)
        self._non_ascii: set[int] = set()  # groups run on every non-ASCII text
        for group, (name, patterns) in enumerate(groups):
            for regex in patterns:
                try:
                    form, exact = hyperscan_form(regex.pattern) if regex.pattern.isascii() else ("", False)
                    reason = _compiles(form, _flags(regex)) if regex.pattern.isascii() else "non-ASCII pattern"
                except ValueError as exc:  # a syntax the rewrite does not follow: run it with re
                    reason = str(exc)
                if reason is not None:
                    log.warning(
                        "redaction_pattern_not_compiled", kind=name, engine="hyperscan", fallback="re", reason=reason
                    )
                    self._always.add(group)
                    continue
                forms.append(form.encode())
                ids.append(group)
                flags.append(_flags(regex))
                if not exact or not _ascii_only(regex):
                    self._non_ascii.add(group)
        self._database: hyperscan.Database | None = None
        if forms:
            database = hyperscan.Database()
            try:
                database.compile(expressions=forms, ids=ids, elements=len(forms), flags=flags)
                self._database = database
            except hyperscan.error as exc:  # each compiled alone; together too large: every detector runs
                log.warning("redaction_first_pass_not_compiled", engine="hyperscan", fallback="re", reason=str(exc))
                self._always.update(range(len(groups)))
        self._local = threading.local()  # hyperscan scratch space is per thread (scans release the GIL)

    def hits(self, text: str) -> set[int]:
        """The groups whose candidates may match ``text``."""
        hits = set(self._always)
        if self._database is None:
            return hits
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._database)
        if text.isascii():
            data = text.encode("ascii")
        else:
            data = text.encode("ascii", "replace")
            hits |= self._non_ascii
        self._database.scan(data, match_event_handler=_on_match, context=hits, scratch=scratch)
        return hits


@functools.lru_cache(maxsize=256)
def scanner(groups: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]) -> Scanner:
    """The scanner of ``groups``, compiled once per process (policies are reloaded every 10 s)."""
    return Scanner(groups)
