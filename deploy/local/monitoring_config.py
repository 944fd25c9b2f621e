"""The local Prometheus and Alertmanager configs, derived from the settings on every `cxj stack up`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

__all__ = ["ALERTMANAGER_TEMPLATE", "RULES_DIR", "alertmanager_config", "prometheus_config"]

DEPLOY: Final = Path(__file__).resolve().parent.parent
RULES_DIR: Final = DEPLOY / "prometheus" / "rules"  # the rules as they are in the repository
ALERTMANAGER_TEMPLATE: Final = DEPLOY / "alertmanager" / "alertmanager.yml"


def prometheus_config(targets: Path, *, alertmanager_port: int, prometheus_port: int) -> str:
    """Scrape the workers listed in `targets/*.json` and the `cxj serve` replicas in `targets/api/*.json`
    (re-read every 5 s, no restart) with the shared rules."""
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [str(RULES_DIR / "*.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "scrape_configs": [
            {"job_name": "cx-worker", "metrics_path": "/metrics",
             "file_sd_configs": [{"files": [str(targets / "*.json")], "refresh_interval": "5s"}]},
            {"job_name": "cx-api", "metrics_path": "/metrics",
             "file_sd_configs": [{"files": [str(targets / "api" / "*.json")], "refresh_interval": "5s"}]},
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{prometheus_port}"]}]},
        ],
    }  # fmt: skip
    return yaml.safe_dump(config, sort_keys=False)


def alertmanager_config(webhook_url: str) -> str:
    """deploy/alertmanager/alertmanager.yml with every webhook pointed at `webhook_url` (CXJ_ALERT_WEBHOOK_URL)."""
    if ALERTMANAGER_TEMPLATE.exists():
        config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_TEMPLATE.read_text())
    else:
        config = {"route": {"receiver": "webhook"}, "receivers": [{"name": "webhook"}]}
    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []) or []:
            hook["url"] = webhook_url
    if not any(r.get("webhook_configs") for r in config.get("receivers", [])):
        config["receivers"][0]["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    return yaml.safe_dump(config, sort_keys=False)
