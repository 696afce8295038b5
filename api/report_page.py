"""Make Evidently's standalone report page safe to serve: inert data, an escaped title, a strict CSP.

Evidently writes the report's data (column names, category values, titles) as JSON inside an inline
``<script>`` with plain ``json.dumps``, which leaves ``<``, ``>`` and ``&`` as they are: a feature named
``f</script><img src=x onerror=alert(1)>`` would close the script and add an element to the page.
Model and feature names come from whoever holds an ingest key, so the page is stored-XSS territory.

Escaping before Evidently is not an option (the names would show escaped in the report), and
Evidently has no hook for its JSON. So the page is repaired after rendering, where its shape is
known: the data block is the first ``<script>`` of the page, one ``var NAME = JSON;`` per line
(``json.dumps`` never writes a raw newline). Each JSON value is checked to be JSON and rewritten with
``<``, ``>``, ``&``, U+2028 and U+2029 as ``\\uXXXX`` escapes, which JSON and JavaScript read as the
same characters but the HTML tokenizer does not see. A page of any other shape is refused
(``ReportShapeError``) rather than served half-repaired.

The Content-Security-Policy then allows exactly the inline scripts of the repaired page, by their
SHA-256 hashes: a script that slipped in some other way would not run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass

# The data block: "<script>", then one "var NAME = VALUE;" per line, then "</script>".
_DATA_BLOCK = re.compile(r"<script>\n((?:[ \t]*var [A-Za-z_$][\w$]* = [^\n]*;\n)+)[ \t]*</script>")
_DATA_LINE = re.compile(r"([ \t]*var [A-Za-z_$][\w$]* = )([^\n]*);")
_SCRIPT_START = "<script"
_SCRIPT_END = "</script>"

# Characters that mean something to the HTML tokenizer inside <script> (or end a JS line in old engines).
_SCRIPT_JSON_ESCAPES = str.maketrans(
    {
        "<": "\\u003c",
        ">": "\\u003e",
        "&": "\\u0026",
        "\u2028": "\\u2028",
        "\u2029": "\\u2029",
    }
)


class ReportShapeError(RuntimeError):
    """Evidently's page did not have the shape this module knows how to make safe; it is not served."""


@dataclass(frozen=True, slots=True)
class SafeReport:
    """A report page ready to serve, with the headers it must be served with."""

    html: str
    headers: dict[str, str]


def script_json(json_text: str) -> str:
    """JSON text that can sit inside ``<script>``: ``</script>``, ``<!--`` and the like cannot occur in it.

    Outside strings JSON has none of the escaped characters, so a plain translation keeps the value.
    """
    return json_text.translate(_SCRIPT_JSON_ESCAPES)


def safe_report(page: str, title: str) -> SafeReport:
    """Repair Evidently's page (see the module docstring), give it ``title`` (escaped), list its scripts."""
    # Browsers turn CR and CRLF into LF before parsing; doing it here keeps the hashes equal to theirs.
    page = page.replace("\r\n", "\n").replace("\r", "\n")
    page = _inert_data(page)
    if "<head>" not in page:
        raise ReportShapeError("the report page has no <head>")
    page = page.replace("<head>", f"<head>\n<title>{html.escape(title)}</title>", 1)
    return SafeReport(html=page, headers=_security_headers([_sha256(script) for script in _inline_scripts(page)]))


def _inert_data(page: str) -> str:
    """Rewrite the JSON of the page's first script, the data block, so no markup can hide in it."""
    first = page.find(_SCRIPT_START)
    block = _DATA_BLOCK.match(page, first) if first >= 0 else None
    if block is None:
        raise ReportShapeError("the report page does not start its scripts with the data block")
    lines = []
    for line in block.group(1).removesuffix("\n").split("\n"):  # not splitlines(): U+2028 may be in JSON
        parts = _DATA_LINE.fullmatch(line)
        if parts is None:
            raise ReportShapeError("unexpected line in the report's data block")
        try:
            json.loads(parts.group(2))  # the value must be JSON, or escaping could change code
        except ValueError as exc:
            raise ReportShapeError("the report's data block holds something other than JSON") from exc
        lines.append(f"{parts.group(1)}{script_json(parts.group(2))};\n")
    return f"{page[: block.start()]}<script>\n{''.join(lines)}</script>{page[block.end() :]}"


def _inline_scripts(page: str) -> list[str]:
    """The text of every ``<script>`` element, read as an HTML tokenizer reads it once the data is inert.

    Inside a script only ``</script`` ends it (the page has no ``<!--`` in scripts, which would need
    the tokenizer's escaped states), so ``<script>`` text inside Evidently's own library is skipped.
    """
    scripts = []
    position = 0
    while (start := page.find(_SCRIPT_START, position)) >= 0:
        body = page.index(">", start) + 1
        end = page.find(_SCRIPT_END, body)
        if end < 0:
            raise ReportShapeError("a script of the report page is not closed")
        scripts.append(page[body:end])
        position = end + len(_SCRIPT_END)
    return scripts


def _sha256(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


def _security_headers(script_hashes: list[str]) -> dict[str, str]:
    """Headers for a report page: only its own scripts run, nothing is loaded, it cannot be framed."""
    policy = [
        "default-src 'none'",
        "script-src " + (" ".join(script_hashes) or "'none'"),
        # Evidently's bundle (MUI/emotion and Plotly) creates <style> elements and style attributes in
        # the browser, which no hash or nonce computed here can cover. Styles cannot run code; with the
        # data inert, no attacker text reaches them either.
        "style-src 'unsafe-inline'",
        "font-src data:",  # the icon font is embedded as a data: URL
        "img-src data: blob:",  # Plotly draws and downloads images from data:/blob: URLs
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    return {
        "Content-Security-Policy": "; ".join(policy),
        "X-Content-Type-Options": "nosniff",
    }
