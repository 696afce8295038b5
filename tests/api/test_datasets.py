"""``/v1/datasets``: versions are immutable snapshots whose downloads hash to their sha256, in every format,
over the real app (embedded runner, chDB)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from loopwatch.demo.receiver import WebhookReceiver
from loopwatch.process import serving_app
from streams.monitors.training import selector_query
from streams.storage import retrain_requests
from streams.storage.datasets import DatasetStore
from tests.conftest import Api, make_settings
from tests.monitors.conftest import SECRET, drift_rows, webhook, window

T0 = datetime(2026, 5, 1, tzinfo=UTC)
PROJECT = "ds"


def calls(n: int, *, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"call-{i}",
            "timestamp": (T0 + timedelta(minutes=i)).isoformat(),
            "model": "m-a" if i % 2 == 0 else "m-b",
            "prompt": f"question {i} <b>",
            "response": "" if i == 3 else f"answer {i}",
            "tags": {"route": "/chat" if i % 3 else "/help"},
        }
        for i in range(start, start + n)
    ]


def feedback(i: int, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "feedback_id": f"fb-{kind}-{i}",
        "inference_id": f"call-{i}",
        "timestamp": (T0 + timedelta(minutes=i, seconds=30)).isoformat(),
        "kind": kind,
        **extra,
    }


RETRAIN_MONITOR = {
    "name": "Dataset drift",
    "family": "drift",
    "metric": "dataset_drift",
    "condition": {"type": "flagged"},
    "cooldown_seconds": 0,
    "retrain_after": 1,
}


def feedback_on(call: str, at: datetime, text: str, kind: str = "correction", **extra: Any) -> dict[str, Any]:
    body = {"feedback_id": f"{call}-{kind}", "inference_id": call, "timestamp": at.isoformat(), "kind": kind, **extra}
    return {**body, "text": text} if text else body


def send(api: Api, key: dict[str, str], path: str, items: list[dict[str, Any]]) -> None:
    response = api.client.post(path, headers=key, json=items)
    assert response.status_code == 202, response.text


def create(api: Api, key: dict[str, str], name: str, fmt: str, **filters: Any) -> dict[str, Any]:
    response = api.client.post("/v1/datasets", headers=key, params=filters, json={"name": name, "format": fmt})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def download(api: Api, key: dict[str, str], version: dict[str, Any]) -> bytes:
    response = api.client.get(version["download_url"], headers=key)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{version["sha256"]}"'
    return response.content


@pytest.fixture
def seeded(api: Api) -> tuple[Api, dict[str, str]]:
    key = api.key(PROJECT)
    send(api, key, "/v1/inferences", calls(10))
    items = [feedback(i, "correction", text=f"better answer {i}", source="annotator") for i in range(0, 10, 1)]
    items += [feedback(i, "thumbs", value=-1) for i in range(10)]
    items.append(feedback(42, "correction", text="its call never came"))
    send(api, key, "/v1/feedback", items)
    api.wait_written()
    return api, key


class TestSnapshots:
    """A version's bytes never change, whatever arrives later; a new version sees the new feedback."""

    def test_bytes_stay_identical_while_feedback_keeps_arriving(self, seeded: tuple[Api, dict[str, str]]) -> None:
        api, key = seeded
        first = create(api, key, "support-sft", "chat", model="m-a", kind="correction")
        assert first["version"] == 1
        body = download(api, key, first)
        assert hashlib.sha256(body).hexdigest() == first["sha256"]
        assert len(body) == first["bytes"]
        assert first["rows"] == 5 == len(body.splitlines())  # m-a: calls 0, 2, 4, 6, 8
        # more calls and corrections arrive, some on calls already in the snapshot (a re-sent correction too)
        send(api, key, "/v1/inferences", calls(6, start=10))
        send(
            api,
            key,
            "/v1/feedback",
            [feedback(i, "correction", text=f"later fix {i}") for i in (0, 10, 12, 14)],
        )
        api.wait_written()
        second = create(api, key, "support-sft", "chat", model="m-a", kind="correction")
        assert second["version"] == 2 and second["rows"] == 8  # the positive signal: the new feedback is stored
        assert second["sha256"] != first["sha256"]
        assert download(api, key, first) == body  # version 1 is unchanged
        listed = api.client.get("/v1/datasets", headers=key, params={"name": "support-sft"}).json()["items"]
        assert [(v["version"], v["sha256"]) for v in listed] == [(2, second["sha256"]), (1, first["sha256"])]
        assert first["query"] == {"model": "m-a", "kind": ["correction"]}
        lines = [orjson.loads(line) for line in body.splitlines()]
        assert lines[0] == {
            "messages": [
                {"role": "user", "content": "question 0 <b>"},
                {"role": "assistant", "content": "better answer 0"},
            ]
        }

    def test_dpo_pairs_come_only_from_calls_with_a_correction(self, seeded: tuple[Api, dict[str, str]]) -> None:
        api, key = seeded
        version = create(api, key, "prefs", "dpo")  # no filter: thumbs too are selected, and kept out
        pairs = [orjson.loads(line) for line in download(api, key, version).splitlines()]
        # every call but 3 (no response to reject) and the correction whose call never arrived
        expected = [
            {"prompt": f"question {i} <b>", "chosen": f"better answer {i}", "rejected": f"answer {i}"}
            for i in range(10)
            if i != 3
        ]
        assert pairs == expected
        assert version["rows"] == 9

    def test_parquet_read_back_equals_the_jsonl(self, seeded: tuple[Api, dict[str, str]]) -> None:
        api, key = seeded
        as_jsonl = create(api, key, "all-jsonl", "jsonl", tag="route:/chat")
        as_parquet = create(api, key, "all-parquet", "parquet", tag="route:/chat")
        lines = [orjson.loads(line) for line in download(api, key, as_jsonl).splitlines()]
        table = pq.read_table(io.BytesIO(download(api, key, as_parquet)))
        rows = table.to_pylist()
        for row in rows:
            row["timestamp"] = row["timestamp"].isoformat().replace("+00:00", "Z")
            row["tags"] = dict(row["tags"])
        assert rows == lines
        assert len(rows) == as_parquet["rows"] == as_jsonl["rows"] == 12  # calls 1, 2, 4, 5, 7, 8: both kinds
        assert {row["tags"]["route"] for row in rows} == {"/chat"}

    def test_paged_reads_return_every_row_once_in_order(self, seeded: tuple[Api, dict[str, str]]) -> None:
        """Downloads read the copy page by page (keyset on time and id): small pages, same rows."""
        api, key = seeded
        version = create(api, key, "paged", "jsonl")
        store = DatasetStore(api.services.storage)
        got = store.get(PROJECT, "paged", version["version"])
        assert got is not None
        whole = list(store.rows(PROJECT, got.build_id))
        assert len(whole) == version["rows"] == 21  # noqa: PLR2004 - 11 corrections (one on a call never sent), 10 thumbs
        assert list(store.rows(PROJECT, got.build_id, page_size=3)) == whole
        assert [(r.timestamp, r.feedback_id) for r in whole] == sorted((r.timestamp, r.feedback_id) for r in whole)

    def test_csv_has_a_header_and_a_row_per_item(self, seeded: tuple[Api, dict[str, str]]) -> None:
        api, key = seeded
        version = create(api, key, "labels", "csv", kind="thumbs")
        text = download(api, key, version).decode()
        header, *rows = text.splitlines()
        assert header.split(",")[:5] == ["feedback_id", "inference_id", "timestamp", "kind", "value"]
        assert len(rows) == version["rows"] == 10


