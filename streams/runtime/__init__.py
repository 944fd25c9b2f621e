"""The Faust wiring: the app, its agents, topics, the producer, state stores, flushes and metrics.

It calls the pure domain (streams.domain) and the ClickHouse sink (sinks); nothing below imports it.
"""
