"""The pure domain's configuration objects, built from the settings (the only place the two meet)."""

from __future__ import annotations

from schemas.playbook import load_playbook
from schemas.settings import Settings
from streams.domain.customer import DAY_MS, Policy
from streams.domain.ingest import IngestConfig
from streams.domain.journeys import JourneyPolicy
from streams.domain.signals import Classifier, load_rules

__all__ = ["ingest_config_from", "policy_from"]


def policy_from(settings: Settings) -> Policy:
    """Contract 2's rules with the configured window, lateness, journey timeouts, signal rules, hold and playbook."""
    timeouts = {
        "browse": settings.journey_browse_idle_minutes * 60_000,
        "service": settings.journey_service_idle_days * DAY_MS,
        "purchase": settings.journey_purchase_idle_days * DAY_MS,
    }
    rules = load_rules(settings.signal_rules_file)
    if rules.repeat_contact is not None and "repeat_contact_days" in settings.model_fields_set:
        repeat = rules.repeat_contact.model_copy(update={"within_days": settings.repeat_contact_days})
        rules = rules.model_copy(update={"repeat_contact": repeat})
    return Policy(
        classifier=Classifier(rules),
        journeys=JourneyPolicy(timeouts, settings.journey_retention_days * DAY_MS),
        window=settings.window_days * DAY_MS,
        lateness=settings.allowed_lateness_days * DAY_MS,
        half_life=settings.score_half_life_days * DAY_MS,
        anonymous_hold=settings.anonymous_alert_hold_seconds * 1000,
        recovery=settings.recovery_days * DAY_MS,
        playbook=load_playbook(settings.playbook_file),
    )


def ingest_config_from(settings: Settings) -> IngestConfig:
    """The PII secret, region, blocklist and tolerances ingest validates with."""
    return IngestConfig(
        pii_secret=settings.require_pii_secret(),
        region=settings.default_region,
        blocklist=frozenset(settings.identifier_blocklist),
        future_tolerance_ms=settings.future_tolerance_seconds * 1000,
        raw_id_fields=frozenset(settings.pii_raw_id_fields),
    )
