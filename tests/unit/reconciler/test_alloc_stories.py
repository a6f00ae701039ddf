"""Step-by-step allocation stories, one per rule of metallb-behaviour.md §2.1, §3 and §4 (and streamlb's fixed
choices where MetalLB is random). Each story folds events and checks ingress, pool, reason and events."""

from __future__ import annotations

from events import schema
from reconciler import allocate, fold, state as statemod

NS = "metallb-system"


def pool(name: str, *addresses: str, **kw) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=schema.IPAddressPool(namespace=NS, name=name, addresses=tuple(addresses), **kw))


def del_pool(name: str) -> schema.K8sDelete:
    return schema.K8sDelete(ref=schema.ObjectRef(kind="IPAddressPool", namespace=NS, name=name))


def svc(name: str, ns: str = "default", cips: tuple[str, ...] = ("10.96.0.1",), ann: dict | None = None,
        ports: tuple = ((("TCP", 80)),), **kw) -> schema.K8sUpsert:
    kw.setdefault("type", "LoadBalancer")
    return schema.K8sUpsert(
        obj=schema.Service(
            namespace=ns, name=name, cluster_ips=cips,
            annotations=tuple(sorted((ann or {}).items())),
            ports=tuple(schema.ServicePort(protocol=p, port=n) for p, n in ports),
            **kw,
        )
    )


def delete(name: str, ns: str = "default") -> schema.K8sDelete:
    return schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace=ns, name=name))


def namespace(name: str, **labels: str) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=schema.Namespace(name=name, labels=tuple(sorted(labels.items()))))


def run(*events) -> statemod.State:
    return fold.fold(list(events), statemod.new())


def ing(st: statemod.State, key: str) -> list[str]:
    return st.services[key].ingress


def reasons(st: statemod.State, key: str) -> list[str]:
    return [e[1] for e in st.services[key].events]


def last(st: statemod.State, key: str) -> tuple[str, str, str]:
    return st.services[key].events[-1]


# --- §2.1 pools ------------------------------------------------------------------------------------------------


def test_lowest_address_first_and_cidr_host_bits_masked() -> None:
    st = run(pool("p", "10.20.30.40/30"), svc("a"), svc("b"))
    assert ing(st, "default/a") == ["10.20.30.40"] and ing(st, "default/b") == ["10.20.30.41"]
    assert st.services["default/a"].pool == "p"
    assert last(st, "default/a") == ("Normal", "IPAllocated", 'Assigned IP ["10.20.30.40"]')


def test_ranges_are_walked_in_spec_order_not_numeric_order() -> None:
    st = run(pool("p", "10.0.0.9-10.0.0.9", "10.0.0.1-10.0.0.2"), svc("a"), svc("b"), svc("c"))
    assert [ing(st, f"default/{n}") for n in "abc"] == [["10.0.0.9"], ["10.0.0.1"], ["10.0.0.2"]]


def test_avoid_buggy_ips_skips_dot0_and_dot255_in_every_24() -> None:
    st = run(pool("p", "10.0.0.254/31", "10.0.1.0/31", avoid_buggy_ips=True), svc("a"), svc("b"), svc("c"))
    assert ing(st, "default/a") == ["10.0.0.254"]
    assert ing(st, "default/b") == ["10.0.1.1"]
    assert ing(st, "default/c") == [] and st.services["default/c"].reason == "noAvailableIPs"
    assert last(st, "default/c") == ("Warning", "AllocationFailed", 'Failed to allocate IP for "default/c": no available IPs')


def test_auto_assign_false_pool_is_used_only_on_request() -> None:
    st = run(pool("manual", "10.0.0.0/30", auto_assign=False), svc("a"),
             svc("b", ann={"metallb.io/address-pool": "manual"}), svc("c", load_balancer_ip="10.0.0.3"))
    assert ing(st, "default/a") == [] and st.services["default/a"].reason == "noMatchingPool"
    assert last(st, "default/a")[2] == 'Failed to allocate IP for "default/a": no available IPs'  # MetalLB's text
    assert ing(st, "default/b") == ["10.0.0.0"] and ing(st, "default/c") == ["10.0.0.3"]


def test_huge_ipv6_pool_is_not_expanded() -> None:
    st = run(pool("v6", "2001:db8::/32"), *[svc(f"s{i}", cips=(f"fd00::{i + 1}",)) for i in range(3)])
    assert [ing(st, f"default/s{i}") for i in range(3)] == [["2001:db8::"], ["2001:db8::1"], ["2001:db8::2"]]
    assert allocate.pool_status(st)["v6"] == {
        "assignedIPv4": 0, "availableIPv4": 0, "assignedIPv6": 3, "availableIPv6": 2**63 - 1,
    }


