"""The reconciler daemon over the in-process cluster stand-in: fold, dead letters, snapshots, trimming,
leadership, checkpoints, regression detection and outages. Offline ``fold.fold`` of the same events is the oracle."""

from __future__ import annotations

import msgspec
import pytest

from benchmarks import data
from events import codec, log as logmod, schema
from events.position import ZERO
from reconciler import decisions, fold, snapshot as snapmod, state as statemod
from reconciler.runtime.daemons import replica as daemonmod
from reconciler.runtime.local import LocalCluster


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def new() -> tuple[LocalCluster, Clock]:
    clock = Clock()
    return LocalCluster(clock), clock


def offline_hash(events) -> str:
    return decisions.state_hash(fold.fold(events, statemod.new()))


def make(cluster: LocalCluster, clock: Clock, name: str = "r1", **kw) -> daemonmod.Daemon:
    s = daemonmod.Settings(replica=name, page=50, block_ms=1, **kw)
    d = daemonmod.Daemon(cluster, s, clock=clock, wall=lambda: 2_000_000.0)
    d.boot()
    return d


def drain(d: daemonmod.Daemon, limit: int = 10_000) -> None:
    for _ in range(limit):
        if d.step(timeout_ms=1) == 0 and d.caught_up:
            return
    raise AssertionError("daemon did not catch up")


EVENTS = data.make_event_log(600, n_services=80, n_nodes=6, n_pools=2, seed=7)


def test_daemon_state_equals_the_offline_fold() -> None:
    c, clock = new()
    c.append(EVENTS[:300])
    d = make(c, clock)
    drain(d)
    c.append(EVENTS[300:])
    drain(d)
    assert d.pos == c.head()
    assert decisions.state_hash(d.state) == offline_hash(EVENTS)
    assert d.applied == len(EVENTS) and d.dead == 0


def test_bad_entries_are_dead_lettered_under_their_id_and_the_fold_goes_on() -> None:
    c, clock = new()
    bad_pos = []
    for i, e in enumerate(EVENTS[:200]):
        c.append([e])
        if i % 20 == 5:
            bad_pos += c.append_raw([b"\xc1garbage"])
            bad_pos += c.append_raw([codec.encode(schema.SpeakerUp(node=""))])  # decodes, fails validation
            bad_pos += c.append_fields([{"v": "1"}])  # no event field
            bad_pos += c.append_fields([{"e": codec.encode(EVENTS[0]), "v": "x"}])  # bad version field
    d = make(c, clock)
    drain(d)
    assert sorted(c.dead) == bad_pos
    reasons = [c.dead[p][0] for p in bad_pos[:4]]
    assert reasons[0].startswith("invalid event")
    assert "empty node name" in reasons[1]
    assert reasons[2] == "entry has no event field 'e'"
    assert reasons[3] == "entry has no valid format version field 'v'"
    assert c.dead[bad_pos[0]][1] == b"\xc1garbage"
    assert d.dead == len(bad_pos)
    assert decisions.state_hash(d.state) == offline_hash(EVENTS[:200])
    # a second replica re-adds the same dead letters harmlessly
    d2 = make(c, clock, "r2")
    drain(d2)
    assert sorted(c.dead) == bad_pos and d2.dead == len(bad_pos)


def test_leader_snapshots_every_n_entries_and_a_restart_resumes_from_the_snapshot() -> None:
    c, clock = new()
    c.append(EVENTS[:430])
    d = make(c, clock, snapshot_every=100)
    drain(d)
    snap = c.load_snapshot()
    assert d.leader and snap is not None
    assert snap.position == logmod.Record(c.head(), b"").position or snap.position < c.head()
    st = snapmod.load(snap.state)
    n = [r.position for r in c.read()].index(snap.position) + 1
    assert decisions.state_hash(st) == snap.state_hash == offline_hash(EVENTS[:n])
    assert n % 50 == 0  # written at a batch end after >= 100 entries
    c.append(EVENTS[430:])
    d2 = make(c, clock, "r2")  # a "restart": a new process loads the snapshot
    assert d2.pos == snap.position
    drain(d2)
    assert decisions.state_hash(d2.state) == offline_hash(EVENTS)
    assert d2.applied == len(EVENTS) - n


def test_snapshot_also_written_after_the_interval() -> None:
    c, clock = new()
    c.append(EVENTS[:10])
    d = make(c, clock, snapshot_every=10_000, snapshot_interval=30)
    drain(d)
    assert c.load_snapshot() is None
    clock.t += 31
    d.step(timeout_ms=1)
    assert c.load_snapshot() is not None and c.load_snapshot().position == c.head()