class TestErrors:
    """Bad input is a 4xx naming what to change; reading keys cannot make versions."""

    def test_bad_name_format_and_unknown_version(self, seeded: tuple[Api, dict[str, str]]) -> None:
        api, key = seeded
        bad = api.client.post("/v1/datasets", headers=key, json={"name": "../x", "format": "chat"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "name"]
        bad = api.client.post("/v1/datasets", headers=key, json={"name": "x", "format": "xml"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "format"]
        bad = api.client.post("/v1/datasets", headers=key, params={"kind": "nope"}, json={"name": "x", "format": "csv"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "kind", 0]
        missing = api.client.get("/v1/datasets/x/versions/3/download", headers=key)
        assert missing.status_code == 404 and missing.json()["detail"] == "dataset 'x' has no version 3 in this project"

    def test_other_projects_see_nothing(self, seeded: tuple[Api, dict[str, str]]) -> None:
        api, key = seeded
        version = create(api, key, "mine", "jsonl")
        other = api.key("someone-else")
        assert api.client.get(version["download_url"], headers=other).status_code == 404
        assert api.client.get("/v1/datasets", headers=other).json() == {"items": []}


class TestRetrainingRequests:
    """A retraining request names the dataset version of its training selector; that version's download
    hashes to what the request says, and a request stored before its snapshot (a crash) gets one once."""

    @pytest.fixture
    def hooked(self, data_dir: Path) -> Iterator[tuple[Api, WebhookReceiver]]:
        settings = make_settings(data_dir, allow_private_webhooks=True, public_url="http://127.0.0.1:9")
        with WebhookReceiver(secret=SECRET) as hook, TestClient(serving_app(settings)) as client:
            yield Api(client), hook
            storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")

    def _seed(self, api: Api, key: dict[str, str]) -> None:
        early = window(0)[0] - timedelta(hours=1)  # before the breaching window ends: inside the selector
        send(
            api,
            key,
            "/v1/inferences",
            [
                {
                    "event_id": f"r-{i}",
                    "timestamp": (early + timedelta(minutes=i)).isoformat(),
                    "model": "m1",
                    "prompt": f"q{i}",
                    "response": f"a{i}",
                }
                for i in range(4)
            ],
        )
        send(
            api,
            key,
            "/v1/feedback",
            [feedback_on(f"r-{i}", early + timedelta(minutes=i, seconds=5), f"fixed {i}") for i in range(4)]
            + [feedback_on("r-0", early, "", kind="thumbs", value=1)],
        )
        api.wait_written()

    def test_request_carries_a_version_whose_download_matches_its_hash(
        self, hooked: tuple[Api, WebhookReceiver]
    ) -> None:
        api, hook = hooked
        key = api.key("shop")
        self._seed(api, key)
        monitor = {**RETRAIN_MONITOR, "channels": [webhook(hook.url)]}
        assert api.client.post("/v1/monitors", headers=key, json=monitor).status_code == 201
        api.services.monitoring.on_rows(drift_rows(0))
        request = next(r for r in hook.wait_for(2) if r.event_type == "retrain").json
        dataset = request["dataset"]
        assert dataset["dataset_id"] == "retrain-m1" and dataset["version"] == 1 and dataset["rows"] == 4
        assert dataset["download_url"] == "http://127.0.0.1:9/v1/datasets/retrain-m1/versions/1/download"
        assert dataset["dashboard_url"] == "http://127.0.0.1:9/ui/datasets/retrain-m1/1?project=shop"
        body = api.client.get(dataset["download_url"].removeprefix("http://127.0.0.1:9"), headers=key).content
        assert hashlib.sha256(body).hexdigest() == dataset["sha256"]
        assert [orjson.loads(line)["messages"][1]["content"] for line in body.splitlines()] == [
            f"fixed {i}" for i in range(4)
        ]
        stored = api.client.get("/v1/retrain-requests", headers=key).json()
        assert [r["dataset"]["sha256"] for r in stored] == [dataset["sha256"]]  # stored as sent

    def test_requests_stored_before_their_snapshot_are_completed_once_on_resume(
        self, hooked: tuple[Api, WebhookReceiver]
    ) -> None:
        """The states a kill -9 after the claim leaves: a request stored without its version whose
        snapshot was committed (found), and one whose snapshot was half made (made again; the half-made
        build is never named). Each is sent once, naming a version whose download matches its hash."""
        api, hook = hooked
        key = api.key("shop")
        self._seed(api, key)
        monitoring = api.services.monitoring
        created = api.client.post("/v1/monitors", headers=key, json={**RETRAIN_MONITOR, "channels": []}).json()
        retrain = monitoring.engine.evaluate(drift_rows(0)).retrains[0]  # no channel: stored and named, not sent
        assert retrain.dataset["version"] == 1
        selector = {k: retrain.dataset[k] for k in ("endpoint", "params", "url")}
        committed = retrain.model_copy(update={"dataset": selector})
        half_made = retrain.model_copy(update={"dataset": selector, "request_id": "died-mid-snapshot"})
        half = monitoring.alerts.datasets.build("shop", selector_query(half_made), "chat")
        update = {"channels": [webhook(hook.url)]}
        assert api.client.patch(f"/v1/monitors/{created['monitor_id']}", headers=key, json=update).status_code == 200
        owed = {r.request_id: 1 for r in (committed, half_made)}
        retrain_requests.insert(
            monitoring.alerts.storage, [committed, half_made], dict.fromkeys(owed, created["monitor_id"]), owed
        )
        resume = partial(monitoring.resume_pending, older_than=timedelta(0))
        assert api.client.portal.call(resume) == 2  # type: ignore[union-attr]
        sent = {r.idempotency_key: r.json["dataset"] for r in hook.wait_for(2)}
        assert {k: v["version"] for k, v in sent.items()} == {retrain.request_id: 1, "died-mid-snapshot": 2}
        assert sent[retrain.request_id]["sha256"] == retrain.dataset["sha256"]  # the committed one, found
        for dataset in sent.values():
            body = api.client.get(dataset["download_url"].removeprefix("http://127.0.0.1:9"), headers=key).content
            assert hashlib.sha256(body).hexdigest() == dataset["sha256"]
        assert half not in {v.build_id for v in monitoring.alerts.datasets.versions("shop")}
        stored = {
            r["request_id"]: r["dataset"].get("version")
            for r in api.client.get("/v1/retrain-requests", headers=key).json()
        }
        assert stored == {retrain.request_id: 1, "died-mid-snapshot": 2}
        assert api.client.portal.call(resume) == 0  # type: ignore[union-attr]  # delivered: never again
