"""Status write-back against the fake API server: idempotent, conflict-safe, only for owned Services."""

from __future__ import annotations

import pytest

from events import kube, schema
from reconciler import decisions, fold
from reconciler import state as statemod
from reconciler.runtime.kube import api as kube_api
from reconciler.runtime.kube import status as kube_status
from tests.kube.fakeapi import FakeKube

pytestmark = pytest.mark.integration
NS = "metallb-system"

POOLS = [
    {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "public", "namespace": NS},
     "spec": {"addresses": ["192.168.10.0/30"]}},
    {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "v6", "namespace": NS},
     "spec": {"addresses": ["2001:db8::/120"], "autoAssign": False}},
]


def svc(name: str, ns: str = "shop", cls: str | None = None, typ: str = "LoadBalancer", ip: str = "10.96.0.1",
        ingress: list[str] | None = None, annotations: dict | None = None) -> dict:
    spec = {"type": typ, "clusterIP": ip, "clusterIPs": [ip], "ports": [{"port": 80, "protocol": "TCP"}]}
    if cls:
        spec["loadBalancerClass"] = cls
    o = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec,
         "status": {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]} if ingress else {}}}
    if annotations:
        o["metadata"]["annotations"] = annotations
    return o


def decide(objs: list[dict], lb_class: str | None = None) -> tuple[dict, statemod.State]:
    st = statemod.new(lb_class)
    for o in objs:
        got = kube.translate(o)
        if not isinstance(got, kube.Ignored):
            fold.apply(st, schema.K8sUpsert(obj=got))
    return {"services": decisions.services(st)}, st


@pytest.fixture
def cluster(fake: FakeKube) -> list[dict]:
    objs = POOLS + [svc("web"), svc("api", ip="10.96.0.2"), svc("db", ip="10.96.0.3"),
                    svc("other", cls="example.com/lb", ip="10.96.0.4"), svc("plain", typ="ClusterIP", ip="10.96.0.5")]
    for o in objs:
        fake.put(o)
    return objs


def _writer(kubeconfig: str, **kw) -> kube_status.StatusWriter:
    return kube_status.StatusWriter(kube_api.make_client(kubeconfig), identity="test", **kw)


def _writes(fake: FakeKube) -> int:
    return sum(1 for m, _ in fake.requests if m in ("PATCH", "PUT", "POST"))


def test_writes_status_annotation_events_and_pool_counts_then_nothing(fake, kubeconfig, cluster) -> None:
    dec, st = decide(cluster)
    assert dec["services"]["shop/web"]["ingress"] == ["192.168.10.0"]
    w = _writer(kubeconfig)
    res = w.write(dec, kube_status.pool_counts(st))
    assert res.ok and sorted(res.status_written) == ["shop/api", "shop/db", "shop/web"]
    for name in ("web", "api", "db"):
        o = fake.get("Service", "shop", name)
        want = dec["services"][f"shop/{name}"]
        assert [i["ip"] for i in o["status"]["loadBalancer"]["ingress"]] == want["ingress"]
        assert o["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"] == "public"
    events = fake.objects_of("Event")
    assert sorted((e["involvedObject"]["name"], e["reason"], e["type"]) for e in events) == [
        ("api", "IPAllocated", "Normal"), ("db", "IPAllocated", "Normal"), ("web", "IPAllocated", "Normal")]
    assert {e["message"] for e in events} == {f'Assigned IP ["192.168.10.{i}"]' for i in range(3)}
    assert all(e["involvedObject"]["uid"] == fake.get("Service", "shop", e["involvedObject"]["name"])["metadata"]
               ["uid"] for e in events)
    pool = fake.get("IPAddressPool", NS, "public")["status"]
    assert pool == {"assignedIPv4": 3, "availableIPv4": 1, "assignedIPv6": 0, "availableIPv6": 0}
    assert fake.get("IPAddressPool", NS, "v6")["status"] == {"assignedIPv4": 0, "availableIPv4": 0,
                                                              "assignedIPv6": 0, "availableIPv6": 256}
    # not owned: another class, another type — untouched
    assert fake.get("Service", "shop", "other")["status"] == {"loadBalancer": {}}
    assert "annotations" not in fake.get("Service", "shop", "other")["metadata"]
    # idempotent: the same decisions again write nothing
    before = _writes(fake)
    res2 = w.write(dec, kube_status.pool_counts(st))
    assert _writes(fake) == before and sorted(res2.unchanged) == ["shop/api", "shop/db", "shop/web"]
    # a restarted writer re-sends Events under the same names: they already exist, none is duplicated
    res3 = _writer(kubeconfig).write(dec, kube_status.pool_counts(st))
    assert res3.events_created == 0 and res3.events_existing == 3 and len(fake.objects_of("Event")) == 3
    assert not res3.status_written and not res3.annotation_written and not res3.pools_written


