"""Reads of the ``feedback`` table for evaluations (writes go through the sink)."""

from __future__ import annotations

from streams.storage.client import Storage


def references(storage: Storage, project: str, inference_ids: list[str]) -> dict[str, str]:
    """Each call's reference answer: its newest correction by a person, else its newest label (calls
    without either are missing). Evaluators' own labels never count."""
    if not inference_ids:
        return {}
    rows = storage.rows(
        "SELECT inference_id, argMax(if(kind = 'correction', text, label), (kind = 'correction', timestamp)) AS answer "
        f"FROM {storage.database}.feedback FINAL WHERE project = {{project:String}} "
        "AND inference_id IN {ids:Array(String)} AND kind IN ('correction', 'label') AND source != 'evaluator' "
        "GROUP BY inference_id",
        {"project": project, "ids": inference_ids},
    )
    return {str(row["inference_id"]): str(row["answer"]) for row in rows}
