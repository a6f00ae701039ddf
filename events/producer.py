"""A small producer API: validate events, then append them to an event log in batches.

    from events import producer, schema

    with producer.Producer.connect("redis://127.0.0.1:6379/0", cluster="prod") as p:
        p.send(schema.SpeakerUp(node="node-a"))
        p.send_many(events)
    # leaving the block flushes; p.positions holds the stream IDs of everything sent

Rules:

1. Nothing reaches the log unchecked: :meth:`Producer.send` validates (the same canonical-form checks every replica
   applies) and raises :class:`events.codec.DecodeError` for an event that would be dead-lettered.
2. Events are buffered and appended in batches of ``batch`` (one pipelined round trip each on Redis); order is kept.
3. :meth:`send_many` is all-or-nothing for its argument: it validates every event before buffering any.
"""

from __future__ import annotations

from collections.abc import Iterable

from events import codec, schema
from events.log import EventLog
from events.position import Position


class Producer:
    def __init__(self, log: EventLog, batch: int = 1000) -> None:
        if batch < 1:
            raise ValueError("batch must be >= 1")
        self.log = log
        self.batch = batch
        self._buffer: list[bytes] = []
        self.positions: list[Position] = []

    @classmethod
    def connect(cls, url: str | None = None, cluster: str = "default", batch: int = 1000) -> Producer:
        """A producer on the Redis stream of ``cluster`` (``url`` defaults to the adapter's default)."""
        from events import stream  # the only Redis-aware module

        return cls(stream.StreamLog.from_url(url or stream.DEFAULT_URL, cluster, batch=batch), batch=batch)

    def send(self, event: schema.Event) -> None:
        codec.validate(event)
        self._buffer.append(codec.encode(event))
        if len(self._buffer) >= self.batch:
            self.flush()

    def send_many(self, events: Iterable[schema.Event]) -> None:
        items = list(events)
        for e in items:
            codec.validate(e)
        for e in items:
            self._buffer.append(codec.encode(e))
            if len(self._buffer) >= self.batch:
                self.flush()

    def flush(self) -> list[Position]:
        if not self._buffer:
            return []
        pending, self._buffer = self._buffer, []
        pos = self.log.append_raw(pending)
        self.positions.extend(pos)
        return pos

    def close(self) -> None:
        self.flush()
        closer = getattr(self.log, "close", None)
        if closer is not None:
            closer()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, et, ev, tb) -> None:
        if et is None:
            self.close()
        else:
            closer = getattr(self.log, "close", None)
            if closer is not None:
                closer()
