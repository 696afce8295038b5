"""docker-compose.yml and docker/Dockerfile agree with the code (no Docker engine needed).

Compose files rot quietly: a renamed setting or a moved port only shows when someone runs it. These
checks read the file the way Compose does (variables interpolated with their defaults, anchors merged)
and hold it against ``Settings``, the CLI and the Kafka script.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml

from loopwatch.cli import app as cli_app
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation for the forms we use: ``${VAR}``, ``${VAR:-default}`` and ``$$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match["name"]) or match["default"] or ""

    return _VARIABLE.sub(replace, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(_interpolate(COMPOSE_TEXT, {}))  # a fresh checkout: defaults only


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


class TestServices:
    """The four services exist, are healthy-gated and wired to each other."""

    def test_services_and_healthchecks(self, services: dict[str, Any]) -> None:
        assert set(services) >= {"kafka", "clickhouse", "api", "worker"}
        for name in ("kafka", "clickhouse", "api"):
            assert services[name]["healthcheck"]["test"], name
        for name in ("api", "worker"):
            depends = services[name]["depends_on"]
            assert {depends[dep]["condition"] for dep in ("kafka", "clickhouse")} == {"service_healthy"}

    def test_kafka_is_a_single_kraft_node_advertising_the_bootstrap(self, services: dict[str, Any]) -> None:
        kafka = services["kafka"]
        env = _env(kafka)
        assert kafka["image"] == "apache/kafka:4.1.2"
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
        assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"]
        assert "PLAINTEXT://:9092" in env["KAFKA_LISTENERS"]
        assert "kafka-broker-api-versions.sh" in str(kafka["healthcheck"]["test"])
        for key in (
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        ):
            assert env[key] == "1"
        assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16  # Kafka's Uuid format
        script = (ROOT / "scripts" / "kafka").read_text()
        assert 'KAFKA_VERSION="${LOOPWATCH_KAFKA_VERSION:-4.1.2}"' in script  # tests run what users run

        for name in ("api", "worker"):
            bootstrap = _env(services[name])["LOOPWATCH_KAFKA_BOOTSTRAP"]
            assert bootstrap == "kafka:9092"
            assert f"PLAINTEXT://{bootstrap}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")

    def test_kafka_log_survives_a_broker_restart(self, compose: dict[str, Any], services: dict[str, Any]) -> None:
        """Acknowledged events wait in Kafka for a worker: its log dir is a named volume."""
        kafka = services["kafka"]
        log_dir = _env(kafka)["KAFKA_LOG_DIRS"]
        named = [volume.split(":")[0] for volume in kafka["volumes"] if volume.split(":")[1] == log_dir]
        assert named, f"no volume mounted at the Kafka log dir {log_dir}"
        assert named[0] in compose["volumes"]

    def test_clickhouse_dsn_points_at_the_clickhouse_service(self, services: dict[str, Any]) -> None:
        clickhouse = services["clickhouse"]
        assert clickhouse["image"].startswith("clickhouse/clickhouse-server:")
        assert clickhouse["ulimits"]["nofile"]["hard"] >= 262144
        assert any(volume.endswith(":/var/lib/clickhouse") for volume in clickhouse["volumes"])
        server = _env(clickhouse)
        for name in ("api", "worker"):
            dsn = urlsplit(_env(services[name])["LOOPWATCH_CLICKHOUSE_DSN"])
            assert (dsn.scheme, dsn.hostname, dsn.port) == ("http", "clickhouse", 8123)
            assert (dsn.username, dsn.password) == (server["CLICKHOUSE_USER"], server["CLICKHOUSE_PASSWORD"])
            assert dsn.path.strip("/") == server["CLICKHOUSE_DB"]

    def test_api_port_and_worker_replicas(self, services: dict[str, Any]) -> None:
        api, worker = services["api"], services["worker"]
        command = api["command"]
        assert command[:2] == ["loopwatch", "serve"]
        port = command[command.index("--port") + 1]
        assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104 - inside the container
        assert api["ports"] == [f"{port}:{port}"]
        assert f"127.0.0.1:{port}/readyz" in str(api["healthcheck"]["test"])
        assert worker["command"] == ["loopwatch", "worker"]
        assert worker["deploy"]["replicas"] == 2
        assert api["image"] == worker["image"]
        assert api["build"]["dockerfile"] == "docker/Dockerfile"

    def test_commands_exist_in_the_cli(self, services: dict[str, Any]) -> None:
        commands = typer.main.get_command(cli_app).commands  # type: ignore[attr-defined]
        for name in ("api", "worker"):
            command = services[name]["command"]
            params = {param.name for param in commands[command[1]].params}
            options = {arg[2:].replace("-", "_") for arg in command[2:] if arg.startswith("--")}
            assert options <= params, (command, params)


class TestSettings:
    """Every LOOPWATCH_* variable is a real setting, and the compose environment parses."""

    def test_every_loopwatch_variable_is_a_setting(self) -> None:
        used = set(re.findall(r"\bLOOPWATCH_[A-Z0-9_]+", COMPOSE_TEXT))
        assert used, "the compose file configures loopwatch through LOOPWATCH_* variables"
        fields = {f"LOOPWATCH_{name.upper()}" for name in Settings.model_fields}
        assert used <= fields, f"not settings: {sorted(used - fields)}"

    def test_settings_parse_the_compose_environment(
        self, services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        env = _env(services["worker"])
        assert env == _env(services["api"])  # one anchor: api and workers cannot drift apart
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.kafka_bootstrap == "kafka:9092"
        assert not settings.embedded
        assert settings.dsn.startswith("http://")
        assert settings.log_format == "json"
        assert "x-loopwatch-env" in COMPOSE_TEXT
        assert "*loopwatch-env" in COMPOSE_TEXT


class TestDockerfile:
    """The image installs the package and runs as a non-root user."""

    def test_dockerfile(self) -> None:
        dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
        assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
        assert re.search(r"^RUN pip install .*\.", dockerfile, re.MULTILINE)
        users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
        assert users
        assert users[-1] not in {"root", "0"}

    def test_build_context_leaves_out_the_kafka_jar_cache(self) -> None:
        ignored = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().split()
        assert {".cache", ".git", ".venv", "tests"} <= set(ignored)
