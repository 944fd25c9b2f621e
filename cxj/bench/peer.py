"""The peer a user would pick instead, measured in the same run on the same broker: Quix Streams.

`cxj bench pipeline` runs it on each throughput scenario's preloaded topic right after the workers have
drained it, and prints our figure over its figure. It is a bench-only dependency in an environment of its
own (`build/peer-venv`, made once from PyPI, `QUIX_VERSION` pinned), so the pipeline's venv never holds it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from schemas.errors import StackError

__all__ = ["QUIX_VERSION", "PeerResult", "peer_python", "run_peer"]

QUIX_VERSION: Final = "3.28.1"
_REPO: Final = Path(__file__).resolve().parents[2]
_SCRIPT: Final = Path(__file__).with_name("quix_count.py")


@dataclass(frozen=True)
class PeerResult:
    touchpoints: int
    seconds: float  # first message to last
    cpu_seconds: float  # process CPU over that span

    @property
    def eps(self) -> float:
        return self.touchpoints / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_touchpoint(self) -> float:
        return self.cpu_seconds / self.touchpoints * 1e6 if self.touchpoints else 0.0


def peer_python(root: Path = _REPO / "build" / "peer-venv") -> Path:
    """The peer environment's interpreter, made on first use (a stamp names the pinned version)."""
    python = root / "bin" / "python"
    stamp = root / f".quixstreams-{QUIX_VERSION}"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"quixstreams=={QUIX_VERSION}", "orjson"],
                       check=True)  # fmt: skip
        stamp.touch()
    return python


def run_peer(bootstrap: str, topic: str, expected: int, timeout: float = 900.0) -> PeerResult:
    """Quix Streams counts `expected` touchpoints of `topic` per customer (RocksDB state, no changelog)."""
    python = peer_python()
    with tempfile.TemporaryDirectory(prefix="cxj-peer-") as state_dir:
        group = f"cxj-bench-peer-{Path(state_dir).name}"
        try:
            done = subprocess.run([str(python), str(_SCRIPT), bootstrap, topic, str(expected), state_dir, group],
                                  capture_output=True, text=True, timeout=timeout, check=True)  # fmt: skip
        except subprocess.CalledProcessError as exc:
            raise StackError(f"the Quix Streams peer failed: {exc.stderr[-2000:]}") from exc
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return PeerResult(figures["touchpoints"], figures["seconds"], figures["cpu_seconds"])
