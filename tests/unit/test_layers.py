"""One direction of dependencies, read from the source (an AST scan of every import, lazy ones included).

    schemas/          the contract and configuration: wire models, records, rows, rules, settings, errors
    streams/domain/   the pure domain: no broker, database or metrics client; time is an argument
    sinks/            ClickHouse: migrations, the writer, the queries
    streams/runtime/  the Faust worker: agents, topics, producer, flush, metrics
    api/              `cxj serve`: the HTTP collector and the customer profile
    deploy/           the local stack and what deploys
    cxj/              the command line

A layer imports its own layer and those listed below it here, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# layer -> the layers it may import (itself included)
ALLOWED: dict[str, set[str]] = {
    "schemas": {"schemas"},
    "streams.domain": {"schemas", "streams.domain"},
    "sinks": {"schemas", "streams.domain", "sinks"},
    "streams.runtime": {"schemas", "streams.domain", "sinks", "streams.runtime"},
    "api": {"schemas", "streams.domain", "sinks", "streams.runtime", "api"},
    "deploy": {"schemas", "streams.domain", "sinks", "streams.runtime", "api", "deploy"},
    "cxj": {"schemas", "streams.domain", "sinks", "streams.runtime", "api", "deploy", "cxj"},
}
PURE_FORBIDDEN = ("faust", "aiokafka", "kafka", "clickhouse_driver", "prometheus_client", "mode")


def layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _modules() -> list[tuple[str, Path]]:
    found = []
    for top in ("schemas", "streams", "sinks", "api", "deploy", "cxj"):
        for path in sorted((ROOT / top).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            if name != "streams":  # the package marker: see test_streams_is_only_its_two_layers
                found.append((name, path))
    return found


def _imports(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.append(node.module)
    return names


MODULES = _modules()


def test_every_module_is_in_a_layer() -> None:
    assert [name for name, _ in MODULES if layer_of(name) is None] == []


def test_streams_is_only_its_two_layers() -> None:
    assert sorted(p.name for p in (ROOT / "streams").iterdir() if p.suffix == ".py") == ["__init__.py"]
    assert _imports(ROOT / "streams" / "__init__.py", "streams") == []  # importing it does nothing


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[name for name, _ in MODULES])
def test_imports_go_one_way(module: str, path: Path) -> None:
    mine = layer_of(module)
    assert mine is not None
    wrong = []
    for imported in _imports(path, module):
        theirs = layer_of(imported)
        if theirs is not None and theirs not in ALLOWED[mine]:
            wrong.append(f"{imported} ({theirs})")
        if mine in ("schemas", "streams.domain") and imported.split(".")[0] in PURE_FORBIDDEN:
            wrong.append(f"{imported} (a client library in the {mine} layer)")
    assert wrong == [], f"{module} ({mine}) imports {wrong}"
