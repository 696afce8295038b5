"""Monitor models: the statistics contract is enforced with errors located on the offending field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from schemas.monitors import (
    MASK,
    Monitor,
    MonitorCreate,
    PValueCondition,
    ThresholdCondition,
    breaches,
    unmask_channels,
)
from streams.monitors.evaluation import drift_score, top_features
from tests.monitors.conftest import SECRET, drift_rows

SLACK = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX"


def _spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "p95",
        "family": "latency",
        "metric": "latency_p95_ms",
        "condition": {"type": "threshold", "operator": "gt", "value": 2000},
    }
    return {**base, **overrides}


def _error(data: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as caught:
        MonitorCreate.model_validate(data)
    error = caught.value.errors()[0]
    return error["loc"], error["msg"]


class TestValidation:
    """Monitors that could never match are refused, naming the field and the fix."""

    def test_valid_monitor_with_defaults(self) -> None:
        monitor = MonitorCreate.model_validate(_spec())
        assert monitor.scope == "*"
        assert monitor.dimension == ""
        assert monitor.severity == "warning"
        assert isinstance(monitor.condition, ThresholdCondition)
        assert monitor.retrain_after is None

    def test_unknown_metric_lists_the_family_metrics(self) -> None:
        loc, msg = _error(_spec(metric="latency_p42"))
        assert loc == ("metric",)
        assert "'latency' has no metric 'latency_p42'" in msg
        assert "latency_p95_ms" in msg

    def test_unknown_family(self) -> None:
        loc, _ = _error(_spec(family="vibes"))
        assert loc == ("family",)

    def test_p_value_condition_needs_a_metric_with_p_values(self) -> None:
        loc, msg = _error(_spec(condition={"type": "p_value", "alpha": 0.01}))
        assert loc == ("condition",)
        assert "carries no p-value" in msg

    def test_flagged_condition_needs_a_flagged_metric(self) -> None:
        loc, msg = _error(_spec(condition={"type": "flagged"}))
        assert loc == ("condition",)
        assert "never flagged" in msg

    def test_dimension_on_a_metric_without_dimensions(self) -> None:
        loc, msg = _error(_spec(dimension="feature.age"))
        assert loc == ("dimension",)
        assert "has no dimensions" in msg

    def test_cost_dimension_must_be_a_tag(self) -> None:
        data = _spec(family="cost", metric="cost_usd", dimension="route")
        loc, msg = _error(data)
        assert loc == ("dimension",)
        assert "tag:<key>=<value>" in msg
        assert MonitorCreate.model_validate({**data, "dimension": "tag:route=/chat"}).dimension == "tag:route=/chat"

    def test_bad_operator_and_alpha(self) -> None:
        loc, _ = _error(_spec(condition={"type": "threshold", "operator": "above", "value": 1}))
        assert loc[:2] == ("condition", "threshold")
        quality = _spec(family="quality", metric="thumbs_up_rate", condition={"type": "p_value", "alpha": 1.5})
        loc, _ = _error(quality)
        assert loc == ("condition", "p_value", "alpha")

    def test_webhook_secret_too_short_and_unknown_fields(self) -> None:
        loc, _ = _error(_spec(channels=[{"type": "webhook", "url": "https://hooks.example.com/x", "secret": "short"}]))
        assert loc == ("channels", 0, "webhook", "secret")
        loc, _ = _error(_spec(colour="red"))
        assert loc == ("colour",)

    def test_retrain_after_and_cooldown_bounds(self) -> None:
        assert _error(_spec(retrain_after=0))[0] == ("retrain_after",)
        assert _error(_spec(cooldown_seconds=-1))[0] == ("cooldown_seconds",)


class TestSecrets:
    """Secrets are stored in full, never shown, and survive a read-modify-write of the masked form."""

    def _monitor(self) -> Monitor:
        channels = [
            {"type": "slack", "webhook_url": SLACK},
            {
                "type": "webhook",
                "url": "https://user:pw@hooks.example.com/in?token=abc",
                "secret": SECRET,
                "headers": {"Authorization": "Bearer very-secret-token"},
            },
        ]
        return Monitor(project="shop", **_spec(channels=channels))

    def test_public_form_masks_every_secret(self) -> None:
        shown = self._monitor().public_json()
        text = str(shown)
        for secret in ("XXXXSECRETXXXX", SECRET, "very-secret-token", "token=abc", "pw@"):
            assert secret not in text
        assert shown["channels"][0]["webhook_url"] == "https://hooks.slack.com/…"
        assert shown["channels"][1] == {
            "type": "webhook",
            "url": "https://hooks.example.com/in",
            "secret": MASK,
            "headers": {"Authorization": MASK},
        }

    def test_storage_form_keeps_secrets_and_round_trips(self) -> None:
        monitor = self._monitor()
        assert Monitor.model_validate(monitor.storage_json()) == monitor

    def test_masked_channels_sent_back_keep_their_secrets(self) -> None:
        monitor = self._monitor()
        shown = monitor.public_json()["channels"]
        new = {"type": "webhook", "url": "https://other.example.com/", "secret": "another-secret-0123"}
        resolved = unmask_channels([shown[1], new], list(monitor.channels))
        assert resolved[0] is monitor.channels[1]
        assert resolved[1] == new


class TestConditions:
    """Breach rules: thresholds, p-values in the bad direction only, the row's own flag."""

    def test_threshold_operators_and_nan(self) -> None:
        gt = ThresholdCondition(operator="gt", value=10)
        assert breaches(gt, value=11, p_value=None, flagged=False)
        assert not breaches(gt, value=10, p_value=None, flagged=False)
        assert breaches(ThresholdCondition(operator="gte", value=10), value=10, p_value=None, flagged=False)
        assert breaches(ThresholdCondition(operator="lt", value=0.5), value=0.4, p_value=None, flagged=False)
        assert not breaches(gt, value=float("nan"), p_value=None, flagged=False)

    def test_p_value_direction(self) -> None:
        cond = PValueCondition(alpha=0.05)
        assert breaches(cond, value=0.5, p_value=0.001, flagged=False, reference=0.8, direction="down")
        assert not breaches(cond, value=0.9, p_value=0.001, flagged=False, reference=0.8, direction="down")
        assert breaches(cond, value=0.9, p_value=0.001, flagged=False, reference=0.8, direction="any")
        assert not breaches(cond, value=0.5, p_value=0.2, flagged=False, reference=0.8, direction="down")
        assert not breaches(cond, value=0.5, p_value=None, flagged=True, reference=0.8, direction="any")

    def test_default_direction_is_the_metric_bad_direction(self) -> None:
        quality = Monitor(
            project="p", **_spec(family="quality", metric="thumbs_up_rate", condition={"type": "p_value"})
        )
        drift = Monitor(project="p", **_spec(family="drift", metric="column_drift", condition={"type": "p_value"}))
        assert quality.direction() == "down"
        assert drift.direction() == "any"

    def test_dimension_matching(self) -> None:
        columns = Monitor(project="p", **_spec(family="drift", metric="column_drift", condition={"type": "flagged"}))
        assert columns.matches("m", "drift", "column_drift", "feature.age")
        total = Monitor(project="p", **_spec(family="cost", metric="cost_usd"))
        assert total.matches("m", "cost", "cost_usd", "")
        assert not total.matches("m", "cost", "cost_usd", "tag:app=x")
        every = Monitor(project="p", **_spec(family="cost", metric="cost_usd", dimension="*", scope="m"))
        assert every.matches("m", "cost", "cost_usd", "tag:app=x")
        assert not every.matches("n", "cost", "cost_usd", "")


class TestDriftOrdering:
    """Most drifted first: ascending p-value for tests, descending value/threshold for distances."""

    def test_top_features(self) -> None:
        features = top_features([r for r in drift_rows(0) if r.metric == "column_drift"])
        names = [f["name"] for f in features]
        assert names[:4] == ["feature.country", "prompt.chars", "feature.age", "response.words"]
        assert names[-1] == "feature.income"
        assert not features[-1]["drifted"]
        assert drift_score(1e-3, 1e-3, 0.05) > drift_score(1e-2, 1e-2, 0.05)
        assert drift_score(0.3, None, 0.1) > drift_score(0.12, None, 0.1)
