"""The HTTP API: ingest, feedback queries and export, statistics, monitors, alerts and reports."""

from api.app import create_app

__all__ = ["create_app"]
