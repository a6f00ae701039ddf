"""An in-process stand-in for the Redis cluster keys, over :class:`events.memory.MemoryLog`.

It offers what :class:`events.stream.StreamLog` offers beyond the ``EventLog`` protocol (dead letters, decisions,
leader lock, heartbeats, trimming, position checks) with the same semantics, so the daemon's unit tests run with
no server. Time for TTLs comes from an injected clock.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable

from events import log as logmod
from events.memory import MemoryLog
from events.position import ZERO, Position


class LocalCluster(MemoryLog):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.dead: dict[Position, tuple[str, bytes]] = {}
        self.published: list[tuple[Position, str, bytes]] = []
        self._leader: tuple[str, float] | None = None
        self._beats: dict[str, float] = {}
        self._last_id = ZERO
        self.available = True
        self._epoch = 0
        self._added = 0

    def _check(self) -> None:
        if not self.available:
            raise logmod.LogUnavailable("local cluster marked unavailable")

    def append_raw(self, data):
        self._check()
        out: list[Position] = []
        with self._cond:
            for blob in data:
                pos = self._next()
                self._records.append(logmod.Record(pos, bytes(blob), 1))
                self._positions.append(pos)
                self._last_id = pos
                self._added += 1
                out.append(pos)
            self._cond.notify_all()
        return out

    def _next(self) -> Position:
        # a "restart" (lose_everything) moves to a new ms part, as Redis's time-based IDs would
        if self._last_id.ms < self._epoch:
            return Position(self._epoch, 1)
        return Position(self._epoch, self._last_id.seq + 1)

    def length(self) -> int:
        self._check()
        return len(self._records)

    def entries_added(self) -> int:
        self._check()
        return self._added

    def probe(self, pos: Position) -> tuple[str, bool]:
        self._check()
        return str(self._epoch), pos == ZERO or self.has(pos)

    def append_fields(self, entries) -> list[Position]:
        """Entries with arbitrary fields, as the Redis adapter reads them back (``e`` missing -> b"")."""
        out = []
        for f in entries:
            try:
                v = int(f.get("v", 0))
            except ValueError:
                v = 0
            with self._cond:
                pos = self._next()
                self._records.append(logmod.Record(pos, bytes(f.get("e", b"")), v))
                self._positions.append(pos)
                self._last_id = pos
                self._added += 1
                self._cond.notify_all()
            out.append(pos)
        return out

    def read_page(self, after: Position, count: int | None = None):
        self._check()
        return list(self.read(after, count))

    def follow(self, after: Position, timeout_ms: int):
        self._check()
        return super().follow(after, timeout_ms)

    def last_id(self) -> Position:
        self._check()
        return self._last_id

    def has(self, pos: Position) -> bool:
        with self._cond:
            i = bisect.bisect_left(self._positions, pos)
            return i < len(self._positions) and self._positions[i] == pos

    def first(self) -> Position | None:
        return self._positions[0] if self._positions else None

    def deadletter(self, position: Position, reason: str, data: bytes) -> bool:
        self._check()
        if self.dead and max(self.dead) >= position:
            return False
        self.dead[position] = (reason, data)
        return True

    def publish_decisions(self, position: Position, state_hash: str, payload: bytes) -> Position:
        self._check()
        self.published.append((position, state_hash, payload))
        return position

    def try_lead(self, replica: str, ttl_ms: int) -> bool:
        self._check()
        now = self.clock()
        if self._leader is None or self._leader[1] <= now or self._leader[0] == replica:
            self._leader = (replica, now + ttl_ms / 1000)
            return True
        return False

    def release_lead(self, replica: str) -> None:
        if self._leader is not None and self._leader[0] == replica:
            self._leader = None

    def heartbeat(self, node: str, ttl_ms: int) -> None:
        self._check()
        self._beats[node] = self.clock() + ttl_ms / 1000

    def clear_heartbeat(self, node: str) -> None:
        self._beats.pop(node, None)

    def alive_speakers(self) -> set[str]:
        self._check()
        now = self.clock()
        return {n for n, exp in self._beats.items() if exp > now}

    def trim_below(self, position: Position) -> int:
        with self._cond:
            i = bisect.bisect_left(self._positions, position)
            del self._positions[:i]
            del self._records[:i]
        return i

    def epoch(self) -> str:
        self._check()
        return str(self._epoch)

    def lose_everything(self) -> None:
        """What a Redis restart without persistence does."""
        self._epoch += 1
        with self._cond:
            self._positions.clear()
            self._records.clear()
            self._snapshot = None
            self._last_id = ZERO
            self._added = 0

    def close(self) -> None:
        pass
