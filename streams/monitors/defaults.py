"""The monitors a project gets until it configures its own.

They watch every model of the project (scope ``*``) and have no channels: their alerts are stored
(``GET /v1/alerts``) and published to the alerts topic in distributed mode, but delivered nowhere.
Each keeps watching every model its family is not *covered* on (``covers``): a user monitor only
takes a built-in's place on the models and the family it watches itself, so a monitor on one model
never leaves the others unwatched. ``LOOPWATCH_DEFAULT_MONITORS=false`` turns them off everywhere.

=====================  ================================  ======================================  ============
monitor_id             statistic                         condition                               min samples
=====================  ================================  ======================================  ============
default-family-drift   drift / family_drift (any family) flagged (material, significant shift)   30 rows
default-thumbs-drop    quality / thumbs_up_rate          p < 0.002 and lower than the reference  30 thumbs
default-latency-p95    latency / latency_p95_ms          > ``default_latency_p95_ms`` (5000 ms)  20 calls
default-spend-anomaly  cost / spend_anomaly              flagged (spend well above its history)  3 windows
=====================  ================================  ======================================  ============

``default-family-drift`` watches the per-family verdicts (features, prompt, response, embedding; rule in
``detectors.family_drift``): at most one false alarm per 100 stationary windows per model, all families
together with ``default-thumbs-drop``. Evidently's all-columns ``dataset_drift`` stays in ``window_stats``
for monitors that want it, but it is no default: its share over ~30 columns (22 text descriptors) misses
shifts of a few features.

All four: severity ``warning``, cooldown 1 hour, no retraining requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from schemas.monitors import ANY, FlaggedCondition, Monitor, PValueCondition, ThresholdCondition
from schemas.settings import Settings

DEFAULT_LATENCY_P95_MS = 5000.0
# The default monitors' false-alarm budget is 1 % of stationary windows per model: the drift families
# take FAMILY_ALPHA (0.008, split between them), the thumbs-up test the rest.
QUALITY_ALPHA = 0.002
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # fixed, so a default looks the same on every read


def defaults_enabled(settings: Settings) -> bool:
    return bool(getattr(settings, "default_monitors", True))


def default_monitors(project: str, settings: Settings) -> list[Monitor]:
    """The built-in monitors of ``project`` (see the module docstring)."""
    latency_ms = float(getattr(settings, "default_latency_p95_ms", DEFAULT_LATENCY_P95_MS))
    common: dict[str, Any] = {
        "project": project,
        "scope": "*",
        "severity": "warning",
        "cooldown_seconds": 3600,
        "builtin": True,
        "created_at": _EPOCH,
        "updated_at": _EPOCH,
    }
    return [
        Monitor(
            monitor_id="default-family-drift",
            name="Drift in features, prompts, responses or embeddings",
            family="drift",
            metric="family_drift",
            condition=FlaggedCondition(),
            min_samples=30,
            **common,
        ),
        Monitor(
            monitor_id="default-thumbs-drop",
            name="Thumbs-up rate dropped",
            family="quality",
            metric="thumbs_up_rate",
            condition=PValueCondition(alpha=QUALITY_ALPHA, direction="down"),
            min_samples=30,
            **common,
        ),
        Monitor(
            monitor_id="default-latency-p95",
            name=f"p95 latency above {latency_ms:g} ms",
            family="latency",
            metric="latency_p95_ms",
            condition=ThresholdCondition(operator="gt", value=latency_ms),
            min_samples=20,
            **common,
        ),
        Monitor(
            monitor_id="default-spend-anomaly",
            name="Spend anomaly",
            family="cost",
            metric="spend_anomaly",
            condition=FlaggedCondition(),
            min_samples=3,
            **common,
        ),
    ]


def covers(monitor: Monitor, builtin: Monitor, model: str) -> bool:
    """Whether ``monitor`` takes the built-in ``builtin``'s place on ``model``: it is a user monitor,
    enabled, its scope includes the model (the model's name or ``*``) and it watches the same family of
    statistics (drift, quality, latency or cost), whatever its metric, dimension and condition — except
    that a no-data or per-entity (``group_by``) monitor watches something else and covers nothing."""
    return (
        not monitor.builtin
        and monitor.enabled
        and monitor.scope in (ANY, model)
        and monitor.family == builtin.family
        and monitor.group_by is None
        and monitor.condition.type != "no_data"
    )


def monitors_for(monitors: Sequence[Monitor], model: str) -> list[Monitor]:
    """The monitors that judge ``model``'s windows, out of a project's ``monitors`` (user and built-in):
    every enabled user monitor whose scope includes the model, and every enabled built-in that none of
    them covers. Order kept."""
    applying = [m for m in monitors if m.enabled and m.scope in (ANY, model)]
    users = [m for m in applying if not m.builtin]
    return [m for m in applying if not m.builtin or not any(covers(user, m, model) for user in users)]
