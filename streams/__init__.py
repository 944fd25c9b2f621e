"""The Faust app, its agents, and the pure domain logic they call."""

from streams.native import activate as _activate

# The pure logic's compiled build, when one matches these sources (see streams/native.py).
NATIVE = _activate(__path__)
