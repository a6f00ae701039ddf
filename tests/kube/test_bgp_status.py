"""ServiceBGPStatus write-back against the fake API server: one object per (Service, advertising node) with the
BGPPeers it is advertised to; created, updated, deleted, idempotent and conflict-safe."""

from __future__ import annotations

import pytest

from events import schema
from reconciler import fold
from reconciler.runtime.kube import status as kube_status
from tests.kube.test_status import NS, POOLS, _apply, _Batch, _node, _slice, _writer, _writes, decide, svc

pytestmark = pytest.mark.integration


def node(name: str, rack: str) -> dict:
    o = _node(name)
    o["metadata"]["labels"]["rack"] = rack
    return o


def peer(name: str, addr: str, rack: str | None = None) -> dict:
    spec: dict = {"myASN": 64512, "peerASN": 64500, "peerAddress": addr}
    if rack:
        spec["nodeSelectors"] = [{"matchLabels": {"rack": rack}}]
    return {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": name, "namespace": NS},
            "spec": spec}


def advert(peers: list[str] | None = None) -> dict:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": "bgp", "namespace": NS}, "spec": {"peers": peers} if peers else {}}


def bgp_cluster(fake) -> list[dict]:
    """web has endpoints on node-a, api on node-b, db none; "other" is of another load-balancer class.
    tor-a peers with rack a, tor-b with rack b, rr with every node."""
    objs = POOLS + [svc("web"), svc("api", ip="10.96.0.2"), svc("db", ip="10.96.0.3"),
                    svc("other", cls="example.com/lb", ip="10.96.0.4"),
                    node("node-a", "a"), node("node-b", "b"),
                    peer("tor-a", "192.0.2.1", "a"), peer("tor-b", "192.0.2.2", "b"), peer("rr", "192.0.2.3"),
                    advert(), _slice("web", "node-a"), _slice("api", "node-b"), _slice("other", "node-a")]
    for o in objs:
        fake.put(o)
    return objs


def statuses(fake) -> dict[tuple[str, str], list[str]]:
    """(service key, node) -> peers, from the objects streamlb made; checks each object's identity fields."""
    out = {}
    for o in fake.objects_of("ServiceBGPStatus"):
        labels = o["metadata"]["labels"]
        if labels.get("app.kubernetes.io/managed-by") != "streamlb":
            continue
        st = o["status"]
        key = f"{st['serviceNamespace']}/{st['serviceName']}"
        assert (labels["metallb.io/service-namespace"], labels["metallb.io/service-name"], labels["metallb.io/node"]) \
            == (st["serviceNamespace"], st["serviceName"], st["node"])
        assert o["metadata"]["name"] == kube_status.bgp_object_name(key, st["node"])
        out[(key, st["node"])] = st["peers"]
    return out


def _delete(st, kind: str, name: str) -> None:
    fold.apply(st, schema.K8sDelete(ref=schema.ObjectRef(kind=kind, namespace=NS, name=name)))


def test_service_bgp_status_created_updated_deleted_and_idempotent(fake, kubeconfig) -> None:
    _, st = decide(bgp_cluster(fake))
    theirs = {"apiVersion": "metallb.io/v1beta1", "kind": "ServiceBGPStatus",
              "metadata": {"name": "bgp-metallb", "namespace": NS, "labels": {"metallb.io/node": "x"}},
              "status": {"node": "x", "serviceName": "old", "serviceNamespace": "shop", "peers": ["p"]}}
    fake.put(theirs)  # made by MetalLB: not ours to touch
    hook = kube_status.DaemonStatusWriter(_writer(kubeconfig), l2_interval=0)

    res = hook(_Batch({}, st))
    assert res.ok
    # every node peers with rr and its own rack's router; db has no endpoints, other is not ours
    want = {("shop/web", "node-a"): ["rr", "tor-a"], ("shop/web", "node-b"): ["rr", "tor-b"],
            ("shop/api", "node-a"): ["rr", "tor-a"], ("shop/api", "node-b"): ["rr", "tor-b"]}
    assert statuses(fake) == want
    assert sorted(res.bgp_created) == sorted(f"{k}@{n}" for k, n in want) and not res.bgp_deleted
    o = fake.get("ServiceBGPStatus", NS, kube_status.bgp_object_name("shop/web", "node-a"))
    assert o["metadata"]["namespace"] == NS and o["apiVersion"] == "metallb.io/v1beta1"
    uid = o["metadata"]["uid"]

    # nothing changed: nothing written (neither by the daemon hook nor by a fresh writer that reads first)
    before = _writes(fake)
    res = hook(_Batch({}, st))
    assert not (res.bgp_created or res.bgp_updated or res.bgp_deleted) and _writes(fake) == before
    res = kube_status.WriteResult()
    kube_status.write_bgp_statuses(_writer(kubeconfig), kube_status.bgp_peers(st), res)
    assert not (res.bgp_created or res.bgp_updated or res.bgp_deleted) and _writes(fake) == before
    assert fake.count("DELETE", r"servicebgpstatuses") == 0

    # the route reflector goes away: peers updated in place (same object), nothing re-created
    _delete(st, "BGPPeer", "rr")
    res = hook(_Batch({}, st))
    assert res.ok and sorted(res.bgp_updated) == sorted(f"{k}@{n}" for k, n in want)
    assert not res.bgp_created and not res.bgp_deleted
    assert statuses(fake) == {("shop/web", "node-a"): ["tor-a"], ("shop/web", "node-b"): ["tor-b"],
                              ("shop/api", "node-a"): ["tor-a"], ("shop/api", "node-b"): ["tor-b"]}
    assert fake.get("ServiceBGPStatus", NS, kube_status.bgp_object_name("shop/web", "node-a"))["metadata"][
        "uid"] == uid

    # advertised to tor-a only: node-b stops advertising, its objects go
    _apply(st, advert(["tor-a"]))
    res = hook(_Batch({}, st))
    assert res.ok and sorted(res.bgp_deleted) == ["shop/api@node-b", "shop/web@node-b"]
    assert statuses(fake) == {("shop/web", "node-a"): ["tor-a"], ("shop/api", "node-a"): ["tor-a"]}

    # a new Service starts being advertised: created for node-a only
    fake.put(svc("db2", ip="10.96.0.6"))
    _apply(st, svc("db2", ip="10.96.0.6"))
    _apply(st, {**_slice("db2", "node-b"), "metadata": {"name": "db2-x", "namespace": "shop",
                                                        "labels": {"kubernetes.io/service-name": "db2"}}})
    res = hook(_Batch({}, st))
    assert res.bgp_created == ["shop/db2@node-a"]

    # no BGPAdvertisement any more: nobody advertises, all our objects go; MetalLB's own object stays
    _delete(st, "BGPAdvertisement", "bgp")
    res = hook(_Batch({}, st))
    assert res.ok and statuses(fake) == {}
    assert fake.get("ServiceBGPStatus", NS, "bgp-metallb") is not None
    # the Service of another load-balancer class was never reported
    assert fake.count("POST", r"servicebgpstatuses") == 5


