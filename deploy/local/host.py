"""What the local stack needs from the machine: binaries on the PATH, ports, our processes, config files."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from schemas.errors import StackError

__all__ = ["free_ports", "http_ok", "pid_alive", "port_open", "started_in", "wait_gone", "which", "write_if_changed"]


def which(*names: str) -> str:
    for name in names:
        for folder in (*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin", "/usr/bin"):
            candidate = Path(folder) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    raise StackError(f"{names[0]} is not installed: run `make setup` (apt packages)")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_ports(n: int) -> list[int]:
    """n distinct loopback ports that were free a moment ago (bound together, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL we built
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def started_in(pid: int, folder: Path) -> bool:
    """Whether the process runs in `folder` (we start every part with cwd = home), so a reused pid is not ours."""
    try:
        return os.readlink(f"/proc/{pid}/cwd") == str(folder)
    except OSError:
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap if it is our child
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def write_if_changed(path: Path, text: str, mode: int | None = None) -> bool:
    """Replace `path` atomically (a reader never sees half a file) when its text differs; True if written."""
    try:
        if path.read_text() == text:
            if mode is not None:
                path.chmod(mode)
            return False
    except OSError:
        pass
    scratch = path.with_name(f".{path.name}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644 if mode is None else mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    if mode is not None:
        scratch.chmod(mode)
    os.replace(scratch, path)
    return True
