"""A retraining request names a dataset version: the snapshot of its training selector.

The engine's claim winner makes the snapshot right after it won the request, then stores the request
again with the version in ``dataset`` before handing it to the dispatcher. Should the process die in
between (kill -9), the request is stored without a version and owes its channels a delivery; the
dispatcher that resumes it calls ``with_dataset`` first, which finds the version made for the request
if its commit landed, or makes one now (a half-made build is never named: see
``streams.storage.datasets``). Two processes resuming the same request at once make one version: the
``snapshot`` claim on the request decides which makes it, the other waits for its commit (or takes
the claim over should the maker die). Either way the request goes out once per channel (delivery claims),
always naming a committed version.
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from schemas.events import RetrainEvent
from schemas.settings import Settings
from streams.datasets import snapshot
from streams.monitors.alerts import AlertStore
from streams.storage.datasets import DatasetFormat, DatasetQuery, DatasetStore, DatasetVersion

TRAINING_FORMAT: DatasetFormat = "chat"
SNAPSHOT_WAIT_SECONDS = 300.0  # how long a process waits for another one making a request's version
_POLL_SECONDS = 0.2
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def dataset_name(model: str) -> str:
    """``retrain-<model>``, made path-safe; a model whose name had to change gets a short hash of it."""
    slug = _UNSAFE.sub("-", model).strip("-.")[:80] or "model"
    if slug != model:
        slug += "-" + hashlib.sha256(model.encode()).hexdigest()[:8]
    return f"retrain-{slug}"


def selector_query(retrain: RetrainEvent) -> DatasetQuery:
    """The request's training selector (``/v1/feedback/export`` parameters) as a snapshot query."""
    params: dict[str, Any] = retrain.dataset.get("params") or {}
    kind = params.get("kind")
    return DatasetQuery(
        model=params.get("model") or retrain.model,
        kinds=(kind,) if isinstance(kind, str) else tuple(kind or ()),
        since=datetime.fromisoformat(params["since"]) if params.get("since") else None,
        until=datetime.fromisoformat(params["until"]) if params.get("until") else None,
    )


def dataset_fields(settings: Settings, version: DatasetVersion) -> dict[str, Any]:
    base = settings.public_url.rstrip("/")
    name = quote(version.name, safe="")
    return {
        "dataset_id": version.name,
        "version": version.version,
        "format": version.format,
        "rows": version.row_count,
        "bytes": version.byte_count,
        "sha256": version.sha256,
        "download_url": f"{base}/v1/datasets/{name}/versions/{version.version}/download",
        "dashboard_url": f"{base}/ui/datasets/{name}/{version.version}?" + urlencode({"project": version.project}),
    }


def with_dataset(alerts: AlertStore, settings: Settings, retrain: RetrainEvent) -> RetrainEvent:
    """``retrain`` naming its dataset version: as it is if it does already, else with the version made
    for it (found, or made now) and stored so."""
    if "version" in retrain.dataset:
        return retrain
    version = request_version(alerts.datasets, retrain)
    named = retrain.model_copy(update={"dataset": {**retrain.dataset, **dataset_fields(settings, version)}})
    alerts.restore_retrain(named)
    return named


class SnapshotPendingError(RuntimeError):
    """Another live process is still making the request's version (the delivery is retried later)."""


def request_version(
    store: DatasetStore, retrain: RetrainEvent, *, wait: float = SNAPSHOT_WAIT_SECONDS
) -> DatasetVersion:
    """The one version of the request's dataset: found, made now by this process if it wins the
    request's ``snapshot`` claim (or takes it over from a process that died making it), or, while
    another live process makes it, waited for (``SnapshotPendingError`` after ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        version = store.for_request(retrain.project, retrain.request_id)
        if version is not None:
            return version
        if store.claim_snapshot(retrain.project, retrain.request_id):
            return store.for_request(retrain.project, retrain.request_id) or snapshot(
                store,
                retrain.project,
                dataset_name(retrain.model),
                selector_query(retrain),
                TRAINING_FORMAT,
                created_by="retraining request",
                request_id=retrain.request_id,
            )
        if time.monotonic() > deadline:
            raise SnapshotPendingError(f"the dataset of retraining request {retrain.request_id} is still being made")
        time.sleep(_POLL_SECONDS)
