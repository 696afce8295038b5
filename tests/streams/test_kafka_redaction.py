"""Kafka mode redacts once: the API marks the envelopes it redacted (an HMAC of the body under
``LOOPWATCH_ENVELOPE_KEY``) and the worker trusts only a mark that matches; an SDK's envelope, even
with a forged mark, is scanned by the worker. Real broker, real API and worker, real chDB."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from prometheus_client import REGISTRY
from pydantic import SecretStr

from loopwatch.process import serving_app
from schemas.settings import Settings
from schemas.topics import Topics
from streams.privacy.seal import REDACTED_HEADER, seal, sealed
from streams.storage import Storage
from tests.waiting import wait_until

ENVELOPE_KEY = "envelope-key-0123456789abcdef"


def _scans(where: str) -> float:
    return REGISTRY.get_sample_value("loopwatch_redaction_scans_total", {"where": where}) or 0.0


def _stored(storage: Storage) -> dict[str, tuple[str, dict[str, int]]]:
    rows = storage.rows(f"SELECT event_id, response, pii FROM {storage.database}.inferences FINAL")
    return {row["event_id"]: (row["response"], dict(row["pii"])) for row in rows}


class TestSeal:
    """Only the API's key and the very body it redacted make a valid mark."""

    def test_mark_checks(self) -> None:
        key, body = ENVELOPE_KEY.encode(), b'[{"model": "m"}]'
        mark = seal(key, body)
        assert sealed(key, body, [(REDACTED_HEADER, mark)])
        assert sealed(key, body, {REDACTED_HEADER: mark})
        assert not sealed(key, body + b" ", [(REDACTED_HEADER, mark)])  # the body changed
        assert not sealed(key, body, [(REDACTED_HEADER, b"1")])  # a flag, not a mark
        assert not sealed(b"another-key-0123456789", body, [(REDACTED_HEADER, mark)])
        assert not sealed(None, body, [(REDACTED_HEADER, mark)])  # no key: nothing is trusted
        assert not sealed(key, body, None)


@pytest.mark.kafka
class TestRedactedOnce:
    def test_api_envelopes_are_scanned_once_and_sdk_envelopes_still_redacted(self, kafka_settings: Settings) -> None:
        settings = kafka_settings.model_copy(update={"envelope_key": SecretStr(ENVELOPE_KEY)})
        with TestClient(serving_app(settings, with_worker=True)) as client:
            services = client.app.state.runtime
            storage = services.storage
            headers = {"authorization": f"Bearer {services.keys.create('shop').token}"}
            before = {where: _scans(where) for where in ("api", "kafka", "kafka_skipped")}
            event = {"event_id": "api-1", "model": "m", "response": "Mail ana.silva@example.com"}
            assert client.post("/v1/inferences", json=event, headers=headers).status_code == 202
            # an SDK (anyone allowed to produce) sends straight to the topic, with a forged mark and counts
            sdk = {
                "event_id": "sdk-1",
                "project": "shop",
                "model": "m",
                "response": "Mail bob@example.org",
                "pii": {"response": 0},
            }
            producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
            body = orjson.dumps([sdk])
            producer.send(
                Topics(settings.topic_prefix).inference,
                value=body,
                key=b"m",
                headers=[(REDACTED_HEADER, seal(b"guessed-key-0123456789", body))],
            ).get(timeout=60)
            producer.close()
            wait_until(lambda: len(_stored(storage)) == 2, what="both events stored", timeout=120)
            stored = _stored(storage)
            after = {where: _scans(where) for where in ("api", "kafka", "kafka_skipped")}
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
        assert stored["api-1"] == ("Mail <EMAIL>", {"prompt": 0, "response": 1, "response.EMAIL": 1})
        assert stored["sdk-1"] == ("Mail <EMAIL>", {"prompt": 0, "response": 1, "response.EMAIL": 1})
        # the API's event: scanned by the API, trusted by the worker; the SDK's: scanned by the worker
        assert after["api"] - before["api"] == 1
        assert after["kafka_skipped"] - before["kafka_skipped"] == 1
        assert after["kafka"] - before["kafka"] == 1

    def test_feedback_counts_travel_in_the_sealed_envelope(self, kafka_settings: Settings) -> None:
        """A correction's counts, found by the API, reach storage through the topic: the worker trusts
        the mark and does not scan again, so only the envelope can carry them."""
        settings = kafka_settings.model_copy(update={"envelope_key": SecretStr(ENVELOPE_KEY)})
        with TestClient(serving_app(settings, with_worker=True)) as client:
            services = client.app.state.runtime
            storage, db = services.storage, services.storage.database
            headers = {"authorization": f"Bearer {services.keys.create('shop').token}"}
            skipped = _scans("kafka_skipped")
            feedback = {"feedback_id": "fb-1", "inference_id": "i-1", "kind": "correction", "text": "ana@example.com"}
            assert client.post("/v1/feedback", json=feedback, headers=headers).status_code == 202

            def stored() -> list[tuple[str, dict[str, int]]]:
                rows = storage.rows(f"SELECT text, pii FROM {db}.feedback FINAL WHERE feedback_id = 'fb-1'")
                return [(row["text"], dict(row["pii"])) for row in rows]

            wait_until(lambda: bool(stored()), what="the correction stored", timeout=120)
            found = stored()
            trusted = _scans("kafka_skipped") - skipped
        storage.command(f"DROP DATABASE IF EXISTS {db}")
        assert found == [("<EMAIL>", {"correction": 1, "correction.EMAIL": 1})]
        assert trusted == 1