def test_nothing_is_written_for_services_streamlb_does_not_own(fake, kubeconfig, cluster) -> None:
    # decisions that (wrongly) name them: the writer still checks the live object
    fake_dec = {"services": {k: {"ingress": ["192.168.10.3"], "pool": "public", "reason": None, "events": [
        {"type": "Normal", "reason": "IPAllocated", "message": "x"}]} for k in ("shop/other", "shop/plain")}}
    before = _writes(fake)
    res = _writer(kubeconfig).write(fake_dec)
    assert sorted(res.not_owned) == ["shop/other", "shop/plain"] and _writes(fake) == before
    # with the matching --lb-class the class-owned one is written, the ClusterIP one still not
    res = _writer(kubeconfig, lb_class="example.com/lb").write(fake_dec)
    assert res.status_written == ["shop/other"] and res.not_owned == ["shop/plain"]


def test_conflict_rereads_and_keeps_the_other_writers_change(fake, kubeconfig, cluster) -> None:
    dec, _ = decide(cluster)
    seen = {"n": 0}

    def meddle(method: str, path: str) -> None:  # another client labels the Service between our GET and PATCH
        if method == "PATCH" and path.endswith("/services/web/status") and seen["n"] < 2:
            seen["n"] += 1
            cur = fake.get("Service", "shop", "web")
            cur["metadata"].setdefault("labels", {})["touched"] = str(seen["n"])
            fake.put(cur)

    fake.on_request = meddle
    res = _writer(kubeconfig).write(dec, only=["shop/web"])
    fake.on_request = None
    assert res.ok and res.conflicts == 2 and res.status_written == ["shop/web"]
    o = fake.get("Service", "shop", "web")
    assert o["metadata"]["labels"] == {"touched": "2"}  # their change survived
    assert [i["ip"] for i in o["status"]["loadBalancer"]["ingress"]] == ["192.168.10.0"]


def test_persistent_conflict_is_reported_not_forced(fake, kubeconfig, cluster) -> None:
    dec, _ = decide(cluster)
    fake.fail(r"/services/web/status$", 409, times=100, method="PATCH", reason="Conflict")
    res = _writer(kubeconfig, max_conflict_retries=3).write(dec, only=["shop/web", "shop/api"])
    assert "shop/web" in res.failed and res.conflicts == 4
    assert res.status_written == ["shop/api"]  # the others are not held up
    assert fake.get("Service", "shop", "web")["status"] == {"loadBalancer": {}}


def test_deleted_services_are_skipped(fake, kubeconfig, cluster) -> None:
    dec, _ = decide(cluster)
    fake.remove("Service", "shop", "db")  # gone before the writer runs

    def delete_api(method: str, path: str) -> None:  # gone between the writer's GET and PATCH
        if method == "PATCH" and path.endswith("/services/api/status") and fake.get("Service", "shop", "api"):
            fake.remove("Service", "shop", "api")

    fake.on_request = delete_api
    res = _writer(kubeconfig).write(dec)
    fake.on_request = None
    assert res.ok and sorted(res.missing) == ["shop/api", "shop/db"] and res.status_written == ["shop/web"]
    assert {e["involvedObject"]["name"] for e in fake.objects_of("Event")} == {"web"}


def test_api_outage_loses_nothing(fake, kubeconfig, cluster) -> None:
    dec, st = decide(cluster)
    w = _writer(kubeconfig)
    fake.outage = True
    res = w.write(dec, kube_status.pool_counts(st))
    fake.outage = False
    assert set(res.failed) == {"shop/api", "shop/db", "shop/web", "IPAddressPool/public", "IPAddressPool/v6"}
    assert fake.count("GET", "/services/") <= 3 + 1  # it stopped hammering after a few failures
    res = w.write(dec, kube_status.pool_counts(st))  # the caller retries with the same decisions
    assert res.ok and sorted(res.status_written) == ["shop/api", "shop/db", "shop/web"]
    assert len(fake.objects_of("Event")) == 3
    assert fake.get("IPAddressPool", NS, "public")["status"]["assignedIPv4"] == 3


def test_cleared_assignment_removes_ingress_and_annotation(fake, kubeconfig) -> None:
    fake.put(svc("web", ingress=["192.168.10.0"], annotations={"metallb.io/ip-allocated-from-pool": "public",
                                                              "keep": "me"}))
    dec = {"services": {"shop/web": {"ingress": [], "pool": None, "reason": "noAvailableIPs", "events": [
        {"type": "Warning", "reason": "AllocationFailed",
         "message": 'Failed to allocate IP for "shop/web": no available IPs'}]}}}
    res = _writer(kubeconfig).write(dec)
    assert res.ok and res.status_written == ["shop/web"] and res.annotation_written == ["shop/web"]
    o = fake.get("Service", "shop", "web")
    assert o["status"]["loadBalancer"] == {} and o["metadata"]["annotations"] == {"keep": "me"}
    (ev,) = fake.objects_of("Event")
    assert (ev["type"], ev["reason"]) == ("Warning", "AllocationFailed")


