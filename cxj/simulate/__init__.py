"""Seedable multi-channel traffic from the customer stories of docs/contract.md, for `cxj simulate` and `cxj demo`.

Each customer lives whole episodes, not independent random events: browsing sessions that end
in a login (stitching an anonymous cookie to the customer), purchases with proactive updates,
late parcels, failed payments, calls with long waits and transfers that turn into cases, repeat
contacts, complaints, compensation, surveys and social posts. A share of customers
(`unhappy_share`) lives three or more dissatisfying episodes, enough to cross into `high` churn
risk; the others mostly collect positive signals.

The stream is lazy and deterministic: the same config (seed and `now`) gives the same items in
the same order. Events come out roughly in arrival order (occurred_at plus a small ingestion
delay), with some late arrivals and exact duplicate re-sends mixed in, as real feeders produce.

>>> cfg = SimulationConfig(seed=1, customers=50, events=200, now=datetime(2026, 11, 20, tzinfo=UTC))
>>> sum(1 for item in generate_raw(cfg))
200
"""

from cxj.simulate.engine import INVALID_REASONS, TOPIC, SimulationConfig
from cxj.simulate.traffic import Pacer, ProduceStats, generate, generate_raw, messages, produce, produce_messages

__all__ = [
    "INVALID_REASONS",
    "TOPIC",
    "Pacer",
    "ProduceStats",
    "SimulationConfig",
    "generate",
    "generate_raw",
    "messages",
    "produce",
    "produce_messages",
]
