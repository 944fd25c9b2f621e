"""Pydantic-validated wire contract, rule table, records and ClickHouse rows; no IO."""