def test_pool_status_counts_distinct_addresses_and_avoid_buggy_capacity() -> None:
    st = run(pool("p", "1.2.3.0/24", "2.3.4.128/25", avoid_buggy_ips=True),
             svc("a", ann={"metallb.io/allow-shared-ip": "k"}, ports=(("TCP", 80),)),
             svc("b", ann={"metallb.io/allow-shared-ip": "k"}, ports=(("TCP", 443),)))
    assert ing(st, "default/a") == ing(st, "default/b") == ["1.2.3.1"]
    assert allocate.pool_status(st)["p"] == {
        "assignedIPv4": 1, "availableIPv4": 380, "assignedIPv6": 0, "availableIPv6": 0,
    }


# --- §2.1 serviceAllocation and §4.5 pool order ---------------------------------------------------------------


def test_fallback_pools_in_name_order_and_pinned_pools_by_priority() -> None:
    st = run(
        pool("zeta", "10.0.9.0/30"), pool("alpha", "10.0.1.0/30"),
        pool("low", "10.0.5.0/30", service_allocation=schema.ServiceAllocation(priority=20, namespaces=("team",))),
        pool("high", "10.0.4.0/30", service_allocation=schema.ServiceAllocation(priority=10, namespaces=("team",))),
        pool("last", "10.0.6.0/30", service_allocation=schema.ServiceAllocation(priority=0, namespaces=("team",))),
        svc("plain"), svc("pinned", ns="team"),
    )
    assert st.services["default/plain"].pool == "alpha"
    assert st.services["team/pinned"].pool == "high"


def test_pinned_service_falls_back_to_general_pools_when_pinned_ones_are_full() -> None:
    sa = schema.ServiceAllocation(priority=1, namespaces=("team",))
    st = run(pool("pinned", "10.0.4.0/32", service_allocation=sa), pool("general", "10.0.1.0/30"),
             svc("a", ns="team"), svc("b", ns="team"))
    assert st.services["team/a"].pool == "pinned" and st.services["team/b"].pool == "general"


def test_pool_with_service_allocation_is_not_in_the_fallback_group() -> None:
    sa = schema.ServiceAllocation(namespaces=("team",))
    st = run(pool("pinned", "10.0.4.0/30", service_allocation=sa), svc("a"))
    assert ing(st, "default/a") == [] and st.services["default/a"].reason == "noMatchingPool"


def test_priority_only_service_allocation_matches_every_service() -> None:  # issue #2656
    st = run(pool("prio", "10.0.4.0/30", service_allocation=schema.ServiceAllocation(priority=5)),
             pool("general", "10.0.1.0/30"), svc("a"), svc("b", ns="other"))
    assert st.services["default/a"].pool == "prio" and st.services["other/b"].pool == "prio"


def test_namespace_selectors_follow_namespace_labels() -> None:
    sel = schema.LabelSelector(match_labels=(("env", "prod"),))
    sa = schema.ServiceAllocation(priority=1, namespace_selectors=(sel,))
    st = run(pool("prod", "10.0.4.0/30", service_allocation=sa), pool("general", "10.0.1.0/30"),
             namespace("shop", env="dev"), svc("a", ns="shop"))
    assert st.services["shop/a"].pool == "general"
    fold.apply(st, namespace("shop", env="prod"))
    assert st.services["shop/a"].pool == "general"  # sticky: the general pool still allows it
    fold.apply(st, svc("b", ns="shop"))
    assert st.services["shop/b"].pool == "prod"


def test_service_selectors_match_service_labels() -> None:
    sel = schema.LabelSelector(match_labels=(("tier", "edge"),))
    sa = schema.ServiceAllocation(priority=1, service_selectors=(sel,))
    st = run(pool("edge", "10.0.4.0/30", service_allocation=sa), pool("general", "10.0.1.0/30"),
             svc("a", labels=(("tier", "edge"),)), svc("b"))
    assert st.services["default/a"].pool == "edge" and st.services["default/b"].pool == "general"


def test_pool_annotation_honours_namespace_restriction() -> None:
    sa = schema.ServiceAllocation(namespaces=("team",))
    st = run(pool("teampool", "10.0.4.0/30", service_allocation=sa), svc("a", ann={"metallb.io/address-pool": "teampool"}))
    assert st.services["default/a"].reason == "noMatchingPool"
    assert last(st, "default/a")[2] == 'Failed to allocate IP for "default/a": pool teampool not compatible for ip assignment'


# --- §3.1 which Services ---------------------------------------------------------------------------------------


