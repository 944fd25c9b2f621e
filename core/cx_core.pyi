"""Typed interface of the native core (core/src): what Python calls, once per batch."""

from collections.abc import Callable, Iterable, Iterator, Sequence
from types import ModuleType
from typing import Any, Final

MAX_DEPTH: Final[int]
MAX_TIME_MS: Final[int]
IDENTIFIER_TYPES: Final[list[tuple[str, str]]]
__version__: Final[str]
CHANNELS: Final[list[str]]
IDENTITY_FIELDS: Final[list[str]]
CONTEXT_FIELDS: Final[list[str]]
METRIC_FIELDS: Final[list[str]]
RULE_FIELDS: Final[list[str]]
JOURNEY_TYPES: Final[list[str]]
PATTERNS: Final[tuple[str, str, str]]
SIZE_LIMITS: Final[tuple[int, int, int]]

def kafka_time_ms(timestamp_ms: int, now_ms: int) -> int: ...
def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a record keyed `key`."""

def may_hold_pii(text: str) -> bool:
    """False: `streams.domain.pii.redact_text` gives `text` back unchanged (no '@', no phone-like digit run)."""

def free_detached(let_go: Callable[[], object]) -> int:
    """Call `let_go`, then free the large row buffers it dropped at once, with the GIL released; the cells freed."""

class Rows:
    """A table's rows made by the core: a sequence of the table's row tuples, serialized by `native_block`."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> tuple[Any, ...]: ...
    def __iter__(self) -> Iterator[tuple[Any, ...]]: ...
    def tuples(self) -> list[tuple[Any, ...]]: ...

def native_block(
    rows: list[tuple[Any, ...]],
    columns: Sequence[tuple[str, str]],
    *,
    block_info: bool,
    custom_serialization: bool,
    chunks: Sequence[Rows] | None = None,
) -> bytes:
    """ClickHouse's Native block of `rows` for `columns` (name, type). ValueError: a value its column cannot
    hold; NotImplementedError: a type the core does not write (String, (U)IntN, FloatN, DateTime, Enum8,
    Nullable, Array)."""

class Ingest:
    """Stage 1 configured once: decode, check and make storable a batch of Kafka messages."""

    def __init__(
        self,
        secret: bytes,
        region: str,
        blocklist: frozenset[str],
        future_tolerance_ms: int,
        raw_id_fields: frozenset[str],
        record_type: type[Any],
        pii: ModuleType,
        encode: Callable[[Any], bytes],
    ) -> None: ...
    def ingest(
        self, messages: list[Any], now_ms: int
    ) -> tuple[
        list[Any],
        list[tuple[int, int, bool, str, str | None, Any, int]],
        int,
        dict[str, int],
    ]:
        """(records, rejections, replaced_timestamps, pii_hashed); a rejection is (message index, index in
        its batch, is a batch element, reason, detail or None for the wire model's wording, payload, received_ms)."""
    def stored_id(self, value: str, name: str) -> str: ...
    def identifier_value(self, name: str, kind: str, value: str) -> str: ...
    def ingest_routed(
        self, messages: list[Any], now_ms: int, lookup: Callable[[str], str | None], partitions: int
    ) -> tuple[
        list[tuple[int, bytes, int]],
        bytes | None,
        list[tuple[str, int]],
        list[tuple[int, int, bool, str, str | None, Any, int]],
        int,
        dict[str, int],
    ]:
        """Stage 1 in one call, records never leaving the core: ([(partition, stitch message, items)], claims
        message or None, [(channel, records)], rejections, replaced_timestamps, pii_hashed)."""

def changelog_roundtrip(data: bytes) -> bytes:
    """A changelog value decoded and encoded again by the core (ValueError for bytes that are no entry)."""

class Stage:
    """Stage 2 for one stitch partition, holding its customers' serialized states."""

    max_event_ms: int
    held: int
    def __init__(
        self,
        partition: int,
        policy: tuple[Any, ...],
        forward_ttl_ms: int,
        classes: tuple[type[Any], ...],
        tables: tuple[Any, ...],
        make_alert: Callable[..., Any],
    ) -> None: ...
    def restore(self, entries: Iterable[tuple[str, bytes | None]]) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def keys(self) -> list[str]: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: str) -> bool: ...
    def stats(self) -> tuple[int, int]: ...
    def process(self, items: list[Any], now_ms: int, watermark: int) -> tuple[Any, ...]: ...
    def process_encoded(self, messages: list[bytes], now_ms: int, watermark: int) -> tuple[Any, ...]: ...
    def expire(self, now_ms: int, watermark: int) -> tuple[Any, ...]: ...
