"""Monitors, alerts and retraining requests: evaluate closed windows, store what fired, deliver it.

``Monitoring`` bundles the parts a process needs (see ``service``); the parts are usable alone:
``MonitorStore`` (CRUD, YAML loading, defaults), ``MonitorEngine`` (rows → alerts/retrains),
``AlertStore`` (alerts, acks, attempts, requests) and ``AlertDispatcher`` (delivery).
"""

from streams.monitors.alerts import AlertStore
from streams.monitors.defaults import default_monitors
from streams.monitors.dispatcher import AlertDispatcher, Publish, topic_publisher
from streams.monitors.evaluation import EvaluationResult, MonitorEngine
from streams.monitors.service import Monitoring
from streams.monitors.store import (
    BuiltinMonitorError,
    MonitorExistsError,
    MonitorFileError,
    MonitorStore,
    load_monitors_file,
)

__all__ = [
    "AlertDispatcher",
    "AlertStore",
    "BuiltinMonitorError",
    "EvaluationResult",
    "MonitorEngine",
    "MonitorExistsError",
    "MonitorFileError",
    "MonitorStore",
    "Monitoring",
    "Publish",
    "default_monitors",
    "load_monitors_file",
    "topic_publisher",
]
