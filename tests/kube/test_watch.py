"""``streamlb watch`` against a real HTTP API server speaking list/watch (tests/kube/fakeapi.py).

Every test compares the log with the cluster: the log, folded, must say exactly what the cluster holds, and no
event may be a duplicate (an upsert equal to the object's current version, a delete of an absent object).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from events import kube, logfile, memory, schema
from reconciler.runtime.kube import api as kube_api
from reconciler.runtime.kube import lease as kube_lease
from reconciler.runtime.kube import watch as kube_watch
from tests.kube.conftest import duplicates, expected_objects, log_events, log_objects, wait_for
from tests.kube.fakeapi import FakeKube

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SEQUENCES = Path(__file__).parent / "sequences"


class Running:
    """A Watcher in a thread."""

    def __init__(self, watcher: kube_watch.Watcher) -> None:
        self.watcher = watcher
        self.stop = threading.Event()
        self.thread = threading.Thread(target=watcher.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def _watcher(kubeconfig: str, log, state: Path | None = None, **kw) -> kube_watch.Watcher:
    return kube_watch.Watcher(kube_api.make_client(kubeconfig), log, state_path=state, watch_timeout=30, **kw)


def _converged(fake: FakeKube, log) -> bool:
    return log_objects(log_events(log)) == expected_objects(fake)


def _play(fake: FakeKube, steps: list[dict], log) -> None:
    for step in steps:
        (op, arg), = step.items()
        if op in ("create", "update"):
            fake.put(arg)
        elif op == "delete":
            fake.remove(arg["kind"], arg.get("namespace", ""), arg["name"])
        elif op == "check":
            wait_for(lambda: _converged(fake, log), what="log to reflect the cluster")


@pytest.mark.parametrize("name", ["metallb-config"])
def test_recorded_configuration_sequence(fake: FakeKube, kubeconfig: str, name: str) -> None:
    steps = yaml.safe_load((SEQUENCES / f"{name}.yaml").read_text())
    log = memory.MemoryLog()
    run = Running(_watcher(kubeconfig, log))
    try:
        _play(fake, steps, log)
    finally:
        run.close()
    events = log_events(log)
    assert duplicates(events) == [] and log_objects(events) == expected_objects(fake)
    kinds = {type(e.obj).__name__ for e in events if isinstance(e, schema.K8sUpsert)}
    assert kinds == {"Namespace", "Community", "BFDProfile", "IPAddressPool", "BGPAdvertisement", "BGPPeer"}
    ads = [e.obj for e in events if isinstance(e, schema.K8sUpsert) and isinstance(e.obj, schema.BGPAdvertisement)]
    assert [a.communities for a in ads] == [("no-export",), ("no-export", "64512:7")]  # the re-apply appended nothing
    peer = next(e.obj for e in events if isinstance(e, schema.K8sUpsert) and isinstance(e.obj, schema.BGPPeer))
    assert peer.api_version == "v1beta2" and peer.hold_time_ms == 90_000  # served as the storage version
    deleted = sorted((e.ref.kind, e.ref.name) for e in events if isinstance(e, schema.K8sDelete))
    assert deleted == [("BGPPeer", "legacy"), ("Community", "aliases"), ("Namespace", "scratch")]


def test_recorded_sequence_is_appended_exactly(fake: FakeKube, kubeconfig: str) -> None:
    steps = yaml.safe_load((SEQUENCES / "churn.yaml").read_text())
    assert len(steps) > 10
    log = memory.MemoryLog()
    run = Running(_watcher(kubeconfig, log))
    try:
        _play(fake, steps, log)
    finally:
        run.close()
    events = log_events(log)
    assert duplicates(events) == []
    assert log_objects(events) == expected_objects(fake)
    keys = set(log_objects(events))
    assert "Service/shop/web" in keys and "Node//worker-2" in keys and "Node//worker-1" not in keys
    assert "IPAddressPool/default/elsewhere" not in keys  # MetalLB objects count only in metallb-system
    # the unrelated annotation change on web translated to the same object: not appended
    web = [e for e in events if isinstance(e, schema.K8sUpsert) and e.obj.name == "web"
           and isinstance(e.obj, schema.Service)]
    assert [s.obj.ingress_ips for s in web] == [(), ("192.168.10.0",)]
    # a delete was appended for the EndpointSlice and the Node
    deleted = {(e.ref.kind, e.ref.name) for e in events if isinstance(e, schema.K8sDelete)}
    assert deleted == {("EndpointSlice", "web-abc"), ("Node", "worker-1")}
    # Secrets never enter the log, nor are they requested
    blob = b"".join(r.data for r in log.read())
    assert b"plain-secret-77" not in blob and b"c3VwZXItc2VjcmV0" not in blob and b"super-secret" not in blob
    assert fake.count("GET", r"/secrets") == 0
    peer = [e.obj for e in events if isinstance(e, schema.K8sUpsert) and isinstance(e.obj, schema.BGPPeer)]
    assert peer[0].password_set is True
    # lists were paged through the continue protocol and watches asked for bookmarks
    assert fake.count("GET", r"/api/v1/services\?limit=") >= 1
    assert fake.count("GET", r"/api/v1/services\?.*allowWatchBookmarks=true.*watch=true") >= 1


def test_list_pages_are_followed(fake: FakeKube, kubeconfig: str) -> None:
    for i in range(23):
        fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns-{i:02d}"}})
    log = memory.MemoryLog()
    run = Running(_watcher(kubeconfig, log, page_size=5))
    try:
        wait_for(lambda: _converged(fake, log))
    finally:
        run.close()
    assert fake.count("GET", r"/api/v1/namespaces\?.*continue=") == 4
    assert len(log_objects(log_events(log))) == 23 and duplicates(log_events(log)) == []


def test_410_gone_relists_and_emits_deletes_for_vanished_objects(fake: FakeKube, kubeconfig: str) -> None:
    for name in ("a", "b", "c"):
        fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    log = memory.MemoryLog()
    w = _watcher(kubeconfig, log)
    run = Running(w)
    try:
        wait_for(lambda: _converged(fake, log))
        before = len(list(log.read()))
        with fake.lock:  # atomically: the watch stream sees none of it
            fake.remove("Node", "", "b")
            fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "c", "labels": {"x": "1"}}})
            fake.compact()
            fake.end_watches()
        wait_for(lambda: _converged(fake, log), what="re-list after 410")
        wait_for(lambda: w.stats.gone >= 1, what="410 seen")
    finally:
        run.close()
    events = log_events(log)
    tail = events[before:]
    assert [type(e).__name__ for e in tail] == ["K8sUpsert", "K8sDelete"] or \
           [type(e).__name__ for e in tail] == ["K8sDelete", "K8sUpsert"]
    assert {e.ref.name for e in tail if isinstance(e, schema.K8sDelete)} == {"b"}
    assert duplicates(events) == []
    assert w.stats.relists >= len(w.resources) + 1


def test_restart_resumes_from_bookmarked_resource_versions_without_relisting(
    fake: FakeKube, kubeconfig: str, tmp_path: Path
) -> None:
    fake.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "d"},
              "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.1"]}})
    log = memory.MemoryLog()
    state = tmp_path / "watch.state"
    w = _watcher(kubeconfig, log, state)
    run = Running(w)
    try:
        wait_for(lambda: _converged(fake, log))
        for i in range(5):  # changes elsewhere move the global resourceVersion; bookmarks carry it to services
            fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"n{i}"}})
        wait_for(lambda: _converged(fake, log))
        wait_for(lambda: w.stats.bookmarks > 10, what="bookmarks")
        wait_for(lambda: w.stats.relists >= len(w.resources), what="every resource listed")
    finally:
        run.close()
    cp = kube_watch.load_checkpoint(state)
    assert sorted(cp.rvs) == sorted(r.key for r in w.resources)
    assert cp is not None and cp.head == str(log.head())
    svc_key = kube_watch.Resource("", "v1", "services", "Service").key
    assert int(cp.rvs[svc_key]) >= fake.rv - 0  # bookmarks advanced it past the Service's own version
    assert int(cp.rvs[svc_key]) > int(fake.get("Service", "d", "s")["metadata"]["resourceVersion"])
    # while down: a change
    fake.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s2", "namespace": "d"},
              "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.2"]}})
    lists_before = fake.count("GET", r"\?limit=")
    appended_before = len(list(log.read()))
    w2 = _watcher(kubeconfig, log, state)
    run = Running(w2)
    try:
        wait_for(lambda: _converged(fake, log))
        time.sleep(0.5)
    finally:
        run.close()
    assert fake.count("GET", r"\?limit=") == lists_before  # resumed: no LIST at all
    assert len(list(log.read())) == appended_before + 1  # exactly the one change
    assert duplicates(log_events(log)) == []


def test_api_outage_is_ridden_out_without_loss_or_duplicates(fake: FakeKube, kubeconfig: str) -> None:
    log = memory.MemoryLog()
    run = Running(_watcher(kubeconfig, log, backoff=(0.05, 0.3)))
    try:
        fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
        wait_for(lambda: _converged(fake, log))
        fake.outage = True
        fake.end_watches()
        time.sleep(0.6)
        fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}})  # happens during the outage
        fake.remove("Node", "", "n1")
        time.sleep(0.3)
        fake.outage = False
        wait_for(lambda: _converged(fake, log), what="recovery")
    finally:
        run.close()
    assert duplicates(log_events(log)) == []
    assert run.watcher.stats.errors >= 1


def test_malformed_object_is_not_appended_and_does_not_stop_the_watch(fake: FakeKube, kubeconfig: str) -> None:
    log = memory.MemoryLog()
    run = Running(_watcher(kubeconfig, log))
    try:
        fake.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": "d"},
                  "spec": {"type": "LoadBalancer", "clusterIPs": ["not-an-ip"]}})
        fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "after"}})
        wait_for(lambda: "Node//after" in log_objects(log_events(log)))
    finally:
        run.close()
    assert "Service/d/bad" not in log_objects(log_events(log))
    assert run.watcher.stats.rejected >= 1


# --------------------------------------------------------------------------------------------------------------
# Leader election


def test_only_the_lease_holder_appends_and_the_other_takes_over(fake: FakeKube, kubeconfig: str) -> None:
    log = memory.MemoryLog()
    fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})

    def make(identity: str) -> kube_watch.Watcher:
        api = kube_api.make_client(kubeconfig)
        el = kube_lease.LeaseElector(api, "streamlb-system", "streamlb-watcher", identity, lease_seconds=10)
        return kube_watch.Watcher(api, log, elector=el, watch_timeout=30)

    a, b = Running(make("replica-a")), Running(make("replica-b"))
    try:
        wait_for(lambda: _converged(fake, log))
        fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}})
        wait_for(lambda: _converged(fake, log))
        time.sleep(1.5)
        leaders = [r for r in (a, b) if r.watcher.stats.sessions > 0]
        assert len(leaders) == 1
        leader, other = leaders[0], (b if leaders[0] is a else a)
        assert other.watcher.stats.appended == 0
        holder = fake.get("Lease", "streamlb-system", "streamlb-watcher")["spec"]["holderIdentity"]
        assert holder == leader.watcher.elector.identity
        leader.close()  # clean stop releases the Lease
        wait_for(lambda: other.watcher.stats.sessions == 1, what="takeover", timeout=15)
        fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n3"}})
        wait_for(lambda: _converged(fake, log))
        assert other.watcher.stats.appended == 1  # its re-list found nothing new; only n3
    finally:
        for r in (a, b):
            if r.thread.is_alive():
                r.close()
    assert duplicates(log_events(log)) == []


def test_lease_is_not_taken_while_its_holder_renews(fake: FakeKube, kubeconfig: str) -> None:
    api = kube_api.make_client(kubeconfig)
    clock = [100.0]
    a = kube_lease.LeaseElector(api, "ns", "l", "a", lease_seconds=10, clock=lambda: clock[0])
    b = kube_lease.LeaseElector(api, "ns", "l", "b", lease_seconds=10, clock=lambda: clock[0])
    assert a.step() is True
    assert b.step() is False
    clock[0] += 8
    assert a.step() is True  # renewed
    clock[0] += 8
    assert b.step() is False  # b saw the renewal 8 s ago: not expired
    clock[0] += 20  # a stops renewing
    assert a.is_leader is False
    assert b.step() is True
    assert fake.get("Lease", "ns", "l")["spec"]["leaseTransitions"] == 1
    assert a.step() is False  # a sees b's fresh renewal


# --------------------------------------------------------------------------------------------------------------
# Restart of a real process, killed mid-stream


def _spawn(kubeconfig: str, log: Path, state: Path, stderr: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(stderr, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", "watch", "--kubeconfig", kubeconfig, "--log", str(log),
             "--state", str(state), "--watch-timeout", "30"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
        )


def _file_objects(path: Path) -> tuple[list[schema.Event], dict]:
    events = log_events(logfile.FileLog(path))
    return events, log_objects(events)


@pytest.mark.parametrize("compact_while_down", [False, True], ids=["resume", "gone-while-down"])
def test_watcher_killed_mid_stream_and_restarted(fake: FakeKube, kubeconfig: str, tmp_path: Path,
                                                 compact_while_down: bool) -> None:
    log, state = tmp_path / "events.evlog", tmp_path / "watch.state"
    stop_churn = threading.Event()
    counter = [0]

    def churn() -> None:  # a busy cluster: creates, updates, deletes
        i = 0
        while not stop_churn.is_set() and i < 5000:
            i += 1
            n = i % 40
            if i % 7 == 0 and fake.get("Service", "load", f"s{n}"):
                fake.remove("Service", "load", f"s{n}")
            else:
                fake.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{n}", "namespace": "load"},
                          "spec": {"type": "LoadBalancer", "clusterIPs": [f"10.96.1.{n}"],
                                   "ports": [{"port": 1000 + i, "protocol": "TCP"}]}})
            counter[0] = i
            time.sleep(0.004)

    errlog = tmp_path / "watch.stderr"
    for n in range(30):  # objects that never change: a re-list must not append them again
        fake.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"stable{n}", "namespace": "load"},
                  "spec": {"type": "LoadBalancer", "clusterIPs": [f"10.96.2.{n}"]}})
    proc = _spawn(kubeconfig, log, state, errlog)
    churner = threading.Thread(target=churn, daemon=True)
    try:
        churner.start()
        wait_for(lambda: log.exists() and len(_file_objects(log)[0]) > 50, what="first appends")
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream, no chance to checkpoint
        proc.wait(timeout=10)
        at_kill = counter[0]
        time.sleep(0.5)  # the cluster keeps changing while the watcher is down
        if compact_while_down:
            fake.compact()
        proc = _spawn(kubeconfig, log, state, errlog)
        time.sleep(1.5)
        stop_churn.set()
        churner.join(timeout=10)
        assert counter[0] > at_kill  # changes happened after the kill
        wait_for(lambda: _file_objects(log)[1] == expected_objects(fake), what="restarted watcher converges")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert proc.returncode == 0, errlog.read_text()
    finally:
        stop_churn.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    events, objects = _file_objects(log)
    assert duplicates(events) == []
    assert objects == expected_objects(fake)
    assert len(objects) > 10


def test_metrics_endpoint_reports_the_counters(fake: FakeKube, kubeconfig: str) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = memory.MemoryLog()
    w = _watcher(kubeconfig, log)
    kube_watch.serve_metrics(w, port, "127.0.0.1")
    run = Running(w)
    try:
        fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
        wait_for(lambda: _converged(fake, log))
        wait_for(lambda: w.stats.relists >= len(w.resources), what="every resource listed")
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        run.close()
    values = {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines() if ln and not ln.startswith("#")}
    assert values["streamlb_watch_appended_total"] == 1.0
    assert values["streamlb_watch_leader"] == 1.0 and values["streamlb_watch_objects"] == 1.0
    assert values["streamlb_watch_relists_total"] == len(w.resources)


def test_watch_after_import_appends_nothing_for_an_unchanged_cluster(fake: FakeKube, kubeconfig: str,
                                                                       tmp_path: Path) -> None:
    from reconciler.runtime.kube import migrate
    from tests.kube import metallb_dump
    from tests.kube.fakeapi import BY_KIND

    cfg, cluster, expected = metallb_dump.cluster_dump(200, seed=5)
    docs = yaml.safe_load(cfg)["items"] + yaml.safe_load(cluster)["items"]
    for d in docs:
        if d["kind"] in BY_KIND:
            fake.put(d)
    imported = migrate.import_metallb([("dump", yaml.safe_dump_all(docs))])
    assert imported.assignments_kept == 200
    path = tmp_path / "log.evlog"
    path.write_bytes(logfile.encode_file(imported.events))
    log = logfile.FileLog(path)
    n = len(list(log.read()))
    w = _watcher(kubeconfig, log)
    run = Running(w)
    try:
        wait_for(lambda: w.stats.relists >= len(w.resources), what="every resource listed")
        time.sleep(0.5)
        assert w.stats.appended == 0 and len(list(log.read())) == n  # the import already says it all
        fake.remove("Service", *next(iter(expected)).split("/"))
        wait_for(lambda: _converged(fake, log))
    finally:
        run.close()
    assert w.stats.appended == 1


class _TrimmedLog(memory.MemoryLog):
    """A log whose entries below ``floor`` were trimmed away (retention below the newest snapshot)."""

    floor = None

    def read(self, after=None, limit=None):
        from events.position import ZERO

        after = after or ZERO
        if self.floor is not None and after < self.floor:
            after = self.floor  # trimmed: the entries up to the snapshot are gone
        return super().read(after, limit)


def test_trimmed_stream_ledger_comes_from_the_snapshot(fake: FakeKube, kubeconfig: str) -> None:
    from events import log as evlog
    from reconciler import decisions, fold, snapshot
    from reconciler import state as statemod

    node = lambda n: {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}  # noqa: E731
    for n in ("a", "b"):
        fake.put(node(n))
    log = _TrimmedLog()
    history = [schema.K8sUpsert(obj=kube.translate(node(n))) for n in ("a", "b", "c")]  # c is gone since
    log.append(history)
    st = fold.fold(history, statemod.new())
    log.save_snapshot(evlog.Snapshot(log.head(), snapshot.SNAPSHOT_VERSION, snapshot.dump(st),
                                     decisions.state_hash(st)))
    log.floor = log.head()
    assert list(log.read()) == []  # nothing left below the snapshot
    w = _watcher(kubeconfig, log)
    run = Running(w)
    try:
        wait_for(lambda: w.stats.relists >= len(w.resources), what="every resource listed")
        wait_for(lambda: w.stats.appended >= 1)
        time.sleep(0.3)
    finally:
        run.close()
    log.floor = None
    tail = log_events(log)[3:]
    assert tail == [schema.K8sDelete(ref=schema.ObjectRef(kind="Node", name="c"))]  # a, b unchanged: not re-sent
