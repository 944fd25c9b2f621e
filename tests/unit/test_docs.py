"""The repository carries its own documentation: every relative link in a committed Markdown file resolves inside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# [text](target) and [text]: target, skipping web links, mail links and in-page anchors.
_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\[[^\]]+\]:\s*(\S+)", re.M)


def _markdown_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in listed.stdout.splitlines() if line]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(path: Path) -> None:
    for match in _LINK.finditer(path.read_text()):
        target = (match.group(1) or match.group(2)).split("#", 1)[0]
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        resolved = (path.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{path.name} links {target}, outside the repository"
        assert resolved.exists(), f"{path.name} links {target}, which does not exist"


def test_the_contract_is_in_the_repository_and_the_readme_points_at_it() -> None:
    contract = ROOT / "docs" / "contract.md"
    text = contract.read_text()
    for part in ("Contract 1", "Contract 2", "Contract 3", "Contract 4", "CXJ_PII_RAW_ID_FIELDS"):
        assert part in text
    assert "](docs/contract.md)" in (ROOT / "README.md").read_text()