def test_only_load_balancer_services_and_type_change_releases() -> None:
    st = run(pool("p", "10.0.0.0/31"), svc("a"), svc("np", type="NodePort"))
    assert "default/np" not in st.services and ing(st, "default/a") == ["10.0.0.0"]
    fold.apply(st, svc("b"))
    fold.apply(st, svc("c"))
    assert st.services["default/c"].reason == "noAvailableIPs"
    fold.apply(st, svc("a", type="ClusterIP"))  # LB -> ClusterIP frees the address for the waiter
    assert "default/a" not in st.services and "default/a" not in st.assigned
    assert ing(st, "default/c") == ["10.0.0.0"]


def test_load_balancer_class_rules() -> None:
    st = run(pool("p", "10.0.0.0/30"), svc("mine"), svc("other", load_balancer_class="example.com/lb"))
    assert "default/other" not in st.services and ing(st, "default/mine") == ["10.0.0.0"]
    st2 = fold.fold([pool("p", "10.0.0.0/30"), svc("mine"), svc("other", load_balancer_class="x")], statemod.new("x"))
    assert "default/mine" not in st2.services and ing(st2, "default/other") == ["10.0.0.0"]


def test_service_without_cluster_ip_waits_and_headless_fails() -> None:
    st = run(pool("p", "10.0.0.0/30"), svc("a", cips=()), svc("h", cips=("None",)))
    assert st.services["default/a"].reason == "noClusterIP" and st.services["default/a"].events == []
    assert st.services["default/h"].reason == "noClusterIP" and last(st, "default/h")[1] == "AllocationFailed"
    fold.apply(st, svc("a"))
    assert ing(st, "default/a") == ["10.0.0.0"]


def test_no_configuration_then_first_pool() -> None:
    st = run(svc("a"))
    assert st.services["default/a"].reason == "noConfiguration" and st.services["default/a"].events == []
    fold.apply(st, pool("p", "10.0.0.0/30"))
    assert ing(st, "default/a") == ["10.0.0.0"]


def test_deleting_all_pools_clears_every_service_without_event() -> None:
    st = run(pool("p", "10.0.0.0/30"), svc("a"))
    n = len(st.services["default/a"].events)
    fold.apply(st, del_pool("p"))
    assert ing(st, "default/a") == [] and st.services["default/a"].reason == "noConfiguration"
    assert len(st.services["default/a"].events) == n


# --- §3.2 annotations and requested IPs ------------------------------------------------------------------------


def test_requested_ip_by_annotation_and_by_spec() -> None:
    st = run(pool("p", "10.0.0.0/29"), svc("a", ann={"metallb.io/loadBalancerIPs": "10.0.0.5"}),
             svc("b", load_balancer_ip="10.0.0.6"), svc("c"))
    assert ing(st, "default/a") == ["10.0.0.5"] and ing(st, "default/b") == ["10.0.0.6"]
    assert ing(st, "default/c") == ["10.0.0.0"]


def test_requested_ip_errors() -> None:
    st = run(
        pool("p", "10.0.0.0/29", "10.0.1.0/24", avoid_buggy_ips=True),
        svc("both", ann={"metallb.io/loadBalancerIPs": "10.0.0.5"}, load_balancer_ip="10.0.0.6"),
        svc("bad", ann={"metallb.io/loadBalancerIPs": "10.0.0.x"}),
        svc("outside", load_balancer_ip="192.168.0.1"),
        svc("buggy", load_balancer_ip="10.0.1.0"),
        svc("fam", load_balancer_ip="2001:db8::1"),
        svc("three", ann={"metallb.io/loadBalancerIPs": "10.0.0.1,10.0.0.2,10.0.0.3"}),
        svc("same", ann={"metallb.io/loadBalancerIPs": "10.0.0.1, 10.0.0.2"}),
    )
    r = {k.split("/")[1]: (d.reason, d.events[-1][1], d.events[-1][2]) for k, d in st.services.items()}
    assert r["both"][0] == "invalidRequestedIP" and "can not have both" in r["both"][2]
    # a Service without IPs goes through allocation: AllocationFailed, as MetalLB (LoadBalancerFailed is only for a
    # Service that already holds IPs, see test_invalid_request_on_an_assigned_service_keeps_its_ip)
    assert r["bad"] == ("invalidRequestedIP", "AllocationFailed",
                        'Failed to allocate IP for "default/bad": invalid metallb.io/loadBalancerIPs: "10.0.0.x"')
    assert r["outside"][:2] == ("requestedIPNotAllowed", "AllocationFailed")
    assert r["outside"][2].endswith('["192.168.0.1"] is not allowed in config')
    assert r["buggy"][0] == "requestedIPNotAllowed"
    assert r["fam"][0] == "familyMismatch" and "does not match the ipFamily" in r["fam"][2]
    assert r["three"] == ("invalidRequestedIP", "AllocationFailed",
                          'Failed to allocate IP for "default/three": IPFamilyForAddresses: invalid ips length 3 '
                          '["10.0.0.1" "10.0.0.2" "10.0.0.3"]')
    assert r["same"] == ("invalidRequestedIP", "AllocationFailed",
                         'Failed to allocate IP for "default/same": IPFamilyForAddresses: same address family '
                         '["10.0.0.1" "10.0.0.2"]')


