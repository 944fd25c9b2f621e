"""The local stack's broker: Apache Kafka in KRaft mode, one node that is broker and controller, on loopback.

`make setup` fetches the broker and its dependencies from Maven Central (deploy/kafka/pom.xml) into
`build/kafka-<version>/lib`, once; `cxj stack up` formats the node's storage under `<home>/kafka/data` once and
runs `kafka.Kafka` with a `server.properties` derived from the settings on every `up`. Topics are created by
the pipeline (`cxj init`), never by the broker (`auto.create.topics.enable=false`), with the same
configurations as in production.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from deploy.local.host import free_ports
from schemas.errors import StackError

__all__ = ["KAFKA_VERSION", "KafkaNode", "SaslListener", "java_binary", "kafka_lib"]

KAFKA_VERSION: Final = "4.1.2"  # deploy/compose and deploy/k8s run the same release
_HERE: Final = Path(__file__).resolve().parent
_REPO: Final = _HERE.parents[1]
LOG4J2: Final = _HERE.parent / "kafka" / "log4j2.properties"
# Sized for a 2-core machine that also runs ClickHouse, Prometheus and the workers: a 512 MiB heap holds the
# page-cache-backed logs' indexes and the cleaner's 8 MiB dedupe buffer; the serial collector is the lightest.
SCRAM_MECHANISMS: Final = ("SCRAM-SHA-256", "SCRAM-SHA-512")  # each SCRAM user gets both
JVM_OPTIONS: Final = (
    "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
)  # fmt: skip


def kafka_lib(version: str = KAFKA_VERSION) -> Path:
    """The folder of the broker's jars (`make setup` fills it from Maven Central)."""
    lib = Path(os.environ.get("CXJ_KAFKA_LIB") or _REPO / "build" / f"kafka-{version}" / "lib")
    if not any(lib.glob(f"kafka_2.13-{version}.jar")):
        raise StackError(f"Apache Kafka {version} is not installed in {lib}: run `make setup` (Maven Central)")
    return lib


def java_binary() -> str:
    """`$JAVA_HOME/bin/java`, else `java` on the PATH (Java 17 or later)."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if candidate is not None and candidate.is_file():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise StackError("java is not installed: run `make setup` (it installs a JRE with apt)")
    return found


@dataclass(frozen=True)
class SaslListener:
    """A SASL_SSL listener beside the loopback PLAINTEXT one (the tests' secured broker).

    `keystore` holds the broker's key and certificate chain: a `.pem` file (unencrypted PKCS#8 key when
    `keystore_password` is empty) or a PKCS12 file; SCRAM users are added to the metadata
    when the storage is formatted, PLAIN users are listed in the listener's JAAS configuration.
    """

    port: int
    keystore: Path
    keystore_password: str = ""
    scram_users: dict[str, str] = field(default_factory=dict)  # SCRAM-SHA-256 and SCRAM-SHA-512
    plain_users: dict[str, str] = field(default_factory=dict)


def _cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: 16 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class KafkaNode:
    """The files and the command line of one broker-and-controller node under `<home>/kafka`."""

    def __init__(self, home: Path, port: int, *, sasl: SaslListener | None = None) -> None:
        self.root = home / "kafka"
        self.data = self.root / "data"
        self.port = port
        self.sasl = sasl
        self.properties_path = self.root / "server.properties"

    @property
    def controller_port(self) -> int:
        """The KRaft controller's port: chosen once per home (clients never use it), kept in a file."""
        path = self.root / "controller.port"
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            self.root.mkdir(parents=True, exist_ok=True)
            (port,) = free_ports(1)
            path.write_text(f"{port}\n")
            return port

    def properties(self) -> dict[str, str]:
        controller = self.controller_port
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data),
            # Topics only as the pipeline declares them (`cxj init`, Faust's own changelogs).
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",  # 50 by default: a slow first group join on one node
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # A group's first join waits 3 s by default for more members; one worker on loopback need not.
            "group.initial.rebalance.delay.ms": "100",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            # After kill -9 the old registration blocks the restarted node until its session ends (9 s by default).
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            # The cleaner looks for dirty compacted logs every second (15 s by default), so tests see compaction.
            "log.cleaner.backoff.ms": "1000",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "log.retention.check.interval.ms": "5000",
            "log.segment.delete.delay.ms": "1000",
        }
        if self.sasl is not None:
            s, name = self.sasl, "listener.name.sasl_ssl."
            listeners.append(f"SASL_SSL://127.0.0.1:{s.port}")
            protocols.append("SASL_SSL:SASL_SSL")
            scram = SCRAM_MECHANISMS if s.scram_users else ()
            mechanisms = [*scram, *(["PLAIN"] if s.plain_users else [])]
            pem = s.keystore.suffix == ".pem"  # a PKCS#8 key and its certificate chain, or a PKCS12 file
            props.update({
                name + "sasl.enabled.mechanisms": ",".join(mechanisms),
                name + "ssl.keystore.type": "PEM" if pem else "PKCS12",
                name + "ssl.keystore.location": str(s.keystore),
                name + "ssl.client.auth": "none",
            })  # fmt: skip
            if s.keystore_password:
                props[name + "ssl.keystore.password"] = s.keystore_password
                props[name + "ssl.key.password"] = s.keystore_password
            for mech in scram:
                props[f"{name}{mech.lower()}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
            if s.plain_users:
                if any(c in text for item in s.plain_users.items() for text in item for c in '"\\;'):
                    raise StackError("PLAIN users and passwords may not hold quotes, backslashes or ';' (JAAS syntax)")
                users = " ".join(f'user_{u}="{p}"' for u, p in s.plain_users.items())
                props[name + "plain.sasl.jaas.config"] = (
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"
                )
        props["listeners"] = ",".join([*listeners, f"CONTROLLER://127.0.0.1:{controller}"])
        props["advertised.listeners"] = ",".join(listeners)
        props["listener.security.protocol.map"] = ",".join(protocols)
        return props

    def properties_text(self) -> str:
        lines = ["# Written by `cxj stack up` (deploy/local/kafka.py) on every `up`; edits are replaced."]
        return "\n".join([*lines, *(f"{k}={v}" for k, v in self.properties().items())]) + "\n"

    def java(self, main: str, *args: str) -> list[str]:
        return [
            java_binary(), *JVM_OPTIONS, f"-Dlog4j2.configurationFile=file:{LOG4J2}",
            f"-Dkafka.logs.dir={self.root / 'logs'}", "-cp", f"{kafka_lib()}/*", main, *args,
        ]  # fmt: skip

    def command(self) -> list[str]:
        return self.java("kafka.Kafka", str(self.properties_path))

    @property
    def formatted(self) -> bool:
        return (self.data / "meta.properties").exists()

    def format(self) -> None:
        """Format the storage once (a new cluster id); SCRAM credentials go into the first metadata."""
        if self.formatted:
            return
        self.data.mkdir(parents=True, exist_ok=True)
        # `=`: a base64url id may start with "-", which would read as an option.
        cmd = self.java(
            "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}", "-c", str(self.properties_path)
        )
        for user, password in (self.sasl.scram_users if self.sasl else {}).items():
            for mech in SCRAM_MECHANISMS:
                cmd += ["--add-scram", f"{mech}=[name={user},password={password}]"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise StackError(f"formatting Kafka's storage in {self.data} failed: {done.stdout}{done.stderr}".strip())

    def wipe(self) -> None:
        """Remove every topic, offset and credential (the node must be stopped); `format` starts anew."""
        shutil.rmtree(self.data, ignore_errors=True)
