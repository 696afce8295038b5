"""One wording of an alert: the family verdict in words, the breach of any monitor in its unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.stats import StatRow
from streams.delivery.wording import breach_words, column_change, family_words

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _row(metric: str, value: float, **fields: object) -> StatRow:
    family = "drift" if "drift" in metric else "latency" if "latency" in metric else "quality"
    return StatRow("p", "m", START, START + timedelta(minutes=5), family, metric, value, **fields)  # type: ignore[arg-type]


RESPONSE = {
    "drifted_columns": [f"response.c{i}" for i in range(8)],
    "columns": 11,
    "evidence": [
        {
            "column": "response.length_chars",
            "effect": 0.4,
            "drifted": True,
            "reference_mean": 120.0,
            "current_mean": 300.5,
        },
        {"column": "response.refusal", "effect": 1.0, "drifted": True, "reference_mean": 0.0, "current_mean": 1.0},
        {"column": "response.words", "effect": 2.0, "drifted": False, "reference_mean": 1.0, "current_mean": 9.0},
    ],
}


class TestFamilyWords:
    """Drifted of tested columns of that family, and the drifted column with the largest effect."""

    def test_drifted_family(self) -> None:
        assert (
            family_words("response", RESPONSE)
            == "response family drifted: 8 of 11 columns, response.refusal 0 % → 100 %"
        )

    def test_stable_family(self) -> None:
        assert (
            family_words("prompt", {"drifted_columns": [], "columns": 11}) == "prompt family stable (11 columns tested)"
        )

    def test_units(self) -> None:
        assert column_change("prompt.length_chars", 120.0, 300.5) == "prompt.length_chars 120 → 300"
        assert column_change("response.uppercase_share", 0.02, 0.41) == "response.uppercase_share 2 % → 41 %"
        assert column_change("feature.age", None, 3.0) == "feature.age"


class TestBreachWords:
    """Each condition says its numbers against its own threshold, never a share against an alpha."""

    def test_family_rows_name_every_breaching_family(self) -> None:
        rows = [_row("family_drift", 8 / 11, dimension="response", p_value=1e-9, threshold=0.002, details=RESPONSE)]
        text = breach_words(rows, condition="flagged", threshold=None)
        assert text == "response family drifted: 8 of 11 columns, response.refusal 0 % → 100 %"
        assert "0.002" not in text

    def test_threshold_in_the_metric_unit(self) -> None:
        text = breach_words([_row("latency_p95_ms", 6210.0)], condition=">", threshold=5000.0)
        assert text == "latency_p95_ms 6,210 ms > 5,000 ms"

    def test_p_value_condition_names_the_reference(self) -> None:
        row = _row("thumbs_up_rate", 0.61, p_value=0.0004, details={"reference": 0.8})
        text = breach_words([row], condition="p < 0.002, decrease", threshold=0.002)
        assert text == "thumbs_up_rate 61 % (reference 80 %; p = 0.0004, alert below 0.002)"
