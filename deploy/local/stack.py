"""The local stack on loopback: Apache Kafka, ClickHouse, Prometheus, Alertmanager (`cxj stack up|down|status`).

Every part runs as a background process started by us, with a pid file under `<home>/run/` and a log under
`<home>/logs/`. The broker is Apache Kafka in KRaft mode (deploy/local/kafka.py): its topics, offsets and
compacted logs live under `<home>/kafka/` and survive a restart, as in production. `up` is idempotent: it
rewrites every config it derives from the settings (only when its text changed), starts what is not running,
waits until each part answers, and writes the endpoints and credentials a client needs to `<home>/stack.env`
(mode 0600). `down` stops only processes whose pid file we wrote and that still run in our home folder, never
a foreign process on a port.

ClickHouse gets a project-owned config (root element `<yandex>`, read by 18.16 and current releases) with three
users, each allowed only what its job needs (deploy/local/clickhouse_config.py): `default` (administration:
migrations, benchmarks, erasure), `cx_writer` (the pipeline: insert and select in `cx`) and `cx_bi` (read-only
in `cx`, with limits and a quota). Prometheus loads the alert rules from `deploy/prometheus/rules/` as they are
in the repository and scrapes the workers listed in `<home>/prometheus/targets/*.json`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from deploy.local.clickhouse_config import server_config, users_config
from deploy.local.host import http_ok, pid_alive, port_open, started_in, wait_gone, which, write_if_changed
from deploy.local.kafka import KafkaNode, SaslListener
from deploy.local.monitoring_config import alertmanager_config, prometheus_config
from schemas.errors import StackError
from schemas.settings import Settings

__all__ = ["COMPONENTS", "ComponentStatus", "LocalStack"]

COMPONENTS = ("kafka", "clickhouse", "prometheus", "alertmanager")
DEFAULT_WEBHOOK = "http://127.0.0.1:9099/alerts"

State = Literal["running", "stopped", "foreign"]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: State
    pid: int | None
    endpoint: str
    detail: str = ""


@dataclass(frozen=True)
class _Component:
    name: str
    port: int
    command: list[str]
    ready: Callable[[], bool]
    endpoint: str


class LocalStack:
    """Start, stop and inspect the local stack of one home folder."""

    def __init__(self, settings: Settings, *, kafka_sasl: SaslListener | None = None) -> None:
        self.settings = settings
        self.home = settings.home.resolve()
        self.kafka = KafkaNode(self.home, settings.kafka_port, sasl=kafka_sasl)
        self.run_dir = self.home / "run"
        self.log_dir = self.home / "logs"
        self.secrets_path = self.home / "secrets.json"

    # --- public API ----------------------------------------------------------------------------

    def up(self, components: Iterable[str] = COMPONENTS, timeout: float = 90.0) -> dict[str, str]:
        """Start every named part that is not running, wait until all answer, write stack.env."""
        names = self._check_names(components)
        for folder in (self.run_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        creds = self._credentials()
        self._write_configs(creds)
        specs = self._components(creds)
        started: list[str] = []
        for name in names:
            if self._start(specs[name]):
                started.append(name)
        deadline = time.monotonic() + timeout
        for name in names:
            self._wait_ready(specs[name], deadline)
        if "clickhouse" in names:
            self._create_database(creds)
        env = self._env(creds)
        self._write_env(env)
        return env

    def down(self, components: Iterable[str] = COMPONENTS, timeout: float = 20.0) -> list[str]:
        """Stop the parts `up` started (reverse order); returns the names that were running."""
        stopped = []
        for name in reversed(self._check_names(components)):
            pid = self._our_pid(name)
            if pid is None:
                continue
            self._terminate(pid, timeout)
            (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
            stopped.append(name)
        return stopped

    def stop(self, name: str, *, hard: bool = False) -> None:
        """Stop one part (for fault injection); `hard` sends SIGKILL."""
        pid = self._our_pid(name)
        if pid is None:
            raise StackError(f"{name} is not running under {self.home}")
        if hard:
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 10)
        else:
            self._terminate(pid, 20)
        (self.run_dir / f"{name}.pid").unlink(missing_ok=True)

    def start(self, name: str, timeout: float = 90.0) -> None:
        """Start one stopped part again with the same configuration and wait until it answers."""
        self.up([name], timeout)

    def reset_kafka(self, timeout: float = 90.0) -> None:
        """An empty broker: stop it, remove its topics and offsets, format and start it again."""
        if self._our_pid("kafka") is not None:
            self.stop("kafka")
        self.kafka.wipe()
        self.start("kafka", timeout)

    def status(self) -> list[ComponentStatus]:
        specs = self._components(self._credentials(create=False))
        result = []
        for name in COMPONENTS:
            spec = specs[name]
            pid = self._our_pid(name)
            if pid is not None:
                state: State = "running"
                detail = "answers" if spec.ready() else "starting or not answering"
            elif port_open(spec.port):
                state, detail = "foreign", f"port {spec.port} is held by a process this stack did not start"
            else:
                state, detail = "stopped", ""
            result.append(ComponentStatus(name, state, pid, spec.endpoint, detail))
        return result

    # --- processes -----------------------------------------------------------------------------

    def _check_names(self, components: Iterable[str]) -> list[str]:
        names = list(components)
        unknown = [n for n in names if n not in COMPONENTS]
        if unknown:
            raise StackError(f"unknown stack component(s) {unknown}; known: {', '.join(COMPONENTS)}")
        return [n for n in COMPONENTS if n in names]

    def _our_pid(self, name: str) -> int | None:
        pid_file = self.run_dir / f"{name}.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and started_in(pid, self.home):
            return pid
        pid_file.unlink(missing_ok=True)
        return None

    def _start(self, spec: _Component) -> bool:
        if self._our_pid(spec.name) is not None:
            return False
        # A multi-threaded process just killed can hold its sockets for a moment after its pid is gone.
        deadline = time.monotonic() + 5.0
        while port_open(spec.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        if port_open(spec.port):
            raise StackError(
                f"{spec.name}: port {spec.port} is already taken by a process this stack did not start; "
                f"stop it or choose another port (--{spec.name}-port)"
            )
        log_path = self.log_dir / f"{spec.name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                spec.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.home, start_new_session=True,
            )  # fmt: skip
        (self.run_dir / f"{spec.name}.pid").write_text(f"{proc.pid}\n")
        return True

    def _wait_ready(self, spec: _Component, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self._our_pid(spec.name) is None:
                raise StackError(f"{spec.name} exited during start; see {self.log_dir / (spec.name + '.log')}")
            if spec.ready():
                return
            time.sleep(0.25)
        raise StackError(f"{spec.name} did not answer on {spec.endpoint}; see {self.log_dir / (spec.name + '.log')}")

    def _terminate(self, pid: int, timeout: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)

    # --- configuration -------------------------------------------------------------------------

    def _credentials(self, *, create: bool = True) -> dict[str, str]:
        """Passwords and the PII secret, generated once per home and kept in secrets.json (0600)."""
        try:
            creds: dict[str, str] = json.loads(self.secrets_path.read_text())
        except (OSError, ValueError):
            creds = {}
        wanted = ("admin_password", "writer_password", "bi_password", "pii_secret", "api_token")
        if create and any(k not in creds for k in wanted):
            for key in wanted:
                creds.setdefault(key, secrets.token_urlsafe(24))
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(creds, fh)
        return creds

    def _components(self, creds: dict[str, str]) -> dict[str, _Component]:
        s = self.settings
        ch_dir = self.home / "clickhouse"
        prom_dir = self.home / "prometheus"
        am_dir = self.home / "alertmanager"
        kafka: list[str] = ["java", "kafka.Kafka"]
        with contextlib.suppress(StackError):
            kafka = self.kafka.command()
        clickhouse = ""
        with contextlib.suppress(StackError):
            clickhouse = which("clickhouse-server")
        prometheus = ""
        with contextlib.suppress(StackError):
            prometheus = which("prometheus")
        alertmanager = ""
        with contextlib.suppress(StackError):
            alertmanager = which("prometheus-alertmanager", "alertmanager")
        return {
            "kafka": _Component(
                "kafka", s.kafka_port,
                kafka,
                lambda: self._kafka_ready(), f"127.0.0.1:{s.kafka_port}",
            ),
            "clickhouse": _Component(
                "clickhouse", s.clickhouse_port,
                [clickhouse or "clickhouse-server", f"--config-file={ch_dir / 'config.xml'}"],
                lambda: self._clickhouse_ready(creds), f"127.0.0.1:{s.clickhouse_port} (http {s.clickhouse_http_port})",
            ),
            "prometheus": _Component(
                "prometheus", s.prometheus_port,
                [prometheus or "prometheus", f"--config.file={prom_dir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={prom_dir / 'data'}", f"--web.listen-address=127.0.0.1:{s.prometheus_port}",
                 "--web.enable-lifecycle", "--storage.tsdb.retention.time=2d"],
                lambda: http_ok(f"http://127.0.0.1:{s.prometheus_port}/-/ready"), f"http://127.0.0.1:{s.prometheus_port}",
            ),
            "alertmanager": _Component(
                "alertmanager", s.alertmanager_port,
                [alertmanager or "prometheus-alertmanager", f"--config.file={am_dir / 'alertmanager.yml'}",
                 f"--storage.path={am_dir / 'data'}", f"--web.listen-address=127.0.0.1:{s.alertmanager_port}",
                 "--cluster.listen-address="],
                lambda: http_ok(f"http://127.0.0.1:{s.alertmanager_port}/-/ready"),
                f"http://127.0.0.1:{s.alertmanager_port}",
            ),
        }  # fmt: skip

    def _write_configs(self, creds: dict[str, str]) -> None:
        s = self.settings
        for name, binary in (("clickhouse", "clickhouse-server"), ("prometheus", "prometheus"),
                             ("alertmanager", "prometheus-alertmanager")):  # fmt: skip
            if name != "alertmanager":
                which(binary)
            else:
                which(binary, "alertmanager")
            (self.home / name / "data").mkdir(parents=True, exist_ok=True)
        self.kafka.command()  # raises now, naming `make setup`, when java or the broker's jars are missing
        self.kafka.root.mkdir(parents=True, exist_ok=True)
        write_if_changed(self.kafka.properties_path, self.kafka.properties_text())
        self.kafka.format()  # once per home (and after reset_kafka)
        self._write_clickhouse_config(creds)
        targets = self.home / "prometheus" / "targets"
        targets.mkdir(parents=True, exist_ok=True)
        # Derived from the settings on every `up`, so a new worker port is scraped (Prometheus re-reads file_sd
        # targets by itself, no restart); other files in the folder (extra workers, tests) are not ours.
        (targets / "api").mkdir(exist_ok=True)
        api = [{"targets": [f"127.0.0.1:{s.api_port}"], "labels": {"instance_name": "api"}}]
        write_if_changed(targets / "api" / "api.json", json.dumps(api))
        write_if_changed(targets / "worker.json", json.dumps([{"targets": [f"127.0.0.1:{s.worker_web_port}"],
                                                                 "labels": {"instance_name": "worker"}}]))  # fmt: skip
        prometheus = prometheus_config(
            targets, alertmanager_port=s.alertmanager_port, prometheus_port=s.prometheus_port
        )
        write_if_changed(self.home / "prometheus" / "prometheus.yml", prometheus)
        write_if_changed(self.home / "alertmanager" / "alertmanager.yml",
                         alertmanager_config(s.alert_webhook_url or DEFAULT_WEBHOOK))  # fmt: skip

    def _write_clickhouse_config(self, creds: dict[str, str]) -> None:
        s = self.settings
        root = self.home / "clickhouse"
        for sub in ("tmp", "user_files", "format_schemas"):  # tmp under our home, not the system's
            (root / "data" / sub).mkdir(parents=True, exist_ok=True)
        config = server_config(root=root, tcp_port=s.clickhouse_port, http_port=s.clickhouse_http_port)
        write_if_changed(root / "config.xml", config)
        # ClickHouse re-reads users.xml when it changes, so new privileges apply to a running server.
        write_if_changed(root / "users.xml", users_config(
            self._database(), admin_password=creds["admin_password"], writer_password=creds["writer_password"],
            bi_password=creds["bi_password"]), mode=0o600)  # fmt: skip

    def _database(self) -> str:
        return self.settings.clickhouse.database

    def _env(self, creds: dict[str, str]) -> dict[str, str]:
        s = self.settings
        db = self._database()

        def url(user: str, password: str) -> str:
            return f"clickhouse://{user}:{quote(password, safe='')}@127.0.0.1:{s.clickhouse_port}/{db}"

        return {
            "CXJ_HOME": str(self.home),
            "CXJ_KAFKA_BOOTSTRAP": f"127.0.0.1:{s.kafka_port}",
            "CXJ_CLICKHOUSE_URL": url("cx_writer", creds["writer_password"]),
            "CXJ_CLICKHOUSE_BI_URL": url("cx_bi", creds["bi_password"]),
            "CXJ_CLICKHOUSE_ADMIN_URL": url("default", creds["admin_password"]),
            "CXJ_PII_SECRET": creds["pii_secret"],
            "CXJ_PROMETHEUS_URL": f"http://127.0.0.1:{s.prometheus_port}",
            "CXJ_ALERTMANAGER_URL": f"http://127.0.0.1:{s.alertmanager_port}",
            "CXJ_ALERT_WEBHOOK_URL": s.alert_webhook_url or DEFAULT_WEBHOOK,
            "CXJ_WORKER_WEB_PORT": str(s.worker_web_port),
            # `cxj serve`: one token for local clients (every source, and profiles); deployments configure their own.
            "CXJ_API_PORT": str(s.api_port),
            "CXJ_API_URL": f"http://127.0.0.1:{s.api_port}",
            "CXJ_API_TOKEN": creds["api_token"],
            "CXJ_API_TOKENS": json.dumps(
                [
                    {
                        "name": "local",
                        "sources": ["*"],
                        "profiles": True,
                        "sha256": hashlib.sha256(creds["api_token"].encode()).hexdigest(),
                    }
                ],
                separators=(",", ":"),
            ),
            "CXJ_KAFKA_PORT": str(s.kafka_port),
            "CXJ_CLICKHOUSE_PORT": str(s.clickhouse_port),
            "CXJ_CLICKHOUSE_HTTP_PORT": str(s.clickhouse_http_port),
            "CXJ_PROMETHEUS_PORT": str(s.prometheus_port),
            "CXJ_ALERTMANAGER_PORT": str(s.alertmanager_port),
        }

    def _write_env(self, env: dict[str, str]) -> None:
        path = self.home / "stack.env"
        lines = ["# Written by `cxj stack up`: endpoints and credentials of the local stack. Keep private."]
        lines += [f"{k}={v}" for k, v in env.items()]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        path.chmod(0o600)

    # --- readiness -----------------------------------------------------------------------------

    def _kafka_ready(self) -> bool:
        if not port_open(self.settings.kafka_port):
            return False
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{self.settings.kafka_port}",
                                     request_timeout_ms=3000)  # fmt: skip
        except (KafkaError, OSError, ValueError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def _clickhouse_ready(self, creds: dict[str, str]) -> bool:
        if not port_open(self.settings.clickhouse_port):
            return False
        from clickhouse_driver import Client
        from clickhouse_driver.errors import Error

        client = Client("127.0.0.1", port=self.settings.clickhouse_port, user="default",
                        password=creds.get("admin_password", ""), connect_timeout=2)  # fmt: skip
        try:
            return bool(client.execute("SELECT 1") == [(1,)])
        except (Error, OSError, EOFError):
            return False
        finally:
            client.disconnect()

    def _create_database(self, creds: dict[str, str]) -> None:
        from clickhouse_driver import Client

        client = Client("127.0.0.1", port=self.settings.clickhouse_port, user="default",
                        password=creds["admin_password"])  # fmt: skip
        try:
            client.execute(f"CREATE DATABASE IF NOT EXISTS {self._database()}")
        finally:
            client.disconnect()
