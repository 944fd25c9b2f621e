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
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.settings import Settings
from sinks.cluster import cluster_schema
from streams.runtime import topics

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
            "cx-worker", "api"} <= set(services)  # fmt: skip
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


def test_kafka_runs_the_tested_release_with_a_cluster_id_kafka_accepts(compose: dict[str, Any]) -> None:
    """The release the local stack and the tests run, and a cluster id of 16 bytes in base64url (what
    `kafka-storage format` takes; the 21-character default this file had would have refused to format)."""
    import base64

    from deploy.local.kafka import KAFKA_VERSION

    for i in (1, 2, 3):
        service = compose["services"][f"kafka-{i}"]
        assert service["image"] == f"apache/kafka:{KAFKA_VERSION}"
        default = re.fullmatch(r"\$\{KAFKA_CLUSTER_ID:-([A-Za-z0-9_-]+)\}", service["environment"]["CLUSTER_ID"])
        assert default is not None
        assert len(default.group(1)) == 22 and len(base64.urlsafe_b64decode(default.group(1) + "==")) == 16


def test_the_local_broker_pom_fetches_the_release_the_code_runs() -> None:
    from deploy.local.kafka import KAFKA_VERSION

    pom = ET.parse(ROOT / "deploy" / "kafka" / "pom.xml").getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    assert pom.findtext("m:properties/m:kafka.version", namespaces=ns) == KAFKA_VERSION


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


def test_api_settings_parse_and_hold_only_the_read_only_user(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    env = dict(api["environment"])
    for host_port in env["CXJ_KAFKA_BOOTSTRAP"].split(","):
        assert host_port.split(":")[0] in compose["services"]
    assert env["CXJ_KAFKA_BOOTSTRAP"] == compose["services"]["cx-worker"]["environment"]["CXJ_KAFKA_BOOTSTRAP"]
    tokens = json.dumps([{"name": "feeder", "sha256": "0" * 64, "sources": ["*"]}])
    secrets = {"CXJ_PII_SECRET": "x" * 32, "CX_BI_PASSWORD": "b", "CXJ_API_TOKENS": tokens}
    resolved: dict[str, Any] = {k: re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: secrets[m.group(1)], v)
                                for k, v in env.items()}  # fmt: skip
    # pydantic-settings decodes JSON from the environment only, not from keyword arguments.
    resolved["CXJ_API_TOKENS"] = json.loads(resolved["CXJ_API_TOKENS"])
    settings = Settings(**{k[4:].lower(): v for k, v in resolved.items() if k.startswith("CXJ_")})
    assert settings.clickhouse_bi.host == "clickhouse" and settings.clickhouse_bi.user == "cx_bi"
    assert [t.name for t in settings.api_tokens] == ["feeder"]
    # Profiles are read as cx_bi; the writer's and the schema owner's credentials stay with the pipeline.
    assert not {"CXJ_CLICKHOUSE_URL", "CXJ_CLICKHOUSE_ADMIN_URL"} & set(env)
    assert api["command"] == ["serve", "--host", "0.0.0.0"]
    assert str(settings.api_port) in api["expose"]
    assert api["ports"] == [f"127.0.0.1:{settings.api_port}:{settings.api_port}"]
    assert f"127.0.0.1:{settings.api_port}/healthz" in " ".join(api["healthcheck"]["test"])
    assert api["depends_on"]["cx-init"]["condition"] == "service_completed_successfully"
    assert all("${" in v for k, v in env.items() if "SECRET" in k or "TOKENS" in k or ("URL" in k and "@" in v))
    assert "CXJ_API_TOKENS=" in (COMPOSE / ".env.example").read_text().splitlines()


