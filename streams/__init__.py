"""The Faust app, its agents, and the pure domain logic they call."""
