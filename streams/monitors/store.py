"""Monitors: versioned rows (``streams.storage.monitors``), a short per-project cache for the engine,
a YAML loader.

Every change writes a new row of the monitor (``version`` = nanoseconds); reads take the newest with
``FINAL``. The engine asks for a project's active monitors on every closed window, so those lists are
cached for ``ttl_seconds``; writes through this store drop the project's entry at once, writes by
another process show up within the TTL.
"""

from __future__ import annotations

import builtins
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from schemas.channels import EmailChannel, SlackChannel
from schemas.monitors import Monitor, MonitorCreate, MonitorSpec
from schemas.settings import Settings
from streams.delivery.url_guard import UnresolvableTargetError, UnsafeTargetError, check_target
from streams.monitors.defaults import default_monitors, defaults_enabled
from streams.startup_file import load_entries
from streams.storage import Storage
from streams.storage import monitors as monitor_table

log = structlog.get_logger(__name__)

Check = Callable[[Monitor], None]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MonitorExistsError(Exception):
    """A monitor with this id already exists in the project."""


class BuiltinMonitorError(Exception):
    """Built-in default monitors are read-only."""


class MonitorFileError(ValueError):
    """The monitors file is unreadable or invalid; the message lists every problem with its location."""


def channel_problems(
    monitor: MonitorSpec, *, allow_private: bool, tolerate_unresolvable: bool = False
) -> list[tuple[int, str, str]]:
    """Vet every channel's target (DNS + private-network rule): ``(index, field, message)`` per refusal.

    ``tolerate_unresolvable`` (start-up loading) only logs a host that does not resolve now: DNS may be
    down for a moment, and every send checks again anyway.
    """
    problems = []
    for index, channel in enumerate(monitor.channels):
        if isinstance(channel, EmailChannel):
            continue  # sent through the operator's SMTP server (vetted at send time), not to a URL of its own
        field = "webhook_url" if isinstance(channel, SlackChannel) else "url"
        url = channel.webhook_url if isinstance(channel, SlackChannel) else channel.url
        try:
            check_target(url, allow_private=allow_private)
        except UnresolvableTargetError as exc:
            if not tolerate_unresolvable:
                problems.append((index, field, str(exc)))
            log.warning("monitor_target_unresolved", channel=index, error=str(exc))
        except UnsafeTargetError as exc:
            problems.append((index, field, str(exc)))
    return problems