def test_prometheus_scrapes_the_api_as_job_cx_api(compose: dict[str, Any]) -> None:
    port = int(compose["services"]["api"]["environment"]["CXJ_API_PORT"])
    prom = _yaml(COMPOSE / "prometheus" / "prometheus.yml")
    sd = next(j for j in prom["scrape_configs"] if j["job_name"] == "cx-api")["dns_sd_configs"][0]
    assert (sd["names"], sd["port"]) == (["api"], port)
    reference = _yaml(ROOT / "deploy" / "prometheus" / "prometheus.yml")
    api = next(j for j in reference["scrape_configs"] if j["job_name"] == "cx-api")
    default = Settings.model_fields["api_port"].default
    assert api["static_configs"][0]["targets"] == [f"127.0.0.1:{default}"]


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


def test_the_image_builds_the_native_core_and_copies_every_package() -> None:
    text = (COMPOSE / "Dockerfile").read_text()
    assert "COPY core ./core" in text and "pip wheel --no-cache-dir ./core" in text
    assert "pip install --no-cache-dir /wheels/*.whl" in text
    copied = {line.split()[1] for line in text.splitlines() if line.startswith("COPY ") and "--from=" not in line}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages <= copied | {"deploy"}, packages - copied  # deploy/: only its __init__, the rest is config