@pytest.mark.kafka
class TestHostileMarks:
    """A garbage, truncated or forged mark on an envelope is no mark: the worker redacts the events and
    stores them, and the stream goes on to the next message."""

    def test_each_bad_mark_is_redacted_and_stored(self, kafka_settings: Settings) -> None:
        settings = kafka_settings.model_copy(update={"envelope_key": SecretStr(ENVELOPE_KEY)})
        key = ENVELOPE_KEY.encode()
        with TestClient(serving_app(settings, with_worker=True)) as client:
            services = client.app.state.runtime
            storage = services.storage
            producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
            topic = Topics(settings.topic_prefix).inference
            marks: dict[str, list[tuple[str, bytes]]] = {}
            for name, mark in {
                "garbage": lambda body: b"\xff\xfe\x00\x80" * 9,
                "empty": lambda body: b"",
                "truncated": lambda body: seal(key, body)[:-1],
                "one-longer": lambda body: seal(key, body) + b"0",
                "wrong-hmac": lambda body: seal(key, body + b" "),  # right length, another body's mark
                "upper-case": lambda body: seal(key, body).upper(),
                "huge": lambda body: b"a" * 100_000,
            }.items():
                body = orjson.dumps(
                    [{"event_id": f"bad-{name}", "project": "shop", "model": "m", "response": "Mail bob@example.org"}]
                )
                marks[name] = [(REDACTED_HEADER, mark(body)), ("loopwatch-redacted\x00", seal(key, body))]
                producer.send(topic, value=body, key=b"m", headers=marks[name]).get(timeout=60)
            # the stream goes on: an event the API publishes afterwards is stored too
            headers = {"authorization": f"Bearer {services.keys.create('shop').token}"}
            after = {"event_id": "after", "model": "m", "response": "Mail ana.silva@example.com"}
            assert client.post("/v1/inferences", json=after, headers=headers).status_code == 202
            producer.close()
            wait_until(lambda: len(_stored(storage)) == len(marks) + 1, what="every event stored", timeout=120)
            stored = _stored(storage)
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
        counts = {"prompt": 0, "response": 1, "response.EMAIL": 1}
        assert stored == {f"bad-{name}": ("Mail <EMAIL>", counts) for name in marks} | {
            "after": ("Mail <EMAIL>", counts)
        }