def test_requested_ip_with_pool_annotation_must_be_in_that_pool() -> None:
    st = run(pool("p", "10.0.0.0/29"), pool("q", "10.0.1.0/29"),
             svc("a", load_balancer_ip="10.0.0.3", ann={"metallb.io/address-pool": "q"}))
    assert st.services["default/a"].reason == "noMatchingPool"
    assert "is not compatible with requested address pool q" in last(st, "default/a")[2]


def test_unknown_pool_annotation() -> None:
    st = run(pool("p", "10.0.0.0/29"), svc("a", ann={"metallb.io/address-pool": "nope"}))
    assert st.services["default/a"].reason == "unknownPool"
    assert last(st, "default/a")[2] == 'Failed to allocate IP for "default/a": unknown pool "nope"'
    fold.apply(st, pool("nope", "10.0.9.0/30"))
    assert ing(st, "default/a") == ["10.0.9.0"]


def test_changing_pool_annotation_moves_the_service() -> None:
    st = run(pool("p", "10.0.0.0/29"), pool("q", "10.0.1.0/29"), svc("a"))
    assert st.services["default/a"].pool == "p"
    fold.apply(st, svc("a", ann={"metallb.io/address-pool": "q"}))
    assert ing(st, "default/a") == ["10.0.1.0"] and st.services["default/a"].pool == "q"
    assert allocate.status_update(st, "default/a")["annotations"] == {"metallb.io/ip-allocated-from-pool": "q"}


def test_changing_requested_ip_moves_the_service() -> None:
    st = run(pool("p", "10.0.0.0/29"), svc("a", load_balancer_ip="10.0.0.2"))
    fold.apply(st, svc("a", load_balancer_ip="10.0.0.4"))
    assert ing(st, "default/a") == ["10.0.0.4"]
    assert last(st, "default/a") == ("Normal", "IPAllocated", 'Assigned IP ["10.0.0.4"]')


def test_legacy_annotation_prefix_is_honoured_with_a_deprecation_warning() -> None:
    st = run(pool("p", "10.0.0.0/29"), pool("q", "10.0.1.0/29"),
             svc("a", ann={"metallb.universe.tf/address-pool": "q"}),
             svc("b", ann={"metallb.universe.tf/address-pool": "q", "metallb.io/address-pool": "p"}))
    assert st.services["default/a"].pool == "q" and st.services["default/b"].pool == "p"
    assert ("Warning", "deprecatedAnnotation",
            "Service uses deprecated annotation metallb.universe.tf/address-pool") in st.services["default/a"].events


# --- §4.3 sharing ------------------------------------------------------------------------------------------------


def test_sharing_same_key_disjoint_ports() -> None:
    k = {"metallb.io/allow-shared-ip": "web"}
    st = run(pool("p", "10.0.0.0/29"), svc("a", ann=k, ports=(("TCP", 80),)), svc("b", ann=k, ports=(("TCP", 443),)),
             svc("c", ann=k, ports=(("UDP", 80),)), svc("d", ann=k, ports=(("TCP", 80),)))
    assert ing(st, "default/a") == ing(st, "default/b") == ing(st, "default/c") == ["10.0.0.0"]
    assert ing(st, "default/d") == ["10.0.0.1"]  # TCP/80 taken on .0: next address


def test_sharing_joins_the_lowest_shareable_address_not_a_free_one() -> None:
    k = {"metallb.io/allow-shared-ip": "web"}
    st = run(pool("p", "10.0.0.0/29"), svc("x"), svc("a", ann=k, ports=(("TCP", 80),)))
    fold.apply(st, delete("x"))
    fold.apply(st, svc("b", ann=k, ports=(("TCP", 81),)))
    assert ing(st, "default/b") == ["10.0.0.0"]  # .0 is free again and lower than the shareable .1
    fold.apply(st, svc("c", ann=k, ports=(("TCP", 82),)))
    assert ing(st, "default/c") == ["10.0.0.0"]