def test_dockerfile_copies_what_exists() -> None:
    for line in (COMPOSE / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:  # a build stage's output is not in the repository
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_grafana_datasource_and_dashboard() -> None:
    ds = _yaml(COMPOSE / "grafana" / "provisioning" / "datasources" / "clickhouse.yml")["datasources"]
    ch = next(d for d in ds if d["type"] == "grafana-clickhouse-datasource")
    assert (ch["jsonData"]["host"], ch["jsonData"]["port"], ch["jsonData"]["username"]) == ("clickhouse", 9000, "cx_bi")
    assert ch["secureJsonData"]["password"].startswith("$")
    dashboard = json.loads((COMPOSE / "grafana" / "dashboards" / "cx-journeys.json").read_text())
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("churn risk", "channel", "signal", "dimension", "journeys", "pipeline", "api"):
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
    api = docs[("Deployment", "cx-api")]["spec"]["template"]["spec"]["containers"][0]
    assert api["args"] == ["serve"] and settings.api_host == "0.0.0.0"
    assert api["ports"][0]["containerPort"] == settings.api_port
    assert {api["readinessProbe"]["httpGet"]["path"], api["livenessProbe"]["httpGet"]["path"]} == {"/healthz"}
    api_service = docs[("Service", "cx-api")]
    assert api_service["spec"]["ports"][0]["port"] == settings.api_port
    assert api_service["metadata"]["annotations"]["prometheus.io/port"] == str(settings.api_port)
    assert api_service["spec"]["selector"] == docs[("Deployment", "cx-api")]["spec"]["selector"]["matchLabels"]
    api_monitor = docs[("ServiceMonitor", "cx-api")]
    assert api_monitor["spec"]["selector"]["matchLabels"] == api_service["metadata"]["labels"]
    assert api_monitor["spec"]["endpoints"][0]["port"] == api_service["spec"]["ports"][0]["name"]
    assert api_monitor["spec"]["endpoints"][0]["relabelings"][0]["replacement"] == "cx-api"
    assert monitor["spec"]["selector"]["matchLabels"] == service["metadata"]["labels"]
    # Secrets are never in the manifests.
    assert not {"CXJ_PII_SECRET", "CXJ_CLICKHOUSE_URL", "CXJ_KAFKA_SASL_PASSWORD", "CXJ_API_TOKENS"} & set(config)


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


# --- ClickHouse users on a current release (SQL access control) ------------------------------------------

# What lets a user reach past database cx: DDL, table functions (CREATE TEMPORARY TABLE plus a source grant),
# system tables, access management.
_BEYOND_READ_WRITE = re.compile(
    r"\b(ALL|CREATE|DROP|ALTER|OPTIMIZE|TRUNCATE|TEMPORARY|URL|REMOTE|FILE|S3|SYSTEM|KILL|ACCESS|CLUSTER)\b|system\.",
    re.I,
)


@pytest.fixture(scope="module")
def compose_users() -> ET.Element:
    return ET.parse(COMPOSE / "clickhouse" / "users.xml").getroot()


def _grants(users: ET.Element, name: str) -> list[str]:
    return [q.text or "" for q in users.findall(f"users/{name}/grants/query")]


def test_compose_writer_and_bi_may_select_and_insert_in_cx_only(compose_users: ET.Element) -> None:
    assert _grants(compose_users, "cx_writer") == ["GRANT SELECT, INSERT ON cx.*"]
    assert _grants(compose_users, "cx_bi") == ["GRANT SELECT ON cx.*"]
    for name in ("cx_writer", "cx_bi"):
        assert not any(_BEYOND_READ_WRITE.search(g.replace("GRANT ", "", 1)) for g in _grants(compose_users, name))
        assert compose_users.find(f"users/{name}/access_management") is None
    # Schema changes and erasure belong to cx_admin, whose rights end at database cx and its mutations.
    assert _grants(compose_users, "cx_admin") == ["GRANT ALL ON cx.*", "GRANT SELECT ON system.mutations"]
    for user in compose_users.findall("users/*"):
        password = user.find("password")
        assert password is not None and password.get("from_env"), f"{user.tag} has no password from the environment"


def test_compose_bi_profile_is_readonly_with_constant_limits_and_a_quota(compose_users: ET.Element) -> None:
    bi = compose_users.find("profiles/bi")
    assert bi is not None and bi.findtext("readonly") == "1"
    constraints = bi.find("constraints")
    assert constraints is not None
    for limit in ("max_memory_usage", "max_memory_usage_for_user", "max_result_rows", "max_result_bytes"):
        assert int(bi.findtext(limit) or "0") > 0, limit
        assert constraints.find(f"{limit}/readonly") is not None, f"{limit} is not a constant for cx_bi"
    # The only setting cx_bi may change: lower max_execution_time (clickhouse-go sends it), never lift it.
    timeout = constraints.find("max_execution_time")
    assert timeout is not None and timeout.find("changeable_in_readonly") is not None
    assert (timeout.findtext("min"), timeout.findtext("max")) == ("1", bi.findtext("max_execution_time"))
    assert compose_users.findtext("users/cx_bi/profile") == "bi"
    assert compose_users.findtext("users/cx_bi/quota") == "bi"
    interval = compose_users.find("quotas/bi/interval")
    assert interval is not None and interval.findtext("duration") == "3600"
    assert all(int(c.text or "0") > 0 for c in interval), "a quota counter of 0 is unlimited"
    writer = compose_users.find("profiles/writer")
    assert writer is not None and writer.findtext("allow_ddl") == "0"


def test_compose_system_tables_need_a_grant(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["clickhouse"]["volumes"]
    assert "./clickhouse/cx-access.xml:/etc/clickhouse-server/config.d/cx-access.xml:ro" in mounts
    access = ET.parse(COMPOSE / "clickhouse" / "cx-access.xml").getroot().find("access_control_improvements")
    assert access is not None
    for flag in ("select_from_system_db_requires_grant", "select_from_information_schema_requires_grant",
                 "settings_constraints_replace_previous"):  # fmt: skip
        assert access.findtext(flag) == "true", flag


def test_compose_only_init_holds_the_schema_owner(compose: dict[str, Any]) -> None:
    services = compose["services"]
    init = services["cx-init"]["environment"]
    assert init["CXJ_CLICKHOUSE_ADMIN_URL"].startswith("clickhouse://cx_admin:${CX_ADMIN_PASSWORD:?")
    assert init["CXJ_CLICKHOUSE_URL"] == services["cx-worker"]["environment"]["CXJ_CLICKHOUSE_URL"]
    assert "CXJ_CLICKHOUSE_ADMIN_URL" not in services["cx-worker"]["environment"]
    assert "CX_ADMIN_PASSWORD=" in (COMPOSE / ".env.example").read_text().splitlines()
    settings = Settings(clickhouse_url="clickhouse://cx_writer:w@clickhouse:9000/cx",
                        clickhouse_admin_url="clickhouse://cx_admin:a@clickhouse:9000/cx")  # fmt: skip
    assert settings.clickhouse_schema_admin.user == "cx_admin"  # what `cxj init` migrates as


def _access_sql() -> list[str]:
    text = "\n".join(line for line in (K8S / "clickhouse" / "access.sql").read_text().splitlines()
                     if not line.startswith("--"))  # fmt: skip
    return [" ".join(s.split()) for s in text.split(";") if s.strip()]


def test_k8s_roles_grant_each_user_only_its_job() -> None:
    grants: dict[str, list[str]] = {}
    for statement in _access_sql():
        found = re.fullmatch(r"GRANT ON CLUSTER 'cx' (.+) TO (\w+)", statement)
        if found:
            grants.setdefault(found.group(2), []).append(found.group(1))
    assert grants["cx_writer_role"] == ["SELECT, INSERT ON cx.*"]
    assert grants["cx_bi_role"] == ["SELECT ON cx.*"]
    assert "ALL ON cx.*" in grants["cx_admin_role"]
    assert not any(_BEYOND_READ_WRITE.search(g) for g in grants["cx_writer_role"] + grants["cx_bi_role"])


def test_k8s_bi_profile_and_quota_match_compose(compose_users: ET.Element) -> None:
    statements = _access_sql()
    profile = next(s for s in statements if s.startswith("CREATE SETTINGS PROFILE IF NOT EXISTS cx_bi "))
    assert profile.endswith("TO cx_bi_role") and "readonly = 1" in profile
    bi = compose_users.find("profiles/bi")
    assert bi is not None
    for limit in ("max_memory_usage", "max_memory_usage_for_user", "max_result_rows", "max_result_bytes",
                  "max_concurrent_queries_for_user"):  # fmt: skip
        assert f"{limit} = {bi.findtext(limit)} CONST" in profile, limit
    assert "max_execution_time = 120 MIN 1 MAX 120 CHANGEABLE_IN_READONLY" in profile
    quota = next(s for s in statements if s.startswith("CREATE QUOTA IF NOT EXISTS cx_bi "))
    interval = compose_users.find("quotas/bi/interval")
    assert interval is not None and quota.endswith("TO cx_bi_role") and "FOR INTERVAL 1 hour" in quota
    for counter in interval:
        if counter.tag != "duration":
            assert f"{counter.tag} = {counter.text}" in quota, counter.tag
    writer = next(s for s in statements if s.startswith("CREATE SETTINGS PROFILE IF NOT EXISTS cx_writer "))
    assert "allow_ddl = 0 CONST" in writer and writer.endswith("TO cx_writer_role")


def test_k8s_only_the_init_job_mounts_the_admin_secret() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _k8s_docs() if "metadata" in d}

    def secrets(kind: str, name: str) -> set[str]:
        pod = docs[(kind, name)]["spec"]["template"]["spec"]
        return {e["secretRef"]["name"] for c in pod["containers"] for e in c.get("envFrom", []) if "secretRef" in e}

    assert secrets("Job", "cx-init") == {"cx-journeys", "cx-journeys-admin"}
    assert secrets("Deployment", "cx-worker") == {"cx-journeys"}
    # The API takes single keys of `cx-journeys`: the read-only ClickHouse user, never the writer's URL.
    assert secrets("Deployment", "cx-api") == {"cx-journeys-api"}
    api = docs[("Deployment", "cx-api")]["spec"]["template"]["spec"]["containers"][0]
    keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in api["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert keys == {"CXJ_PII_SECRET", "CXJ_CLICKHOUSE_BI_URL", "CXJ_KAFKA_SASL_PASSWORD"}
