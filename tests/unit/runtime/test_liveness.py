"""Speaker liveness: heartbeat TTLs and the leader's monitor appending changes only (design.md §2)."""

from __future__ import annotations

from events import log as logmod, schema
from reconciler.runtime.daemons import replica as daemonmod
from reconciler.runtime.daemons import liveness
from reconciler.runtime.local import LocalCluster


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


def liveness_events(c: LocalCluster) -> list:
    return [e for e in (logmod.decode_record(r) for r in c.read()) if isinstance(e, (schema.SpeakerUp, schema.SpeakerDown))]


def run_steps(d, n=3):
    for _ in range(n):
        d.step(timeout_ms=1)


def test_monitor_appends_down_on_expiry_and_up_on_return_only_once_each() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    d = daemonmod.Daemon(c, daemonmod.Settings(replica="l", block_ms=1, monitor_interval=1, speaker_ttl=15),
                         clock=clock)
    d.boot()
    hb = liveness.Heartbeat(c, "node-a", ttl_ms=3000)
    hb.beat()
    c.append([schema.SpeakerUp(node="node-a")])  # what a starting speaker does
    for _ in range(5):  # heartbeats keep coming: nothing is appended
        clock.t += 1
        hb.beat()
        run_steps(d)
    assert liveness_events(c) == [schema.SpeakerUp(node="node-a")]
    clock.t += 4  # the key expires
    run_steps(d)
    clock.t += 2
    run_steps(d)
    assert liveness_events(c)[1:] == [schema.SpeakerDown(node="node-a")]
    assert "node-a" in d.state.speakers_down
    hb.beat()  # back
    clock.t += 2
    run_steps(d)
    hb.beat()
    clock.t += 2
    run_steps(d)
    assert liveness_events(c)[1:] == [schema.SpeakerDown(node="node-a"), schema.SpeakerUp(node="node-a")]
    assert "node-a" not in d.state.speakers_down


def test_a_new_leader_reports_a_speaker_that_died_before_it_took_over_but_only_after_a_ttl() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    c.append([schema.SpeakerUp(node="gone")])  # its heartbeat key is long expired
    d = daemonmod.Daemon(c, daemonmod.Settings(replica="new", block_ms=1, monitor_interval=1, speaker_ttl=15),
                         clock=clock)
    d.boot()
    run_steps(d)
    clock.t += 5
    run_steps(d)
    assert liveness_events(c) == [schema.SpeakerUp(node="gone")]  # too early to judge
    clock.t += 11
    run_steps(d)
    run_steps(d)
    assert liveness_events(c) == [schema.SpeakerUp(node="gone"), schema.SpeakerDown(node="gone")]


def test_followers_never_append_liveness_events() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    leader = daemonmod.Daemon(c, daemonmod.Settings(replica="a", block_ms=1, monitor_interval=1), clock=clock)
    leader.boot()
    run_steps(leader)
    follower = daemonmod.Daemon(c, daemonmod.Settings(replica="b", block_ms=1, monitor_interval=1), clock=clock)
    follower.boot()
    c.heartbeat("x", 1000)
    run_steps(follower)
    clock.t += 2
    run_steps(follower)
    assert not follower.leader and liveness_events(c) == []


def test_heartbeat_thread_announces_and_clears() -> None:
    c = LocalCluster()
    hb = liveness.Heartbeat(c, "n1", ttl_ms=300)
    hb.start()
    assert c.alive_speakers() == {"n1"}
    hb.stop()
    assert c.alive_speakers() == set()
    assert liveness_events(c) == [schema.SpeakerUp(node="n1"), schema.SpeakerDown(node="n1")]