def test_sharing_rejections_with_metallb_errors() -> None:
    st = run(pool("p", "10.0.0.0/29"),
             svc("a", ann={"metallb.io/allow-shared-ip": "k"}, ports=(("TCP", 80),), load_balancer_ip="10.0.0.3"),
             svc("nokey", load_balancer_ip="10.0.0.3", ports=(("TCP", 81),)),
             svc("other", ann={"metallb.io/allow-shared-ip": "z"}, load_balancer_ip="10.0.0.3", ports=(("TCP", 82),)),
             svc("port", ann={"metallb.io/allow-shared-ip": "k"}, load_balancer_ip="10.0.0.3", ports=(("TCP", 80),)))
    assert st.services["default/nokey"].reason == "sharingConflict"
    assert last(st, "default/nokey")[2].endswith(
        'can\'t change sharing key for "default/nokey", address also in use by default/a')
    assert st.services["default/other"].reason == "sharingConflict"
    assert last(st, "default/port")[2].endswith('port TCP/80 is already in use on "10.0.0.3"')
    # the waiter gets the address when its holder leaves
    fold.apply(st, delete("a"))
    assert ing(st, "default/nokey") == ["10.0.0.3"]


def test_local_policy_shares_only_with_identical_selector() -> None:
    k = {"metallb.io/allow-shared-ip": "k"}
    st = run(pool("p", "10.0.0.0/29"),
             svc("a", ann=k, external_traffic_policy="Local", selector=(("app", "x"),), ports=(("TCP", 80),)),
             svc("b", ann=k, external_traffic_policy="Local", selector=(("app", "x"),), ports=(("TCP", 81),)),
             svc("c", ann=k, external_traffic_policy="Local", selector=(("app", "y"),), ports=(("TCP", 82),)),
             svc("d", ann=k, ports=(("TCP", 83),)))
    assert ing(st, "default/a") == ing(st, "default/b") == ["10.0.0.0"]
    assert ing(st, "default/c") == ["10.0.0.1"] and ing(st, "default/d") == ["10.0.0.2"]


def test_lone_owner_may_change_its_sharing_key() -> None:
    st = run(pool("p", "10.0.0.0/29"), svc("a", ann={"metallb.io/allow-shared-ip": "k"}))
    fold.apply(st, svc("a", ann={"metallb.io/allow-shared-ip": "other"}))
    assert ing(st, "default/a") == ["10.0.0.0"] and st.services["default/a"].reason is None


def test_changing_ports_into_a_conflict_moves_the_service() -> None:
    k = {"metallb.io/allow-shared-ip": "k"}
    st = run(pool("p", "10.0.0.0/29"), svc("a", ann=k, ports=(("TCP", 80),)), svc("b", ann=k, ports=(("TCP", 81),)))
    assert ing(st, "default/b") == ["10.0.0.0"]
    fold.apply(st, svc("b", ann=k, ports=(("TCP", 80),)))
    assert ing(st, "default/a") == ["10.0.0.0"] and ing(st, "default/b") == ["10.0.0.1"]
    assert reasons(st, "default/b")[-2:] == ["ClearAssignment", "IPAllocated"]


# --- §3.4 dual stack ---------------------------------------------------------------------------------------------


DUAL = ("10.96.0.1", "fd00::1")


def test_require_dual_stack_takes_both_families_from_one_pool() -> None:
    st = run(pool("v4only", "10.0.0.0/30"), pool("wdual", "10.0.1.0/30", "2001:db8::/126"),
             svc("d", cips=DUAL, ip_family_policy="RequireDualStack"))
    assert ing(st, "default/d") == ["10.0.1.0", "2001:db8::"] and st.services["default/d"].pool == "wdual"
    assert last(st, "default/d")[2] == 'Assigned IP ["10.0.1.0" "2001:db8::"]'


def test_require_dual_stack_needs_two_cluster_ips() -> None:
    st = run(pool("p", "10.0.1.0/30", "2001:db8::/126"), svc("d", ip_family_policy="RequireDualStack"))
    assert st.services["default/d"].reason == "notEnoughClusterIPs"
    assert last(st, "default/d")[:2] == ("Warning", "not enough clusterips")


def test_prefer_dual_stack_prefers_a_dual_pool_in_the_group_else_primary_family() -> None:
    st = run(pool("a4", "10.0.0.0/30"), pool("b6", "2001:db8:1::/126"), pool("cdual", "10.0.1.0/30", "2001:db8::/126"),
             svc("d", cips=DUAL, ip_family_policy="PreferDualStack"))
    assert st.services["default/d"].pool == "cdual"
    st = run(pool("a4", "10.0.0.0/30"), pool("b6", "2001:db8:1::/126"),
             svc("d", cips=DUAL, ip_family_policy="PreferDualStack", ip_families=("IPv6", "IPv4")))
    assert ing(st, "default/d") == ["2001:db8:1::"]


