"""deploy/compose and deploy/k8s: files parse, images are pinned, names and ports agree with the code.

No Docker engine or cluster runs here; what can be checked without one is checked: the compose file's
services and wiring, the Prometheus scrape targets against the worker's port, the Grafana datasource against
the ClickHouse service, the Kubernetes objects against the settings and topics, and the cluster schema
against the migrations it is generated from. The dashboard's SQL runs against the real ClickHouse in
tests/integration/test_bi.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cxj.settings import Settings
from sinks.cluster import cluster_schema
from streams import topics

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "deploy" / "compose"
K8S = ROOT / "deploy" / "k8s"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(_yaml(COMPOSE / "docker-compose.yml"))


def test_every_image_is_pinned_to_a_version(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name} has no image"
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_the_stack_has_every_part(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka-1", "kafka-2", "kafka-3", "clickhouse", "prometheus", "alertmanager", "grafana", "cx-init",
            "cx-worker"} <= set(services)  # fmt: skip
    assert services["cx-worker"]["deploy"]["replicas"] == "${CX_WORKERS:-3}"
    assert services["cx-worker"]["depends_on"]["cx-init"]["condition"] == "service_completed_successfully"


def test_kafka_is_kraft_with_three_voters(compose: dict[str, Any]) -> None:
    voters = set()
    for i in (1, 2, 3):
        env = compose["services"][f"kafka-{i}"]["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_NODE_ID"] == i
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://kafka-{i}:9092"
        voters.add(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}


def test_worker_settings_parse_and_point_at_services(compose: dict[str, Any]) -> None:
    env = dict(compose["services"]["cx-worker"]["environment"])
    for host_port in env["CXJ_KAFKA_BOOTSTRAP"].split(","):
        assert host_port.split(":")[0] in compose["services"]
    secrets = {"CXJ_PII_SECRET": "x" * 32, "CX_WRITER_PASSWORD": "w", "CX_BI_PASSWORD": "b"}
    resolved = {k: re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: secrets.get(m.group(1), "s"), v) for k, v in env.items()}
    settings = Settings(**{k[4:].lower(): v for k, v in resolved.items() if k.startswith("CXJ_")})
    assert settings.clickhouse.host == "clickhouse" and settings.clickhouse.user == "cx_writer"
    assert settings.clickhouse_bi.user == "cx_bi"
    assert "clickhouse" in compose["services"]
    assert str(settings.worker_web_port) in compose["services"]["cx-worker"]["expose"]
    # No secret value is written in the file itself, only required variables.
    assert all("${" in v for k, v in env.items() if "PASSWORD" in k or "SECRET" in k or ("URL" in k and "@" in v))


def test_prometheus_scrapes_the_worker_port_and_loads_the_shared_rules(compose: dict[str, Any]) -> None:
    prom = _yaml(COMPOSE / "prometheus" / "prometheus.yml")
    worker = next(j for j in prom["scrape_configs"] if j["job_name"] == "cx-worker")
    sd = worker["dns_sd_configs"][0]
    assert sd["names"] == ["cx-worker"]
    port = int(compose["services"]["cx-worker"]["environment"]["CXJ_WORKER_WEB_PORT"])
    assert sd["port"] == port
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "../prometheus/rules:/etc/prometheus/rules:ro" in mounts
    assert prom["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    target = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    assert target.split(":")[0] in compose["services"]
    config = str(COMPOSE / "prometheus" / "prometheus.yml")
    check = subprocess.run(["promtool", "check", "config", "--syntax-only", config],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), f"{name} mounts a missing {source}"


def test_dockerfile_copies_what_exists() -> None:
    for line in (COMPOSE / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_grafana_datasource_and_dashboard() -> None:
    ds = _yaml(COMPOSE / "grafana" / "provisioning" / "datasources" / "clickhouse.yml")["datasources"]
    ch = next(d for d in ds if d["type"] == "grafana-clickhouse-datasource")
    assert (ch["jsonData"]["host"], ch["jsonData"]["port"], ch["jsonData"]["username"]) == ("clickhouse", 9000, "cx_bi")
    assert ch["secureJsonData"]["password"].startswith("$")
    dashboard = json.loads((COMPOSE / "grafana" / "dashboards" / "cx-journeys.json").read_text())
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("churn risk", "channel", "signal", "dimension", "journeys", "pipeline"):
        assert topic in titles, topic
    uids = {d["uid"] for d in ds}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in uids
        assert panel["targets"], panel["title"]


def _k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _yaml(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_k8s_names_and_ports_agree_with_the_code() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _k8s_docs() if "metadata" in d}
    config = docs[("ConfigMap", "cx-journeys")]["data"]
    settings = Settings(**{k[4:].lower(): v for k, v in config.items()})
    worker = docs[("Deployment", "cx-worker")]["spec"]["template"]["spec"]["containers"][0]
    assert worker["ports"][0]["containerPort"] == settings.worker_web_port
    service = docs[("Service", "cx-worker-metrics")]
    assert service["spec"]["ports"][0]["port"] == settings.worker_web_port
    assert service["spec"]["selector"] == docs[("Deployment", "cx-worker")]["spec"]["selector"]["matchLabels"]
    monitor = docs[("ServiceMonitor", "cx-worker")]
    assert monitor["spec"]["endpoints"][0]["relabelings"][0]["replacement"] == "cx-worker"
    rules = " ".join(p.read_text() for p in (ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
    assert 'job="cx-worker"' in rules
    scaled = docs[("ScaledObject", "cx-worker")]
    assert scaled["spec"]["maxReplicaCount"] == settings.topic_partitions
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["metadata"]["consumerGroup"] == settings.app_id
        assert trigger["metadata"]["topic"] in {topics.TOUCHPOINTS, topics.STITCH}
    # Secrets are never in the manifests.
    assert not {"CXJ_PII_SECRET", "CXJ_CLICKHOUSE_URL", "CXJ_KAFKA_SASL_PASSWORD"} & set(config)


def test_the_committed_cluster_schema_is_generated_from_the_migrations() -> None:
    committed = (K8S / "clickhouse" / "schema-cluster.sql").read_text()
    assert committed == cluster_schema("cx", "cx"), "run `cxj schema cluster` and commit the result"


def test_cluster_schema_replicates_and_distributes_every_table() -> None:
    ddl = cluster_schema("cx", "cx")
    tables = re.findall(r"CREATE TABLE IF NOT EXISTS cx\.(\w+)_local ON CLUSTER 'cx'", ddl)
    assert {"touchpoints", "customer_experience", "churn_alerts", "journeys", "identity_links",
            "identity_overrides", "dead_letters", "signals_hourly"} <= set(tables)  # fmt: skip
    for table in tables:
        assert f"Distributed('cx', 'cx', '{table}_local'," in ddl
        assert f"'/clickhouse/tables/{{shard}}/cx/{table}', '{{replica}}'" in ddl
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/customer_experience', "
        "'{replica}', version)" in ddl
    )
    assert "TO cx.signals_hourly_local AS" in ddl and "FROM cx.experience_signals_local" in ddl
    assert "GLOBAL ANY LEFT JOIN" in ddl
    assert "INSERT INTO" not in ddl
