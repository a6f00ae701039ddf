"""The ``EventLog`` protocol: what every log adapter (memory, file, Redis stream) offers.

Adapters store *encoded* events and hand back :class:`Record` s, not decoded events: a replica must be able to
dead-letter an entry that does not decode (design.md §2) instead of crashing on it, so decoding belongs to the
caller (:func:`decode_record`). Positions are :class:`events.position.Position` (stream IDs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple, Protocol, runtime_checkable

from events import codec, schema, upcast
from events.position import ZERO, Position


class Record(NamedTuple):
    """One stored entry: its position, the encoded event and the format version it was written with."""

    position: Position
    data: bytes
    version: int = codec.FORMAT_VERSION


class Snapshot(NamedTuple):
    """A durable checkpoint of the fold: state bytes, the position they include, their hash."""

    position: Position
    version: int
    state: bytes
    state_hash: str


class LogUnavailable(RuntimeError):
    """The log's backend cannot be reached (retry later)."""


class LogForbidden(RuntimeError):
    """The log's backend refused an operation for lack of rights (a Redis ACL ``NOPERM``): retrying cannot help.
    The message names the command, the key, the user and the role that may do it."""


class LogCorrupt(RuntimeError):
    """The log's storage is damaged or went backwards; never re-fold silently."""


def decode_record(record: Record) -> schema.Event:
    """Decode a record's event (upcasting older versions). Raises :class:`events.codec.DecodeError`."""
    return upcast.decode_versioned(record.data, record.version)


@runtime_checkable
class EventLog(Protocol):
    def append(self, events: Iterable[schema.Event]) -> list[Position]:
        """Append events in order; returns their positions."""
        ...

    def append_raw(self, data: Iterable[bytes]) -> list[Position]:
        """Append already-encoded entries (imports, tests of dead-lettering); returns their positions."""
        ...

    def read(self, after: Position = ZERO, limit: int | None = None) -> Iterator[Record]:
        """Records strictly after ``after``, in order, at most ``limit``."""
        ...

    def follow(self, after: Position, timeout_ms: int) -> list[Record]:
        """Records after ``after``; waits up to ``timeout_ms`` for at least one. Empty list on timeout."""
        ...

    def head(self) -> Position:
        """Position of the newest record (``ZERO`` when empty)."""
        ...

    def load_snapshot(self) -> Snapshot | None: ...

    def save_snapshot(self, snapshot: Snapshot) -> None: ...
