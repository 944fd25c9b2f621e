"""JSON Schema files for feeding teams and alert consumers, generated from the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from pydantic import TypeAdapter

from schemas.playbook import Playbook
from schemas.records import ChurnAlert, IdentityLink
from schemas.rules import SignalRules
from schemas.touchpoint import Touchpoint, TouchpointBatch

__all__ = ["SCHEMAS", "export", "render"]

SCHEMAS: Final[dict[str, Any]] = {
    "touchpoint.v1.json": Touchpoint,
    "touchpoint-batch.v1.json": TouchpointBatch,
    "churn-alert.v1.json": ChurnAlert,
    "identity-link.v1.json": IdentityLink,
    "signal-rules.json": SignalRules,
    "playbook.json": Playbook,
}
DEFAULT_DIR: Final = Path(__file__).parent / "jsonschema"


def render(model: Any) -> str:
    schema = TypeAdapter(model).json_schema()
    schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write every schema; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMAS.items():
        path = directory / name
        path.write_text(render(model))
        written.append(path)
    return written
