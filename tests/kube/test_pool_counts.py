"""IPAddressPool status counters from the reconciler state (MetalLB's counting rules, metallb-behaviour §4.9)."""

from __future__ import annotations

from events import kube, schema
from reconciler import fold
from reconciler import state as statemod
from reconciler.runtime.kube import status as kube_status


def _state(objs: list[dict]) -> statemod.State:
    st = statemod.new()
    for o in objs:
        fold.apply(st, schema.K8sUpsert(obj=kube.translate(o)))
    return st


def _pool(name: str, addresses: list[str], **spec) -> dict:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": "metallb-system"}, "spec": {"addresses": addresses, **spec}}


def _svc(name: str, ip: str, ingress: list[str]) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "d"},
            "spec": {"type": "LoadBalancer", "clusterIPs": [ip], "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]}}}


def test_counts_follow_metallb_rules() -> None:
    st = _state([
        _pool("a", ["1.2.3.0/24", "2.3.4.128/25"], avoidBuggyIPs=True),
        _pool("huge", ["1000::/64"], autoAssign=False),
        _svc("s1", "10.96.0.1", ["1.2.3.7"]),
        _svc("s2", "10.96.0.2", ["2.3.4.200"]),
    ])
    counts = kube_status.pool_counts(st)
    assert counts["a"] == {"assignedIPv4": 2, "availableIPv4": 381 - 2, "assignedIPv6": 0, "availableIPv6": 0}
    assert counts["huge"]["availableIPv6"] == 2**63 - 1  # saturates like MetalLB's MaxInt64
    assert counts["huge"]["assignedIPv6"] == 0


def test_no_configuration_no_counts() -> None:
    assert kube_status.pool_counts(statemod.new()) == {}