def test_trim_only_with_retention_and_only_below_the_snapshot() -> None:
    for retention in (False, True):
        c, clock = new()
        c.append(EVENTS[:300])
        d = make(c, clock, snapshot_every=100, retention=retention)
        drain(d)
        snap = c.load_snapshot()
        first = c.first()
        if retention:
            assert first == snap.position  # everything below the snapshot went, the snapshot's entry stayed
        else:
            assert len(list(c.read())) == 300
        # a fresh replica still reaches the full-replay state
        d2 = make(c, clock, "fresh")
        drain(d2)
        assert decisions.state_hash(d2.state) == offline_hash(EVENTS[:300])


def test_a_replica_overtaken_by_trimming_reloads_the_snapshot() -> None:
    c, clock = new()
    c.append(EVENTS[:100])
    slow = make(c, clock, "slow")
    drain(slow)
    c.try_lead("slow", 1)  # noqa: the lock is someone else's from here on
    clock.t += 1
    leader = make(c, clock, "leader", snapshot_every=50, retention=True)
    c.append(EVENTS[100:400])
    drain(leader)
    assert c.first() > slow.pos
    drain(slow)
    assert slow.regressed is None
    assert decisions.state_hash(slow.state) == offline_hash(EVENTS[:400])


def test_only_one_leader_publishes_and_replicas_agree_at_every_checkpoint(tmp_path) -> None:
    c, clock = new()
    # entries in distinct "milliseconds": LocalCluster IDs are 0-N, so bucket on the sequence via checkpoint_ms on ms
    a = make(c, clock, "a", checkpoint_ms=1, checkpoint_file=str(tmp_path / "a.jsonl"), hash_interval=0)
    b = make(c, clock, "b", checkpoint_ms=1, checkpoint_file=str(tmp_path / "b.jsonl"))
    for i in range(0, 600, 37):
        c.append(EVENTS[i:i + 37])
        drain(a)
        if i % 74 == 0:
            drain(b)
    drain(b)
    assert a.leader and not b.leader
    assert all(p <= c.head() for p, _, _ in c.published)
    assert decisions.state_hash(a.state) == decisions.state_hash(b.state) == offline_hash(EVENTS)
    assert c.published[-1][:2] == (c.head(), offline_hash(EVENTS))
    ca, cb = a.checkpoint("final"), b.checkpoint("final")
    assert (ca["pos"], ca["hash"]) == (cb["pos"], cb["hash"])


def test_published_decisions_carry_only_changed_services() -> None:
    c, clock = new()
    cfg = [e for e in EVENTS if isinstance(e, schema.K8sUpsert) and not isinstance(e.obj, (schema.Service, schema.EndpointSlice))]
    c.append(cfg)
    d = make(c, clock)
    drain(d)
    svc = next(e for e in EVENTS if isinstance(e, schema.K8sUpsert) and isinstance(e.obj, schema.Service))
    c.append([svc])
    drain(d)
    key = f"{svc.obj.namespace}/{svc.obj.name}"
    pos, h, payload = c.published[-1]
    changed = msgspec.msgpack.decode(payload)
    assert list(changed) == [key]
    assert changed[key]["ingress"] == d.state.services[key].ingress and changed[key]["ingress"]
    assert changed[key]["events"][-1][1] == "IPAllocated"
    c.append([schema.SpeakerUp(node="unrelated")])
    drain(d)
    assert msgspec.msgpack.decode(c.published[-1][2]) == {}
    c.append([schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace=svc.obj.namespace, name=svc.obj.name))])
    drain(d)
    assert msgspec.msgpack.decode(c.published[-1][2]) == {key: None}


def test_status_writer_gets_each_published_batch_and_its_failure_does_not_stop_the_fold() -> None:
    c, clock = new()
    got = []

    def writer(batch):
        got.append(batch.position)
        raise RuntimeError("api server down")

    d = daemonmod.Daemon(c, daemonmod.Settings(replica="w", page=50, block_ms=1), status_writer=writer, clock=clock)
    d.boot()
    c.append(EVENTS[:120])
    drain(d)
    assert got and got[-1] == c.head() == d.pos


