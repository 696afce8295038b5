"""The ``otlp_texts`` table: prompts and responses captured via log events, joined to the inference
event of their span.

With content capture "via events", an instrumentation puts the prompt and response on a log record
(``gen_ai.client.inference.operation.details``, or the older per-message events) carrying the trace
and span id of the inference, and sends it to ``/v1/logs``, separately from the span sent to
``/v1/traces``, in either order, possibly to another API process. The join key is the inference id
(trace id + span id, the span's ``event_id``).

Why a join at write time, in storage: feedback is joined at read time, but a prompt is not an
annotation beside the event, it is a field of it; drift and text statistics read ``prompt`` and
``response`` from the inferences table when a window closes, and every reader of it would need the
join. So the texts are put *into* the event, whichever side arrives second:

* a logs export stores its texts in ``otlp_texts`` (ReplacingMergeTree by inference id, kept a week),
  then rewrites, in one ``INSERT … SELECT``, the stored inferences among them that lack a prompt or
  response (``complete_stored``): same sort key, newer ``ingested_at``, so the rewrite replaces them;
* a traces export fills the records that carry neither a prompt nor a response (with content on the
  span, a failed call may lack only its response: nothing to look for) from ``otlp_texts`` before
  publishing them (``fill_records``): one point query per export, none when every record has text.

Both steps are idempotent (a resent log finds its inference complete and rewrites nothing; a resent
span is filled again), and no state is held in memory between requests: the state is the texts table,
bounded by its TTL. What it does not cover: a log and its span processed at the same moment (each
misses the other), and, in distributed mode, a log that arrives before the worker has written its span
(the span was filled, from nothing, before it was published). Both leave the event without the text,
never with a wrong one; resending the log completes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from schemas.records import InferenceRecord
from streams.storage import expiry
from streams.storage.client import Storage

TABLE = "otlp_texts"


@dataclass(frozen=True, slots=True)
class LogTexts:
    """The prompt and response a span's log events carried (content captured "via events")."""

    inference_id: str
    prompt: str | None
    response: str | None
    # what redaction found in them, as ``InferenceRecord.pii`` counts it ("prompt.EMAIL": 1); {} when off
    pii: Mapping[str, int] = field(default_factory=dict)


def store(storage: Storage, project: str, texts: Sequence[LogTexts]) -> None:
    """Keep the texts for spans still to come (and for resends of those already here)."""
    rows = [(project, item.inference_id, item.prompt, item.response, dict(item.pii)) for item in texts]
    storage.insert_rows(TABLE, ("project", "inference_id", "prompt", "response", "pii"), rows)


def _merged(counts: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    """Both sets of counts, the higher of the two where both have one."""
    return {name: max(counts.get(name, 0), more.get(name, 0)) for name in {*counts, *more}}


def complete_stored(storage: Storage, project: str, texts: Sequence[LogTexts]) -> int:
    """Rewrite the stored inferences among ``texts`` that lack their prompt or response; how many."""
    if not texts:
        return 0
    db = storage.database
    params = {
        "p": project,
        "ids": [item.inference_id for item in texts],
        "prompts": [item.prompt or "" for item in texts],
        "responses": [item.response or "" for item in texts],
        "names": [list(item.pii) for item in texts],
        "counts": [list(item.pii.values()) for item in texts],
    }
    new_prompt = "transform(event_id, {ids:Array(String)}, {prompts:Array(String)}, '')"
    new_response = "transform(event_id, {ids:Array(String)}, {responses:Array(String)}, '')"
    # the texts' counts, where higher than the call's own (a call scanned without its texts has 0s)
    at = "indexOf({ids:Array(String)}, event_id)"
    found = (
        "CAST(mapFromArrays(arrayElement({names:Array(Array(String))}, "
        f"{at}), arrayElement({{counts:Array(Array(UInt16))}}, {at})) AS Map(LowCardinality(String), UInt16))"
    )
    new_pii = f"mapUpdate(pii, mapFilter((name, count) -> count > pii[name], {found}))"
    missing = f"((prompt = '' AND {new_prompt} != '') OR (response = '' AND {new_response} != ''))"
    lacking = (
        f"SELECT * FROM {db}.inferences FINAL WHERE project = {{p:String}} "
        f"AND event_id IN {{ids:Array(String)}} AND {missing}"
    )
    count = int(storage.scalar(f"SELECT count() FROM ({lacking})", params) or 0)
    if count:  # the subquery keeps the filter on the stored columns (an alias below would shadow them)
        storage.command(
            f"INSERT INTO {db}.inferences SELECT * REPLACE ("
            f"if(prompt = '', {new_prompt}, prompt) AS prompt, "
            f"if(response = '', {new_response}, response) AS response, {new_pii} AS pii, "
            "now64(3) AS ingested_at) "
            f"FROM ({lacking})",
            params,
        )
    return count


def fill_records(storage: Storage, project: str, records: Sequence[InferenceRecord]) -> int:
    """Fill the records without text from texts their logs brought first; how many."""
    lacking = {record.event_id: record for record in records if record.prompt is None and record.response is None}
    if not lacking:
        return 0
    rows = storage.query(
        f"SELECT inference_id, prompt, response, pii FROM {storage.database}.{TABLE} FINAL "
        "WHERE project = {p:String} AND inference_id IN {ids:Array(String)}",
        {"p": project, "ids": list(lacking)},
    ).result_rows
    for inference_id, prompt, response, pii in rows:
        record = lacking[inference_id]
        record.prompt = record.prompt or prompt
        record.response = record.response or response
        if pii:  # counted when the texts were redacted: redacting the record again finds placeholders
            record.pii = _merged(record.pii if isinstance(record.pii, dict) else {}, pii)
    return len(rows)


def erase(storage: Storage, project: str, inference_ids: Sequence[str]) -> int:
    """Delete the texts kept for these inferences (an erased user's); returns how many."""
    if not inference_ids:
        return 0
    params = {"project": project, "ids": list(inference_ids)}
    where = "project = {project:String} AND has({ids:Array(String)}, inference_id)"
    return expiry.delete_where(storage, TABLE, where, params, count="uniqExact(inference_id)")


def delete_before(storage: Storage, project: str, cutoff: datetime) -> int:
    """Delete the project's OTLP texts kept before ``cutoff`` (they are raw text only)."""
    return expiry.expire(storage, "otlp_texts", project, "ingested_at", cutoff)
