"""Speaker liveness (design.md §2): speakers only refresh heartbeat keys; every ``streamlb run`` replica turns a
key's disappearance / return into ``speaker.down`` / ``speaker.up``, appending changes only."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from events import log as logmod, schema
from events.position import ZERO
from reconciler.runtime.daemons import liveness
from reconciler.runtime.daemons import replica as daemonmod
from reconciler.runtime.daemons.speaker import Speaker, SpeakerSettings
from reconciler.runtime.local import LocalCluster


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


def liveness_events(c: LocalCluster) -> list:
    return [e for e in (logmod.decode_record(r) for r in c.read())
            if isinstance(e, (schema.SpeakerUp, schema.SpeakerDown))]


def node(name: str) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=schema.Node(name=name))


def replica(c: LocalCluster, clock: Clock, name: str, grace: float = 2.0) -> daemonmod.Daemon:
    d = daemonmod.Daemon(c, daemonmod.Settings(replica=name, block_ms=1, speaker_ttl=grace), clock=clock)
    d.boot()
    return d


def settle(*ds: daemonmod.Daemon) -> None:
    """Fold what is in the log, then take one look at the keys (what the monitor thread does every interval)."""
    for d in ds:
        for _ in range(3):
            d.step(timeout_ms=1)
    for d in ds:
        d.liveness_tick()
    for d in ds:
        for _ in range(3):
            d.step(timeout_ms=1)


def test_expiry_becomes_one_speaker_down_and_return_one_speaker_up() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    c.append([node("node-a")])
    d = replica(c, clock, "r")
    for _ in range(5):  # heartbeats keep coming: nothing is appended
        c.heartbeat("node-a", 600)
        clock.t += 0.1
        settle(d)
    assert liveness_events(c) == []  # heartbeats themselves never enter the log
    clock.t += 0.7  # the key expires: judged at once (this replica saw it beat, no grace)
    settle(d)
    settle(d)
    assert liveness_events(c) == [schema.SpeakerDown(node="node-a")]
    assert "node-a" in d.state.speakers_down
    c.heartbeat("node-a", 600)  # back
    settle(d)
    settle(d)
    assert liveness_events(c) == [schema.SpeakerDown(node="node-a"), schema.SpeakerUp(node="node-a")]
    assert "node-a" not in d.state.speakers_down


def test_every_replica_watches_not_only_the_leader() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    c.append([node("node-a")])
    leader, follower = replica(c, clock, "a"), replica(c, clock, "b")
    c.heartbeat("node-a", 600)
    settle(leader, follower)
    assert leader.leader and not follower.leader
    clock.t += 1
    follower.liveness_tick()  # the follower alone: the leader may be dead with the node
    assert liveness_events(c) == [schema.SpeakerDown(node="node-a")]
    settle(leader, follower)  # the leader, now folded up to it, appends no duplicate
    assert liveness_events(c) == [schema.SpeakerDown(node="node-a")]


def test_duplicates_from_several_replicas_are_harmless() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    c.append([node("node-a"), node("node-b")])
    a, b = replica(c, clock, "a"), replica(c, clock, "b")
    c.heartbeat("node-a", 600)
    c.heartbeat("node-b", 600)
    settle(a, b)
    clock.t += 1
    c.heartbeat("node-b", 600)
    a.liveness_tick()
    b.liveness_tick()  # neither has folded the other's append yet
    assert liveness_events(c) == [schema.SpeakerDown(node="node-a")] * 2
    settle(a, b)
    assert a.state.speakers_down == b.state.speakers_down == {"node-a"}
    # and a replica does not repeat its own append while its fold lags behind it
    clock.t += 0.1
    c.heartbeat("node-b", 600)
    c.heartbeat("node-a", 600)
    a.liveness_tick()
    a.liveness_tick()
    assert liveness_events(c)[2:] == [schema.SpeakerUp(node="node-a")]


def test_a_replica_booting_from_a_snapshot_judges_every_node_the_snapshot_says_is_up() -> None:
    """The stranded-node defect (issue 18): the snapshot says node-a is up, its speaker died while no replica
    watched, so the new replica never saw it beat. It must still append speaker.down."""
    clock = Clock()
    c = LocalCluster(clock)
    c.append([node("node-a"), node("node-b")])
    first = replica(c, clock, "first")
    c.heartbeat("node-a", 600)
    c.heartbeat("node-b", 600)
    settle(first)
    first.save_snapshot()
    first.shutdown()  # every replica gone; then node-a dies
    clock.t += 20
    c.heartbeat("node-b", 600)
    second = replica(c, clock, "second", grace=2.0)
    assert second.pos != ZERO  # booted from the snapshot
    assert second.state.speakers_down == set() and c.load_snapshot() is not None
    settle(second)
    assert liveness_events(c) == []  # within the grace: a speaker may still be starting
    clock.t += 2.0
    c.heartbeat("node-b", 600)
    settle(second)
    assert liveness_events(c) == [schema.SpeakerDown(node="node-a")]
    assert second.state.speakers_down == {"node-a"}


def test_a_node_object_without_any_speaker_is_declared_down_after_the_grace() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    d = replica(c, clock, "r", grace=2.0)
    settle(d)
    c.append([node("fresh")])
    settle(d)
    clock.t += 1.9
    settle(d)
    assert liveness_events(c) == []
    clock.t += 0.2
    settle(d)
    assert liveness_events(c) == [schema.SpeakerDown(node="fresh")]


def test_a_replica_that_is_not_caught_up_judges_nothing() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    c.append([node("n")])
    d = replica(c, clock, "r", grace=0)
    assert d.liveness_tick() == [] and liveness_events(c) == []
    settle(d)
    assert liveness_events(c) == [schema.SpeakerDown(node="n")]


def test_redis_unreachable_from_the_monitor_is_reported_not_raised() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    c.append([node("n")])
    d = replica(c, clock, "r", grace=0)
    settle(d)
    c.available = False
    assert d.liveness_tick() == []


# --- the speaker side -----------------------------------------------------------------------------------------


def wait(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_heartbeat_thread_refreshes_and_a_clean_stop_deletes_the_key_appending_nothing() -> None:
    c = LocalCluster()
    hb = liveness.Heartbeat(c, "n1", interval_ms=20, ttl_ms=100)
    hb.start()
    wait(lambda: hb.beats >= 5)
    assert c.alive_speakers() == {"n1"}
    hb.stop()
    assert c.alive_speakers() == set()
    assert c.read_page(ZERO) == []


def test_keep_on_exit_leaves_the_key_for_the_restart_grace() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    hb = liveness.Heartbeat(c, "n1", interval_ms=20, ttl_ms=100)
    hb.start()
    wait(lambda: hb.beats >= 1)
    hb.stop(linger_ms=15_000)
    clock.t += 14
    assert c.alive_speakers() == {"n1"}
    clock.t += 2
    assert c.alive_speakers() == set()


def test_a_node_whose_links_are_all_down_withdraws_its_heartbeat_and_returns_with_them() -> None:
    c = LocalCluster()
    links = {"eth0": True, "eth1": True}
    watch = liveness.LinkWatch(lambda: [n for n in ("eth0", "eth1")], running=lambda n: links[n])
    hb = liveness.Heartbeat(c, "n1", interval_ms=1000, ttl_ms=5000, link_ok=watch.check)
    assert hb.beat() and c.alive_speakers() == {"n1"}
    links["eth0"] = False  # one link left: still serving
    assert hb.beat() and c.alive_speakers() == {"n1"}
    links["eth1"] = False
    assert not hb.beat() and c.alive_speakers() == set() and hb.link_down
    links["eth1"] = True
    assert hb.beat() and c.alive_speakers() == {"n1"} and not hb.link_down


def test_link_watch_remembers_interfaces_that_disappeared() -> None:
    current = ["eth0"]
    watch = liveness.LinkWatch(lambda: list(current), running=lambda n: False)
    assert not watch.check()
    current.clear()  # an admin-down interface drops out of discovery: it still counts as down
    assert not watch.check()
    assert liveness.LinkWatch(lambda: [], running=lambda n: False).check()  # nothing known yet: nothing to judge


def test_link_running_reads_the_kernel_flags() -> None:
    assert liveness.link_running("lo")  # loopback is always up with "carrier"
    assert not liveness.link_running("no-such-if0")


def test_interval_must_be_below_ttl() -> None:
    with pytest.raises(ValueError):
        liveness.Heartbeat(LocalCluster(), "n", interval_ms=600, ttl_ms=600)


def test_heartbeat_failures_are_counted_and_the_thread_keeps_going() -> None:
    c = LocalCluster()
    hb = liveness.Heartbeat(c, "n1", interval_ms=10, ttl_ms=100)
    c.available = False
    hb.start()
    wait(lambda: hb.failures >= 3)
    assert hb.expired()
    c.available = True
    wait(lambda: hb.beats >= 1)
    assert not hb.expired() and c.alive_speakers() == {"n1"}
    hb.stop()


def test_a_live_speaker_folding_its_own_speaker_down_refreshes_its_key_at_once() -> None:
    """Issue 13 item 5: the key expired during a stall and a replica appended speaker.down; the speaker, alive
    again, reads it and refreshes now rather than at its next (here: 60 s away) tick, so the replicas append
    speaker.up again."""
    c = LocalCluster()
    c.append([node("node-a")])
    sp = Speaker(c, SpeakerSettings(node="node-a", bgp=False, block_ms=5, heartbeat_interval_ms=60_000,
                                    heartbeat_ttl_ms=120_000))
    stop = asyncio.Event()

    async def main():
        task = asyncio.create_task(sp.run(stop))
        while sp.heartbeat is None or sp.heartbeat.beats < 1:
            await asyncio.sleep(0.01)
        c.clear_heartbeat("node-a")  # as if it had expired
        c.append([schema.SpeakerDown(node="node-a")])
        for _ in range(500):
            if c.alive_speakers() == {"node-a"}:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(main())
    assert sp.heartbeat.beats >= 2  # the second beat came from the speaker.down, 60 s before its tick
    assert "node-a" in sp.state.speakers_down
    # after the clean exit the key is gone and the speaker appended nothing of its own
    assert c.alive_speakers() == set()
    assert liveness_events(c) == [schema.SpeakerDown(node="node-a")]


def test_the_speaker_starts_beating_only_once_it_serves_the_current_decisions() -> None:
    c = LocalCluster()
    gate = threading.Event()
    real = c.read_page

    def slow_page(after, count=None):
        gate.wait(5)
        return real(after, count)

    c.read_page = slow_page  # catch-up blocked
    sp = Speaker(c, SpeakerSettings(node="node-a", bgp=False, block_ms=5, heartbeat_interval_ms=10,
                                    heartbeat_ttl_ms=100))
    stop = asyncio.Event()

    async def main():
        task = asyncio.create_task(sp.run(stop))
        await asyncio.sleep(0.3)
        assert c.alive_speakers() == set()
        gate.set()
        for _ in range(300):
            if c.alive_speakers():
                break
            await asyncio.sleep(0.01)
        assert c.alive_speakers() == {"node-a"}
        stop.set()
        await task

    asyncio.run(main())


class _L2:
    """The L2 side as the speaker drives it, with the real responder (so ``on_claim`` is the real hook)."""

    def __init__(self) -> None:
        from fastpath.emit.l2 import Responder

        self.responder = Responder()
        self.calls: list[tuple[str, str]] = []

    def announce(self, ip, interfaces=()):
        self.calls.append(("announce", ip))
        self.responder.announce(ip, interfaces)

    def withdraw(self, ip):
        self.calls.append(("withdraw", ip))
        self.responder.withdraw(ip)


def _garp_from_other(ip: str) -> tuple:
    from fastpath import l2 as frames
    from fastpath.emit.l2 import Interface
    import ipaddress

    other = bytes.fromhex("02000000000b")
    iface = Interface("eth0", 2, bytes.fromhex("02000000000a"), None)
    return iface, frames.build_arp_announce(1, other, int(ipaddress.IPv4Address(ip)))


def test_cut_off_speaker_yields_an_ip_another_node_claims_and_announces_it_again_if_still_its_own() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    l2 = _L2()
    sp = Speaker(c, SpeakerSettings(node="node-a", bgp=False, heartbeat_interval_ms=100, heartbeat_ttl_ms=600),
                 l2=l2)
    sp.heartbeat.clock = clock
    sp.heartbeat._ticker = liveness.Ticker(lambda: None, 1, "idle")  # "running", beats driven by hand below
    sp.view.current.l2["10.0.0.10"] = ()
    l2.announce("10.0.0.10")
    iface, garp = _garp_from_other("10.0.0.10")
    assert sp.heartbeat.beat()
    l2.responder.answer(iface, garp)  # heartbeat fresh: a conflict to report, not a takeover
    assert "10.0.0.10" in l2.responder.owned
    clock.t += 0.7  # cut off: no refresh for a TTL
    assert sp.heartbeat.expired()
    from fastpath.emit.l2 import Interface

    l2.responder.set_interfaces({"eth1": Interface("eth1", 3, bytes.fromhex("02000000000b"), None)})
    l2.responder.answer(iface, garp)  # our own burst from eth1, heard on eth0: not a takeover
    assert "10.0.0.10" in l2.responder.owned
    l2.responder.set_interfaces({})
    l2.responder.answer(iface, garp)
    assert "10.0.0.10" not in l2.responder.owned and l2.calls[-1] == ("withdraw", "10.0.0.10")
    l2.responder.answer(iface, garp)  # once
    assert l2.calls.count(("withdraw", "10.0.0.10")) == 1
    sp._restore_yielded()  # still cut off: nothing
    assert "10.0.0.10" not in l2.responder.owned
    assert sp.heartbeat.beat()  # back on Redis; the plan still gives this node the IP (nobody took over)
    sp._restore_yielded()
    assert "10.0.0.10" in l2.responder.owned and l2.calls[-1] == ("announce", "10.0.0.10")


def test_a_failing_tick_is_logged_and_the_ticker_keeps_going(caplog) -> None:
    """A bug in one tick must not end liveness: it is logged (the log call itself must not raise) and the next tick
    still runs."""
    import logging
    import threading

    calls: list[int] = []
    again = threading.Event()

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        again.set()

    t = liveness.Ticker(tick, 0.01, "t-fail")
    with caplog.at_level(logging.ERROR, logger=liveness.logger.name):
        t.start()
        try:
            assert again.wait(10), "the ticker stopped after a failing tick"
        finally:
            t.stop()
    rec = [r for r in caplog.records if r.getMessage() == "liveness tick failed"]
    assert rec and rec[0].exc_info[0] is RuntimeError and rec[0].ticker == "t-fail"
