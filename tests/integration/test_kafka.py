"""What only a real Apache Kafka can show: SASL_SSL for every client, and log compaction for real.

The module runs its own broker with a SASL_SSL listener (SCRAM-SHA-256/512 and PLAIN, a certificate from a
test CA made here) beside the loopback PLAINTEXT one, and its own ClickHouse. The commands run as a user
runs them, `python -m cxj ...` with `CXJ_KAFKA_*` in the environment, bootstrapping from the SASL_SSL port
only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from cxj.demo import WorkerProcess, wait_drained
from cxj.forget import forget, plan
from cxj.simulate import SimulationConfig, generate_raw, produce
from deploy.local.kafka import SaslListener
from deploy.local.stack import LocalStack
from schemas.settings import Settings, load_settings
from sinks.clickhouse import ClickHouse
from sinks.migrate import migrate
from streams.runtime.topics import CHANGELOG, LINKS, create_topics
from tests.integration.pipeline_support import free_ports, query, set_topic_configs

pytestmark = pytest.mark.integration

USER, PASSWORD = "cx-worker", "scram-secret-for-tests"
PLAIN_USER, PLAIN_PASSWORD = "cx-feeder", "plain-secret-for-tests"
SYSTEM_CAS = Path("/etc/ssl/certs/ca-certificates.crt")  # trusts much, but not the test CA
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


def _keystore(folder: Path) -> tuple[Path, Path]:
    """A test CA (its certificate for the clients) and the broker's PKCS#8 key with its chain, as PEM."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    keystore, cafile = folder / "broker.pem", folder / "ca.pem"
    keystore.write_bytes(pkcs8 + b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cafile.write_bytes(ca.cert_pem.bytes())
    return keystore, cafile


class SecuredStack:
    def __init__(self, home: Path, settings: Settings, sasl_port: int, cafile: Path) -> None:
        self.home, self.settings, self.sasl_port, self.cafile = home, settings, sasl_port, cafile

    def env(self, **changes: str) -> dict[str, str]:
        """The environment of a client that bootstraps from the SASL_SSL listener only."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CXJ_")}
        env.update({
            "CXJ_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.sasl_port}",
            "CXJ_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "CXJ_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "CXJ_KAFKA_SASL_USERNAME": USER,
            "CXJ_KAFKA_SASL_PASSWORD": PASSWORD,
            "CXJ_KAFKA_SSL_CAFILE": str(self.cafile),
            "CXJ_ANONYMOUS_ALERT_HOLD_SECONDS": "3",
        })  # fmt: skip
        env.update(changes)
        return env

    def cxj(self, *args: str, timeout: float = 120.0, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cxj", "--home", str(self.home), *args],
            env=self.env(**env), capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def client_settings(self, **changes: Any) -> Settings:
        """Settings as a client with `env()` reads them (stack.env for the rest)."""
        env = self.env()
        values = {
            "kafka_bootstrap": env["CXJ_KAFKA_BOOTSTRAP"], "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-256", "kafka_sasl_username": USER, "kafka_sasl_password": PASSWORD,
            "kafka_ssl_cafile": self.cafile,
        }  # fmt: skip
        values.update(changes)
        return load_settings(home=self.home, **values)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredStack]:
    home: Path = tmp_path_factory.mktemp("cxj-kafka")
    kafka, sasl, ch, ch_http, prom, am, web = free_ports(7)
    keystore, cafile = _keystore(home)
    settings = load_settings(home=home, kafka_port=kafka, clickhouse_port=ch, clickhouse_http_port=ch_http,
                             prometheus_port=prom, alertmanager_port=am, worker_web_port=web)  # fmt: skip
    listener = SaslListener(sasl, keystore, scram_users={USER: PASSWORD}, plain_users={PLAIN_USER: PLAIN_PASSWORD})
    stack = LocalStack(settings, kafka_sasl=listener)
    stack.up(["kafka", "clickhouse"])
    try:
        yield SecuredStack(home, load_settings(home=home), sasl, cafile)
    finally:
        stack.down()


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_every_command_and_the_worker_connect_over_sasl_ssl(secured: SecuredStack) -> None:
    _ok(secured.cxj("init"))
    client = secured.client_settings()
    worker = WorkerProcess(client, name="sasl-worker", env=secured.env())
    worker.start()
    try:
        sent = _ok(secured.cxj("simulate", "--events", "600", "--customers", "60", "--seed", "41", "--batch-size",
                               "20", "--no-progress", "--invalid-share", "0.05"))  # fmt: skip
        assert "sent 600 touchpoints" in sent
        wait_drained(client, 180, settle=0.5)
        stored = query(client, "SELECT uniqExact(event_id) FROM {db}.touchpoints")[0][0]
        dead = query(client, "SELECT count() FROM {db}.dead_letters")[0][0]
        assert stored > 500 and dead > 0
        replay = _ok(secured.cxj("dlq", "replay", "--dry-run", "--from-beginning"))
        assert f"read {dead:,} dead letters" in replay
        key = query(client, "SELECT customer_key FROM {db}.customer_experience FINAL WHERE customer_key "
                    "NOT LIKE '~%' AND merged_into = '' ORDER BY customer_key LIMIT 1")[0][0]  # fmt: skip
        forgot = _ok(secured.cxj("forget", key, "--timeout", "60"))
        assert f"forgot {key}" in forgot
        assert query(client, "SELECT count() FROM {db}.touchpoints WHERE customer_key = %(k)s", {"k": key}) == [(0,)]
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("command", "env", "named"),
    [
        (("init",), {"CXJ_KAFKA_SASL_PASSWORD": "wrong"}, "CXJ_KAFKA_SASL_PASSWORD"),
        (("worker",), {"CXJ_KAFKA_SASL_PASSWORD": "wrong"}, "CXJ_KAFKA_SASL_PASSWORD"),
        (("simulate", "--events", "10", "--no-progress"), {"CXJ_KAFKA_SASL_PASSWORD": "wrong"},
         "CXJ_KAFKA_SASL_PASSWORD"),
        (("dlq", "replay", "--dry-run"), {"CXJ_KAFKA_SASL_MECHANISM": "PLAIN", "CXJ_KAFKA_SASL_USERNAME": PLAIN_USER,
                                          "CXJ_KAFKA_SASL_PASSWORD": "wrong"}, "CXJ_KAFKA_SASL_PASSWORD"),
        (("forget", "C0000001"), {"CXJ_KAFKA_SASL_PASSWORD": "wrong"}, "CXJ_KAFKA_SASL_PASSWORD"),
        (("simulate", "--events", "10", "--no-progress"), {"CXJ_KAFKA_SSL_CAFILE": str(SYSTEM_CAS)},
         "CXJ_KAFKA_SSL_CAFILE"),
        (("init",), {"CXJ_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "CXJ_KAFKA_SECURITY_PROTOCOL"),
    ],
)  # fmt: skip
def test_wrong_credentials_fail_fast_with_the_setting_named(
    secured: SecuredStack, command: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    started = time.monotonic()
    done = secured.cxj(*command, timeout=60, CXJ_WORKER_WEB_PORT=str(free_ports(1)[0]), **env)
    took = time.monotonic() - started
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert named in done.stderr and "Traceback" not in done.stderr + done.stdout, done.stderr
    assert took < 15, f"{command} took {took:.1f} s to fail"


# --- compaction ------------------------------------------------------------------------------------------------

# Segments roll every 200 ms (on the next append) and the cleaner takes any dirty log: compaction within seconds.
FAST_COMPACTION = {
    "segment.ms": "200",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "max.compaction.lag.ms": "1000",
    "delete.retention.ms": "200",  # how long a tombstone outlives the record it deletes
}


def _read_topic(settings: Settings, topic: str) -> tuple[list[tuple[str, bytes | None]], int]:
    """Every record of `topic` from its log start, in order, and how many offsets the log spans."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                             **settings.kafka_client_options())  # fmt: skip
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        starts, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        records: list[tuple[str, bytes | None]] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records += [
                    (r.key.decode(), r.value) for r in batch if r.offset < ends[TopicPartition(r.topic, r.partition)]
                ]
        return records, sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        consumer.close()


def _state_gauges(worker: WorkerProcess) -> tuple[float | None, float | None]:
    return worker.metric("cx_state_customers"), worker.metric("cx_state_bytes")


def _wait_for(predicate: Any, timeout: float, what: str, poke: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if poke is not None:
            poke()
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def test_compaction_is_real_and_a_worker_recovers_the_same_state_from_it(secured: SecuredStack) -> None:
    settings = secured.settings  # the PLAINTEXT listener
    create_topics(settings)
    migrate(ClickHouse(settings.clickhouse_schema_admin))
    set_topic_configs(settings, (CHANGELOG, LINKS), FAST_COMPACTION)
    worker = WorkerProcess(settings, name="compaction-worker")
    worker.start()
    filler = iter(range(10**6))

    def poke() -> None:
        """Touchpoints of new people with new identifiers: appends to every partition of the changelog and the
        links topic roll their segments (only a rolled segment is cleaned), so the cleaner may take them."""
        batch = []
        for _ in range(16):
            n = next(filler)
            batch.append({
                "schema_version": 1, "event_id": f"filler-{n}", "source": "web-shop", "channel": "web",
                "event_type": "page_viewed", "occurred_at": NOW.isoformat(),
                "identity": {"customer_id": f"F{n:06d}", "anonymous_id": f"filler-anon-{n}"},
            })  # fmt: skip
        produce(settings, batch)

    try:
        # Many versions per key: 4,000 touchpoints of 200 customers, sent in batches of 10 (one flush sees few).
        produce(settings, generate_raw(SimulationConfig(seed=8, customers=200, events=4_000, days=20.0, now=NOW,
                                                        invalid_share=0.0)), batch_size=10)  # fmt: skip
        wait_drained(settings, 300, settle=0.5)
        key = query(settings, "SELECT customer_key FROM {db}.identity_links FINAL WHERE customer_key NOT LIKE '~%' "
                    "GROUP BY customer_key HAVING count() >= 2 ORDER BY customer_key LIMIT 1")[0][0]  # fmt: skip
        ch = ClickHouse(settings.clickhouse_admin, connect_database="default")
        erased = plan(ch, key)
        ch.close()
        forget(settings, key, timeout=60)
        gone_keys, gone_ids = set(erased.keys), set(erased.identifiers)
        assert gone_ids, "the forgotten customer had no identity links"

        seen: dict[str, Any] = {}

        def compacted() -> bool:
            state, state_span = _read_topic(settings, CHANGELOG)
            links, _ = _read_topic(settings, LINKS)
            # The filler's keys are the newest, in the active segments the cleaner never takes; every other key
            # had its older versions in rolled segments, so once cleaned each appears once.
            ours = Counter(k for k, _ in state if not (k.startswith("F0") or "filler" in k))
            seen.update(records=len(state), offsets=state_span, versions_left=sum(ours.values()) - len(ours),
                        keys_left=sorted(gone_keys & {k for k, _ in state}),
                        ids_left=len(gone_ids & {k for k, _ in links}))  # fmt: skip
            return (
                seen["versions_left"] == 0  # superseded versions are gone from the log …
                and state_span - len(state) >= 200  # … which held hundreds of them
                and not seen["keys_left"]  # erased state: neither value nor tombstone left
                and not seen["ids_left"]
            )

        try:
            _wait_for(compacted, 120, "the cleaner removed old versions and the forgotten keys", poke)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {seen}") from None
        wait_drained(settings, 120, settle=0.5)
        time.sleep(6)  # the worker publishes its state gauges every 5 s
        before = _state_gauges(worker)
        assert before[0] and before[1]
        worker.stop()
        worker.start()  # recovers every partition from the compacted changelog
        _wait_for(lambda: _state_gauges(worker) == before, 90, f"the restarted worker's state equals {before}")
        latest = {k: v for k, v in _read_topic(settings, CHANGELOG)[0]}
        assert len([v for v in latest.values() if v is not None]) == before[0]
    finally:
        worker.stop()
