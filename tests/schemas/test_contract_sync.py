"""Adding an event field means: the contract (``schemas.events``), its record twin (``schemas.records``,
checked field by field in test_records.py), a storage column (a migration) and nothing else written by
hand. These tests fail when one of the places derived from the contract falls out of step."""

from __future__ import annotations

from api.responses import InferenceDetail
from schemas.records import FeedbackRecord, InferenceRecord
from streams.storage import Storage
from streams.storage.inferences import DETAIL_COLUMNS, NOT_IN_DETAIL, StoredInference


def _columns(storage: Storage, table: str) -> set[str]:
    return {row[0] for row in storage.query(f"DESCRIBE TABLE {storage.database}.{table}").result_rows}


def test_every_inference_field_has_a_column(storage: Storage) -> None:
    missing = set(InferenceRecord.__struct_fields__) - _columns(storage, "inferences")
    assert not missing, f"add a migration with a column for: {sorted(missing)}"


def test_every_feedback_field_has_a_column(storage: Storage) -> None:
    # ``value`` is stored split into a number and a label column (``streams.storage.feedback.rows_json``)
    missing = set(FeedbackRecord.__struct_fields__) - {"value"} - _columns(storage, "feedback")
    assert not missing, f"add a migration with a column for: {sorted(missing)}"
    assert {"value", "label"} <= _columns(storage, "feedback")


def test_the_inference_detail_returns_the_contract() -> None:
    assert set(DETAIL_COLUMNS) == set(InferenceRecord.__struct_fields__) - NOT_IN_DETAIL
    assert set(InferenceDetail.__dataclass_fields__) == {*DETAIL_COLUMNS, "feedback"}
    assert set(StoredInference.__dataclass_fields__) == set(DETAIL_COLUMNS)


def test_the_api_returns_the_storage_records() -> None:
    """One definition of a call's and a feedback's fields: the API's bodies are the storage records."""
    from api import responses as models
    from streams.storage import feedback, inferences

    assert issubclass(models.CallSummary, inferences.CallSummary)
    assert issubclass(models.InferenceDetail, inferences.StoredInference)
    assert issubclass(models.InferenceSummary, inferences.JudgedCall)
    assert issubclass(models.FeedbackItem, feedback.StoredFeedback)
    assert [f for f in models.CallSummary.__dataclass_fields__] == list(inferences.CallSummary.__dataclass_fields__)