class _Batch:
    def __init__(self, changed: dict, state: statemod.State) -> None:
        self.changed, self.state = changed, state


def test_daemon_hook_writes_changed_services_and_retries_failures(fake, kubeconfig, cluster) -> None:
    dec, st = decide(cluster)
    hook = kube_status.DaemonStatusWriter(_writer(kubeconfig))
    fake.fail(r"/services/api/status$", 503, times=1, method="PATCH", reason="ServiceUnavailable")
    res = hook(_Batch({"shop/web": {}, "shop/api": {}, "shop/gone": None}, st))
    assert res.status_written == ["shop/web"] and set(res.failed) == {"shop/api"}
    assert res.pools_written == ["public", "v6"]
    # next batch changes only db; api is retried; pools are not rewritten (unchanged counts)
    res = hook(_Batch({"shop/db": {}}, st))
    assert sorted(res.status_written) == ["shop/api", "shop/db"] and res.ok and res.pools_written == []
    assert fake.count("GET", r"/ipaddresspools/") == 2
    assert len(fake.objects_of("Event")) == 3


def _node(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def _slice(svc_name: str, node: str) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{svc_name}-x", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": svc_name}},
            "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}, "nodeName": node}]}


def _apply(st: statemod.State, obj: dict) -> None:
    fold.apply(st, schema.K8sUpsert(obj=kube.translate(obj)))


def test_service_l2_status_follows_the_elected_node(fake, kubeconfig, cluster) -> None:
    l2ad = {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "l2", "namespace": NS}}
    objs = cluster + [l2ad, _node("node-a"), _node("node-b"), _slice("web", "node-a"), _slice("api", "node-b")]
    _, st = decide(objs)
    theirs = {"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
              "metadata": {"name": "l2-metallb", "namespace": NS, "labels": {"metallb.io/node": "x"}},
              "status": {"node": "x", "serviceName": "old", "serviceNamespace": "shop"}}
    fake.put(theirs)  # made by MetalLB: not ours to touch
    hook = kube_status.DaemonStatusWriter(_writer(kubeconfig), l2_interval=0)
    res = hook(_Batch({}, st))
    owners = kube_status.l2_owners(st)
    assert sorted(owners) == ["shop/api", "shop/db", "shop/web"]
    assert owners["shop/db"] is None and owners["shop/web"] and owners["shop/api"]  # db has no endpoints
    assert sorted(res.l2_created) == ["shop/api", "shop/web"] and res.ok

    def statuses() -> dict[str, str]:
        return {f"{o['status']['serviceNamespace']}/{o['status']['serviceName']}": o["status"]["node"]
                for o in fake.objects_of("ServiceL2Status") if o["metadata"]["name"] != "l2-metallb"}

    assert statuses() == {k: v for k, v in owners.items() if v}
    o = fake.get("ServiceL2Status", NS, kube_status.l2_object_name("shop/web"))
    assert o["metadata"]["labels"]["metallb.io/node"] == owners["shop/web"]
    # nothing changed: nothing written
    before = _writes(fake)
    assert not hook(_Batch({}, st)).l2_created and _writes(fake) == before
    # web's owner node goes away: web moves to the other node (its object is re-created, MetalLB's fields being
    # immutable); api moves only if it was on the same node
    gone = owners["shop/web"]
    other = "node-b" if gone == "node-a" else "node-a"
    fold.apply(st, schema.K8sDelete(ref=schema.ObjectRef(kind="Node", name=gone)))
    new_owners = kube_status.l2_owners(st)
    assert new_owners["shop/web"] == other
    res = hook(_Batch({}, st))
    assert statuses() == {k: v for k, v in new_owners.items() if v}
    assert "shop/web" in res.l2_created and "shop/web" in res.l2_deleted
    # no more L2Advertisement: nobody announces, the objects go; MetalLB's own object stays
    fold.apply(st, schema.K8sDelete(ref=schema.ObjectRef(kind="L2Advertisement", namespace=NS, name="l2")))
    hook(_Batch({}, st))
    assert statuses() == {} and fake.get("ServiceL2Status", NS, "l2-metallb") is not None


def test_daemon_hook_takes_ownership_rules_from_the_daemon_state(fake, kubeconfig, cluster) -> None:
    dec, st = decide(cluster, lb_class="example.com/lb")  # a daemon started with --lb-class example.com/lb
    assert list(dec["services"]) == ["shop/other"]
    hook = kube_status.DaemonStatusWriter(_writer(kubeconfig))  # the writer itself was built without a class
    res = hook(_Batch({"shop/other": {}}, st))
    assert res.status_written == ["shop/other"] and res.ok
