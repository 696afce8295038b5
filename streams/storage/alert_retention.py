"""Expiry of a project's alerts: the ``alerts`` table and the rows that hang off an alert
(``alert_acks``, ``alert_resolutions``, ``alert_deliveries``). The other SQL of these tables is in
``streams/monitors/alerts.py``."""

from __future__ import annotations

from datetime import datetime

from streams.storage import expiry
from streams.storage.client import Storage

_OLD_ALERTS = (
    "alert_id IN (SELECT alert_id FROM {db}.alerts WHERE project = {{project:String}} "
    "AND fired_at < {{cutoff:DateTime64(3, 'UTC')}})"
)


def delete_before(storage: Storage, project: str, cutoff: datetime) -> int:
    """Delete the project's alerts fired before ``cutoff``, their acknowledgements and resolutions,
    and delivery attempts made before ``cutoff``; returns the alerts deleted."""
    old = _OLD_ALERTS.format(db=storage.database)
    for table in ("alert_acks", "alert_resolutions"):
        expiry.expire(storage, table, project, "", cutoff, extra=old)
    expiry.expire(storage, "alert_deliveries", project, "at", cutoff)
    return expiry.expire(storage, "alerts", project, "fired_at", cutoff)
