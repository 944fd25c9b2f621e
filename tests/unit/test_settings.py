"""Settings: the ClickHouse DSN, the PII secret, Kafka security options, the blocklist, secrets hidden."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from schemas.errors import ConfigError
from schemas.playbook import DEFAULT_PLAYBOOK
from schemas.settings import DEFAULT_BLOCKLIST, ClickHouseDSN, Settings, load_settings
from streams.domain.customer import DAY_MS
from streams.runtime.policies import ingest_config_from, policy_from

SECRETS = ("pii-secret-0123456789", "ch-password-42", "sasl-password-77", "bi-password-99")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CXJ_* variable or .cxj/stack.env of the developer's machine leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("CXJ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


# --- ClickHouseDSN ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "clickhouse://alice:s3cret@db.example:9440/analytics",
            ("db.example", 9440, "alice", "s3cret", "analytics"),
        ),
        ("clickhouse+native://u:p@127.0.0.1:9000/cx", ("127.0.0.1", 9000, "u", "p", "cx")),
        ("clickhouse://db.example", ("db.example", 9000, "default", "", "cx")),
        ("clickhouse://db.example/", ("db.example", 9000, "default", "", "cx")),
        ("clickhouse://bi@db.example:9000/cx_reporting", ("db.example", 9000, "bi", "", "cx_reporting")),
        ("clickhouse://us%40er:p%3Aw%2Fd@h:1/db", ("h", 1, "us@er", "p:w/d", "db")),
    ],
)
def test_clickhouse_url_is_parsed(url: str, expected: tuple[str, int, str, str, str]) -> None:
    dsn = ClickHouseDSN.parse(url)
    assert (dsn.host, dsn.port, dsn.user, dsn.password.get_secret_value(), dsn.database) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://u:p@h:8123/cx",
        "tcp://h:9000/cx",
        "h:9000/cx",
        "",
        "clickhouse:///cx",
        "clickhouse://u:p@:9000/cx",
        "clickhouse://h:9000/cx-prod",
        "clickhouse://h:9000/cx;DROP TABLE x",
        "clickhouse://h:9000/a/b",
        pytest.param(
            "clickhouse://h:port/cx",
        ),
        pytest.param(
            "clickhouse://h:99999/cx",
        ),
    ],
)
def test_a_malformed_clickhouse_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="CXJ_CLICKHOUSE_URL"):
        ClickHouseDSN.parse(url)


def test_the_dsn_never_shows_its_password() -> None:
    dsn = ClickHouseDSN.parse("clickhouse://alice:ch-password-42@h:9000/cx")
    for text in (repr(dsn), str(dsn), f"{dsn}"):
        assert "ch-password-42" not in text
        assert "alice@h:9000/cx" in text


def test_the_bi_dsn_falls_back_to_the_main_one() -> None:
    main = Settings(clickhouse_url="clickhouse://w:pw@h:9000/cx")  # type: ignore[arg-type]
    assert main.clickhouse_bi == main.clickhouse
    split = Settings(clickhouse_url="clickhouse://w:pw@h:9000/cx", clickhouse_bi_url="clickhouse://ro:x@h:9000/cx")  # type: ignore[arg-type]
    assert (split.clickhouse_bi.user, split.clickhouse.user) == ("ro", "w")


def test_migrations_run_as_the_administrator_on_the_pipelines_database() -> None:
    urls = {"clickhouse_url": "clickhouse://w:pw@h:9000/analytics", "clickhouse_admin_url": "clickhouse://root:x@h/db"}
    split = Settings(**urls)  # type: ignore[arg-type]
    assert (split.clickhouse_schema_admin.user, split.clickhouse_schema_admin.database) == ("root", "analytics")
    alone = Settings(clickhouse_url="clickhouse://default:@h:9000/cx")  # type: ignore[arg-type]
    assert alone.clickhouse_schema_admin == alone.clickhouse  # one URL: that user is the administrator


# --- secrets ----------------------------------------------------------------------------------------


def _secretive() -> Settings:
    return Settings(
        pii_secret=SECRETS[0],  # type: ignore[arg-type]
        clickhouse_url=f"clickhouse://u:{SECRETS[1]}@h:9000/cx",  # type: ignore[arg-type]
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="svc",
        kafka_sasl_password=SECRETS[2],  # type: ignore[arg-type]
        clickhouse_bi_url=f"clickhouse://ro:{SECRETS[3]}@h:9000/cx",  # type: ignore[arg-type]
    )


def test_secrets_never_appear_in_repr_str_or_dumps() -> None:
    settings = _secretive()
    texts = [repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_secrets_are_still_usable_where_needed() -> None:
    settings = _secretive()
    assert settings.require_pii_secret() == SECRETS[0].encode()
    assert settings.clickhouse.password.get_secret_value() == SECRETS[1]
    assert settings.kafka_client_options()["sasl_plain_password"] == SECRETS[2]


@pytest.mark.parametrize("secret", [None, "", "x" * 15])
def test_the_pii_secret_is_required_with_at_least_16_characters(secret: str | None) -> None:
    settings = Settings(pii_secret=secret)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="CXJ_PII_SECRET"):
        settings.require_pii_secret()


def test_a_16_character_pii_secret_is_accepted() -> None:
    assert Settings(pii_secret="x" * 16).require_pii_secret() == b"x" * 16  # type: ignore[arg-type]


def test_the_worker_refuses_to_build_its_ingest_config_without_a_secret() -> None:
    with pytest.raises(ConfigError):
        ingest_config_from(Settings())


# --- Kafka security options ---------------------------------------------------------------------


def test_plaintext_has_no_security_options(tmp_path: Path) -> None:
    settings = Settings(kafka_ssl_cafile=tmp_path / "ca.pem")
    assert settings.kafka_client_options() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("missing", ["kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"])
def test_sasl_without_mechanism_user_and_password_is_a_config_error(protocol: str, missing: str) -> None:
    fields = {
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "svc",
        "kafka_sasl_password": "pw-123",
    }
    del fields[missing]
    settings = Settings(kafka_security_protocol=protocol, **fields)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="SASL") as info:
        settings.kafka_client_options()
    assert "pw-123" not in str(info.value)


def test_sasl_ssl_options_in_client_spelling(tmp_path: Path) -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",  # type: ignore[arg-type]
        kafka_ssl_cafile=tmp_path / "ca.pem",
    )
    assert settings.kafka_client_options() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "pw",
        "ssl_cafile": str(tmp_path / "ca.pem"),
    }


def test_sasl_plaintext_carries_no_tls_files(tmp_path: Path) -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",  # type: ignore[arg-type]
        kafka_ssl_cafile=tmp_path / "ca.pem",
    )
    assert not any(k.startswith("ssl_") for k in settings.kafka_client_options())


def test_ssl_passes_every_tls_file(tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("cafile", "certfile", "keyfile")}
    settings = Settings(kafka_security_protocol="SSL", **{f"kafka_ssl_{k}": v for k, v in files.items()})  # type: ignore[arg-type]
    assert settings.kafka_client_options() == {
        "security_protocol": "SSL",
        **{f"ssl_{k}": str(v) for k, v in files.items()},
    }


# --- the identifier blocklist ---------------------------------------------------------------------


def test_the_default_blocklist_holds_the_contract_placeholders() -> None:
    assert {"null", "0", "-1"} <= set(Settings().identifier_blocklist)
    assert Settings().identifier_blocklist == DEFAULT_BLOCKLIST


def test_the_blocklist_is_parsed_from_a_comma_string() -> None:
    settings = Settings(identifier_blocklist=" NULL, n/a ,,Kiosk-Device ,")  # type: ignore[arg-type]
    assert settings.identifier_blocklist == ("null", "n/a", "kiosk-device")


def test_the_blocklist_is_parsed_from_a_comma_string_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CXJ_IDENTIFIER_BLOCKLIST", "NULL, n/a ,kiosk")
    assert Settings().identifier_blocklist == ("null", "n/a", "kiosk")


def test_the_blocklist_reaches_ingest() -> None:
    settings = Settings(pii_secret="x" * 16, identifier_blocklist="kiosk,shared")  # type: ignore[arg-type]
    assert ingest_config_from(settings).blocklist == frozenset({"kiosk", "shared"})


# --- defaults are the contract's, and they are configurable ---------------------------------------


def test_default_rules_are_the_contract_values() -> None:
    settings = Settings(pii_secret="x" * 16)  # type: ignore[arg-type]
    policy = policy_from(settings)
    assert policy.window == 90 * DAY_MS
    assert policy.journeys.timeouts == {"browse": 30 * 60_000, "service": 7 * DAY_MS, "purchase": 30 * DAY_MS}
    assert settings.max_identifiers == 50
    cfg = ingest_config_from(settings)
    assert (cfg.region, cfg.future_tolerance_ms) == ("CN", 5 * 60_000)
    assert (settings.worker_web_port, settings.kafka_port, settings.clickhouse_port) == (6066, 9092, 9000)
    assert (settings.clickhouse_http_port, settings.prometheus_port, settings.alertmanager_port) == (
        8123,
        9090,
        9093,
    )


def test_rules_follow_the_settings() -> None:
    settings = Settings(
        pii_secret="x" * 16,  # type: ignore[arg-type]
        window_days=30,
        journey_browse_idle_minutes=10,
        journey_service_idle_days=2,
        journey_purchase_idle_days=14,
        default_region="us",
        future_tolerance_seconds=60,
    )
    policy = policy_from(settings)
    assert policy.window == 30 * DAY_MS
    assert policy.journeys.timeouts == {"browse": 10 * 60_000, "service": 2 * DAY_MS, "purchase": 14 * DAY_MS}
    cfg = ingest_config_from(settings)
    assert (cfg.region, cfg.future_tolerance_ms) == ("US", 60_000)


def test_the_repeat_contact_window_follows_the_settings() -> None:
    rules = policy_from(Settings(repeat_contact_days=3)).classifier.rules
    assert rules.repeat_contact is not None
    assert rules.repeat_contact.within_days == 3


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError):
        settings.window_days = 1  # type: ignore[misc]


@pytest.mark.parametrize("overrides", [{"default_region": "CHN"}, {"max_identifiers": 1}, {"worker_web_port": 0}])
def test_invalid_values_are_config_errors(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_settings(**overrides)


def test_flags_beat_environment_beat_stack_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "stack.env").write_text("CXJ_KAFKA_BOOTSTRAP=from-file:1\nCXJ_WINDOW_DAYS=11\nCXJ_APP_ID=file-app\n")
    monkeypatch.setenv("CXJ_WINDOW_DAYS", "22")
    monkeypatch.setenv("CXJ_APP_ID", "env-app")
    settings = load_settings(home=home, app_id="flag-app", kafka_port=None)
    assert (settings.kafka_bootstrap, settings.window_days, settings.app_id) == (
        "from-file:1",
        22,
        "flag-app",
    )
    assert settings.kafka_port == 9092  # a flag left unset does not override


def test_raw_id_fields_are_a_comma_separated_list_of_id_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXJ_PII_RAW_ID_FIELDS", "customer_id, order_id")
    assert Settings().pii_raw_id_fields == ("customer_id", "order_id")
    monkeypatch.setenv("CXJ_PII_RAW_ID_FIELDS", "customer_id,attributes")
    with pytest.raises(ValueError, match=r"\['attributes'\] are not id fields"):
        Settings()


def test_the_playbook_comes_from_its_file(tmp_path: Path) -> None:
    file = tmp_path / "playbook.yaml"
    file.write_text("actions:\n  ring:\n    text: Ring them\n    perception: respect\n"
                    "rules:\n  - signals: [complaint]\n    actions: [ring]\n")  # fmt: skip
    assert policy_from(Settings(pii_secret="x" * 16)).playbook == DEFAULT_PLAYBOOK  # type: ignore[arg-type]
    loaded = policy_from(Settings(pii_secret="x" * 16, playbook_file=file)).playbook  # type: ignore[arg-type]
    assert list(loaded.actions) == ["ring"]
    file.write_text("actions: {}\n")
    with pytest.raises(ConfigError, match=r"playbook\.yaml"):
        policy_from(Settings(pii_secret="x" * 16, playbook_file=file))  # type: ignore[arg-type]


def test_the_recovery_window_may_not_exceed_the_rolling_window() -> None:
    assert Settings(pii_secret="x" * 16, recovery_days=90).recovery_days == 90  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CXJ_RECOVERY_DAYS"):
        Settings(pii_secret="x" * 16, recovery_days=60, window_days=30)  # type: ignore[arg-type]
    assert Settings(pii_secret="x" * 16, window_days=20).recovery_days == 20  # type: ignore[arg-type]
