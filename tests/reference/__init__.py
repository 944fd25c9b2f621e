"""Plain-Python reference models of rules the native core (core/) implements.

They are what the pipeline ran before the core replaced them, kept only so that differential property
tests can compare the core with them on random input (tests/unit/streams/test_core_differential.py).
Nothing outside tests/ imports them.
"""