def test_prefer_dual_stack_adds_the_missing_family_later() -> None:
    st = run(pool("p", "10.0.1.0/32", "2001:db8::/128"), svc("x", cips=("fd00::9",)),
             svc("d", cips=DUAL, ip_family_policy="PreferDualStack"))
    assert ing(st, "default/d") == ["10.0.1.0"] and st.services["default/d"].reason == "partialDualStack"
    assert last(st, "default/d")[:2] == ("Normal", "AdditionalAssignFailed")
    fold.apply(st, delete("x"))  # frees the v6 address: the partial Service is woken
    assert ing(st, "default/d") == ["10.0.1.0", "2001:db8::"] and st.services["default/d"].reason is None
    assert ("Normal", "IPAllocated", 'Assigned additional IP "2001:db8::"') in st.services["default/d"].events


def test_prefer_dual_stack_with_single_cluster_ip_gets_one_ip() -> None:
    st = run(pool("p", "10.0.1.0/30", "2001:db8::/126"), svc("d", ip_family_policy="PreferDualStack"))
    assert ing(st, "default/d") == ["10.0.1.0"] and st.services["default/d"].reason is None


def test_dual_stack_requested_ips_keep_user_order() -> None:
    st = run(pool("p", "10.0.1.0/30", "2001:db8::/126"),
             svc("d", cips=DUAL, ip_family_policy="RequireDualStack",
                 ann={"metallb.io/loadBalancerIPs": "2001:db8::2,10.0.1.2"}))
    assert ing(st, "default/d") == ["2001:db8::2", "10.0.1.2"]


def test_family_change_of_cluster_ip_drops_the_wrong_family() -> None:
    st = run(pool("p", "10.0.1.0/30", "2001:db8::/126"), svc("a"))
    assert ing(st, "default/a") == ["10.0.1.0"]
    fold.apply(st, svc("a", cips=("fd00::1",)))
    assert ing(st, "default/a") == ["2001:db8::"]
    assert allocate.pool_status(st)["p"]["assignedIPv4"] == 0


# --- §4.7 pool changes --------------------------------------------------------------------------------------------


def test_shrinking_a_pool_reassigns_only_the_services_outside_it() -> None:
    st = run(pool("p", "10.0.0.0/29"), svc("a"), svc("b"), svc("c"))
    fold.apply(st, pool("p", "10.0.0.0/30", "10.0.0.5/32"))  # .4 and .6/.7 gone; a,b,c hold .0,.1,.2
    assert [ing(st, f"default/{n}") for n in "abc"] == [["10.0.0.0"], ["10.0.0.1"], ["10.0.0.2"]]
    fold.apply(st, pool("p", "10.0.0.1/32", "10.0.0.5/32", "10.0.0.7/32"))
    assert ing(st, "default/b") == ["10.0.0.1"]
    assert ing(st, "default/a") == ["10.0.0.5"] and ing(st, "default/c") == ["10.0.0.7"]
    assert reasons(st, "default/a")[-2:] == ["ClearAssignment", "IPAllocated"]
    assert "not allowed by config" in st.services["default/a"].events[-2][2]


def test_renaming_a_pool_keeps_the_ip_and_updates_the_pool() -> None:
    st = run(pool("old", "10.0.0.0/29"), svc("a"))
    fold.apply(st, del_pool("old"))
    st2 = run(pool("old", "10.0.0.0/29"), svc("a"))
    fold.apply(st2, pool("new", "10.0.1.0/29"))
    fold.apply(st2, pool("old", "10.0.9.0/29"))  # a's address moves out of "old"...
    assert ing(st2, "default/a") == ["10.0.1.0"]  # ...so a is re-allocated from the fallback order
    st3 = run(pool("old", "10.0.0.0/29"), svc("a"))
    # replace the pool by one with another name covering the same addresses (two steps: delete, then add)
    fold.apply(st3, pool("zzz", "10.0.5.0/29"))
    assert st3.services["default/a"].pool == "old"


def test_turning_on_avoid_buggy_ips_moves_a_dot0_service() -> None:
    st = run(pool("p", "10.0.0.0/29"), svc("a"), svc("b"))
    fold.apply(st, pool("p", "10.0.0.0/29", avoid_buggy_ips=True))
    assert ing(st, "default/a") == ["10.0.0.2"] and ing(st, "default/b") == ["10.0.0.1"]


