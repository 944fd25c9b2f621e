"""The local stack's configs, without starting anything: what `up` derives from the settings, and who may do what."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local import kafka, stack
from deploy.local.clickhouse_config import BI_PROFILE, BI_QUOTA, WRITER_PROFILE, users_config
from deploy.local.stack import COMPONENTS, LocalStack
from schemas.settings import Settings

CREDS = {"admin_password": "a" * 24, "writer_password": "w" * 24, "bi_password": "b" * 24, "pii_secret": "p" * 24}


@pytest.fixture(autouse=True)
def _no_binaries_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Config writing checks that the binaries exist; these tests need none of them."""
    monkeypatch.setattr(stack, "which", lambda *names: f"/usr/bin/{names[0]}")
    monkeypatch.setattr(kafka, "java_binary", lambda: "/usr/bin/java")
    monkeypatch.setattr(kafka, "kafka_lib", lambda: Path("/opt/kafka/lib"))
    monkeypatch.setattr(stack.KafkaNode, "format", lambda self: None)


def _stack(home: Path, **settings: Any) -> LocalStack:
    return LocalStack(Settings(home=home, **settings))


def _worker_targets(home: Path) -> list[str]:
    entries = json.loads((home / "prometheus" / "targets" / "worker.json").read_text())
    return [target for entry in entries for target in entry["targets"]]


# --- what `up` derives from the settings ---------------------------------------------------------------


def test_a_new_worker_port_rewrites_the_scrape_target_and_leaves_other_targets(tmp_path: Path) -> None:
    _stack(tmp_path, worker_web_port=6066)._write_configs(CREDS)
    assert _worker_targets(tmp_path) == ["127.0.0.1:6066"]
    other = tmp_path / "prometheus" / "targets" / "bench-worker-1.json"
    other.write_text('[{"targets": ["127.0.0.1:7001"]}]')

    _stack(tmp_path, worker_web_port=7777)._write_configs(CREDS)

    assert _worker_targets(tmp_path) == ["127.0.0.1:7777"]
    assert other.read_text() == '[{"targets": ["127.0.0.1:7001"]}]'
    assert sorted(p.name for p in other.parent.iterdir()) == ["api", "bench-worker-1.json", "worker.json"]


def test_the_api_is_scraped_as_its_own_job_at_its_port(tmp_path: Path) -> None:
    _stack(tmp_path, api_port=8181)._write_configs(CREDS)
    targets = tmp_path / "prometheus" / "targets"
    entries = json.loads((targets / "api" / "api.json").read_text())
    assert [t for entry in entries for t in entry["targets"]] == ["127.0.0.1:8181"]
    jobs = {job["job_name"]: job for job in yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
            ["scrape_configs"]}  # fmt: skip
    assert jobs["cx-api"]["file_sd_configs"][0]["files"] == [str(targets / "api" / "*.json")]
    # the workers' job reads only the folder's own files, so the API is never taken for a worker
    assert jobs["cx-worker"]["file_sd_configs"][0]["files"] == [str(targets / "*.json")]


def test_the_local_token_is_written_with_its_hash_only_in_the_token_list(tmp_path: Path) -> None:
    env = _stack(tmp_path)._env({**CREDS, "api_token": "t0ken-for-the-local-stack"})
    granted = json.loads(env["CXJ_API_TOKENS"])
    assert env["CXJ_API_TOKEN"] == "t0ken-for-the-local-stack"
    assert granted == [{"name": "local", "sources": ["*"], "profiles": True,
                        "sha256": hashlib.sha256(b"t0ken-for-the-local-stack").hexdigest()}]  # fmt: skip
    assert "t0ken" not in env["CXJ_API_TOKENS"]
    assert Settings(api_tokens=granted).api_tokens[0].sources == ("*",)


def test_writing_the_same_configs_again_touches_no_file(tmp_path: Path) -> None:
    _stack(tmp_path, worker_web_port=6066)._write_configs(CREDS)
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert {"worker.json", "prometheus.yml", "alertmanager.yml", "config.xml", "users.xml"} <= {p.name for p in written}

    _stack(tmp_path, worker_web_port=6066)._write_configs(CREDS)

    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == written


