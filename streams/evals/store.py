"""Evaluators of a project: CRUD over ``streams.storage.evaluators``, a short cache, the YAML start-up file.

The YAML file (``LOOPWATCH_EVALUATORS_FILE``) works like the monitors file: a list (or a mapping with an
``evaluators`` list) of entries with ``project`` and ``evaluator_id`` (the upsert key) plus the
``EvaluatorCreate`` fields; ``${NAME}`` reads an environment variable; every problem is reported at once.
"""

from __future__ import annotations

import builtins
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from schemas.evaluators import Evaluator, EvaluatorCreate
from streams.startup_file import load_entries
from streams.storage import Storage
from streams.storage import evaluators as table

log = structlog.get_logger(__name__)


class EvaluatorExistsError(Exception):
    """An evaluator with this id already exists in the project."""


class EvaluatorFileError(ValueError):
    """The evaluators file is unreadable or invalid; the message lists every problem with its location."""


def _new_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower())
    return f"{slug.strip('-')[:40] or 'evaluator'}-{uuid.uuid4().hex[:6]}"


class EvaluatorStore:
    def __init__(self, storage: Storage, *, ttl_seconds: float = 5.0) -> None:
        self._storage = storage
        self._ttl = ttl_seconds
        self._lock = threading.RLock()
        self._enabled: tuple[float, list[Evaluator]] | None = None

    def list(self, project: str) -> builtins.list[Evaluator]:
        return table.stored(self._storage, project)

    def get(self, project: str, evaluator_id: str) -> Evaluator | None:
        found = table.stored(self._storage, project, evaluator_id)
        return found[0] if found else None

    def enabled(self) -> builtins.list[Evaluator]:
        """Every project's enabled evaluators, cached for ``ttl_seconds`` (the sampler's hot path)."""
        now = time.monotonic()
        with self._lock:
            if self._enabled is not None and self._enabled[0] > now:
                return self._enabled[1]
        found = table.all_enabled(self._storage)
        with self._lock:
            self._enabled = (now + self._ttl, found)
        return found

    def invalidate(self) -> None:
        with self._lock:
            self._enabled = None

    def _write(self, evaluator: Evaluator, *, deleted: bool = False) -> None:
        table.write(self._storage, evaluator, deleted=deleted)
        self.invalidate()

    def create(self, project: str, spec: EvaluatorCreate) -> Evaluator:
        with self._lock:
            evaluator_id = spec.evaluator_id or _new_id(spec.name)
            if self.get(project, evaluator_id) is not None:
                raise EvaluatorExistsError(f"evaluator {evaluator_id!r} already exists")
            evaluator = Evaluator(
                **spec.model_dump(exclude={"evaluator_id"}), evaluator_id=evaluator_id, project=project
            )
            self._write(evaluator)
        return evaluator

    def update(self, project: str, evaluator_id: str, changes: Mapping[str, Any]) -> Evaluator | None:
        """Apply ``changes`` and validate the result whole (``ValidationError``); None if there is none."""
        with self._lock:
            current = self.get(project, evaluator_id)
            if current is None:
                return None
            evaluator = Evaluator(
                **{**current.spec_data(), **changes},
                evaluator_id=evaluator_id,
                project=project,
                created_at=current.created_at,
                updated_at=datetime.now(UTC),
            )
            self._write(evaluator)
        return evaluator

    def delete(self, project: str, evaluator_id: str) -> bool:
        with self._lock:
            current = self.get(project, evaluator_id)
            if current is None:
                return False
            self._write(current, deleted=True)
        return True

    def load_file(self, path: str | Path) -> builtins.list[Evaluator]:
        """Validate the file, then store every evaluator whose definition changed."""
        evaluators = load_evaluators_file(path)
        written = 0
        with self._lock:
            for evaluator in evaluators:
                current = self.get(evaluator.project, evaluator.evaluator_id)
                if current is not None:
                    if current.spec_data() == evaluator.spec_data():
                        continue
                    evaluator = evaluator.model_copy(update={"created_at": current.created_at})
                self._write(evaluator)
                written += 1
        log.info("evaluators_file_loaded", path=str(path), evaluators=len(evaluators), written=written)
        return evaluators


def load_evaluators_file(path: str | Path) -> list[Evaluator]:
    """Parse and validate an evaluators YAML file; ``EvaluatorFileError`` lists every problem."""
    return load_entries(
        path,
        Evaluator,
        section="evaluators",
        key_field="evaluator_id",
        set_by_loopwatch=("created_at", "updated_at"),
        error=EvaluatorFileError,
    )
