"""The compiled build of the pure logic is used only when it matches the sources."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import streams.domain
import streams.domain.customer
import streams.domain.ingest
import streams.domain.processor
from streams.runtime import native

PACKAGE_DIR = Path(streams.domain.__file__).parent


def _build_dir(tmp_path: Path, manifest: dict[str, str]) -> Path:
    root = tmp_path / "native"
    (root / "streams" / "domain").mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(autouse=True)
def _keep_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("CXJ_NATIVE", raising=False)


def test_a_build_of_these_sources_goes_first_on_the_package_path(tmp_path: Path) -> None:
    root = _build_dir(tmp_path, native.manifest(PACKAGE_DIR))
    path = [str(PACKAGE_DIR)]
    assert native.activate(path, root) is True
    assert path == [str(root / "streams" / "domain"), str(PACKAGE_DIR)]
    assert str(root) in sys.path  # where mypyc's group library is imported from


@pytest.mark.parametrize("module", native.MODULES)
def test_a_build_of_other_sources_is_never_used(tmp_path: Path, module: str) -> None:
    stale = native.manifest(PACKAGE_DIR) | {module: "0" * 64}
    path = [str(PACKAGE_DIR)]
    assert native.activate(path, _build_dir(tmp_path, stale)) is False
    assert path == [str(PACKAGE_DIR)]


def test_a_build_for_another_interpreter_is_never_used(tmp_path: Path) -> None:
    other = native.manifest(PACKAGE_DIR) | {"abi": "cpython-312"}
    assert native.activate([str(PACKAGE_DIR)], _build_dir(tmp_path, other)) is False


def test_no_build_or_a_broken_manifest_means_plain_python(tmp_path: Path) -> None:
    assert native.activate([str(PACKAGE_DIR)], tmp_path / "absent") is False
    root = _build_dir(tmp_path, {})
    (root / "manifest.json").write_text("{not json")
    assert native.activate([str(PACKAGE_DIR)], root) is False


def test_cxj_native_0_forces_plain_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXJ_NATIVE", "0")
    root = _build_dir(tmp_path, native.manifest(PACKAGE_DIR))
    assert native.activate([str(PACKAGE_DIR)], root) is False


def test_importing_the_domain_or_the_runtime_turns_nothing_on() -> None:
    # tests/conftest.py calls use_compiled() as the command line does; a bare import must not.
    import subprocess

    code = ("import streams.domain.processor, streams.runtime.native as n, streams.runtime.app; "
            "print(n.active(), n.is_compiled(streams.domain.processor))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=PACKAGE_DIR.parents[1])  # fmt: skip
    assert done.stdout.split() == ["False", "False"]


def test_the_modules_in_use_are_the_ones_activation_chose() -> None:
    # `make test` builds the native modules and runs the unit tests both compiled and with CXJ_NATIVE=0.
    for module in (streams.domain.customer, streams.domain.ingest, streams.domain.processor):
        assert native.is_compiled(module) is native.active(), module.__file__
    if native.is_current() and native.active():
        assert Path(streams.domain.processor.__file__).is_relative_to(native.native_dir())
