"""Stream processing: `streams.domain` (the pure per-touchpoint logic) and `streams.runtime` (its Faust wiring).

Importing this package, or either subpackage, does nothing else: the compiled build of the domain is
turned on by `streams.runtime.native.use_compiled()`, the Faust patches by `create_app`.
"""
