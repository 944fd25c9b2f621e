"""One frozen settings object for every command: `CXJ_*` variables, `.cxj/stack.env`, flags."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.errors import ConfigError
from schemas.touchpoint import ID_FIELDS

__all__ = ["ApiToken", "ClickHouseDSN", "Settings", "load_settings"]

DEFAULT_BLOCKLIST = ("null", "undefined", "anonymous", "0", "-1", "none", "nil", "unknown", "n/a")


@dataclass(frozen=True)
class ClickHouseDSN:
    """The parts of `CXJ_CLICKHOUSE_URL` (`clickhouse://user:pass@host:port/db`)."""

    host: str
    port: int
    user: str
    password: SecretStr
    database: str

    def __repr__(self) -> str:
        return f"ClickHouseDSN({self.user}@{self.host}:{self.port}/{self.database})"

    @classmethod
    def parse(cls, url: str) -> ClickHouseDSN:
        parts = urlsplit(url)
        if parts.scheme not in ("clickhouse", "clickhouse+native"):
            raise ConfigError(
                "CXJ_CLICKHOUSE_URL must look like clickhouse://user:pass@host:port/db "
                f"(scheme {parts.scheme!r} is not 'clickhouse')"
            )
        if not parts.hostname:
            raise ConfigError("CXJ_CLICKHOUSE_URL has no host")
        try:
            port = parts.port or 9000
        except ValueError as exc:
            raise ConfigError(f"CXJ_CLICKHOUSE_URL has an invalid port: {exc}") from exc
        database = parts.path.lstrip("/") or "cx"
        if not database.replace("_", "").isalnum():
            raise ConfigError(f"CXJ_CLICKHOUSE_URL database {database!r} is not a plain identifier")
        return cls(
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or "default"),
            password=SecretStr(unquote(parts.password or "")),
            database=database,
        )


class ApiToken(BaseModel):
    """One entry of `CXJ_API_TOKENS`: a feeder's token, stored as its SHA-256, and what it may send."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token")
    sources: tuple[str, ...] = Field(min_length=1, description="source values or fnmatch patterns ('*': any)")
    rate: float | None = Field(default=None, gt=0, description="touchpoints per second per replica")
    profiles: bool = Field(default=False, description="may read customer profiles (GET /v1/customers/{id})")


