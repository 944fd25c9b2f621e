"""Stream processing: `streams.domain` (the pure per-touchpoint logic) and `streams.runtime` (its Faust wiring).

Importing this package, or either subpackage, does nothing else.
"""
