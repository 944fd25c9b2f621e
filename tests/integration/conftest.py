"""The real local stack for integration tests: Apache Kafka, ClickHouse, Prometheus, Alertmanager on free ports.

One stack per test session (it starts in a few seconds); each test uses its own customer and event ids, so
tests share it without interfering. `pipeline` adds topics, the schema and one running worker.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cxj.demo import WorkerProcess
from deploy.local.stack import LocalStack
from schemas.settings import Settings, load_settings
from sinks.clickhouse import ClickHouse
from sinks.migrate import migrate
from streams.runtime.topics import create_topics
from tests.integration.pipeline_support import WebhookReceiver, free_ports

RECEIVERS: dict[str, WebhookReceiver] = {}

# The stack's own stack.env is the only configuration: nothing from the developer's shell leaks in.
for _name in [n for n in os.environ if n.startswith("CXJ_")]:
    del os.environ[_name]
# Except one: the links in these tests arrive within a second, so the workers hold anonymous keys' alerts
# for 3 s instead of 30 (the hold itself is tested at its default in the unit tests).
os.environ["CXJ_ANONYMOUS_ALERT_HOLD_SECONDS"] = "3"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home: Path = tmp_path_factory.mktemp("cxj-home")
    kafka, ch, ch_http, prom, am, web, hook = free_ports(7)
    settings = load_settings(
        home=home, kafka_port=kafka, clickhouse_port=ch, clickhouse_http_port=ch_http, prometheus_port=prom,
        alertmanager_port=am, worker_web_port=web, alert_webhook_url=f"http://127.0.0.1:{hook}/alerts",
    )  # fmt: skip
    local = LocalStack(settings)
    webhook = WebhookReceiver(hook)  # listening before Alertmanager could notify
    RECEIVERS[settings.alert_webhook_url or ""] = webhook
    try:
        local.up()
        yield load_settings(home=home, alert_webhook_url=settings.alert_webhook_url)
    finally:
        local.down()
        webhook.close()


@pytest.fixture(scope="session")
def webhook(stack: Settings) -> WebhookReceiver:
    """What Alertmanager delivered to CXJ_ALERT_WEBHOOK_URL during the session."""
    return RECEIVERS[stack.alert_webhook_url or ""]


@pytest.fixture(scope="session")
def pipeline(stack: Settings) -> Iterator[Settings]:
    """Topics, schema, and one worker consuming; yields the settings clients use."""
    create_topics(stack)
    migrate(ClickHouse(stack.clickhouse_schema_admin))  # as `cxj init` does
    worker = WorkerProcess(stack)
    worker.start()
    try:
        yield stack
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def scratch(stack: Settings) -> Iterator[ClickHouse]:
    """A database of its own, migrated like `cx`, for rows no pipeline wrote (dropped afterwards): what
    the final `cxj check` of the session reads stays what the pipeline wrote."""
    name = f"cx_scratch_{uuid.uuid4().hex[:8]}"
    ClickHouse(dataclasses.replace(stack.clickhouse_admin, database=name), connect_database="default").execute(
        f"CREATE DATABASE {name}"
    )
    ch = ClickHouse(dataclasses.replace(stack.clickhouse_admin, database=name))
    migrate(ch)
    try:
        yield ch
    finally:
        ch.execute(f"DROP DATABASE {name}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `order_last` (cxj check over everything the suite wrote) run after all the others."""
    items.sort(key=lambda item: item.get_closest_marker("order_last") is not None)
