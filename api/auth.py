"""Who may send what, how fast (pure: time is an argument).

A feeder presents `Authorization: Bearer <token>`; `CXJ_API_TOKENS` keeps only each token's SHA-256 (tokens
are long random strings, so a plain digest cannot be reversed), the `source` values it may send (exact, or
fnmatch patterns such as `web-*`; `*` for any) and its rate in touchpoints per second. Rates are per replica.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Final

from schemas.settings import ApiToken

__all__ = ["Bucket", "Grant", "Tokens", "digest"]

BEARER: Final = "bearer "


def digest(token: str) -> str:
    """What `CXJ_API_TOKENS` stores of a token: `sha256` hex digest."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Bucket:
    """A token bucket: `rate` touchpoints per second, bursts up to `capacity`."""

    rate: float
    capacity: float
    level: float = field(default=-1.0)
    at: float = 0.0

    def take(self, n: int, now: float) -> float:
        """Take `n` touchpoints' worth; 0.0 when allowed, else the seconds until they would be (nothing taken)."""
        if self.level < 0:
            self.level, self.at = self.capacity, now
        self.level = min(self.capacity, self.level + max(0.0, now - self.at) * self.rate)
        self.at = now
        if n <= self.level:
            self.level -= n
            return 0.0
        return (n - self.level) / self.rate


@dataclass
class Grant:
    """One configured token: its name (for logs and metrics, never the token) and what it may do."""

    name: str
    sources: tuple[str, ...]
    bucket: Bucket
    profiles: bool = False

    def may_send(self, source: str) -> bool:
        return any(source == p or fnmatchcase(source, p) for p in self.sources)

    def retry_after(self, touchpoints: int, now: float) -> int:
        """0 when this request fits the token's rate, else whole seconds to wait (at least 1)."""
        wait = self.bucket.take(touchpoints, now)
        return 0 if wait == 0.0 else max(1, math.ceil(wait))


class Tokens:
    """The configured tokens, looked up by the digest of the presented one."""

    def __init__(self, tokens: Iterable[ApiToken], *, default_rate: float, min_capacity: int) -> None:
        self._by_digest: dict[str, Grant] = {}
        for t in tokens:
            rate = t.rate or default_rate
            self._by_digest[t.sha256] = Grant(
                t.name, t.sources, Bucket(rate, max(rate, float(min_capacity))), t.profiles
            )

    def __len__(self) -> int:
        return len(self._by_digest)

    def grant(self, authorization: str | None) -> Grant | None:
        """The grant of an `Authorization` header, or None for a missing, malformed or unknown token."""
        if not authorization or not authorization[: len(BEARER)].lower() == BEARER:
            return None
        token = authorization[len(BEARER) :].strip()
        return self._by_digest.get(digest(token)) if token else None
