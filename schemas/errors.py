"""The one exception tree of cx-journeys; driver errors are translated at the boundary."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CxjError",
    "KafkaAccessError",
    "MigrationError",
    "SinkError",
    "SinkUnavailable",
    "StackError",
    "StateError",
]


class CxjError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(CxjError):
    """A setting is missing or malformed."""


class KafkaAccessError(CxjError):
    """The broker cannot be reached or refuses these credentials; names the setting to fix."""


class StackError(CxjError):
    """A local-stack component failed to start, answer or stop."""


class SinkError(CxjError):
    """ClickHouse rejected or failed a statement."""


class SinkUnavailable(SinkError):
    """ClickHouse cannot be reached right now; the caller should back off and retry."""


class MigrationError(SinkError):
    """A schema migration failed or a migration file changed after it was applied."""


class StateError(CxjError):
    """Worker state is inconsistent (a bug, never bad input)."""