def test_namespace_restriction_added_to_a_pool_moves_services_out() -> None:
    st = run(pool("p", "10.0.0.0/29"), pool("q", "10.0.1.0/29"), svc("a"))
    fold.apply(st, pool("p", "10.0.0.0/29", service_allocation=schema.ServiceAllocation(namespaces=("team",))))
    assert st.services["default/a"].pool == "q"
    assert "pool p not compatible for ip assignment" in st.services["default/a"].events[-2][2]


# --- §4.8 / Rule 4: restore from status ---------------------------------------------------------------------------


def test_status_ips_are_reclaimed_before_pending_services_allocate() -> None:
    st = run(svc("new"), svc("old", ingress_ips=("10.0.0.0",)), pool("p", "10.0.0.0/31"))
    assert ing(st, "default/old") == ["10.0.0.0"] and ing(st, "default/new") == ["10.0.0.1"]
    assert "IPAllocated" not in reasons(st, "default/old")  # re-claim is silent, as MetalLB's re-Assign


def test_status_claim_beats_an_unconfirmed_assignment() -> None:
    st = run(pool("p", "10.0.0.0/31"), svc("new"))
    assert ing(st, "default/new") == ["10.0.0.0"]
    fold.apply(st, svc("old", ingress_ips=("10.0.0.0",)))
    assert ing(st, "default/old") == ["10.0.0.0"] and ing(st, "default/new") == ["10.0.0.1"]


def test_confirmed_assignment_keeps_its_ip_against_a_stale_status() -> None:
    st = run(pool("p", "10.0.0.0/31"), svc("new"), svc("new", ingress_ips=("10.0.0.0",)),
             svc("old", ingress_ips=("10.0.0.0",)))
    assert ing(st, "default/new") == ["10.0.0.0"] and ing(st, "default/old") == ["10.0.0.1"]
    assert reasons(st, "default/old") == ["ClearAssignment", "IPAllocated"]


def test_status_ip_outside_config_is_cleared_with_event() -> None:
    st = run(pool("p", "10.0.0.0/31"), svc("a", ingress_ips=("192.168.9.9",)))
    assert ing(st, "default/a") == ["10.0.0.0"]
    assert st.services["default/a"].events[0][:2] == ("Normal", "ClearAssignment")


def test_unrelated_deletion_does_not_move_assignments() -> None:  # issue #2723
    st = run(pool("p", "10.0.0.0/29"), svc("a"), svc("b"), svc("c"))
    before = {k: list(d.ingress) for k, d in st.services.items()}
    fold.apply(st, delete("a"))
    fold.apply(st, svc("d"))
    assert ing(st, "default/b") == before["default/b"] and ing(st, "default/c") == before["default/c"]
    assert ing(st, "default/d") == ["10.0.0.0"]


def test_freed_address_goes_to_waiters_in_key_order() -> None:
    st = run(pool("p", "10.0.0.0/32"), svc("holder"), svc("zz"), svc("aa", ns="x"), svc("mm"))
    fold.apply(st, delete("holder"))
    assert ing(st, "default/mm") == ["10.0.0.0"]  # default/mm < default/zz < x/aa
    fold.apply(st, delete("mm"))
    assert ing(st, "default/zz") == ["10.0.0.0"]


def test_waiter_of_a_pinned_pool_is_woken_by_its_pool() -> None:
    sa = schema.ServiceAllocation(priority=1, namespaces=("team",))
    st = run(pool("pin", "10.0.4.0/32", service_allocation=sa), pool("gen", "10.0.1.0/32"),
             svc("g"), svc("t1", ns="team"), svc("t2", ns="team"))
    assert st.services["team/t2"].reason == "noAvailableIPs"
    fold.apply(st, delete("t1", ns="team"))
    assert ing(st, "team/t2") == ["10.0.4.0"]


def test_pool_growth_serves_pending_services() -> None:
    st = run(pool("p", "10.0.0.0/32"), svc("a"), svc("b"))
    assert st.services["default/b"].reason == "noAvailableIPs"
    fold.apply(st, pool("p", "10.0.0.0/31"))
    assert ing(st, "default/b") == ["10.0.0.1"] and ing(st, "default/a") == ["10.0.0.0"]


def test_event_history_does_not_repeat_identical_events() -> None:
    st = run(pool("p", "10.0.0.0/32"), svc("a"), svc("b"))
    for i in range(3):
        fold.apply(st, svc("b", labels=(("i", str(i)),), ip_family_policy="SingleStack", load_balancer_ip=""))
    assert reasons(st, "default/b") == ["AllocationFailed"]


# --- more of §3.3 / §4 ---------------------------------------------------------------------------------------------