def test_up_on_a_running_stack_restarts_nothing_and_follows_the_new_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stack(tmp_path, worker_web_port=6066)._write_configs(CREDS)
    (tmp_path / "secrets.json").write_text(json.dumps(CREDS))

    def no_start(*_: Any, **__: Any) -> None:
        raise AssertionError("up started a process although every part was running")

    monkeypatch.setattr(stack.subprocess, "Popen", no_start)
    monkeypatch.setattr(stack, "http_ok", lambda _url: True)
    running = _stack(tmp_path, worker_web_port=7777)
    monkeypatch.setattr(running, "_our_pid", lambda name: 4242)
    monkeypatch.setattr(running, "_kafka_ready", lambda: True)
    monkeypatch.setattr(running, "_clickhouse_ready", lambda creds: True)
    created: list[str] = []
    monkeypatch.setattr(running, "_create_database", lambda creds: created.append("cx"))

    env = running.up(COMPONENTS, timeout=5)

    assert env["CXJ_WORKER_WEB_PORT"] == "7777"
    assert _worker_targets(tmp_path) == ["127.0.0.1:7777"]
    assert created == ["cx"]  # IF NOT EXISTS: idempotent on a running server


# --- ClickHouse users (least privilege) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def users() -> ET.Element:
    xml = users_config("cx", admin_password=CREDS["admin_password"], writer_password=CREDS["writer_password"],
                       bi_password=CREDS["bi_password"])  # fmt: skip
    return ET.fromstring(xml.split("?>", 1)[1])


def _profile(users: ET.Element, name: str) -> dict[str, str]:
    node = users.find(f"profiles/{name}")
    assert node is not None, name
    return {child.tag: (child.text or "") for child in node}


def test_bi_profile_is_readonly_1_with_bounded_memory_time_and_results(users: ET.Element) -> None:
    bi = _profile(users, "bi")
    # readonly=1, not 2: on 18.16 only 1 refuses table functions (url, remote, file) and SET.
    assert bi["readonly"] == "1"
    assert bi == {k: str(v) for k, v in BI_PROFILE.items()}
    for limit in ("max_memory_usage", "max_memory_usage_for_user", "max_execution_time", "max_result_rows"):
        assert int(bi[limit]) > 0, f"{limit} = 0 means unlimited"
    assert int(bi["max_memory_usage"]) <= int(_profile(users, "default")["max_memory_usage"])


def test_writer_profile_refuses_ddl(users: ET.Element) -> None:
    writer = _profile(users, "writer")
    assert writer["allow_ddl"] == "0"
    assert writer == {k: str(v) for k, v in WRITER_PROFILE.items()}
    assert "readonly" not in writer  # the writer inserts


def test_each_user_has_its_profile_quota_database_and_no_plain_password(users: ET.Element) -> None:
    expected = {"default": ("default", "default", "admin"), "cx_writer": ("writer", "default", "writer"),
                "cx_bi": ("bi", "bi", "bi")}  # fmt: skip
    assert {u.tag for u in users.findall("users/*")} == set(expected)
    for name, (profile, quota, role) in expected.items():
        user = users.find(f"users/{name}")
        assert user is not None
        assert (user.findtext("profile"), user.findtext("quota")) == (profile, quota)
        assert user.find("password") is None
        assert user.findtext("password_sha256_hex") == hashlib.sha256(CREDS[f"{role}_password"].encode()).hexdigest()
        assert [ip.text for ip in user.findall("networks/ip")] == ["127.0.0.1", "::1"]
        databases = [d.text for d in user.findall("allow_databases/database")]
        assert databases == ([] if name == "default" else ["cx"])


def test_bi_quota_bounds_every_counter_of_an_hour(users: ET.Element) -> None:
    interval = users.find("quotas/bi/interval")
    assert interval is not None
    values = {child.tag: int(child.text or "0") for child in interval}
    assert values == BI_QUOTA
    assert values["duration"] == 3600 and all(v > 0 for v in values.values())
    # A BI tool never gets near it: far more than the per-query limits allow in a few queries.
    assert values["result_rows"] >= 10 * int(BI_PROFILE["max_result_rows"])
    assert values["execution_time"] >= 10 * int(BI_PROFILE["max_execution_time"])


def test_the_stack_writes_these_users_private_and_names_the_database(tmp_path: Path) -> None:
    _stack(tmp_path)._write_configs(CREDS)
    path = tmp_path / "clickhouse" / "users.xml"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == users_config("cx", admin_password=CREDS["admin_password"],
                                            writer_password=CREDS["writer_password"],
                                            bi_password=CREDS["bi_password"])  # fmt: skip
    assert not any(secret in path.read_text() for secret in CREDS.values())
    config = (tmp_path / "clickhouse" / "config.xml").read_text()
    assert f"<users_config>{tmp_path.resolve() / 'clickhouse'}/users.xml</users_config>" in config
    assert "<listen_host>127.0.0.1</listen_host>" in config