def test_other_load_balancer_class_is_never_reported_but_is_with_its_class(fake, kubeconfig) -> None:
    objs = bgp_cluster(fake)
    _, st = decide(objs)
    hook = kube_status.DaemonStatusWriter(_writer(kubeconfig), l2_interval=0)
    assert hook(_Batch({}, st)).ok
    assert {k for k, _ in statuses(fake)} == {"shop/web", "shop/api"}
    # a daemon running with --lb-class example.com/lb reports exactly that Service (so the filter is the class,
    # not something about the Service); the first writer's objects are cleared so the two do not mix
    _, st2 = decide(objs, lb_class="example.com/lb")
    for o in fake.objects_of("ServiceBGPStatus"):
        fake.remove("ServiceBGPStatus", NS, o["metadata"]["name"])
    hook2 = kube_status.DaemonStatusWriter(_writer(kubeconfig), l2_interval=0)
    assert hook2(_Batch({}, st2)).ok
    assert statuses(fake) == {("shop/other", "node-a"): ["rr", "tor-a"], ("shop/other", "node-b"): ["rr", "tor-b"]}


def test_service_bgp_status_conflict_is_reread_and_retried(fake, kubeconfig) -> None:
    _, st = decide(bgp_cluster(fake))
    hook = kube_status.DaemonStatusWriter(_writer(kubeconfig), l2_interval=0)
    assert hook(_Batch({}, st)).ok
    name = kube_status.bgp_object_name("shop/web", "node-a")
    meddled = []

    def meddle(method: str, path: str) -> None:
        # someone else writes the object between our read (the list) and our update: our resourceVersion is stale
        if method == "PATCH" and path.endswith(f"/{name}/status") and not meddled:
            cur = fake.get("ServiceBGPStatus", NS, name)
            cur["metadata"].setdefault("annotations", {})["touched"] = "yes"
            fake.put(cur)
            meddled.append(cur["metadata"]["resourceVersion"])

    fake.on_request = meddle
    try:
        _delete(st, "BGPPeer", "tor-a")
        res = hook(_Batch({}, st))
    finally:
        fake.on_request = None
    assert meddled and res.ok and res.conflicts == 1
    assert "shop/web@node-a" in res.bgp_updated
    got = fake.get("ServiceBGPStatus", NS, name)
    assert got["status"]["peers"] == ["rr"] and got["metadata"]["annotations"] == {"touched": "yes"}
    # 409 on every attempt: reported as failed, retried with the next batch, then written
    name_b = kube_status.bgp_object_name("shop/web", "node-b")
    fake.fail(rf"/{name_b}/status$", 409, times=10, method="PATCH", reason="Conflict")
    _delete(st, "BGPPeer", "rr")
    res = hook(_Batch({}, st))
    assert "ServiceBGPStatus" in res.failed and res.conflicts == 6  # first try + max_conflict_retries (5)
    assert fake.get("ServiceBGPStatus", NS, name_b)["status"]["peers"] == ["rr", "tor-b"]
    fake.faults.clear()
    res = hook(_Batch({}, st))
    assert res.ok and "shop/web@node-b" in res.bgp_updated
    # node-a has no peer left: its objects go; node-b's say tor-b
    assert statuses(fake) == {("shop/web", "node-b"): ["tor-b"], ("shop/api", "node-b"): ["tor-b"]}


def test_service_bgp_status_survives_an_outage(fake, kubeconfig) -> None:
    _, st = decide(bgp_cluster(fake))
    hook = kube_status.DaemonStatusWriter(_writer(kubeconfig), l2_interval=0)
    fake.outage = True
    res = hook(_Batch({}, st))
    fake.outage = False
    assert "ServiceBGPStatus" in res.failed and statuses(fake) == {}
    res = hook(_Batch({}, st))
    assert res.ok and len(statuses(fake)) == 4
