"""One ``EventLog`` contract, run against every adapter: memory, evlog file and the Redis stream.

The Redis run uses a redis-server this module starts on a free port (marked ``integration``, so the unit stage
runs the memory and file adapters and stage 3 runs the Redis one); each test gets its own cluster name.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

from events import codec, log, logfile, memory, schema
from events.position import ZERO, Position
from tests.redis_server import RedisServer

_counter = itertools.count()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    srv = RedisServer(tmp_path_factory.mktemp("redis-contract")).start()
    yield srv
    srv.stop()


REDIS = pytest.param("redis", marks=pytest.mark.integration)


@pytest.fixture(params=["memory", "file", REDIS])
def make_log(request: pytest.FixtureRequest, tmp_path: Path):
    """A factory: calling it twice gives two handles on the *same* log (a reopen / a second replica)."""
    return _factory(request.param, request, tmp_path)


@pytest.fixture(params=["memory", REDIS])
def make_shared_log(request: pytest.FixtureRequest, tmp_path: Path):
    """Adapters whose handles see each other's appends live (an evlog file has a single writer)."""
    return _factory(request.param, request, tmp_path)


def _factory(kind: str, request: pytest.FixtureRequest, tmp_path: Path):
    if kind == "memory":
        shared = memory.MemoryLog()
        return lambda: shared
    if kind == "file":
        path = tmp_path / "log.evlog"
        return lambda: logfile.FileLog(path)
    from events import stream

    srv = request.getfixturevalue("redis_server")
    cluster = f"contract-{next(_counter)}"
    handles: list = []

    def make():
        h = stream.StreamLog.from_url(srv.url, cluster, page=7, batch=5)  # small pages: paging is exercised
        handles.append(h)
        return h

    request.addfinalizer(lambda: [h.close() for h in handles])
    return make


def ups(*nodes: str) -> list[schema.Event]:
    return [schema.SpeakerUp(node=n) for n in nodes]


def test_empty_log(make_log) -> None:
    lg = make_log()
    assert isinstance(lg, log.EventLog)
    assert lg.head() == ZERO
    assert list(lg.read()) == []
    assert lg.load_snapshot() is None


def test_append_returns_increasing_positions_and_read_returns_them_in_order(make_log) -> None:
    lg = make_log()
    events = ups(*(f"n{i}" for i in range(23)))  # more than a page and several append batches
    pos = lg.append(events)
    assert len(pos) == 23
    assert pos == sorted(pos) and len(set(pos)) == 23
    assert all(p > ZERO for p in pos)
    recs = list(lg.read())
    assert [r.position for r in recs] == pos
    assert [log.decode_record(r) for r in recs] == events
    assert all(r.version == codec.FORMAT_VERSION for r in recs)
    assert lg.head() == pos[-1]


def test_read_after_is_exclusive_and_limit_is_honoured(make_log) -> None:
    lg = make_log()
    pos = lg.append(ups(*(f"n{i}" for i in range(20))))
    assert [r.position for r in lg.read(pos[4])] == pos[5:]
    assert [r.position for r in lg.read(pos[4], limit=9)] == pos[5:14]
    assert [r.position for r in lg.read(ZERO, limit=0)] == []
    assert list(lg.read(pos[-1])) == []


def test_appends_accumulate_and_a_second_handle_sees_them(make_log) -> None:
    a = make_log()
    p1 = a.append(ups("a"))
    p2 = a.append(ups("b", "c"))
    assert p1[0] < p2[0] < p2[1]
    b = make_log()
    assert [log.decode_record(r) for r in b.read()] == ups("a", "b", "c")
    assert b.head() == p2[1]


def test_raw_entries_round_trip_byte_for_byte_even_when_undecodable(make_log) -> None:
    lg = make_log()
    blobs = [b"\xc1", codec.encode(schema.SpeakerDown(node="x")), b""]
    pos = lg.append_raw(blobs)
    recs = list(lg.read())
    assert [r.data for r in recs] == blobs
    assert [r.position for r in recs] == pos
    with pytest.raises(codec.DecodeError):
        log.decode_record(recs[0])
    assert log.decode_record(recs[1]) == schema.SpeakerDown(node="x")


def test_follow_returns_what_is_there_without_waiting(make_log) -> None:
    lg = make_log()
    pos = lg.append(ups("a", "b"))
    got = lg.follow(ZERO, timeout_ms=5000)
    assert [r.position for r in got] == pos
    assert lg.follow(pos[-1], timeout_ms=50) == []


def test_snapshot_round_trip_and_overwrite(make_log) -> None:
    lg = make_log()
    lg.append(ups("a", "b"))
    s1 = log.Snapshot(Position(0, 1) if lg.head().ms == 0 else lg.head(), 1, b"\x00state\xff", "h1")
    lg.save_snapshot(s1)
    assert make_log().load_snapshot() == s1
    s2 = log.Snapshot(lg.head(), 1, b"other", "h2")
    lg.save_snapshot(s2)
    assert make_log().load_snapshot() == s2


def test_follow_wakes_up_on_an_append_from_another_handle(make_shared_log) -> None:
    lg = make_shared_log()
    start = lg.append(ups("a"))[-1]
    other = make_shared_log()
    t = threading.Timer(0.2, lambda: other.append(ups("late")))
    t.start()
    try:
        t0 = time.monotonic()
        got = lg.follow(start, timeout_ms=10_000)
        waited = time.monotonic() - t0
    finally:
        t.join()
    assert [log.decode_record(r) for r in got] == ups("late")
    assert waited < 9.0  # woke up on the append, not on the timeout
