"""Key lifecycle over HTTP and the CLI: expiry, rotation with two live keys, last use recorded at most
once a minute. Real app, real chDB; time moves by setting the key store's clock, never by sleeping."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from schemas.durations import parse_duration
from tests.conftest import Api, make_settings

REPO = Path(__file__).resolve().parents[2]
ADMIN = "lifecycle-admin-key-0123456789"
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN}"}


class Clock:
    """A clock the test moves: starts at the real time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def admin_api(data_dir: Path) -> Iterator[tuple[Api, Clock]]:
    with TestClient(serving_app(make_settings(data_dir, admin_key=ADMIN))) as client:
        api = Api(client)
        clock = Clock()
        api.services.keys.clock = clock
        yield api, clock
        storage = api.services.storage
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def _get(api: Api, token: str) -> int:
    return api.client.get("/v1/models", headers={"authorization": f"Bearer {token}"}).status_code


def _listed(api: Api, key_id: str) -> dict:
    keys = api.client.get("/v1/keys", params={"project": "life"}, headers=ADMIN_HEADERS).json()
    return next(key for key in keys if key["key_id"] == key_id)


class TestExpiry:
    """A key made with an expiry works until then and answers 401 saying it expired after."""

    def test_expired_key_is_401_saying_so(self, admin_api: tuple[Api, Clock]) -> None:
        api, clock = admin_api
        expires = clock.now + timedelta(days=30)
        made = api.client.post(
            "/v1/keys", json={"project": "life", "expires_at": expires.isoformat()}, headers=ADMIN_HEADERS
        )
        assert made.status_code == 201, made.text
        stored_expiry = expires.replace(microsecond=expires.microsecond // 1000 * 1000)  # kept to the millisecond
        assert datetime.fromisoformat(made.json()["expires_at"]) == stored_expiry
        token = made.json()["token"]
        assert _get(api, token) == 200
        clock.now += timedelta(days=30, seconds=1)
        response = api.client.get("/v1/models", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert "expired at" in response.json()["detail"]
        listed = _listed(api, made.json()["key_id"])
        assert listed["expired"] is True
        assert datetime.fromisoformat(listed["expires_at"]) == stored_expiry

    def test_expiry_in_the_past_is_refused(self, admin_api: tuple[Api, Clock]) -> None:
        api, clock = admin_api
        past = (clock.now - timedelta(minutes=1)).isoformat()
        response = api.client.post("/v1/keys", json={"project": "life", "expires_at": past}, headers=ADMIN_HEADERS)
        assert response.status_code == 422
        assert response.json()["detail"][0]["msg"] == "expires_at must be in the future"
        assert response.json()["detail"][0]["loc"] == ["body", "expires_at"]


class TestRotation:
    """Rotation makes a new token; both work during the grace period, then only the new one."""

    def test_two_live_keys_then_one(self, admin_api: tuple[Api, Clock]) -> None:
        api, clock = admin_api
        old = api.client.post("/v1/keys", json={"project": "life", "scope": "read"}, headers=ADMIN_HEADERS).json()
        rotated = api.client.post(
            f"/v1/keys/{old['key_id']}/rotate", json={"grace_seconds": 3600}, headers=ADMIN_HEADERS
        )
        assert rotated.status_code == 201, rotated.text
        new = rotated.json()
        assert new["token"] != old["token"]
        assert (new["rotated_from"], new["scope"], new["project"]) == (old["key_id"], "read", "life")
        assert _get(api, old["token"]) == 200
        assert _get(api, new["token"]) == 200
        clock.now += timedelta(hours=1, seconds=1)
        assert _get(api, old["token"]) == 401
        assert _get(api, new["token"]) == 200

    def test_rotating_an_unknown_or_revoked_key_is_404(self, admin_api: tuple[Api, Clock]) -> None:
        api, _ = admin_api
        made = api.client.post("/v1/keys", json={"project": "life"}, headers=ADMIN_HEADERS).json()
        not_seconds = api.client.post(
            f"/v1/keys/{made['key_id']}/rotate", json={"grace_seconds": False}, headers=ADMIN_HEADERS
        )
        assert not_seconds.status_code == 422  # a number of seconds, not a boolean
        whole = api.client.post(
            f"/v1/keys/{made['key_id']}/rotate", json={"grace_seconds": 60.0}, headers=ADMIN_HEADERS
        )
        assert whole.status_code == 201  # JSON's integer 60.0
        assert api.client.post("/v1/keys/nope/rotate", headers=ADMIN_HEADERS).status_code == 404
        made = api.client.post("/v1/keys", json={"project": "life"}, headers=ADMIN_HEADERS).json()
        assert api.client.delete(f"/v1/keys/{made['key_id']}", headers=ADMIN_HEADERS).status_code == 204
        response = api.client.post(f"/v1/keys/{made['key_id']}/rotate", headers=ADMIN_HEADERS)
        assert response.status_code == 404
        assert "revoked" in response.json()["detail"]


class TestLastUsed:
    """The last use is written at most once a minute per key, and listed."""

    def test_one_write_a_minute(self, admin_api: tuple[Api, Clock]) -> None:
        api, clock = admin_api
        made = api.client.post("/v1/keys", json={"project": "life"}, headers=ADMIN_HEADERS).json()
        assert _listed(api, made["key_id"])["last_used_at"] is None
        storage = api.services.storage

        def writes() -> int:
            return int(
                storage.scalar(
                    f"SELECT count() FROM {storage.database}.api_key_usage WHERE key_id = {{k:String}}",
                    {"k": made["key_id"]},
                )
            )

        first = clock.now
        for _ in range(5):
            assert _get(api, made["token"]) == 200
        assert writes() == 1
        clock.now += timedelta(seconds=59)
        assert _get(api, made["token"]) == 200
        assert writes() == 1
        clock.now += timedelta(seconds=2)
        assert _get(api, made["token"]) == 200
        assert writes() == 2
        used = datetime.fromisoformat(_listed(api, made["key_id"])["last_used_at"])
        assert abs(used - (first + timedelta(seconds=61))) < timedelta(milliseconds=2)


class TestCli:
    """``keys create --expires-in``, ``keys rotate --grace`` and ``keys list`` on a local database (each
    a process of its own, as at a terminal: chDB holds one data directory per process)."""

    def test_create_rotate_list(self, tmp_path: Path) -> None:
        env = {name: value for name, value in os.environ.items() if not name.startswith("LOOPWATCH_")}
        env |= {"PYTHONPATH": str(REPO), "LOOPWATCH_DATA_DIR": str(tmp_path), "COLUMNS": "250"}

        def loopwatch(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(  # noqa: S603 - fixed argv
                [sys.executable, "-m", "loopwatch", "keys", *args],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        made = loopwatch("create", "--project", "life", "--expires-in", "30d")
        assert made.returncode == 0, made.stderr
        assert "expires" in made.stdout
        key_id = made.stdout.split()[1]
        rotated = loopwatch("rotate", key_id, "--grace", "2h")
        assert rotated.returncode == 0, rotated.stderr
        assert f"replaces {key_id}" in rotated.stdout
        listed = loopwatch("list", "--project", "life")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.count("never") == 2, listed.stdout  # neither key used yet
        assert loopwatch("revoke", key_id).returncode == 0
        bad = loopwatch("create", "--project", "life", "--expires-in", "soon")
        assert bad.returncode == 2
        assert "not a duration" in bad.stdout
        read_audit = (
            "from schemas.settings import Settings; from streams.storage import Storage, audit; "
            "print(sorted((e.action, e.actor) for e in audit.entries(Storage(Settings()), project='life')))"
        )
        logged = subprocess.run(  # noqa: S603 - fixed argv
            [sys.executable, "-c", read_audit], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert logged.stdout.strip() == "[('key.create', 'cli'), ('key.revoke', 'cli'), ('key.rotate', 'cli')]", (
            logged.stderr
        )


class TestDurations:
    def test_units_and_refusals(self) -> None:
        assert parse_duration("30d") == timedelta(days=30)
        assert parse_duration("24h") == timedelta(hours=24)
        assert parse_duration("0s", zero=True) == timedelta(0)
        for bad in ("0s", "d", "3 days", "-1h"):
            with pytest.raises(ValueError, match="duration"):
                parse_duration(bad)
