"""Journey settings: idle timeouts by type and how long closed journeys are kept (Contract 2).

Journeys themselves (purchase, service and browse episodes, their status) live in the native core:
core/src/journeys.rs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["JOURNEY_TYPES", "JourneyPolicy"]

JOURNEY_TYPES: Final = ("purchase", "service", "browse")


@dataclass(frozen=True, slots=True)
class JourneyPolicy:
    """Idle timeouts by type, the browse split gap, and how long closed journeys are kept."""

    timeouts: dict[str, int]  # journey type -> idle timeout, ms
    retention: int  # ms a closed journey stays in state (its event ids deduplicate)

    @property
    def browse_gap(self) -> int:
        return self.timeouts["browse"]

    def horizon(self, jtype: str) -> int:
        """How far behind a customer's latest event a touchpoint may still change a journey."""
        return self.timeouts[jtype] + self.retention
