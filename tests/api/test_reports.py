"""The drift report page: hostile model, feature and category names stay text, under a strict CSP.

The page is read with html5lib, a parser that follows the WHATWG HTML standard as browsers do, so
"no element was created" means what it means in a browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree.ElementTree import Element

import html5lib
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from api.report_page import ReportShapeError, safe_report, script_json
from loopwatch.process import serving_app
from tests.conftest import Api, make_settings

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = 60
MODEL = "m</title><img src=z onerror=alert(5)>"
FEATURE = "f</script><img src=x onerror=alert(1)>"
CATEGORY = "</script><svg onload=alert(2)><!--"
SEPARATED = "g\u2028</SCRIPT >\u2029<iframe srcdoc=x>"  # line separators, upper case, space in the end tag
HOSTILE = (MODEL, FEATURE, CATEGORY, SEPARATED)
# Every element Evidently's page template has; anything else came from data.
TEMPLATE_ELEMENTS = {"html", "head", "title", "meta", "style", "script", "body", "div"}


@pytest.fixture
def report_api(data_dir: Path) -> Iterator[Api]:
    settings = make_settings(data_dir, window_seconds=WINDOW, allowed_lateness_seconds=0, reference_min_rows=50)
    with TestClient(serving_app(settings)) as client:
        yield Api(client)
        storage = client.app.state.runtime.storage
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def _events(window: int, n: int, seed: int) -> list[dict[str, object]]:
    """``n`` events of the hostile model in one window, with hostile feature names and values."""
    rng = random.Random(seed)
    return [
        {
            "event_id": f"w{window}-{i}",
            "model": MODEL,
            "timestamp": (T0 + timedelta(seconds=window * WINDOW + i * WINDOW / n)).isoformat(),
            "latency_ms": 100.0,
            "features": {
                FEATURE: rng.gauss(40 + 10 * window, 5),
                SEPARATED: rng.random(),
                "plan": rng.choice([CATEGORY, "a"]),
            },
        }
        for i in range(n)
    ]


@pytest.fixture
def report(report_api: Api) -> tuple[object, str]:
    """The report of window 1 against the model's first window (its default reference)."""
    headers = report_api.key("xss")
    for window, n in ((0, 200), (1, 200), (5, 1)):  # the event in window 5 closes windows 0 and 1
        response = report_api.client.post(
            "/v1/inferences", content=orjson.dumps(_events(window, n, window)), headers=headers
        )
        assert response.status_code == 202, response.text
    report_api.wait_written()
    start = T0 + timedelta(seconds=WINDOW)
    response = report_api.client.get(
        "/v1/reports/drift", headers=headers, params={"model": MODEL, "window_start": start.isoformat()}
    )
    assert response.status_code == 200, response.text[:500]
    title = f"loopwatch drift: {MODEL} {start.isoformat()} – {(start + timedelta(seconds=WINDOW)).isoformat()}"
    return response, title


def _parse(page: str) -> Element:
    return html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)


def _data(tree: Element) -> list[object]:
    """The JSON values of the page's data script, decoded as the browser's JavaScript would."""
    script = next(tree.iter("script"))  # Evidently's data block comes first
    values = re.findall(r"^\s*var \w+ = (.*);$", script.text or "", flags=re.MULTILINE)
    return [json.loads(value) for value in values]


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _csp(response: object) -> dict[str, list[str]]:
    header = response.headers["content-security-policy"]  # type: ignore[attr-defined]
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in header.split(";")) if d}


class TestHostileNames:
    """Names from ingest never become markup; they still show as text, so the report stays useful."""

    def test_no_element_or_attribute_comes_from_input(self, report: tuple[object, str]) -> None:
        response, _title = report
        tree = _parse(response.text)  # type: ignore[attr-defined]
        elements = list(tree.iter())
        assert {element.tag for element in elements} <= TEMPLATE_ELEMENTS
        assert not [element for element in elements if element.tag in ("img", "svg", "iframe")]
        attributes = [(name, value) for element in elements for name, value in element.attrib.items()]
        assert not [name for name, _ in attributes if name.lower().startswith("on")]
        assert not [value for _, value in attributes if "alert(" in value]
        assert len(list(tree.iter("script"))) == 4  # data, global shim, Evidently's bundle, draw call

    def test_names_are_still_there_as_text(self, report: tuple[object, str]) -> None:
        response, title = report
        tree = _parse(response.text)  # type: ignore[attr-defined]
        assert tree.findtext(".//title") == title
        shown = {text for value in _data(tree) for text in _strings(value)}
        assert f"feature.{FEATURE}" in shown
        assert f"feature.{SEPARATED}" in shown
        assert CATEGORY in shown


class TestHeaders:
    """Only the page's own scripts may run; nothing is fetched; the page cannot be framed or sniffed."""

    def test_strict_csp_that_still_lets_the_report_run(self, report: tuple[object, str]) -> None:
        response, _title = report
        policy = _csp(response)
        assert policy["default-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["base-uri"] == ["'none'"]
        assert policy["form-action"] == ["'none'"]
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:"} & set(policy["script-src"])
        # every inline script the standard parser finds is allowed by its hash, and nothing else is
        scripts = [s.text or "" for s in _parse(response.text).iter("script")]  # type: ignore[attr-defined]
        hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in scripts}
        assert set(policy["script-src"]) == hashes
        assert response.headers["x-content-type-options"] == "nosniff"  # type: ignore[attr-defined]
        assert response.headers["content-type"].startswith("text/html")  # type: ignore[attr-defined]


class TestPageRepair:
    """The repair refuses pages it does not understand instead of serving them half-safe."""

    @pytest.mark.parametrize(
        "page",
        [
            "<html><head></head><body><script>var x = 1;</script></body></html>",  # no data block
            '<html><head><script>\n  var x = {"a": 1}; alert(1);\n</script></head></html>',  # not only JSON
            "<html><head><script>\n  var x = {'a': 1};\n</script></head></html>",  # a JS object, not JSON
            "<html><body><script>\n  var x = 1;\n</script></body></html>",  # no <head> for the title
        ],
    )
    def test_unexpected_shapes_refused(self, page: str) -> None:
        with pytest.raises(ReportShapeError):
            safe_report(page, "t")

    def test_data_block_closing_its_script_is_repaired(self) -> None:
        page = '<html><head><script>\n  var x = {"a": "</script><img src=x>"};\n</script></head><body></body></html>'
        tree = _parse(safe_report(page, "t").html)
        assert not list(tree.iter("img"))
        assert _data(tree) == [{"a": "</script><img src=x>"}]

    @given(
        st.recursive(
            st.text() | st.integers() | st.none(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)
        )
    )
    def test_script_json_keeps_the_value_and_hides_markup(self, value: object) -> None:
        escaped = script_json(json.dumps(value))
        assert json.loads(escaped) == value
        assert not {"<", ">", "&", "\u2028", "\u2029"} & set(escaped)
