"""``streamlb run`` operations against a real redis-server: metrics endpoint, graceful stop, leader failover,
speaker liveness through real heartbeat keys, Redis unreachable at start."""

from __future__ import annotations

import time
import urllib.request

import pytest

from benchmarks import data
from events import log as logmod, schema, stream
from reconciler.runtime.daemons import liveness
from tests.redis_server import RedisServer, daemons, free_port, redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


def scrape(port: int, timeout: float = 20.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def wait_for(pred, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_metrics_endpoint_and_graceful_sigterm(redis_server, daemons) -> None:
    lg = stream.StreamLog.from_url(redis_server.url, "m")
    events = data.make_event_log(2_000, n_services=200, n_nodes=5, n_pools=2, seed=4)
    lg.append(events)
    lg.append_raw([b"\xc1"])
    port = free_port()
    d = daemons(redis_server.url, "m", "r1", "--metrics-port", str(port), "--metrics-addr", "127.0.0.1",
                "--monitor-interval", "0.1", "--speaker-ttl", "3600").start()
    d.wait_idle_at(str(lg.head()))
    m = wait_for(lambda: (lambda x: x if x.get('metallb_allocator_addresses_in_use_total{pool="pool-0000"}') else None)(scrape(port)),
                 what="allocator gauges")
    assert m["streamlb_events_applied_total"] == 2_001
    assert m["streamlb_dead_letters_total"] == 1
    assert m["streamlb_lag_entries"] == 0
    assert m["streamlb_leader"] == 1 and m["streamlb_redis_up"] == 1
    assert m["streamlb_fold_batch_seconds_count"] >= 1
    assert "streamlb_snapshot_age_seconds" in m and "streamlb_entry_to_decision_seconds_count" in m
    assert m['metallb_allocator_addresses_total{pool="pool-0000"}'] >= m['metallb_allocator_addresses_in_use_total{pool="pool-0000"}'] > 0
    assert lg.leader() == "r1"
    assert d.stop() == 0  # SIGTERM: clean exit
    snap = lg.load_snapshot()
    assert snap is not None and snap.position == lg.head()  # final snapshot on the way out
    assert lg.leader() is None  # lock released


def test_leader_failover_after_kill_9(redis_server, daemons) -> None:
    lg = stream.StreamLog.from_url(redis_server.url, "fo")
    args = ("--leader-ttl-ms", "3000", "--speaker-ttl", "3600")
    # the TTL leaves a loaded 2-core machine room to renew (a must still lead when b has caught up), and is
    # still short enough for the take-over after kill -9 to be quick
    a = daemons(redis_server.url, "fo", "a", *args).start()
    lg.append([schema.SpeakerUp(node="n1")])
    a.wait_idle_at(str(lg.head()))
    b = daemons(redis_server.url, "fo", "b", *args).start()
    b.wait_idle_at(str(lg.head()))
    assert lg.leader() == "a"
    a.kill()
    wait_for(lambda: lg.leader() == "b", what="b to take the lock")
    lg.append([schema.SpeakerUp(node="n2")])
    b.wait_idle_at(str(lg.head()))
    wait_for(lambda: any(f[b"pos"].decode() == str(lg.head()) for _, f in lg.decisions()), what="b's decisions")


def test_speaker_heartbeat_expiry_and_return_become_events(redis_server, daemons) -> None:
    lg = stream.StreamLog.from_url(redis_server.url, "live")
    d = daemons(redis_server.url, "live", "r", "--monitor-interval", "0.1").start()
    hb = liveness.Heartbeat(lg, "node-a", interval_ms=100, ttl_ms=600)
    hb.start()  # the heartbeat thread; a speaker appends nothing itself

    def liveness_events():
        return [e for e in (logmod.decode_record(r) for r in lg.read()) if not isinstance(e, schema.K8sUpsert)]

    d.wait_log("caught up", 1)
    time.sleep(1.5)  # the replica has looked at the keys many times (it saw node-a beat)
    assert liveness_events() == []  # heartbeats never enter the log
    hb._ticker.stop()  # the speaker hangs: no more heartbeats, no clean exit
    wait_for(lambda: schema.SpeakerDown(node="node-a") in liveness_events(), what="speaker.down")
    wait_for(lambda: (hb.beat(), liveness_events()[-1] == schema.SpeakerUp(node="node-a"))[1], what="speaker.up")
    lg.clear_heartbeat("node-a")  # a clean exit deletes the key
    wait_for(lambda: liveness_events()[-1] == schema.SpeakerDown(node="node-a"), what="speaker.down after exit")
    time.sleep(0.5)
    assert liveness_events() == [schema.SpeakerDown(node="node-a"), schema.SpeakerUp(node="node-a"),
                                 schema.SpeakerDown(node="node-a")]
    assert d.alive()


def test_redis_unreachable_at_start_is_retried_until_it_appears(tmp_path, daemons) -> None:
    port = free_port()
    srv = RedisServer(tmp_path / "late", port=port)
    d = daemons(srv.url, "late", "r").start()
    try:
        wait_for(lambda: any(x.get("msg") == "redis unavailable; retrying with backoff" for x in d.log_lines()),
                 what="the outage log line")
        time.sleep(1.0)
        assert d.alive()
        lines = [x for x in d.log_lines() if x.get("msg") == "redis unavailable; retrying with backoff"]
        assert len(lines) == 1  # one line per outage, not per retry
        srv.start()
        lg = stream.StreamLog.from_url(srv.url, "late")
        lg.append([schema.SpeakerUp(node="x")])
        d.wait_idle_at(str(lg.head()))
    finally:
        d.stop()
        srv.stop()


def test_a_replica_booting_from_a_snapshot_declares_down_a_node_that_died_while_no_replica_watched(
        redis_server, daemons) -> None:
    """The stranded-node defect of issue 18, as reproduced there: final snapshot by SIGTERM, the speaker dies,
    later a new replica boots from the snapshot; it must append speaker.down for the node (it never saw it beat)."""
    lg = stream.StreamLog.from_url(redis_server.url, "strand")
    lg.append([schema.K8sUpsert(obj=schema.Node(name="node-a")), schema.K8sUpsert(obj=schema.Node(name="node-b"))])
    hb = {n: liveness.Heartbeat(lg, n, interval_ms=100, ttl_ms=600) for n in ("node-a", "node-b")}
    for h in hb.values():
        h.start()
    first = daemons(redis_server.url, "strand", "first").start()
    first.wait_idle_at(str(lg.head()))
    time.sleep(0.5)
    assert first.stop() == 0  # SIGTERM: final snapshot
    snap = lg.load_snapshot()
    assert snap is not None and snap.position == lg.head()
    hb["node-a"]._ticker.stop()  # node-a dies while no replica runs
    wait_for(lambda: lg.alive_speakers() == {"node-b"}, what="node-a's key expired")
    second = daemons(redis_server.url, "strand", "second").start()
    second.wait_log("loaded snapshot", 1)
    wait_for(lambda: [e for e in (logmod.decode_record(r) for r in lg.read())
                      if isinstance(e, (schema.SpeakerUp, schema.SpeakerDown))] == [schema.SpeakerDown(node="node-a")],
             what="speaker.down for the node that died unwatched")
    time.sleep(0.5)  # and nothing about the live one
    assert [e for e in (logmod.decode_record(r) for r in lg.read())
            if isinstance(e, (schema.SpeakerUp, schema.SpeakerDown))] == [schema.SpeakerDown(node="node-a")]
    hb["node-b"].stop()
    second.stop()
    lg.close()
