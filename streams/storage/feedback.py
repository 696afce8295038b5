"""The ``feedback`` table's erasure (feedback is written by the sink and read by ``api.queries.feedback``
and the quality statistics)."""

from __future__ import annotations

from collections.abc import Sequence

from streams.storage.client import Storage

_OF_USER = (
    "project = {project:String} AND (user_id = {user_id:String} OR has({inference_ids:Array(String)}, inference_id))"
)


def erase_user(storage: Storage, project: str, user_id: str, inference_ids: Sequence[str]) -> int:
    """Delete the feedback the user gave (``user_id``) and the feedback on the user's events
    (``inference_ids``); returns how many feedback items that was (re-sent copies counted once)."""
    params = {"project": project, "user_id": user_id, "inference_ids": list(inference_ids)}
    db = storage.database
    found = int(storage.scalar(f"SELECT uniqExact(feedback_id) FROM {db}.feedback WHERE {_OF_USER}", params))
    if found:
        storage.command(f"ALTER TABLE {db}.feedback DELETE WHERE {_OF_USER} SETTINGS mutations_sync = 2", params)
    return found