class MonitorStore:
    """CRUD on monitors of a project, plus the engine's cached view of the active ones."""

    def __init__(self, storage: Storage, settings: Settings, *, ttl_seconds: float = 5.0) -> None:
        self._storage = storage
        self._settings = settings
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, list[Monitor]]] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ reads

    def _stored(self, project: str, monitor_id: str | None = None) -> list[Monitor]:
        return monitor_table.stored(self._storage, project, monitor_id)

    def list(self, project: str) -> list[Monitor]:
        """The project's monitors, then the built-in defaults (unless switched off): each built-in
        judges the models no user monitor covers (``defaults.monitors_for``)."""
        stored = self._stored(project)
        if not defaults_enabled(self._settings):
            return stored
        return [*stored, *default_monitors(project, self._settings)]

    def get(self, project: str, monitor_id: str) -> Monitor | None:
        found = self._stored(project, monitor_id)
        if found:
            return found[0]
        return next((m for m in self.list(project) if m.builtin and m.monitor_id == monitor_id), None)

    def active(self, project: str) -> builtins.list[Monitor]:
        """Enabled monitors of ``project`` (user and built-in), cached for ``ttl_seconds`` (the engine's hot path)."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(project)
            if cached is not None and cached[0] > now:
                return cached[1]
        monitors = [monitor for monitor in self.list(project) if monitor.enabled]
        with self._lock:
            self._cache[project] = (now + self._ttl, monitors)
        return monitors

    def projects(self) -> builtins.list[str]:
        """Projects with at least one stored monitor (the no-data sweep visits these)."""
        return monitor_table.projects(self._storage)

    def invalidate(self, project: str | None = None) -> None:
        with self._lock:
            if project is None:
                self._cache.clear()
            else:
                self._cache.pop(project, None)

    # ------------------------------------------------------------------ writes

    def _write(self, monitor: Monitor, *, deleted: bool = False) -> None:
        monitor_table.write(self._storage, monitor, deleted=deleted)
        self.invalidate(monitor.project)

    def create(self, project: str, spec: MonitorCreate, *, check: Check | None = None) -> Monitor:
        """Store a new monitor; ``MonitorExistsError`` when its id is taken in the project. ``check``
        sees the monitor before it is written and may raise to refuse it."""
        data = spec.model_dump(exclude={"monitor_id", "channels"})
        monitor_id = spec.monitor_id
        with self._lock:
            if monitor_id is not None and self._stored(project, monitor_id):
                raise MonitorExistsError(f"monitor {monitor_id!r} already exists")
            extra = {"monitor_id": monitor_id} if monitor_id else {}
            monitor = Monitor(project=project, channels=spec.channels, **data, **extra)
            if check is not None:
                check(monitor)
            self._write(monitor)
        return monitor

    def update(
        self, project: str, monitor_id: str, changes: Mapping[str, Any], *, check: Check | None = None
    ) -> Monitor | None:
        """Apply ``changes`` (spec fields) and validate the result whole; None when there is no such
        monitor. Raises ``ValidationError`` (locations are field names) or ``BuiltinMonitorError``."""
        with self._lock:
            current = self.get(project, monitor_id)
            if current is None:
                return None
            if current.builtin:
                raise BuiltinMonitorError(monitor_id)
            merged = {**current.spec_data(), **changes}
            monitor = Monitor(
                **merged,
                monitor_id=monitor_id,
                project=project,
                created_at=current.created_at,
                updated_at=datetime.now(UTC),
            )
            if check is not None:
                check(monitor)
            self._write(monitor)
        return monitor

    def delete(self, project: str, monitor_id: str) -> bool:
        with self._lock:
            current = self._stored(project, monitor_id)
            if not current:
                if self.get(project, monitor_id) is not None:
                    raise BuiltinMonitorError(monitor_id)
                return False
            self._write(current[0], deleted=True)
        return True

    def upsert(self, monitors: Iterable[Monitor]) -> int:
        """Store monitors by id (the YAML loader); unchanged ones are not rewritten. Returns writes."""
        written = 0
        with self._lock:
            for monitor in monitors:
                existing = self._stored(monitor.project, monitor.monitor_id)
                if existing:
                    created = existing[0].created_at
                    if existing[0].spec_data() == monitor.spec_data():
                        continue
                    monitor = monitor.model_copy(update={"created_at": created, "updated_at": datetime.now(UTC)})
                self._write(monitor)
                written += 1
        return written

    def load_file(self, path: str | Path) -> builtins.list[Monitor]:
        """Validate ``path`` (``load_monitors_file``), vet channel targets, then upsert every monitor."""
        monitors = load_monitors_file(path)
        problems = []
        allow_private = self._settings.allow_private_webhooks
        for index, monitor in enumerate(monitors):
            for channel, field, message in channel_problems(
                monitor, allow_private=allow_private, tolerate_unresolvable=True
            ):
                problems.append(f"monitors[{index}].channels[{channel}].{field}: {message}")
        if problems:
            raise MonitorFileError(f"{path}: " + "; ".join(problems))
        written = self.upsert(monitors)
        log.info("monitors_file_loaded", path=str(path), monitors=len(monitors), written=written)
        return monitors


def load_monitors_file(path: str | Path) -> list[Monitor]:
    """Parse and validate a monitors YAML file (``LOOPWATCH_MONITORS_FILE``); no I/O beyond reading it.

    The file is a list of monitors, or a mapping with a ``monitors`` list. Each entry needs
    ``project`` and ``monitor_id`` (the upsert key) plus the ``MonitorCreate`` fields; ``${NAME}``
    inside strings reads an environment variable (for Slack URLs and webhook secrets). Every problem
    is reported at once as ``MonitorFileError("<path>: monitors[2].condition.value: …; …")``.
    """
    return load_entries(
        path,
        Monitor,
        section="monitors",
        key_field="monitor_id",
        set_by_loopwatch=("builtin", "created_at", "updated_at"),
        error=MonitorFileError,
    )
