"""What one `cxj forget` request deletes from ClickHouse, and how, without naming anyone in SQL text (pure).

The plan (keys, identifiers, journeys) becomes rows of `erasure_subjects` (`subject_rows`); every deletion's
condition reads them by request id (`deletions`), so the text of a mutation, which ClickHouse keeps in
`system.mutations` and `system.query_log` for every user of 18.16 to read, holds no customer key or identifier.
Dead letters are found by the `subjects` ingest recorded, and, for payloads that are not JSON, by an RE2
pattern over their text (`text_pattern`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from schemas.rows import Table
from streams.domain.identity import ANON_PREFIX, is_anonymous

__all__ = ["SUBJECTS_TABLE", "ErasurePlan", "delete_statement", "deletions", "subject_rows", "text_pattern"]

# The request's keys and identifiers, as data: mutations and the checks around them name only the request id.
SUBJECTS_TABLE: Final = "erasure_subjects"
_REQUEST_ID: Final = re.compile(r"^[0-9a-f]{32}$")
# Identifier types whose value is stored as given (phone and e-mail only ever as keyed hashes).
_RAW_KINDS: Final = frozenset({"anon", "device", "wechat"})
# What ends an id in payload text (JSON, form fields, log lines): whitespace, quotes, separators, brackets,
# and the JSON escapes of whitespace and quotes. Letters, digits and other punctuation continue it, so
# forgetting `C-1` leaves `C-10`, `C-1-2`, `C-1.x` and `xC-1` alone.
_EDGE: Final = r"""\s|["'`,;:=&?/|<>()\[\]{}]|\\[tnrbf"'/\\]|\\u00(?:09|0a|0d|20|22|27)"""


@dataclass(frozen=True)
class ErasurePlan:
    """What one request erases, read from ClickHouse before anything is touched."""

    key: str
    identifiers: tuple[str, ...]
    keys: tuple[str, ...]
    journey_ids: tuple[str, ...]

    @property
    def subjects(self) -> tuple[str, ...]:
        """What a dead letter's `subjects` names this customer by: every key and identifier, including the
        identifier behind each anonymous key (`~device:d1` -> `device:d1`)."""
        behind = {k[len(ANON_PREFIX) :] for k in self.keys if is_anonymous(k)}
        return tuple(sorted({*self.keys, *self.identifiers, *behind}))

    @property
    def spellings(self) -> tuple[str, ...]:
        """Ids a payload that is not JSON may quote the customer by: its keys and the anon/device/WeChat ids
        as given (stored payloads never hold a raw phone or e-mail: those are redacted, and found by hash)."""
        values = [k for k in self.keys if not is_anonymous(k)]
        for identifier in self.subjects:
            kind, _, value = identifier.partition(":")
            if kind in _RAW_KINDS:
                values.append(value)
        return tuple(sorted({v.strip() for v in values if v.strip()}))


def _char(c: str) -> str:
    """One character of an id as payload text may spell it: itself, or a JSON escape of it (either case)."""
    forms = {c if c.isalnum() or not c.isascii() else f"\\x{{{ord(c):02x}}}"}
    for variant in {c, c.lower(), c.upper()}:
        if len(variant) == 1:
            units = variant.encode("utf-16-be")
            forms.add("".join(f"\\\\u{int.from_bytes(units[i : i + 2]):04x}" for i in range(0, len(units), 2)))
    if c in '"\\/':
        forms.add(f"\\\\\\x{{{ord(c):02x}}}")
    return next(iter(forms)) if len(forms) == 1 else f"(?:{'|'.join(sorted(forms))})"


def text_pattern(values: Iterable[str]) -> str | None:
    """An RE2 pattern (ClickHouse `match`) finding any of `values` as a whole id in payload text, ignoring
    case, with any character JSON-escaped (`C\\u002d1`) and padding around it (`" C-1 "`); None for none."""
    spelled = sorted({"".join(_char(c) for c in v) for v in (v.strip() for v in values) if v})
    if not spelled:
        return None
    return f"(?i)(?:^|{_EDGE})(?:{'|'.join(spelled)})(?:$|{_EDGE})"


def subject_rows(p: ErasurePlan, request_id: str) -> list[tuple[str, str, str]]:
    """The request's rows of `erasure_subjects` (request_id, kind, value), which the deletions read."""
    rows = [(request_id, "key", k) for k in p.keys]
    rows += [(request_id, "identifier", i) for i in p.identifiers]
    rows += [(request_id, "journey", j) for j in p.journey_ids]
    rows += [(request_id, "subject", s) for s in p.subjects]
    pattern = text_pattern(p.spellings)
    if pattern is not None:
        rows.append((request_id, "pattern", pattern))
    return rows


def deletions(p: ErasurePlan, request_id: str, database: str) -> list[tuple[str, str]]:
    """(table, WHERE condition) for every table that can hold the customer.

    The conditions name the request id only: the keys, identifiers and journey ids are rows of
    `erasure_subjects` (`subject_rows`), read by subqueries, so no mutation's text identifies anyone.
    """
    if not _REQUEST_ID.match(request_id):
        raise ValueError(f"request id must be 32 hex digits, got {request_id!r}")
    source = f"{database}.{SUBJECTS_TABLE} WHERE request_id = '{request_id}'"

    def values(kind: str) -> str:
        return f"(SELECT value FROM {source} AND kind = '{kind}')"  # noqa: S608 - request id checked above

    keys, ids = values("key"), values("identifier")
    out = [
        (table, f"customer_key IN {keys}")
        for table in (Table.TOUCHPOINTS, Table.EXPERIENCE_SIGNALS, Table.CUSTOMER_EXPERIENCE, Table.CHURN_ALERTS,
                      Table.JOURNEYS, "risk_daily", "touchpoints_by_customer", "signals_by_customer",
                      "journeys_by_customer", "alerts_by_customer", Table.ALERT_OUTCOMES)
    ]  # fmt: skip
    out += [
        ("journey_funnel", f"journey_id IN {values('journey')}"),
        (Table.IDENTITY_LINKS, f"identifier IN {ids} OR customer_key IN {keys} OR previous_key IN {keys}"),
        (Table.IDENTITY_OVERRIDES, f"stitched_key IN {keys} OR customer_key IN {keys}"),
        (Table.IDENTITY_CONFLICTS, f"identifier IN {ids} OR existing_key IN {keys} OR claimed_key IN {keys}"),
    ]
    # Dead letters by whom ingest found in them; a payload that is not JSON (no subjects) by its text.
    dead = f"hasAny(subjects, (SELECT groupArray(value) FROM {source} AND kind = 'subject'))"  # noqa: S608
    if text_pattern(p.spellings) is not None:
        pattern = f"(SELECT any(value) FROM {source} AND kind = 'pattern')"  # noqa: S608
        # An empty pattern matches everything: without the request's row, match nothing.
        dead += f" OR (empty(subjects) AND notEmpty({pattern}) AND match(raw, {pattern}))"
    out.append((Table.DEAD_LETTERS, dead))
    return out


def delete_statement(database: str, table: str, condition: str, cluster: str | None) -> str:
    """The mutation for one table; on a cluster, for its `_local` shards on every node."""
    if cluster is None:
        return f"ALTER TABLE {database}.{table} DELETE WHERE {condition}"
    return f"ALTER TABLE {database}.{table}_local ON CLUSTER '{cluster}' DELETE WHERE {condition}"
