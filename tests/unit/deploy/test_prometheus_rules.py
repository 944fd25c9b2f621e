"""The Prometheus rules, their promtool tests and the Prometheus/Alertmanager configs in deploy/ hold."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from api.metrics import ApiMetrics
from deploy.local.monitoring_config import alertmanager_config
from streams.runtime.metrics import LagHistogram, PipelineMetrics

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTMANAGER_YML = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))

CX_NAME = re.compile(r"\bcx_[a-z0-9_]+")
RECORDED_NAME = re.compile(r"\b[a-z_][a-z0-9_]*(?::[a-z0-9_]+)+\b")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
SELECTOR = re.compile(r"\b(cx_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
# Added by the scrape (job, instance) or by the histogram (le), never declared in streams/runtime/metrics.py.
TARGET_LABELS = frozenset({"job", "instance"})
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def _tool(name: str) -> str:
    path = shutil.which(name)
    # Not a skip: `make setup` installs promtool and amtool, and a skipped check is one that never runs.
    assert path, f"{name} is not on PATH; run `make setup` (Debian packages prometheus, prometheus-alertmanager)"
    return path


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"{' '.join(done.args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"


def _exported() -> tuple[set[str], dict[str, frozenset[str]]]:
    """Sample names a scrape of the worker or of `cxj serve` can show, and each family's label names, from the
    real registries."""
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry)
    names = {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}
    labels: dict[str, frozenset[str]] = {}
    for field in dataclasses.fields(metrics):
        collector = getattr(metrics, field.name)
        if isinstance(collector, LagHistogram):  # ours: a histogram without labels
            labels[collector.name] = frozenset()
            continue
        # prometheus_client keeps label names private; a labelled child only shows them once it exists.
        labels[collector._name] = frozenset(collector._labelnames)
    # `cxj serve` builds its cx_api_* on a registry of its own (api.metrics).
    api_registry = ApiMetrics.create(CollectorRegistry()).registry
    api = [family for family in api_registry.collect() if family.name.startswith("cx_")]
    names |= {family.name + suffix for family in api for suffix in SUFFIXES[family.type]}
    for collector in api_registry._collector_to_names:  # no public way to list a registry's collectors
        if getattr(collector, "_name", "").startswith("cx_"):
            labels[collector._name] = frozenset(collector._labelnames)
    return names, labels


EXPORTED, LABELS = _exported()


def _family(sample: str) -> str:
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        if sample.endswith(suffix) and sample[: -len(suffix)] in LABELS:
            return sample[: -len(suffix)]
    return sample


def _rules() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, rule)
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


RULES = _rules()
ALERTS = [(file, rule) for file, rule in RULES if "alert" in rule]
RECORDED = {rule["record"]: rule["expr"] for _, rule in RULES if "record" in rule}


def _rule_id(item: tuple[str, dict[str, Any]]) -> str:
    file, rule = item
    name = rule.get("alert") or rule.get("record")
    return f"{file}:{name}:{rule.get('labels', {}).get('severity', '')}".rstrip(":")


def _families_behind(expr: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """cx_* families an expression reads, directly or through recording rules."""
    code = STRING.sub('""', expr)
    found = {_family(name) for name in CX_NAME.findall(RECORDED_NAME.sub(" ", code))}
    for recorded in set(RECORDED_NAME.findall(code)) - seen:
        if recorded in RECORDED:
            found |= _families_behind(RECORDED[recorded], seen | {recorded})
    return found


# --- the tools ----------------------------------------------------------------------------------------------


def test_rule_files_exist() -> None:
    assert {p.name for p in RULE_FILES} >= {"cx-pipeline.yml", "cx-churn.yml"}
    assert RULE_TESTS, "no promtool tests under deploy/prometheus/tests"


def test_promtool_check_rules() -> None:
    _assert_ok(_run(_tool("promtool"), "check", "rules", *map(str, RULE_FILES)))


def test_promtool_test_rules() -> None:
    # Relative paths as documented; promtool resolves rule_files from each test file's folder.
    tests = [str(p.relative_to(PROMETHEUS)) for p in RULE_TESTS]
    _assert_ok(_run(_tool("promtool"), "test", "rules", *tests, cwd=PROMETHEUS))


def test_promtool_check_config() -> None:
    done = _run(_tool("promtool"), "check", "config", "prometheus.yml", cwd=PROMETHEUS)
    _assert_ok(done)
    assert f"{len(RULE_FILES)} rule files found" in done.stdout, done.stdout


def test_amtool_check_config() -> None:
    _assert_ok(_run(_tool("amtool"), "check-config", str(ALERTMANAGER_YML)))


@pytest.mark.parametrize(("severity", "receiver"), [("page", "cx-page"), ("ticket", "cx-ticket")])
def test_alertmanager_routes_by_severity(severity: str, receiver: str) -> None:
    done = _run(
        _tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}",
        "alertname=CxWorkerDown", f"severity={severity}", "team=cx-platform",
    )  # fmt: skip
    _assert_ok(done)
    assert done.stdout.strip() == receiver, done.stdout


def test_alertmanager_config_as_the_local_stack_writes_it(tmp_path: Path) -> None:
    hook = "http://127.0.0.1:18099/alerts"
    written = alertmanager_config(hook)
    config = yaml.safe_load(written)
    urls = [h["url"] for r in config["receivers"] for h in r.get("webhook_configs", [])]
    assert urls, "no webhook receiver in deploy/alertmanager/alertmanager.yml"
    assert set(urls) == {hook}
    path = tmp_path / "alertmanager.yml"
    path.write_text(written)
    _assert_ok(_run(_tool("amtool"), "check-config", str(path)))


# --- the rules against what the worker exports --------------------------------------------------------------


@pytest.mark.parametrize("item", RULES, ids=[_rule_id(r) for r in RULES])
def test_rule_reads_only_exported_metrics_and_labels(item: tuple[str, dict[str, Any]]) -> None:
    _, rule = item
    code = STRING.sub('""', rule["expr"])
    for recorded in RECORDED_NAME.findall(code):
        assert recorded in RECORDED, f"{recorded} is not recorded by any rule under deploy/prometheus/rules"
    for name in CX_NAME.findall(RECORDED_NAME.sub(" ", code)):
        assert name in EXPORTED, f"{name} is not exported by the worker or the API (exported: {sorted(EXPORTED)})"
    for name, matchers in SELECTOR.findall(rule["expr"]):
        allowed = LABELS[_family(name)] | TARGET_LABELS | ({"le"} if name.endswith("_bucket") else set())
        for label in MATCHER_LABEL.findall(matchers):
            assert label in allowed, f"{name} has no label {label!r} (labels: {sorted(allowed)})"
    families = _families_behind(rule["expr"])
    allowed = set().union(*(LABELS[f] for f in families)) | TARGET_LABELS | {"le"}
    for group in GROUPING.findall(code):
        for label in filter(None, (part.strip() for part in group.split(","))):
            assert label in allowed, f"{label!r} is not a label of {sorted(families)}"


def test_rules_read_real_worker_metrics() -> None:
    """The checks above must see something: the rules read the pipeline's key series."""
    read = set().union(*(_families_behind(rule["expr"]) for _, rule in RULES))
    essential = {"cx_touchpoints", "cx_rejections", "cx_event_to_sink_lag_seconds", "cx_sink_errors", "cx_api_requests"}
    assert read >= essential | {"cx_churn_alerts"}
    assert any('up{job="cx-worker"}' in rule["expr"] for _, rule in ALERTS)


