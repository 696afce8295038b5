"""Datasets: snapshot a feedback selection, render it in a training format, hash the bytes.

``snapshot`` copies the rows (``streams.storage.datasets``), renders them once to count and hash the
bytes, then commits the version. ``render`` is the one encoder: the hash at creation and every later
download come from it over the same stored rows, so a download's bytes equal the hash.

Formats: ``jsonl`` (one feedback item with its call per line), ``chat`` (SFT: the prompt and the
correction as messages), ``dpo`` (``prompt``, ``chosen`` = the correction, ``rejected`` = the response),
``csv`` (the jsonl columns, tags as JSON) and ``parquet`` (the jsonl columns, typed).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import structlog

from streams.storage.datasets import DatasetFormat, DatasetQuery, DatasetRow, DatasetStore, DatasetVersion

log = structlog.get_logger(__name__)

MEDIA_TYPES: dict[str, str] = {
    "jsonl": "application/x-ndjson",
    "chat": "application/x-ndjson",
    "dpo": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
EXTENSIONS = {"jsonl": "jsonl", "chat": "jsonl", "dpo": "jsonl", "csv": "csv", "parquet": "parquet"}
_CSV_COLUMNS = [
    "feedback_id",
    "inference_id",
    "timestamp",
    "kind",
    "value",
    "label",
    "name",
    "text",
    "source",
    "user_id",
    "model",
    "model_version",
    "prompt",
    "response",
    "tags",
]
PARQUET_SCHEMA = pa.schema(
    [
        ("feedback_id", pa.string()),
        ("inference_id", pa.string()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("kind", pa.string()),
        ("value", pa.float64()),
        ("label", pa.string()),
        ("name", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("user_id", pa.string()),
        ("model", pa.string()),
        ("model_version", pa.string()),
        ("prompt", pa.string()),
        ("response", pa.string()),
        ("tags", pa.map_(pa.string(), pa.string())),
    ]
)
_PARQUET_ROWS = 10_000  # rows per row group: one group in memory at a time
_JSON = orjson.OPT_APPEND_NEWLINE | orjson.OPT_UTC_Z


def record(row: DatasetRow) -> dict[str, object]:
    """A row as the jsonl format writes it."""
    return {
        "feedback_id": row.feedback_id,
        "inference_id": row.inference_id,
        "timestamp": row.timestamp,
        "kind": row.kind,
        "value": row.value,
        "label": row.label,
        "name": row.name,
        "text": row.text,
        "source": row.source,
        "user_id": row.user_id,
        "model": row.model,
        "model_version": row.model_version,
        "prompt": row.prompt,
        "response": row.response,
        "tags": row.tags,
    }


def _jsonl(rows: Iterable[DatasetRow]) -> Iterator[bytes]:
    for row in rows:
        yield orjson.dumps(record(row), option=_JSON)


def _chat(rows: Iterable[DatasetRow]) -> Iterator[bytes]:
    for row in rows:
        messages = [{"role": "user", "content": row.prompt}, {"role": "assistant", "content": row.text}]
        yield orjson.dumps({"messages": messages}, option=_JSON)


def _dpo(rows: Iterable[DatasetRow]) -> Iterator[bytes]:
    for row in rows:
        yield orjson.dumps({"prompt": row.prompt, "chosen": row.text, "rejected": row.response}, option=_JSON)


def _csv(rows: Iterable[DatasetRow]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for count, row in enumerate(rows, 1):
        flat = record(row)
        flat["timestamp"] = row.timestamp.isoformat().replace("+00:00", "Z")
        flat["value"] = "" if row.value is None else repr(row.value)
        flat["tags"] = orjson.dumps(row.tags, option=orjson.OPT_SORT_KEYS).decode()
        writer.writerow(flat)
        if count % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


class _Chunks(io.RawIOBase):
    """A write-only file that collects what pyarrow writes, for the caller to take and yield."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def _parquet(rows: Iterable[DatasetRow]) -> Iterator[bytes]:
    sink = _Chunks()
    writer = pq.ParquetWriter(sink, PARQUET_SCHEMA, compression="zstd")
    batch: list[dict[str, object]] = []

    def flush() -> None:
        table = pa.Table.from_pylist(
            [{**item, "tags": list(item["tags"].items())} for item in batch],  # type: ignore[attr-defined]
            schema=PARQUET_SCHEMA,
        )
        writer.write_table(table)
        batch.clear()

    for row in rows:
        batch.append(record(row))
        if len(batch) >= _PARQUET_ROWS:
            flush()
            yield sink.take()
    if batch:
        flush()
    writer.close()
    yield sink.take()


_RENDERERS = {"jsonl": _jsonl, "chat": _chat, "dpo": _dpo, "csv": _csv, "parquet": _parquet}


def render(store: DatasetStore, version: DatasetVersion) -> Iterator[bytes]:
    """The bytes of a version, streamed (bounded memory), identical on every call."""
    for chunk in _RENDERERS[version.format](store.rows(version.project, version.build_id)):
        if chunk:
            yield chunk


def snapshot(
    store: DatasetStore,
    project: str,
    name: str,
    query: DatasetQuery,
    fmt: DatasetFormat,
    *,
    created_by: str = "",
    request_id: str = "",
) -> DatasetVersion:
    """Make and commit the next version of ``name`` from what ``query`` selects now."""
    build_id = store.build(project, query, fmt)
    number = store.claim_version(project, name)
    draft = DatasetVersion(
        project=project,
        name=name,
        version=number,
        format=fmt,
        row_count=store.build_stats(project, build_id),
        byte_count=0,
        sha256="",
        query=query,
        created_at=datetime.now(UTC),
        created_by=created_by,
        request_id=request_id,
        build_id=build_id,
    )
    digest, size = hashlib.sha256(), 0
    for chunk in render(store, draft):
        digest.update(chunk)
        size += len(chunk)
    version = DatasetVersion(
        **{
            **{slot: getattr(draft, slot) for slot in DatasetVersion.__slots__},
            "byte_count": size,
            "sha256": digest.hexdigest(),
        }
    )
    store.commit(version)
    log.info(
        "dataset_version_created",
        project=project,
        dataset=name,
        version=number,
        format=fmt,
        rows=version.row_count,
        bytes=size,
        request_id=request_id or None,
    )
    return version
