"""MetalLB parity stories for the controller's event paths (issue 13 item 1; metallb-behaviour.md §3.3, §3.6).

Each story is one path of MetalLB's ``convergeBalancer`` / ``allocateIPs`` in its source order, told as events and
checked where a user sees it: the replay JSON (``services[...].events``, ``reason``, ``ingress``) and
``streamlb explain`` (the ``allocation`` section). The expected texts are MetalLB's format strings with Go's
``%q`` / ``%v`` rendering, written out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from events import logfile, schema
from reconciler import explain, fold, state as statemod
from reconciler.runtime import replay

NS = "metallb-system"
DUAL = ("10.96.0.1", "fd00::1")


def pool(name: str, *addresses: str, **kw) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=schema.IPAddressPool(namespace=NS, name=name, addresses=tuple(addresses), **kw))


def svc(name: str, ns: str = "default", cips: tuple[str, ...] = ("10.96.0.1",), ann: dict | None = None,
        **kw) -> schema.K8sUpsert:
    kw.setdefault("type", "LoadBalancer")
    return schema.K8sUpsert(obj=schema.Service(
        namespace=ns, name=name, cluster_ips=cips, annotations=tuple(sorted((ann or {}).items())),
        ports=(schema.ServicePort(protocol="TCP", port=80),), **kw))


def replayed(tmp_path: Path, *events) -> dict:
    """The replay JSON of ``events`` (through a real .evlog file and ``replay``)."""
    path = tmp_path / "story.evlog"
    path.write_bytes(logfile.encode_file(list(events)))
    return json.loads(replay.replay([str(path)]).to_json())


def events_of(out: dict, key: str) -> list[tuple[str, str, str]]:
    return [(e["type"], e["reason"], e["message"]) for e in out["services"][key]["events"]]


def explained(*events, key: str) -> dict:
    st = fold.fold(list(events), statemod.new())
    out = explain.explain(st, key)
    assert out is not None
    return out["allocation"]


# --- requested IPs: AllocationFailed for a Service without IPs, LoadBalancerFailed for one holding IPs -----------


def test_invalid_requested_ips_on_a_service_without_ips_fail_allocation(tmp_path: Path) -> None:
    cases = {
        "unparsable": ({"metallb.io/loadBalancerIPs": "10.0.0.1,bogus"}, {},
                       'invalid metallb.io/loadBalancerIPs: "10.0.0.1,bogus"'),
        "spec": ({}, {"load_balancer_ip": "10.0.0"}, 'invalid spec.loadBalancerIP "10.0.0"'),
        "both": ({"metallb.io/loadBalancerIPs": "10.0.0.1"}, {"load_balancer_ip": "10.0.0.2"},
                 "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"),
        "three": ({"metallb.io/loadBalancerIPs": "10.0.0.1,10.0.0.2,2001:db8::1"}, {},
                  'IPFamilyForAddresses: invalid ips length 3 ["10.0.0.1" "10.0.0.2" "2001:db8::1"]'),
        "samefamily": ({"metallb.io/loadBalancerIPs": "2001:db8::1, 2001:db8::2"}, {},
                       'IPFamilyForAddresses: same address family ["2001:db8::1" "2001:db8::2"]'),
    }
    evs = [pool("p", "10.0.0.0/29", "2001:db8::/125")]
    evs += [svc(name, ann=ann, **kw) for name, (ann, kw, _) in cases.items()]
    out = replayed(tmp_path, *evs)
    for name, (_, _, err) in cases.items():
        key = f"default/{name}"
        assert events_of(out, key) == [("Warning", "AllocationFailed", f'Failed to allocate IP for "{key}": {err}')]
        assert out["services"][key]["ingress"] == [] and out["services"][key]["reason"] == "invalidRequestedIP"
        a = explained(*evs, key=key)
        assert a["requested"] == {"error": err}
        assert a["events"][-1] == {"type": "Warning", "reason": "AllocationFailed",
                                   "message": f'Failed to allocate IP for "{key}": {err}'}


def test_invalid_request_on_a_service_holding_ips_is_load_balancer_failed_and_keeps_them(tmp_path: Path) -> None:
    evs = [pool("p", "10.0.0.0/29"), svc("a"), svc("a", ann={"metallb.io/loadBalancerIPs": "nonsense"})]
    out = replayed(tmp_path, *evs)
    assert events_of(out, "default/a") == [
        ("Normal", "IPAllocated", 'Assigned IP ["10.0.0.0"]'),
        ("Warning", "LoadBalancerFailed",
         'invalid requested loadbalancer IPs: invalid metallb.io/loadBalancerIPs: "nonsense"'),
    ]
    assert out["services"]["default/a"]["ingress"] == ["10.0.0.0"] and out["services"]["default/a"]["reason"] is None
    a = explained(*evs, key="default/a")
    assert a["ingress"] == ["10.0.0.0"] and a["events"][-1]["reason"] == "LoadBalancerFailed"


def test_status_ip_outside_the_config_with_an_invalid_request_clears_then_load_balancer_failed(tmp_path: Path) -> None:
    # step 5: Assign fails (ClearAssignment), then the request's syntax is judged on the same path and stops
    evs = [pool("p", "10.0.0.0/29"), svc("a", ingress_ips=("192.168.9.9",), load_balancer_ip="x")]
    out = replayed(tmp_path, *evs)
    assert events_of(out, "default/a") == [
        ("Normal", "ClearAssignment", 'current IP for "default/a" not allowed by config, will attempt for new IP '
                                      'assignment: ["192.168.9.9"] is not allowed in config'),
        ("Warning", "LoadBalancerFailed", 'invalid requested loadbalancer IPs: invalid spec.loadBalancerIP "x"'),
    ]
    assert out["services"]["default/a"]["ingress"] == []
    assert explained(*evs, key="default/a")["reason"] == "invalidRequestedIP"


def test_status_ips_of_unknown_family_are_dropped_before_the_request_is_judged(tmp_path: Path) -> None:
    # step 4 drops them (nolbIPsIPFamily), so the Service reaches step 7 without IPs: AllocationFailed
    evs = [pool("p", "10.0.0.0/29"), svc("a", ingress_ips=("10.0.0.3", "10.0.0.4"), load_balancer_ip="x")]
    out = replayed(tmp_path, *evs)
    assert events_of(out, "default/a") == [
        ("Warning", "nolbIPsIPFamily", 'Failed to retrieve LBIPs IPFamily for ["10.0.0.3" "10.0.0.4"]: '
                                      'IPFamilyForAddresses: same address family ["10.0.0.3" "10.0.0.4"]'),
        ("Warning", "AllocationFailed", 'Failed to allocate IP for "default/a": invalid spec.loadBalancerIP "x"'),
    ]
    assert [e["reason"] for e in explained(*evs, key="default/a")["events"]] == ["nolbIPsIPFamily", "AllocationFailed"]


# --- cluster IPs ----------------------------------------------------------------------------------------------


def test_require_dual_stack_with_one_cluster_ip_prints_it_as_go_does(tmp_path: Path) -> None:
    evs = [pool("p", "10.0.0.0/29", "2001:db8::/125"), svc("d", ip_family_policy="RequireDualStack")]
    out = replayed(tmp_path, *evs)
    assert events_of(out, "default/d") == [
        ("Warning", "not enough clusterips", "Service requires dual stack but not enough clusterips [10.96.0.1]")]
    assert out["services"]["default/d"]["reason"] == "notEnoughClusterIPs"
    assert explained(*evs, key="default/d")["events"][0]["reason"] == "not enough clusterips"


def test_headless_cluster_ip_fails_allocation_with_metallb_family_error(tmp_path: Path) -> None:
    evs = [pool("p", "10.0.0.0/29"), svc("h", cips=("None",))]
    out = replayed(tmp_path, *evs)
    err = 'IPFamilyForAddresses: Invalid address ["None"]'
    assert events_of(out, "default/h") == [("Warning", "AllocationFailed", f'Failed to allocate IP for "default/h": {err}')]
    assert explained(*evs, key="default/h")["family_error"] == err


def test_headless_with_a_status_ip_reports_no_cluster_ips_family(tmp_path: Path) -> None:
    out = replayed(tmp_path, pool("p", "10.0.0.0/29"), svc("h", cips=("None",), ingress_ips=("10.0.0.1",)))
    assert events_of(out, "default/h") == [
        ("Warning", "noclusterIPsIPFamily", 'Failed to retrieve ClusterIPs IPFamily for ["None"] None: '
                                           'IPFamilyForAddresses: Invalid address ["None"]')]


# --- allocation errors in allocateIPs order ----------------------------------------------------------------------


def test_single_requested_ip_for_dual_cluster_ips_is_a_family_mismatch(tmp_path: Path) -> None:
    # MetalLB compares the requested family with the cluster-IP family exactly, also for PreferDualStack
    evs = [pool("p", "10.0.0.0/29", "2001:db8::/125"),
           svc("d", cips=DUAL, ip_family_policy="PreferDualStack", load_balancer_ip="10.0.0.3")]
    out = replayed(tmp_path, *evs)
    assert events_of(out, "default/d") == [
        ("Warning", "AllocationFailed", 'Failed to allocate IP for "default/d": requested loadBalancer IP(s) '
                                       '["10.0.0.3"] does not match the ipFamily of the service')]
    assert out["services"]["default/d"]["reason"] == "familyMismatch"
    assert explained(*evs, key="default/d")["requested"] == ["10.0.0.3"]


def test_pool_annotation_dual_stack_short_of_one_family_says_dual(tmp_path: Path) -> None:
    evs = [pool("p", "10.0.0.0/32", "2001:db8::/128"), svc("x", cips=("fd00::9",)),
           svc("d", cips=DUAL, ip_family_policy="RequireDualStack", ann={"metallb.io/address-pool": "p"})]
    out = replayed(tmp_path, *evs)
    assert events_of(out, "default/d") == [
        ("Warning", "AllocationFailed", 'Failed to allocate IP for "default/d": no available IPs in pool p for dual '
                                       'IPFamily')]
    assert explained(*evs, key="default/d")["reason"] == "noAvailableIPs"


def test_pool_annotation_checks_free_addresses_before_compatibility(tmp_path: Path) -> None:
    sa = schema.ServiceAllocation(namespaces=("team",))
    evs = [pool("t", "10.0.0.0/32", service_allocation=sa), svc("x", ns="team"),
           svc("a", ann={"metallb.io/address-pool": "t"}), svc("b", cips=("fd00::2",), ann={"metallb.io/address-pool": "t"})]
    out = replayed(tmp_path, *evs)
    assert events_of(out, "default/a")[-1][2] == 'Failed to allocate IP for "default/a": no available IPs in pool t'
    fold_out = replayed(tmp_path, pool("t", "10.0.0.0/30", service_allocation=sa),
                        svc("a", ann={"metallb.io/address-pool": "t"}))
    assert events_of(fold_out, "default/a")[-1][2] == (
        'Failed to allocate IP for "default/a": pool t not compatible for ip assignment')
    assert explained(*evs, key="default/a")["pools"][0]["pool"] == "t"


def test_prefer_dual_stack_additional_ip_failure_names_the_family_as_metallb(tmp_path: Path) -> None:
    evs = [pool("p", "10.0.1.0/32", "2001:db8::/128"), svc("x", cips=("fd00::9",)),
           svc("d", cips=DUAL, ip_family_policy="PreferDualStack")]
    out = replayed(tmp_path, *evs)
    assert events_of(out, "default/d") == [
        ("Normal", "IPAllocated", 'Assigned IP ["10.0.1.0"]'),
        ("Normal", "AdditionalAssignFailed",
         "cannot assign additional IP in PreferDualStack: no available IPs in pool p for ipv6 IPFamily"),
    ]
    assert explained(*evs, key="default/d")["reason"] == "partialDualStack"


# --- reason names (issue 13 item 3) ---------------------------------------------------------------------------------


def test_no_serving_endpoint_is_no_endpoints_in_bgp_and_l2(tmp_path: Path) -> None:
    """MetalLB's BGP speaker says ``noEndpoints`` when no endpoint serves anywhere; streamlb uses that name in both
    modes (README: MetalLB's L2 path says ``notOwner`` for it)."""
    evs = [
        pool("p", "10.0.0.0/29"),
        schema.K8sUpsert(obj=schema.Node(name="n1")),
        schema.K8sUpsert(obj=schema.L2Advertisement(namespace=NS, name="l2")),
        schema.K8sUpsert(obj=schema.BGPAdvertisement(namespace=NS, name="b")),
        schema.K8sUpsert(obj=schema.BGPPeer(namespace=NS, name="r", my_asn=64512, peer_asn=64513,
                                            peer_address="192.0.2.1")),
        svc("a"),
        schema.K8sUpsert(obj=schema.EndpointSlice(namespace="default", name="a-1", service_name="a", endpoints=(
            schema.Endpoint(addresses=("10.244.0.1",), ready=False, node_name="n1"),))),
    ]
    out = replayed(tmp_path, *evs)
    assert out["services"]["default/a"]["l2"] == {"10.0.0.0": {"node": None, "reason": "noEndpoints"}}
    assert out["bgp"] == {}
    st = fold.fold(evs, statemod.new())
    ex = explain.explain(st, "default/a")
    assert ex is not None
    assert ex["bgp"]["not_announcing"] == {"noEndpoints": ["n1"]}
    assert ex["l2"]["10.0.0.0"]["nodes"] == {"noEndpoints": ["n1"]}