@pytest.mark.parametrize("item", ALERTS, ids=[_rule_id(a) for a in ALERTS])
def test_alert_is_routable_and_explained(item: tuple[str, dict[str, Any]]) -> None:
    _, alert = item
    labels, notes = alert.get("labels", {}), alert.get("annotations", {})
    assert labels.get("severity") in {"page", "ticket"}
    assert labels.get("team")
    assert alert.get("for"), "an alert without `for:` pages on a single bad scrape"
    for key in ("summary", "description", "runbook"):
        assert notes.get(key, "").strip(), f"missing annotation {key}"
    assert "\n" not in notes["runbook"].strip(), "the runbook is one line"


def test_recording_rules_follow_level_metric_operations() -> None:
    for name in RECORDED:
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {alert["alert"] for _, alert in ALERTS}
    assert names - fired == set(), "alerts never seen firing in deploy/prometheus/tests"
    assert names - quiet == set(), "alerts never seen quiet in deploy/prometheus/tests"


def test_inhibit_rules_name_real_alerts() -> None:
    names = {alert["alert"] for _, alert in ALERTS}
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    for rule in config["inhibit_rules"]:
        for matcher in rule.get("source_matchers", []) + rule.get("target_matchers", []):
            key, _, value = re.split(r"(=~|!~|!=|=)", matcher, maxsplit=1)
            if key.strip() == "alertname":
                for name in value.strip().strip('"').split("|"):
                    assert name in names, f"inhibit rule names unknown alert {name}"
