"""The pure domain: validation, identity, experiences, journeys, risk, and the rows they produce.

No broker, database or metrics client is imported here, and time is always an argument, so every
function runs the same in the worker, the in-memory cluster of the property tests and the benchmarks.
The per-touchpoint rules themselves run in the native core (`cx_core`); these modules configure and drive it.
"""