def test_status_with_two_ips_of_one_family_is_dropped_with_warning() -> None:
    st = run(pool("p", "10.0.0.0/29"), svc("a", ingress_ips=("10.0.0.3", "10.0.0.4")))
    assert st.services["default/a"].events[0][:2] == ("Warning", "nolbIPsIPFamily")
    assert ing(st, "default/a") == ["10.0.0.0"]


def test_conflicting_statuses_on_first_load_holders_by_count_then_key() -> None:
    st = run(
        svc("b", ingress_ips=("10.0.0.1",)), svc("a", ingress_ips=("10.0.0.1",)),
        svc("d", cips=DUAL, ip_family_policy="RequireDualStack", ingress_ips=("10.0.0.2", "2001:db8::")),
        svc("c", ingress_ips=("10.0.0.2",)),
        pool("p", "10.0.0.0/29", "2001:db8::/126"),
    )
    assert ing(st, "default/d") == ["10.0.0.2", "2001:db8::"]  # two ingress IPs: first
    assert ing(st, "default/a") == ["10.0.0.1"]  # then key order among equals
    assert reasons(st, "default/b") == ["ClearAssignment", "IPAllocated"] and ing(st, "default/b") == ["10.0.0.0"]
    assert reasons(st, "default/c") == ["ClearAssignment", "IPAllocated"] and ing(st, "default/c") == ["10.0.0.3"]


def test_invalid_spec_load_balancer_ip() -> None:
    st = run(pool("p", "10.0.0.0/29"), svc("a", load_balancer_ip="10.0.0"))
    assert st.services["default/a"].reason == "invalidRequestedIP"
    assert last(st, "default/a") == (
        "Warning", "AllocationFailed", 'Failed to allocate IP for "default/a": invalid spec.loadBalancerIP "10.0.0"')


def test_invalid_request_on_an_assigned_service_keeps_its_ip() -> None:
    st = run(pool("p", "10.0.0.0/29"), svc("a"))
    fold.apply(st, svc("a", ann={"metallb.io/loadBalancerIPs": "nonsense"}))
    assert ing(st, "default/a") == ["10.0.0.0"]
    assert last(st, "default/a")[:2] == ("Warning", "LoadBalancerFailed")


def test_capacity_counting_examples() -> None:
    st = run(pool("p", "1.2.3.0/31", "1000::/127", avoid_buggy_ips=True))
    assert allocate.pool_status(st)["p"] == {
        "assignedIPv4": 0, "availableIPv4": 1, "assignedIPv6": 0, "availableIPv6": 2,
    }
    st = run(pool("q", "1.2.3.0/24", "2.3.4.128/25"))
    assert allocate.pool_status(st)["q"]["availableIPv4"] == 384


def test_namespace_selector_matching_nothing_pool_serves_only_explicit_requests() -> None:
    sel = schema.LabelSelector(match_labels=(("env", "nowhere"),))
    sa = schema.ServiceAllocation(namespace_selectors=(sel,))
    st = run(pool("odd", "10.0.0.0/30", service_allocation=sa), svc("auto"),
             svc("ann", ann={"metallb.io/address-pool": "odd"}), svc("req", load_balancer_ip="10.0.0.3"))
    assert ing(st, "default/auto") == [] and st.services["default/auto"].reason == "noMatchingPool"
    assert ing(st, "default/ann") == ["10.0.0.0"] and ing(st, "default/req") == ["10.0.0.3"]


def test_shared_ip_is_freed_only_when_the_last_sharer_leaves() -> None:
    k = {"metallb.io/allow-shared-ip": "k"}
    st = run(pool("p", "10.0.0.0/32"), svc("a", ann=k, ports=(("TCP", 80),)), svc("b", ann=k, ports=(("TCP", 81),)),
             svc("w"))
    assert st.services["default/w"].reason == "noAvailableIPs"
    fold.apply(st, delete("a"))
    assert ing(st, "default/b") == ["10.0.0.0"] and st.services["default/w"].reason == "noAvailableIPs"
    fold.apply(st, delete("b"))
    assert ing(st, "default/w") == ["10.0.0.0"]
    assert allocate.pool_status(st)["p"]["assignedIPv4"] == 1


def test_status_update_effect_carries_ingress_and_pool_annotation() -> None:
    st = run(pool("p", "10.0.0.0/32"), svc("a"), svc("b"))
    assert allocate.status_update(st, "default/a") == {
        "ingress": [{"ip": "10.0.0.0"}], "annotations": {"metallb.io/ip-allocated-from-pool": "p"}}
    assert allocate.status_update(st, "default/b") == {
        "ingress": [], "annotations": {"metallb.io/ip-allocated-from-pool": None}}
