"""Runtime configuration, read from ``LOOPWATCH_*`` environment variables (and a ``.env`` file).

Built by a factory, never at import time, so tests and the CLI can build their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "admin", "password"}


class Settings(BaseSettings):
    """Everything a loopwatch process needs to know about its environment."""

    model_config = SettingsConfigDict(env_prefix="LOOPWATCH_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".loopwatch")
    clickhouse_dsn: str | None = Field(
        default=None,
        description="chdb:///<dir> (embedded, default <data_dir>/chdb) or http(s)://host:8123[/db]",
    )
    clickhouse_database: str = Field(default="loopwatch", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    retention_days: int | None = Field(default=None, ge=1, description="TTL for raw events; none keeps all")
    retention_sweep_seconds: float = Field(
        default=3600.0, gt=0, description="how often projects' retention policies are enforced (streams/privacy)"
    )
    chdb_cache_mb: int = Field(
        default=256,
        ge=16,
        description="embedded chDB: the memory its caches may hold (marks, primary index, skip-index marks, "
        "query conditions; ClickHouse's defaults are 5 GiB each), so the process stays flat as data grows",
    )
    malloc_tuning: bool = Field(
        default=True,
        description="`serve`/`worker`/`up`: fixed glibc malloc thresholds and 2 arenas (streams/allocator.py), so "
        "freed chDB buffers go back to the OS instead of fragmenting the heap; false keeps glibc's defaults",
    )

    kafka_bootstrap: str | None = Field(default=None, description="host:port[,host:port]; unset = embedded")
    topic_prefix: str = "loopwatch"
    kafka_partitions: int = Field(default=4, ge=1)
    kafka_replication: int = Field(default=1, ge=1)
    kafka_session_timeout_seconds: float = Field(
        default=10.0, ge=6.0, description="how soon a crashed worker's partitions move to another"
    )
    kafka_envelope_max_events: int = Field(default=1000, ge=1)
    kafka_envelope_max_bytes: int = Field(default=900_000, ge=10_000)

    window_seconds: int = Field(default=300, ge=1)
    allowed_lateness_seconds: int = Field(default=60, ge=0)
    close_share_under_ingest: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="while events arrive, the window closer computes at most this share of the time and pauses "
        "for the rest (streams/stats/pacing.py): ingest keeps its throughput during a backlog; 1 = never pause",
    )
    batch_max_events: int = Field(default=10_000, ge=1)
    batch_max_seconds: float = Field(default=0.5, gt=0)
    queue_max_batches: int = Field(default=256, ge=1)
    ingest_ack: Literal["written", "queued"] = Field(
        default="written",
        description="embedded mode: a 202 waits until the events are written to ClickHouse (written), "
        "or only until they are queued in memory (queued: faster, loses them if the process dies)",
    )
    commit_interval_seconds: float = Field(
        default=0.02,
        gt=0,
        le=5,
        description="written acks: the longest a request's events wait for the next group commit",
    )
    ack_timeout_seconds: float = Field(
        default=30.0, gt=0, description="written acks: answer 503 (resend) if the write takes longer"
    )

    stats_enabled: bool = True
    drift_sample_rows: int = Field(default=5_000, ge=100, description="rows per window sampled for drift")
    drift_share: float = Field(default=0.5, gt=0, le=1, description="dataset drift when this share drifts")
    drift_correction: Literal["none", "bonferroni", "holm", "fdr_bh"] = "none"
    reference_min_rows: int = Field(default=100, ge=1, description="rows the default reference window needs")
    cost_tag_keys: list[str] = Field(default_factory=lambda: ["route", "app", "environment"])
    cost_overrides: dict[str, dict[str, float]] = Field(
        default_factory=dict, description='{"my-model": {"input_per_mtok": 0.2, "output_per_mtok": 0.6}}'
    )
    spend_history_windows: int = Field(default=12, ge=3)
    entity_top_k: int = Field(default=20, ge=1, le=1000, description="entities a group_by monitor names per window")
    entity_pass_size: int = Field(
        default=100_000, ge=1000, description="group_by: distinct tag values aggregated at once (more: in passes)"
    )
    no_data_lookback_seconds: float = Field(
        default=86400.0, ge=60, description="a source counts as sending when it had events this recently"
    )
    no_data_check_seconds: float = Field(default=60.0, gt=0, description="how often no-data monitors are judged")
    queue_fill_seconds: float = Field(default=30.0, gt=0, description="how often review queues take new calls")
    queue_fill_settle_seconds: float = Field(
        default=10.0, ge=0, description="review queues take what arrived at least this long ago (inserts in flight)"
    )
    queue_fill_batch: int = Field(default=5000, ge=100, le=100_000, description="arrivals one queue fill pass reads")
    quality_refresh_seconds: float = Field(default=5.0, gt=0)
    stop_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="on SIGTERM, window statistics still due after this long wait for the next start",
    )

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_batch_items: int = Field(default=5_000, ge=1)
    max_future_skew_seconds: float = Field(
        default=300.0, ge=0, description="events stamped further ahead of this server's clock are refused (422)"
    )
    naive_timestamps: Literal["utc", "refuse"] = Field(
        default="utc", description="event times without a time zone: taken as UTC, or refused (422)"
    )
    admin_key: SecretStr | None = None
    ui_secret: SecretStr | None = Field(
        default=None,
        description="signs dashboard (/ui) session cookies; set the same value on every API replica "
        "(unset: a random per-process secret, so sessions do not survive a restart or cross replicas)",
    )
    public_url: str = "http://127.0.0.1:8000"
    redaction_mode: Literal["off", "detect", "mask", "pseudonymize", "drop"] = Field(
        default="mask", description="redaction policy of projects without their own (streams/privacy)"
    )
    redaction_key: SecretStr | None = Field(
        default=None, description="HMAC key of pseudonyms (<EMAIL:9f2c…>); never stored or logged"
    )
    envelope_key: SecretStr | None = Field(
        default=None,
        description="marks the envelopes the API publishes to Kafka as redacted (an HMAC); set the same value on "
        "the API and the workers, which then skip a second scan of those (unset: workers scan every envelope)",
    )
    redaction_phone_region: str = Field(
        default="US", pattern=r"^[A-Z]{2}$", description="the region of phone numbers written without +country"
    )

    monitors_file: Path | None = None
    default_monitors: bool = Field(default=True, description="built-in monitors for projects that configure none")
    default_latency_p95_ms: float = Field(default=5000.0, gt=0, description="threshold of the built-in p95 monitor")
    allow_private_webhooks: bool = False
    delivery_max_attempts: int = Field(default=5, ge=1)
    delivery_backoff_seconds: float = Field(default=1.0, gt=0)
    delivery_timeout_seconds: float = Field(default=5.0, gt=0)
    group_wait_seconds: float = Field(
        default=0.0,
        ge=0,
        description="how long an alert waits for the other alerts of its monitor and window, sent as one message; 0 = "
        "each alert on its own at once",
    )
    smtp_host: str | None = Field(
        default=None,
        description="email channels: the SMTP server (a private or "
        "loopback address needs LOOPWATCH_ALLOW_PRIVATE_WEBHOOKS=true)",
    )
    smtp_port: int = Field(default=587, ge=1, le=65_535)
    smtp_username: str | None = None
    smtp_password_env: str | None = Field(
        default=None, description="the environment variable holding the SMTP password"
    )
    smtp_from: str = Field(default="loopwatch@localhost", description="the From address of alert emails")
    smtp_starttls: bool = Field(
        default=True, description="upgrade with STARTTLS before sending (refuses a server without it)"
    )
    smtp_ca_file: Path | None = Field(
        default=None, description="PEM certificates to trust for STARTTLS instead of the system's"
    )
    evaluators_file: Path | None = Field(default=None, description="online evaluators loaded at start-up (YAML)")
    evaluator_allowed_hosts: str = Field(
        default="", description="judge hosts or CIDRs allowed on private/loopback addresses, comma-separated"
    )
    evaluator_max_attempts: int = Field(default=4, ge=1, description="judge attempts per evaluation (429/5xx/timeouts)")
    evaluator_backoff_seconds: float = Field(default=1.0, gt=0)
    evaluator_concurrency: int = Field(default=8, ge=1, description="judge requests in flight per endpoint")
    evaluator_breaker_failures: int = Field(
        default=5, ge=1, description="failures in a row that open a judge's breaker"
    )
    evaluator_breaker_seconds: float = Field(default=30.0, gt=0, description="how long an open breaker stays open")
    evaluator_poll_seconds: float = Field(
        default=1.0, gt=0, description="how often an idle worker looks for work it was not woken for (other processes')"
    )
    evaluator_lease_seconds: float = Field(default=300.0, gt=0, description="when another host's claim counts as lost")

    metrics_port: int | None = Field(
        default=None, ge=1, le=65_535, description="`loopwatch worker` serves /metrics on this port; unset = not served"
    )
    metrics_host: str = Field(default="127.0.0.1", description="the worker's metrics bind address; 0.0.0.0 exposes it")

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"

    @field_validator("admin_key", "ui_secret", "redaction_key", "envelope_key")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and (value.get_secret_value().lower() in _PLACEHOLDER_SECRETS or len(value) < 16):
            raise ValueError(f"{info.field_name} must be a real secret of at least 16 characters")
        return value

    @property
    def dsn(self) -> str:
        """The ClickHouse DSN, defaulting to the embedded chDB engine under ``data_dir``."""
        if self.clickhouse_dsn:
            return self.clickhouse_dsn
        return f"chdb://{(self.data_dir / 'chdb').resolve()}"

    @property
    def embedded(self) -> bool:
        """True when no Kafka is configured: one process runs API and processors on an in-process bus."""
        return not self.kafka_bootstrap
