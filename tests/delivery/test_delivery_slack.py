"""Slack Block Kit payloads: valid for Slack's own models, within limits, and saying what matters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from schemas.events import AlertEvent, AlertGroup, AlertResolved, RetrainEvent
from streams.delivery import slack as limits
from streams.delivery import slack_message, slack_resolved_message, slack_retrain_message
from streams.delivery.slack import slack_group_message


def assert_valid_for_slack(payload: dict[str, Any]) -> None:
    """Every block parses into slack_sdk's model, validates, and round-trips unchanged."""
    assert isinstance(payload["text"], str)
    assert payload["text"]
    assert 1 <= len(payload["blocks"]) <= limits.BLOCKS_MAX
    for block in payload["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None, f"unknown block type: {block.get('type')}"
        parsed.validate_json()
        assert parsed.to_dict() == block


def assert_within_limits(payload: dict[str, Any]) -> None:
    """Limits slack_sdk does not check itself (field length) plus the ones it does, explicitly."""
    assert len(payload["text"]) <= limits.FALLBACK_TEXT_MAX
    for block in payload["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= limits.HEADER_TEXT_MAX
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= limits.SECTION_TEXT_MAX
            fields = block.get("fields", [])
            assert len(fields) <= limits.SECTION_FIELDS_MAX
            assert all(len(field["text"]) <= limits.FIELD_TEXT_MAX for field in fields)


def all_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def blocks_of(payload: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [block for block in payload["blocks"] if block["type"] == kind]


class TestAlertMessage:
    """An alert becomes a valid Block Kit message with the facts an on-call engineer needs."""

    def test_valid_block_kit(self, alert: AlertEvent) -> None:
        payload = slack_message(alert)
        assert_valid_for_slack(payload)
        assert_within_limits(payload)
        assert json.loads(json.dumps(payload)) == payload  # plain JSON, nothing exotic

    def test_header_names_kind_and_model(self, alert: AlertEvent) -> None:
        header = blocks_of(slack_message(alert), "header")[0]["text"]["text"]
        assert header == "🔴 Drift detected: fraud-scorer"

    def test_fields_carry_value_threshold_and_scope(self, alert: AlertEvent) -> None:
        fields = [field["text"] for field in blocks_of(slack_message(alert), "section")[0]["fields"]]
        text = "\n".join(fields)
        for expected in ("checkout", "fraud-scorer", "2024.06.1", "share_drifted_features", "critical"):
            assert expected in text
        assert "0.4375 &gt; 0.3" in text  # value, condition, threshold (mrkdwn-escaped ">")
        assert "2025-03-04 10:00:00 \u2013 10:05:00 UTC" in text

    def test_top_drifted_features_listed(self, alert: AlertEvent) -> None:
        features = blocks_of(slack_message(alert), "section")[1]["text"]["text"]
        assert "3 of 4 drifted" in features
        for name, stat in (
            ("amount", "psi 0.81"),
            ("merchant_category", "jensenshannon 0.27"),
            ("hour_of_day", "ks 0.003"),
        ):
            assert f"`{name}`" in features
            assert stat in features
        assert "country" not in features  # not drifted

    def test_context_and_dashboard_buttons(self, alert: AlertEvent) -> None:
        payload = slack_message(alert)
        context = " ".join(element["text"] for element in blocks_of(payload, "context")[0]["elements"])
        assert "alert-7f3a" in context
        assert "mon-42" in context
        assert "Feature drift (PSI)" in context
        buttons = blocks_of(payload, "actions")[0]["elements"]
        assert [(b["text"]["text"], b["url"]) for b in buttons] == [
            ("Open alert", alert.alert_url),
            ("Open window", alert.window_url),
        ]
        assert all("/v1/" not in b["url"] for b in buttons)  # the API answers a browser 401

    def test_no_links_no_buttons(self, alert: AlertEvent) -> None:
        payload = slack_message(alert.model_copy(update={"alert_url": None, "window_url": None}))
        assert blocks_of(payload, "actions") == []
        assert_valid_for_slack(payload)

    def test_fallback_text_summarises(self, alert: AlertEvent) -> None:
        text = slack_message(alert)["text"]
        assert "fraud-scorer" in text
        assert "0.4375" in text
        assert "0.3" in text

    def test_p_value_shown_when_present(self, alert: AlertEvent) -> None:
        payload = slack_message(alert.model_copy(update={"p_value": 0.0012}))
        assert "*p-value*\n0.0012" in all_text(payload).replace("\\n", "\n")


class TestHostileAndOddInput:
    """User-controlled strings and malformed details never break the message or inject markup."""

    def test_mrkdwn_is_escaped(self, alert: AlertEvent) -> None:
        payload = slack_message(
            alert.model_copy(update={"model": "<!channel> & <https://evil.example|click>", "monitor_name": "<@U1>"})
        )
        text = all_text(payload)
        assert "<!channel>" not in json.dumps(payload["blocks"][1:])
        assert "&lt;!channel&gt; &amp;" in text
        assert "<@U1>" not in text
        assert_valid_for_slack(payload)

    def test_long_strings_are_clipped_to_limits(self, alert: AlertEvent) -> None:
        payload = slack_message(
            alert.model_copy(
                update={
                    "model": "m" * 500,
                    "metric": "x" * 5000,
                    "condition": "c" * 5000,
                    "monitor_name": "n" * 4000,
                }
            )
        )
        assert_within_limits(payload)
        assert_valid_for_slack(payload)
        assert blocks_of(payload, "header")[0]["text"]["text"].endswith("…")

    def test_many_drifted_features_are_capped(self, alert: AlertEvent) -> None:
        features = [
            {
                "name": f"feature_{i}_" + "z" * 150,
                "method": "psi",
                "value": 0.5,
                "threshold": 0.1,
                "drifted": True,
            }
            for i in range(300)
        ]
        payload = slack_message(alert.model_copy(update={"details": {"features": features}}))
        assert_within_limits(payload)
        assert_valid_for_slack(payload)
        section = blocks_of(payload, "section")[1]["text"]["text"]
        assert "300 of 300 drifted" in section
        assert "…and 290 more" in section

    @pytest.mark.parametrize(
        "details",
        [
            {},
            {"features": "not a list"},
            {"features": None},
            {
                "features": [
                    1,
                    "x",
                    None,
                    {"no_name": True, "drifted": True},
                    {"name": "f", "drifted": "true"},
                ]
            },
            {"features": [{"name": "f", "value": float("nan"), "threshold": None, "drifted": 1}]},
            {"features": [{"name": "`weird` <name>", "value": "high", "method": {"nested": 1}, "drifted": True}]},
        ],
    )
    def test_malformed_details_do_not_break(self, alert: AlertEvent, details: dict[str, Any]) -> None:
        payload = slack_message(alert.model_copy(update={"details": details}))
        assert_valid_for_slack(payload)
        assert_within_limits(payload)

    def test_no_drifted_features_says_so(self, alert: AlertEvent) -> None:
        details = {"features": [{"name": "a", "drifted": False}, {"name": "b", "drifted": False}]}
        text = all_text(slack_message(alert.model_copy(update={"details": details})))
        assert "None of 2 features drifted" in text

    @pytest.mark.parametrize("kind", ["quality", "cost", "latency", "error_rate", "budget"])
    def test_every_alert_kind_renders(self, alert: AlertEvent, kind: str) -> None:
        payload = slack_message(alert.model_copy(update={"kind": kind, "details": {}, "severity": "info"}))
        assert_valid_for_slack(payload)
        assert blocks_of(payload, "header")[0]["text"]["text"].startswith("🔵 ")


class TestValidatorCatchesBadPayloads:
    """The validation used above does reject what Slack would reject."""

    def test_overlong_header_fails(self) -> None:
        block = Block.parse({"type": "header", "text": {"type": "plain_text", "text": "x" * 151}})
        assert block is not None
        with pytest.raises(SlackObjectFormationError):
            block.validate_json()

    def test_too_many_fields_fails(self) -> None:
        block = Block.parse({"type": "section", "fields": [{"type": "mrkdwn", "text": "x"}] * 11})
        assert block is not None
        with pytest.raises(SlackObjectFormationError):
            block.validate_json()

    def test_unknown_block_type_is_not_parsed(self) -> None:
        assert Block.parse({"type": "no_such_block"}) is None


class TestRetrainMessage:
    """A retraining request is announced with its reasons, evidence and data selector."""

    def test_valid_and_informative(self, retrain: RetrainEvent) -> None:
        payload = slack_retrain_message(retrain)
        assert_valid_for_slack(payload)
        assert_within_limits(payload)
        text = all_text(payload)
        assert blocks_of(payload, "header")[0]["text"]["text"] == "🔁 Retraining requested: fraud-scorer"
        for expected in (
            "alert-7f3a",
            "alert-7f3b",
            "share_drifted_features",
            "positive_rate_drop",
            "retrain-19",
        ):
            assert expected in text

    def test_huge_evidence_is_clipped(self, retrain: RetrainEvent) -> None:
        evidence = {f"k{i}": "v" * 100 for i in range(200)}
        reasons = [f"alert-{i}" for i in range(50)]
        payload = slack_retrain_message(retrain.model_copy(update={"evidence": evidence, "reason": reasons}))
        assert_valid_for_slack(payload)
        assert_within_limits(payload)
        assert "and 45 more" in all_text(payload)


class TestResolvedMessage:
    """A resolved alert is a valid Block Kit message that names the alert and links to its page."""

    def test_names_the_alert_and_links_the_dashboard(self, alert: AlertEvent) -> None:
        resolved = AlertResolved(
            resolution_id="res-1",
            alert_id=alert.alert_id,
            project=alert.project,
            monitor_id=alert.monitor_id,
            monitor_name=alert.monitor_name,
            model=alert.model,
            summary="features family drifted: 3 of 4 columns, feature.amount 12 → 30",
            fired_window_start=alert.window_start,
            calm_since=alert.window_end,
            calm_windows=2,
            resolved_window_end=alert.window_end + (alert.window_end - alert.window_start) * 2,
            alert_url=alert.alert_url,
        )
        payload = slack_resolved_message(resolved)
        assert_valid_for_slack(payload)
        text = json.dumps(payload, ensure_ascii=False)
        assert "Resolved: Feature drift (PSI) on fraud-scorer" in text
        assert alert.alert_id in text
        assert "No breach in 2 evaluated windows since 2025-03-04 10:05:00 UTC" in text
        assert "was: features family drifted: 3 of 4 columns" in text
        assert blocks_of(payload, "actions")[0]["elements"][0]["url"] == alert.alert_url


class TestGroupMessage:
    """One message for many alerts: a line per model, escaped, within Slack's limits however many."""

    def _group(self, alert: AlertEvent, n: int, model: str = "model-{i}") -> AlertGroup:
        alerts = [
            alert.model_copy(
                update={
                    "alert_id": f"a{i}",
                    "model": model.format(i=i),
                    "summary": f"drifted {i}",
                    "severity": "warning",
                }
            )
            for i in range(n)
        ]
        return AlertGroup(
            group_id="grp-1",
            project=alert.project,
            monitor_id=alert.monitor_id,
            monitor_name=alert.monitor_name,
            window_start=alert.window_start,
            window_end=alert.window_end,
            alerts=alerts,
        )

    def test_lists_every_model(self, alert: AlertEvent) -> None:
        payload = slack_group_message(self._group(alert, 3))
        assert_valid_for_slack(payload)
        assert payload["blocks"][0]["text"]["text"] == "🟠 Feature drift (PSI): 3 alerts, 3 models"
        text = payload["blocks"][1]["text"]["text"]
        assert text.splitlines()[0] == f"• *model-0*: drifted 0 <{alert.alert_url}|open>"
        assert [line.split("*")[1] for line in text.splitlines()] == ["model-0", "model-1", "model-2"]

    def test_names_are_escaped(self, alert: AlertEvent) -> None:
        payload = slack_group_message(self._group(alert, 2, model="<!channel> m{i}"))
        text = json.dumps(payload)
        assert "<!channel>" not in text
        assert "&lt;!channel&gt; m0" in text

    def test_hundreds_stay_within_limits(self, alert: AlertEvent) -> None:
        payload = slack_group_message(self._group(alert, 2000))
        assert_valid_for_slack(payload)
        assert_within_limits(payload)
        assert payload["blocks"][-2]["text"]["text"].startswith("…and ")
