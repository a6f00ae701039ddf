"""The leader's ``IPNotInNodeSubnet`` Warning Event against the fake API server: emitted once per Service whose L2 IP
lies outside every subnet of its owner's announcing interfaces (from the speakers' status keys), never without
speaker data, never twice (also not by a new leader)."""

from __future__ import annotations

import pytest

from reconciler import planning
from reconciler.runtime.kube import status as kube_status
from tests.kube.test_status import NS, _Batch, _node, _slice, _writer, decide, svc

pytestmark = pytest.mark.integration

POOL = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "public", "namespace": NS},
        "spec": {"addresses": ["192.168.10.0/30"]}}
L2AD = {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "l2", "namespace": NS}}


def speaker(node: str, *cidrs: str) -> dict:
    return {"node": node, "interfaces_known": True,
            "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "addresses": list(cidrs)}]}


def warnings(fake) -> list[tuple[str, str]]:
    return sorted((e["involvedObject"]["name"], e["message"]) for e in fake.objects_of("Event")
                  if e["reason"] == "IPNotInNodeSubnet")


def test_warning_once_per_service_only_with_speaker_data(fake, kubeconfig) -> None:
    objs = [POOL, L2AD, svc("web"), svc("api", ip="10.96.0.2"), svc("db", ip="10.96.0.3"),
            _node("node-a"), _node("node-b"), _slice("web", "node-a"), _slice("api", "node-b")]
    for o in objs:
        fake.put(o)
    _, st = decide(objs)
    statuses: dict[str, dict] = {}
    hook = kube_status.DaemonStatusWriter(_writer(kubeconfig), l2_interval=0, subnet_interval=0)
    hook.speaker_statuses = lambda: statuses

    res = hook(_Batch({}, st))
    assert res.ok and warnings(fake) == [] and res.subnet_warnings == []  # no speaker data: no judgement

    # web's owner reports only a subnet without 192.168.10.x; the other node has it
    web_ip = st.services["shop/web"].ingress[0]
    owner = planning.l2_owner(st, web_ip)
    other = "node-b" if owner == "node-a" else "node-a"
    statuses.update({owner: speaker(owner, "10.89.0.1/24"), other: speaker(other, "192.168.10.9/24")})
    want = sorted(k for k in ("shop/web", "shop/api") if planning.l2_owner(st, st.services[k].ingress[0]) == owner)
    res = hook(_Batch({}, st))
    assert sorted(res.subnet_warnings) == want and "shop/web" in want
    w = dict(warnings(fake))
    assert sorted(w) == [k.split("/")[1] for k in want]
    assert web_ip in w["web"] and "eth0:10.89.0.0/24" in w["web"] and owner in w["web"]
    ev = next(e for e in fake.objects_of("Event") if e["reason"] == "IPNotInNodeSubnet"
              and e["involvedObject"]["name"] == "web")
    assert ev["type"] == "Warning" and ev["involvedObject"]["uid"] == fake.get("Service", "shop", "web")["metadata"][
        "uid"]

    # once per Service: not again from this leader, and a new leader's attempt is a 409 (same Event name)
    res = hook(_Batch({}, st))
    assert res.subnet_warnings == [] and len(warnings(fake)) == len(want)
    hook2 = kube_status.DaemonStatusWriter(_writer(kubeconfig), l2_interval=0, subnet_interval=0)
    hook2.speaker_statuses = lambda: statuses
    res = hook2(_Batch({}, st))
    assert res.ok and len(warnings(fake)) == len(want)


def test_unreadable_status_keys_never_stop_the_write_back(fake, kubeconfig) -> None:
    objs = [POOL, L2AD, svc("web"), _node("node-a"), _slice("web", "node-a")]
    for o in objs:
        fake.put(o)
    _, st = decide(objs)
    hook = kube_status.DaemonStatusWriter(_writer(kubeconfig), l2_interval=0, subnet_interval=0)

    def broken() -> dict:
        raise ConnectionError("redis down")

    hook.speaker_statuses = broken
    res = hook(_Batch({"shop/web": {}}, st))
    assert res.ok and res.status_written == ["shop/web"] and warnings(fake) == []
