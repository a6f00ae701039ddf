"""In-memory ``EventLog``: the test double and the engine of offline replays.

Same semantics as the Redis adapter: positions strictly increase (``0-1``, ``0-2``, ... here), ``read`` is
exclusive of ``after``, ``follow`` waits (on a condition variable) for appends by other threads.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator

from events import codec, schema
from events.log import Record, Snapshot
from events.position import ZERO, Position


class MemoryLog:
    def __init__(self) -> None:
        self._records: list[Record] = []
        self._positions: list[Position] = []
        self._snapshot: Snapshot | None = None
        self._cond = threading.Condition()

    def append(self, events: Iterable[schema.Event]) -> list[Position]:
        return self.append_raw(codec.encode(e) for e in events)

    def append_raw(self, data: Iterable[bytes]) -> list[Position]:
        out: list[Position] = []
        with self._cond:
            for blob in data:
                pos = Position(0, len(self._records) + 1)
                self._records.append(Record(pos, bytes(blob), codec.FORMAT_VERSION))
                self._positions.append(pos)
                out.append(pos)
            self._cond.notify_all()
        return out

    def read(self, after: Position = ZERO, limit: int | None = None) -> Iterator[Record]:
        with self._cond:
            start = bisect.bisect_right(self._positions, after)
            end = len(self._records) if limit is None else min(len(self._records), start + limit)
            chunk = self._records[start:end]
        return iter(chunk)

    def follow(self, after: Position, timeout_ms: int) -> list[Record]:
        with self._cond:
            self._cond.wait_for(lambda: self.head() > after, timeout=timeout_ms / 1000)
            return list(self.read(after))

    def head(self) -> Position:
        return self._positions[-1] if self._positions else ZERO

    def load_snapshot(self) -> Snapshot | None:
        return self._snapshot

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