def test_a_stream_that_went_backwards_is_reported_and_not_refolded() -> None:
    c, clock = new()
    c.append(EVENTS[:100])
    d = make(c, clock)
    drain(d)
    before = decisions.state_hash(d.state)
    c.lose_everything()  # Redis restarted without persistence
    c.append(EVENTS[200:400])  # producers carry on: new IDs, past ours
    for _ in range(5):
        d.step(timeout_ms=1)
    assert d.regressed is not None and "missing" in d.regressed
    assert decisions.state_hash(d.state) == before and d.pos.seq == 100
    assert d.metrics.regressed._value.get() == 1


def test_last_id_below_position_is_a_regression() -> None:
    c, clock = new()
    c.append(EVENTS[:50])
    d = make(c, clock)
    drain(d)
    c.lose_everything()  # and nobody appended since
    d.verify()
    assert d.regressed is not None and "below the applied position" in d.regressed


def test_outage_keeps_the_position_and_run_resumes(monkeypatch) -> None:
    import threading

    c, clock = new()
    c.append(EVENTS[:100])
    d = daemonmod.Daemon(c, daemonmod.Settings(replica="o", page=50, block_ms=5, backoff_max=0.01), clock=clock)
    stop = threading.Event()
    seen = []

    def on_idle(dd):
        seen.append(dd.pos)
        if len(seen) == 1:
            c.available = False
            threading.Timer(0.05, lambda: (setattr(c, "available", True), c.append(EVENTS[100:150]))).start()
        elif dd.pos == c.head():
            stop.set()

    t = threading.Thread(target=d.run, args=(stop,), kwargs={"on_idle": on_idle})
    t.start()
    t.join(timeout=20)
    assert not t.is_alive()
    assert seen[0].seq == 100 and d.pos.seq == 150
    assert decisions.state_hash(d.state) == offline_hash(EVENTS[:150])
    assert d.metrics.redis_up._value.get() == 1


def test_decisions_carry_the_hash_at_most_every_hash_interval() -> None:
    c, clock = new()
    d = make(c, clock, hash_interval=10, speaker_ttl=1e9)
    for i in range(0, 300, 30):
        c.append(EVENTS[i:i + 30])
        drain(d)
        clock.t += 4
    hashes = [h for _, h, _ in c.published]
    assert len(hashes) == 10
    assert [bool(h) for h in hashes] == [True, False, False, True, False, False, True, False, False, True]  # t = 0, 12, 24, 36
    for (pos, h, _) in c.published:
        if h:
            n = [r.position for r in c.read()].index(pos) + 1
            assert h == offline_hash(EVENTS[:n])


def test_write_status_hook_builds_the_writer_from_the_registered_factory(monkeypatch) -> None:
    """``--write-status`` asks the registered factory for a writer and hands it to the daemon."""
    from typer.testing import CliRunner

    from reconciler.runtime.cli import run as cli_run
    from reconciler.runtime.daemons import replica as dm
    from reconciler.runtime.cli.app import app

    made, ran = [], []
    cli_run.set_status_writer_factory(lambda opts: made.append(opts) or (lambda batch: None))

    def fake_run(self, stop=None, on_idle=None):
        ran.append(self.status_writer)

    monkeypatch.setattr(dm.Daemon, "run", fake_run)
    monkeypatch.setattr(dm, "install_signal_handlers", lambda stop: None)  # keep pytest's own handlers
    monkeypatch.setattr(cli_run, "setup_logging", lambda fmt, level="info": None)  # keep logging global state
    try:
        res = CliRunner().invoke(app, ["run", "--write-status", "--kubeconfig", "/k", "--cluster", "c1",
                                       "--redis-url", "redis://127.0.0.1:1/0"])
    finally:
        cli_run.set_status_writer_factory(None)
    assert res.exit_code == 0, res.output
    assert made == [{"kubeconfig": "/k", "cluster": "c1"}]
    assert ran and callable(ran[0])


