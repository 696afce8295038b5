"""The embedded runner keeps consuming when one batch fails before it is buffered."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from schemas.records import InferenceRecord
from tests.conftest import Api


class TestBatchFailure:
    """A batch whose processing raises gets no 202; the batches after it are written."""

    def test_consumer_survives_a_failing_batch(self, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
        runner = api.services.runner
        assert runner is not None
        assert runner.pipeline.stats is not None
        enrich = runner.pipeline.stats.enrich

        def enrich_or_fail(events: Sequence[InferenceRecord]) -> None:
            if any(event.model == "boom" for event in events):
                raise RuntimeError("enrichment failed")
            enrich(events)

        monkeypatch.setattr(runner.pipeline.stats, "enrich", enrich_or_fail)
        headers = api.key("robust")
        with pytest.raises(RuntimeError, match="enrichment failed"):  # TestClient re-raises the 500's cause
            api.client.post("/v1/inferences", json=[{"event_id": "bad", "model": "boom"}], headers=headers)
        response = api.client.post("/v1/inferences", json=[{"event_id": "good", "model": "fine"}], headers=headers)
        assert response.status_code == 202
        assert runner.running
        db = api.services.storage.database
        stored = api.services.storage.query(f"SELECT event_id FROM {db}.inferences FINAL").result_rows
        assert stored == [("good",)]
