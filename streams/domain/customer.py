"""The rule parameters of Contract 2 (docs/contract.md): what the native core's customer state is run with.

The state itself (experiences, journeys, orders, contacts, alerts, all join-semilattices so that any
order of arrival ends in the same state) lives in the core: core/src/customer.rs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from schemas.playbook import DEFAULT_PLAYBOOK, Playbook
from streams.domain.journeys import JourneyPolicy
from streams.domain.signals import Classifier

__all__ = ["DAY_MS", "Policy"]

DAY_MS: Final = 86_400_000


@dataclass(frozen=True, slots=True)
class Policy:
    """The rule parameters of Contract 2, in milliseconds."""

    classifier: Classifier
    journeys: JourneyPolicy
    window: int = 90 * DAY_MS
    lateness: int = 30 * DAY_MS
    half_life: float = 30.0 * DAY_MS
    # Wall-clock ms an anonymous key's alert waits for the key to be linked to a customer (0: none).
    anonymous_hold: int = 0
    # How long after an alert its outcome is watched (CXJ_RECOVERY_DAYS; issue 17).
    recovery: int = 30 * DAY_MS
    # What a churn alert recommends (CXJ_PLAYBOOK_FILE; issue 17).
    playbook: Playbook = DEFAULT_PLAYBOOK