def test_a_new_leader_resyncs_everything_and_a_failed_publication_is_retried() -> None:
    c, clock = new()
    c.append(EVENTS[:200])
    first = make(c, clock, "first", snapshot_every=1)
    drain(first)
    assert c.load_snapshot().position == c.head()
    keys = sorted(first.state.services)
    assert keys
    first.log.release_lead("first")
    clock.t += 100
    n_before = len(c.published)
    second = make(c, clock, "second")  # boots from the snapshot: it has every Service already
    drain(second)
    assert len(c.published) == n_before
    c.append([schema.SpeakerUp(node="trigger")])
    drain(second)
    assert sorted(msgspec.msgpack.decode(c.published[n_before][2])) == keys  # its first batch: every Service
    c.append([schema.SpeakerUp(node="trigger-2")])
    drain(second)
    assert msgspec.msgpack.decode(c.published[-1][2]) == {}  # later: changes only
    svc = next(e for e in EVENTS[200:] if isinstance(e, schema.K8sUpsert) and isinstance(e.obj, schema.Service)
               and f"{e.obj.namespace}/{e.obj.name}" not in keys)
    key = f"{svc.obj.namespace}/{svc.obj.name}"
    c.append([svc])
    real = c.publish_decisions

    def down(*a):
        raise logmod.LogUnavailable("boom")

    c.publish_decisions = down
    with pytest.raises(logmod.LogUnavailable):
        second.step(timeout_ms=1)
    c.publish_decisions = real
    c.append([schema.SpeakerUp(node="again")])
    drain(second)
    assert key in msgspec.msgpack.decode(c.published[-1][2])  # not lost with the failed publication


def test_no_usable_snapshot_on_a_trimmed_stream_is_reported_not_replayed() -> None:
    c, clock = new()
    c.append(EVENTS[:300])
    leader = make(c, clock, "l", snapshot_every=100, retention=True)
    drain(leader)
    assert len(list(c.read())) < 300  # the leader trimmed below its snapshot
    c.save_snapshot(logmod.Snapshot(c.head(), snapmod.SNAPSHOT_VERSION, b"\xc1corrupt", "x"))
    d = make(c, clock, "fresh")
    assert d.pos == ZERO and d.regressed is not None and "trimmed" in d.regressed
    assert d.step(timeout_ms=1) == 0 and d.applied == 0


def _published_view(c: LocalCluster, start: int = 0) -> dict:
    view: dict = {}
    for _, _, payload in c.published[start:]:
        for key, dec in msgspec.msgpack.decode(payload).items():
            if dec is None:
                view.pop(key, None)
            else:
                view[key] = (dec["ingress"], dec["pool"], dec["reason"])
    return view


def _state_view(d: daemonmod.Daemon) -> dict:
    return {k: (list(v.ingress), v.pool, v.reason) for k, v in d.state.services.items()}


def test_the_published_changes_add_up_to_the_state_after_every_batch() -> None:
    # the leader compares only the Services the fold re-decided (state.decided); summing its publications must
    # give the state's decisions at every step, including Services changed by another Service's event (a freed
    # address handed to a waiter) and by configuration changes
    c, clock = new()
    d = make(c, clock)
    pool = schema.IPAddressPool(namespace="metallb-system", name="one", addresses=("10.9.0.1/32",))
    svc = [e.obj for e in EVENTS if isinstance(e, schema.K8sUpsert) and isinstance(e.obj, schema.Service)][:3]
    story = [schema.K8sUpsert(obj=s) for s in svc]  # no configuration yet: all pending
    story += [schema.K8sUpsert(obj=pool)]  # the first in order gets the only address, the others wait
    story += [schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace=svc[0].namespace, name=svc[0].name))]
    story += [schema.K8sUpsert(obj=schema.IPAddressPool(namespace="metallb-system", name="one",
                                                        addresses=("10.9.0.1/32", "10.9.0.2/32")))]
    for ev in story:
        c.append([ev])
        drain(d)
        assert _published_view(c) == _state_view(d)
    assert sum(1 for v in _state_view(d).values() if v[0]) == 2  # the waiters got the freed and the new address
    c.append(EVENTS)
    for _ in range(10_000):
        n = d.step(timeout_ms=1)
        assert _published_view(c) == _state_view(d)
        if n == 0 and d.caught_up:
            break
    assert d.pos == c.head()


def test_every_published_hash_equals_a_fresh_fold_of_the_stream_up_to_its_position() -> None:
    # the leader's planning is deferred to the next read of the plan (node flaps and Service events in a batch are
    # planned once, when the hash is taken): the hash it publishes after every batch must still be the one of a
    # fresh fold of the entries up to that position
    c, clock = new()
    d = make(c, clock, hash_interval=0)
    c.append(EVENTS)
    drain(d)
    count = {rec.position: i for i, rec in enumerate(c.read(), 1)}
    hashed = [(p, h) for p, h, _ in c.published if h]
    assert len(hashed) >= len(EVENTS) // 50
    for pos, h in hashed:
        assert h == offline_hash(EVENTS[:count[pos]]), pos
