"""The producer API over the in-memory log: validation before append, batching, order, all-or-nothing batches."""

from __future__ import annotations

import pytest

from events import codec, log, memory, producer, schema


class CountingLog(memory.MemoryLog):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def append_raw(self, data):
        data = list(data)
        self.calls.append(len(data))
        return super().append_raw(data)


def test_events_are_appended_in_order_in_batches() -> None:
    lg = CountingLog()
    events = [schema.SpeakerUp(node=f"n{i}") for i in range(7)]
    with producer.Producer(lg, batch=3) as p:
        for e in events:
            p.send(e)
    assert lg.calls == [3, 3, 1]
    assert [log.decode_record(r) for r in lg.read()] == events
    assert p.positions == [r.position for r in lg.read()]


def test_an_invalid_event_is_refused_before_anything_is_buffered() -> None:
    lg = CountingLog()
    p = producer.Producer(lg, batch=100)
    good = schema.SpeakerUp(node="a")
    bad = schema.SpeakerDown(node="")
    with pytest.raises(codec.DecodeError, match="empty node name"):
        p.send_many([good, bad])
    p.flush()
    assert list(lg.read()) == []
    with pytest.raises(codec.DecodeError):
        p.send(bad)
    p.send(good)
    assert p.flush() and [log.decode_record(r) for r in lg.read()] == [good]


def test_leaving_with_an_exception_does_not_flush_the_buffer() -> None:
    lg = CountingLog()
    with pytest.raises(RuntimeError):
        with producer.Producer(lg, batch=100) as p:
            p.send(schema.SpeakerUp(node="a"))
            raise RuntimeError("boom")
    assert list(lg.read()) == []
