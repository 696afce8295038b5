"""Fixtures for delivery tests: a live loopback receiver and sample events."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.events import AlertEvent, RetrainEvent
from tests.delivery.delivery_receiver import TLS_NAME, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate (and key) for ``TLS_NAME``, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(  # noqa: S603 - fixed arguments, test-only
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            f"/CN={TLS_NAME}",
            "-addext",
            f"subjectAltName=DNS:{TLS_NAME}",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_receiver(tls_cert: tuple[Path, Path]) -> Iterator[Receiver]:
    """A receiver speaking HTTPS with a certificate valid only for ``TLS_NAME`` (not for 127.0.0.1)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_cert)
    server = Receiver(tls=context)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def alert() -> AlertEvent:
    return AlertEvent(
        alert_id="alert-7f3a",
        project="checkout",
        monitor_id="mon-42",
        monitor_name="Feature drift (PSI)",
        model="fraud-scorer",
        model_version="2024.06.1",
        kind="drift",
        severity="critical",
        window_start=datetime(2025, 3, 4, 10, 0, tzinfo=UTC),
        window_end=datetime(2025, 3, 4, 10, 5, tzinfo=UTC),
        metric="share_drifted_features",
        value=0.4375,
        threshold=0.3,
        condition=">",
        details={
            "features": [
                {"name": "amount", "method": "psi", "value": 0.81, "threshold": 0.1, "drifted": True},
                {
                    "name": "merchant_category",
                    "method": "jensenshannon",
                    "value": 0.27,
                    "threshold": 0.1,
                    "drifted": True,
                },
                {"name": "hour_of_day", "method": "ks", "value": 0.003, "threshold": 0.05, "drifted": True},
                {
                    "name": "country",
                    "method": "chisquare",
                    "value": 0.64,
                    "threshold": 0.05,
                    "drifted": False,
                },
            ]
        },
        alert_url="https://loopwatch.example.com/ui/alerts/alert-7f3a?project=checkout",
        window_url="https://loopwatch.example.com/ui/models/fraud-scorer/windows/2025-03-04T10%3A00%3A00%2B00%3A00",
        api_url="https://loopwatch.example.com/v1/alerts/alert-7f3a",
        stats_api_url="https://loopwatch.example.com/v1/reports/drift?model=fraud-scorer&window_start=2025-03-04T10%3A00%3A00%2B00%3A00",
        dedup_key="mon-42:fraud-scorer:2025-03-04T10:00",
    )


@pytest.fixture
def retrain() -> RetrainEvent:
    return RetrainEvent(
        request_id="retrain-19",
        project="checkout",
        model="fraud-scorer",
        model_version="2024.06.1",
        reason=["alert-7f3a", "alert-7f3b"],
        window_start=datetime(2025, 3, 4, 9, 0, tzinfo=UTC),
        window_end=datetime(2025, 3, 4, 10, 5, tzinfo=UTC),
        evidence={"drift": {"share_drifted_features": 0.4375}, "quality": {"positive_rate_drop": 0.12}},
        dataset={"model": "fraud-scorer", "kinds": ["label"], "from": "2025-02-01", "to": "2025-03-04"},
    )