class Settings(BaseSettings):
    """Everything configurable, read once at the edge and passed down."""

    model_config = SettingsConfigDict(env_prefix="CXJ_", frozen=True, extra="ignore")

    home: Path = Field(default=Path(".cxj"), description="Data, logs and pid files of the local stack")

    # --- Kafka -----------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_rebalance_timeout: float = Field(default=3.0, gt=0)
    kafka_max_poll_interval: float = Field(default=120.0, gt=0)
    # How long a fetch may wait for data; Faust fixes 1.5 s, and a broker that holds a fetch that long
    # even when data arrives (the Tansu broker of an earlier round did) adds it to every hop.
    kafka_fetch_max_wait_ms: int = Field(default=50, ge=1, le=30_000)
    topic_partitions: int = Field(default=8, ge=1, le=1024)
    topic_replication: int = Field(default=1, ge=1, le=7)

    # --- ClickHouse ------------------------------------------------------------
    clickhouse_url: SecretStr = SecretStr("clickhouse://default:@127.0.0.1:9000/cx")
    # Read-only user for the report and BI checks; falls back to clickhouse_url.
    clickhouse_bi_url: SecretStr | None = None
    # Administrator: schema migrations (`cxj init`), benchmarks, `cxj forget`; falls back to clickhouse_url,
    # which is enough only where the writer may change the schema (the local stack's and deploy/'s may not).
    clickhouse_admin_url: SecretStr | None = None
    # Set on a sharded deployment (deploy/k8s/clickhouse/schema-cluster.sql): `cxj forget` then deletes from
    # the `_local` tables ON CLUSTER and waits for the mutations on every replica.
    clickhouse_cluster: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    # --- PII -------------------------------------------------------------------
    pii_secret: SecretStr | None = None
    default_region: str = Field(default="CN", min_length=2, max_length=2)
    # Id fields that may keep a raw phone number or e-mail address (comma-separated, e.g. `customer_id` for
    # feeders who key customers by e-mail). Empty by default: such values are stored as their keyed hash.
    pii_raw_id_fields: Annotated[tuple[str, ...], NoDecode] = ()

    # --- Worker ----------------------------------------------------------------
    app_id: str = "cx-journeys"
    worker_web_host: str = "127.0.0.1"
    worker_web_port: int = Field(default=6066, ge=1, le=65535)
    ingest_batch_max: int = Field(default=4000, ge=1)
    sink_flush_seconds: float = Field(default=1.0, gt=0)
    sink_max_rows: int = Field(default=100_000, ge=100)
    # ClickHouse connections a worker inserts over: the tables of one level of the commit order at once.
    # One by default: on a 2-core machine shared with ClickHouse, concurrent inserts only slowed each other.
    sink_connections: int = Field(default=1, ge=1, le=16)
    sink_retry_max_seconds: float = Field(default=30.0, gt=0)

    # --- Rules (Contract 2) ----------------------------------------------------
    window_days: int = Field(default=90, ge=1)
    allowed_lateness_days: int = Field(default=30, ge=0)
    # An anonymous key's churn alert waits this long (wall clock) for the key to be linked, so a person
    # whose strikes arrive under a phone or device key before the link gets one alert, not two.
    anonymous_alert_hold_seconds: int = Field(default=30, ge=0)
    max_identifiers: int = Field(default=50, ge=2)
    # A comma-separated list in CXJ_IDENTIFIER_BLOCKLIST (NoDecode: not JSON).
    identifier_blocklist: Annotated[tuple[str, ...], NoDecode] = DEFAULT_BLOCKLIST
    future_tolerance_seconds: int = Field(default=300, ge=0)
    repeat_contact_days: int = Field(default=7, ge=1)
    score_half_life_days: float = Field(default=30.0, gt=0)
    signal_rules_file: Path | None = None
    # How long after a churn alert its outcome (recovered, relapsed, lost) is watched, in event time.
    recovery_days: int = Field(default=30, ge=1, le=365)
    # The recovery playbook (JSON or YAML, schemas/jsonschema/playbook.json); None: the shipped defaults.
    playbook_file: Path | None = None
    journey_browse_idle_minutes: int = Field(default=30, ge=1)
    journey_service_idle_days: int = Field(default=7, ge=1)
    journey_purchase_idle_days: int = Field(default=30, ge=1)
    journey_lateness_seconds: int = Field(default=300, ge=0)
    journey_retention_days: int = Field(default=7, ge=1)
    forward_ttl_seconds: int = Field(default=3600, ge=60)

    # --- HTTP service (`cxj serve`) -------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=1, le=65535)
    # Who may send touchpoints: a JSON list of {"name", "sha256" (hex digest of the token), "sources"
    # (source values or fnmatch patterns it may send), "rate" (touchpoints per second, optional),
    # "profiles" (true: may read customer profiles; front-line tools, not feeders)}.
    api_tokens: tuple[ApiToken, ...] = ()
    # A token for clients of the local stack (`cxj stack up` writes it, and its hash into CXJ_API_TOKENS).
    api_token: SecretStr | None = None
    api_url: str = "http://127.0.0.1:8080"
    # Touchpoints per second a token may send to one replica when its entry names no rate.
    api_rate: float = Field(default=50_000.0, gt=0)
    # How long a POST waits for the broker's acknowledgement before answering 503.
    api_send_timeout: float = Field(default=10.0, gt=0)
    api_clickhouse_connections: int = Field(default=4, ge=1, le=64)

    # --- Monitoring endpoints (written to stack.env by `cxj stack up`) ------------
    prometheus_url: str = "http://127.0.0.1:9090"
    alertmanager_url: str = "http://127.0.0.1:9093"
    alert_webhook_url: str | None = None

    # --- Local stack ports (Contract 4 defaults) -------------------------------
    kafka_port: int = 9092
    clickhouse_port: int = 9000
    clickhouse_http_port: int = 8123
    prometheus_port: int = 9090
    alertmanager_port: int = 9093

    @field_validator("identifier_blocklist", mode="before")
    @classmethod
    def _split_blocklist(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip().lower() for v in value.split(",") if v.strip())
        return value

    @field_validator("pii_raw_id_fields", mode="before")
    @classmethod
    def _split_raw_id_fields(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(v.strip() for v in value.split(",") if v.strip())
        unknown = sorted(set(value) - set(ID_FIELDS))
        if unknown:
            raise ValueError(f"CXJ_PII_RAW_ID_FIELDS: {unknown} are not id fields; choose from {', '.join(ID_FIELDS)}")
        return value

    @field_validator("default_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _recovery_within_the_window(self) -> Settings:
        # The outcome of an alert is judged on the experiences in state, which are kept for the window: a
        # shorter window shortens the default recovery window with it; a longer recovery set explicitly is an error.
        if self.recovery_days > self.window_days:
            if "recovery_days" in self.model_fields_set:
                raise ValueError(f"CXJ_RECOVERY_DAYS ({self.recovery_days}) may not exceed CXJ_WINDOW_DAYS "
                                 f"({self.window_days}): outcomes are judged on what the window keeps")  # fmt: skip
            object.__setattr__(self, "recovery_days", self.window_days)
        return self

    @property
    def clickhouse(self) -> ClickHouseDSN:
        return ClickHouseDSN.parse(self.clickhouse_url.get_secret_value())

    @property
    def clickhouse_bi(self) -> ClickHouseDSN:
        url = self.clickhouse_bi_url or self.clickhouse_url
        return ClickHouseDSN.parse(url.get_secret_value())

    @property
    def clickhouse_admin(self) -> ClickHouseDSN:
        url = self.clickhouse_admin_url or self.clickhouse_url
        return ClickHouseDSN.parse(url.get_secret_value())

    @property
    def clickhouse_schema_admin(self) -> ClickHouseDSN:
        """The administrator on the pipeline's database: who runs migrations, so the writer needs no DDL."""
        return replace(self.clickhouse_admin, database=self.clickhouse.database)

    def require_pii_secret(self) -> bytes:
        """The HMAC key for phone and e-mail hashes; the worker refuses to start without one."""
        if self.pii_secret is None or len(self.pii_secret.get_secret_value()) < 16:
            raise ConfigError(
                "CXJ_PII_SECRET must be set to at least 16 characters "
                "(`cxj stack up` writes one to .cxj/stack.env for the local stack)"
            )
        return self.pii_secret.get_secret_value().encode()

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of an SSL or SASL_SSL connection: CXJ_KAFKA_SSL_CAFILE (else the system's CAs),
        and a client certificate when CXJ_KAFKA_SSL_CERTFILE is set."""
        if not self.kafka_security_protocol.endswith("SSL"):
            return None
        try:
            context = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
            if self.kafka_ssl_certfile is not None:
                context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"CXJ_KAFKA_SSL_CAFILE / CXJ_KAFKA_SSL_CERTFILE / CXJ_KAFKA_SSL_KEYFILE: cannot be read: {exc}"
            ) from None
        return context

    def aiokafka_options(self) -> dict[str, Any]:
        """Security options in aiokafka's spelling (a TLS context instead of file names)."""
        opts = {k: v for k, v in self.kafka_client_options().items() if not k.startswith("ssl_")}
        context = self.kafka_ssl_context()
        if context is not None:
            opts["ssl_context"] = context
        return opts

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options in kafka-python's spelling."""
        opts: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            if not (self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password):
                raise ConfigError(
                    "SASL needs CXJ_KAFKA_SASL_MECHANISM, CXJ_KAFKA_SASL_USERNAME and CXJ_KAFKA_SASL_PASSWORD"
                )
            opts["sasl_mechanism"] = self.kafka_sasl_mechanism
            opts["sasl_plain_username"] = self.kafka_sasl_username
            opts["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_security_protocol.endswith("SSL"):
            for name in ("cafile", "certfile", "keyfile"):
                path = getattr(self, f"kafka_ssl_{name}")
                if path is not None:
                    opts[f"ssl_{name}"] = str(path)
        return opts


def load_settings(**overrides: Any) -> Settings:
    """Settings from flags (overrides) > environment > `<home>/stack.env` > defaults."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    home = Path(overrides.get("home") or os.environ.get("CXJ_HOME") or ".cxj")
    env_file = home / "stack.env"
    try:
        return Settings(_env_file=env_file if env_file.exists() else None, **overrides)  # type: ignore[call-arg]
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
