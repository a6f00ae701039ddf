"""``streamlb run`` processes against real redis-server processes started by the tests (free ports, own data dirs,
stopped by PID): crash recovery, Redis restarts, dead letters at volume, replica agreement.

The oracle is always an offline fold of what the stream holds: read every entry, decode, fold, hash.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from benchmarks import data
from events import codec, log as logmod, schema, stream
from events.position import Position
from reconciler import decisions, fold, state as statemod
from tests.redis_server import RedisServer, daemons, redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


def offline_hash(lg: stream.StreamLog, upto: str | None = None) -> tuple[str, int]:
    """Hash of a clean full replay of the stream (up to ``upto``), and how many entries were folded."""
    st = statemod.new()
    n = 0
    end = Position.parse(upto) if upto else None
    for rec in lg.read():
        if end is not None and rec.position > end:
            break
        try:
            ev = logmod.decode_record(rec)
        except codec.DecodeError:
            continue
        fold.apply(st, ev)
        n += 1
    return decisions.state_hash(st), n


class Producer(threading.Thread):
    """Appends ``events`` in small pipelined batches with short pauses; tolerates nothing (fails the test)."""

    def __init__(self, url: str, cluster: str, events: list, batch: int = 25, pause: float = 0.004) -> None:
        super().__init__(daemon=True)
        self.lg = stream.StreamLog.from_url(url, cluster, batch=batch)
        self.events, self.batch, self.pause = events, batch, pause
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            for i in range(0, len(self.events), self.batch):
                self.lg.append(self.events[i:i + self.batch])
                time.sleep(self.pause)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.done.set()


def test_kill_9_of_the_daemon_twenty_times_mid_stream_then_restart_equals_full_replay(redis_server, daemons, rand) -> None:
    events = data.make_event_log(30_000, n_services=3000, n_nodes=20, n_pools=4, seed=11)
    lg = stream.StreamLog.from_url(redis_server.url, "crash")
    d = daemons(redis_server.url, "crash", "r1", "--snapshot-every", "300", "--snapshot-interval", "0.3",
                "--page", "200", "--speaker-ttl", "3600")
    d.start()
    prod = Producer(redis_server.url, "crash", events, pause=0.01)  # producing spans the kills
    prod.start()
    kills = 0
    for i in range(20):
        if i % 2 == 0:
            # half the kills land after this start wrote a snapshot (so the next start has one to load) ...
            written = sum(1 for x in d.log_lines() if x.get("msg") == "snapshot written")
            deadline = time.monotonic() + 60
            while sum(1 for x in d.log_lines() if x.get("msg") == "snapshot written") <= written:
                assert time.monotonic() < deadline, "daemon wrote no snapshot within 60 s"
                time.sleep(0.05)
            time.sleep(rand.uniform(0.0, 0.3))
        else:
            time.sleep(rand.uniform(0.05, 1.0))  # ... the other half at seeded random points, some during boot
        d.kill()
        kills += 1
        d.start()
    prod.join(timeout=120)
    assert prod.error is None and prod.done.is_set()
    head = str(lg.head())
    cp = d.wait_idle_at(head)
    expected, n = offline_hash(lg)
    assert n == len(events)
    assert cp["hash"] == expected
    assert kills == 20 and d.starts == 21
    loaded = [x for x in d.log_lines() if x.get("msg") == "loaded snapshot"]
    # every start that was allowed to boot (those before the even-numbered kills, after the first) resumed from a
    # snapshot rather than replaying from zero
    assert len(loaded) >= 9, "restarts should resume from a snapshot, not replay from zero"
    snap = lg.load_snapshot()
    assert snap is not None and snap.position <= Position.parse(head)


def test_redis_killed_and_restarted_with_aof_loses_nothing_and_applies_nothing_twice(tmp_path, daemons) -> None:
    srv = RedisServer(tmp_path / "aof", aof=True).start()
    try:
        lg = stream.StreamLog.from_url(srv.url, "aof", batch=50)
        events = data.make_event_log(3_000, n_services=300, n_nodes=8, n_pools=2, seed=5)
        d = daemons(srv.url, "aof", "r1", "--snapshot-every", "500", "--speaker-ttl", "3600").start()
        lg.append(events[:1500])
        d.wait_idle_at(str(lg.head()))
        for _ in range(2):
            srv.kill()
            time.sleep(0.3)  # the daemon sees the outage and backs off
            srv.start()
        lg = stream.StreamLog.from_url(srv.url, "aof", batch=50)
        assert len(list(lg.read())) == 1500  # AOF kept every acknowledged append
        lg.append(events[1500:])
        cp = d.wait_idle_at(str(lg.head()))
        expected, n = offline_hash(lg)
        assert n == len(events)
        assert cp["hash"] == expected
        assert cp["applied"] == len(events)  # one process, from zero: every entry exactly once
        msgs = [x.get("msg") for x in d.log_lines()]
        assert "redis unavailable; retrying with backoff" in msgs and "redis reachable again" in msgs
        assert d.alive()
    finally:
        srv.stop()


def test_redis_restarted_without_persistence_is_reported_and_not_refolded(tmp_path, daemons) -> None:
    srv = RedisServer(tmp_path / "volatile").start()
    try:
        lg = stream.StreamLog.from_url(srv.url, "vol")
        events = data.make_event_log(800, n_services=100, n_nodes=5, n_pools=2, seed=3)
        d = daemons(srv.url, "vol", "r1", "--speaker-ttl", "3600").start()
        lg.append(events[:400])
        before = d.wait_idle_at(str(lg.head()))
        srv.kill()
        srv.start()  # empty: no AOF, no RDB
        lg = stream.StreamLog.from_url(srv.url, "vol")
        lg.append(events[400:])  # producers carry on into a stream with a different history
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(x.get("msg", "").startswith("stream went backwards") for x in d.log_lines()):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("regression not reported: " + d.logfile.read_text()[-2000:])
        time.sleep(0.5)
        assert d.alive()
        after = d.read_checkpoints()[-1]
        assert (after["pos"], after["hash"], after["applied"]) == (before["pos"], before["hash"], before["applied"])
    finally:
        srv.stop()


def test_ten_thousand_malformed_entries_are_dead_lettered_and_the_hash_equals_the_clean_stream(redis_server, daemons) -> None:
    rng = random.Random(99)
    clean = data.make_event_log(4_000, n_services=400, n_nodes=10, n_pools=2, seed=8)
    lg = stream.StreamLog.from_url(redis_server.url, "dirty", batch=500)
    clean_lg = stream.StreamLog.from_url(redis_server.url, "clean", batch=500)
    clean_lg.append(clean)
    bad_kinds = [
        lambda i: {"e": b"\xc1" + i.to_bytes(4, "big"), "v": "1"},  # not msgpack
        lambda i: {"e": codec.encode(schema.SpeakerUp(node="")), "v": "1"},  # fails validation
        lambda i: {"v": "1"},  # no event field
        lambda i: {"e": codec.encode(schema.SpeakerUp(node="x")), "v": "nine"},  # bad version
        lambda i: {"e": codec.encode(schema.SpeakerUp(node="x")), "v": "99"},  # from the future
        lambda i: {"e": b'{"kind": "speaker.up", "node": "json-not-msgpack"}', "v": "1"},
    ]
    entries: list[dict] = []
    ci = 0
    for i in range(10_000):
        while ci < len(clean) and rng.random() < 0.3:
            entries.append({"e": codec.encode(clean[ci]), "v": "1"})
            ci += 1
        entries.append(bad_kinds[i % len(bad_kinds)](i))
    entries += [{"e": codec.encode(e), "v": "1"} for e in clean[ci:]]
    positions = []
    for i in range(0, len(entries), 1000):
        positions += lg.append_fields(entries[i:i + 1000])
    bad_positions = [str(p) for p, e in zip(positions, entries) if e.get("v") != "1" or e.get("e") is None
                     or not e["e"] or e["e"][:1] in (b"\xc1", b"{") or e["e"] == codec.encode(schema.SpeakerUp(node=""))]
    assert len(bad_positions) == 10_000
    d = daemons(redis_server.url, "dirty", "r1", "--speaker-ttl", "3600", "--log-level", "error").start()
    cp = d.wait_idle_at(str(lg.head()), timeout=120)
    assert d.alive()
    assert cp["dead"] == 10_000
    dead = list(lg.deadletters())
    assert [str(p) for p, _, _ in dead] == bad_positions
    assert all(r for _, r, _ in dead)
    assert {r.split(":")[0] for _, r, _ in dead} >= {"invalid event", "entry has no event field 'e'"}
    assert cp["hash"] == offline_hash(clean_lg)[0]


def test_two_replicas_following_one_stream_agree_at_every_checkpoint(redis_server, daemons) -> None:
    events = data.make_event_log(6_000, n_services=600, n_nodes=10, n_pools=2, seed=21)
    lg = stream.StreamLog.from_url(redis_server.url, "pair")
    args = ("--checkpoint-ms", "20", "--speaker-ttl", "3600", "--page", "100", "--hash-interval", "0")
    a = daemons(redis_server.url, "pair", "a", *args).start()
    b = daemons(redis_server.url, "pair", "b", *args).start()
    prod = Producer(redis_server.url, "pair", events, batch=20, pause=0.003)
    prod.start()
    prod.join(timeout=120)
    assert prod.error is None
    head = str(lg.head())
    ca, cb = a.wait_idle_at(head), b.wait_idle_at(head)
    assert ca["hash"] == cb["hash"] == offline_hash(lg)[0]
    pa = {c["pos"]: c["hash"] for c in a.read_checkpoints() if c["kind"] == "bucket"}
    pb = {c["pos"]: c["hash"] for c in b.read_checkpoints() if c["kind"] == "bucket"}
    common = sorted(set(pa) & set(pb), key=Position.parse)
    assert len(common) >= 20, (len(pa), len(pb))
    assert [pa[p] for p in common] == [pb[p] for p in common]
    # each checkpoint equals the offline fold up to its position (spot-check a few)
    for p in common[:: max(1, len(common) // 4)]:
        assert pa[p] == offline_hash(lg, p)[0]
    # exactly one of them led and published decisions
    leaders = {x.get("replica") for d in (a, b) for x in d.log_lines() if x.get("msg") == "leadership acquired"}
    assert len(leaders) == 1
    last = lg.decisions(count=100_000)[-1][1]
    assert last[b"pos"].decode() == head and last[b"hash"].decode() == ca["hash"]
