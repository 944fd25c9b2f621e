"""Compact msgpack encodings of the internal topics: stage-to-stage record batches and identity claims.

The changelog's encoding of a customer state lives in the native core (core/src/codec.rs).
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import msgpack

from schemas.records import ForgetRequest, LinkClaim, TouchpointRecord

__all__ = [
    "Item",
    "decode_claims",
    "decode_items",
    "encode_claims",
    "encode_forget",
    "encode_items",
]

_IDENTIFIERS: Final = TouchpointRecord._fields.index("identifiers")


# --- the internal stitch topic: one message carries many items for one partition ------------


class Item(NamedTuple):
    """One unit of work for a customer partition.

    kind "tp": a touchpoint (`record`) for `key`; "merge": move `key`'s state to `target`;
    "state": a moved state (`blob`) arriving for `key`, sent from `target` (its old key);
    "forget": erase `key`'s entry, acknowledged as item `blob` (decimal) of request `target`.
    """

    kind: str
    key: str
    record: TouchpointRecord | None = None
    target: str = ""
    blob: bytes = b""


def encode_items(items: list[Item]) -> bytes:
    out: list[tuple[Any, ...]] = []
    for it in items:
        if it.kind == "tp":
            out.append(("tp", it.record))
        else:
            out.append((it.kind, it.key, it.target, it.blob))
    return msgpack.packb(out, use_bin_type=True)  # type: ignore[no-any-return]


def decode_items(data: bytes) -> list[Item]:
    items = []
    make = TouchpointRecord._make
    for doc in msgpack.unpackb(data, raw=False, use_list=True):
        if doc[0] == "tp":
            fields = doc[1]
            fields[_IDENTIFIERS] = tuple(fields[_IDENTIFIERS])
            rec = make(fields)
            items.append(Item("tp", rec.key, rec))
        else:
            items.append(Item(doc[0], doc[1], None, doc[2], doc[3]))
    return items


def encode_claims(claims: list[LinkClaim]) -> bytes:
    return msgpack.packb(claims, use_bin_type=True)  # type: ignore[no-any-return]


def encode_forget(request: ForgetRequest) -> bytes:
    """A forget request on the claims topic: a one-element list holding a map, unlike a claim's array."""
    return msgpack.packb([{"forget": list(request)}], use_bin_type=True)  # type: ignore[no-any-return]


def decode_claims(data: bytes) -> list[LinkClaim | ForgetRequest]:
    out: list[LinkClaim | ForgetRequest] = []
    for c in msgpack.unpackb(data, raw=False, use_list=True):
        if isinstance(c, dict):
            out.append(ForgetRequest._make(c["forget"]))
        else:
            c[1] = tuple(c[1])
            out.append(LinkClaim._make(c))
    return out
