"""Layer-2 eligibility and election stories, one per rule of metallb-behaviour.md §5.1–§5.2.

Each story folds a small cluster and checks the replay ``l2`` map (design.md §5), the per-node reasons that
``streamlb explain`` shows, and that the incremental plan agrees with the from-scratch reference in ``elect``.
"""

from __future__ import annotations

import copy

import pytest

from events import schema
from reconciler import decisions, effects, elect, fold, planning
from reconciler import state as statemod

NS = "metallb-system"


def up(obj) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=obj)


def pool(name: str = "p", *addresses: str, labels=()) -> schema.K8sUpsert:
    return up(schema.IPAddressPool(namespace=NS, name=name, addresses=addresses or ("192.168.1.0/28",),
                                   labels=labels))


def l2ad(name: str = "l2", **kw) -> schema.K8sUpsert:
    return up(schema.L2Advertisement(namespace=NS, name=name, **kw))


def node(name: str, labels=(), **kw) -> schema.K8sUpsert:
    return up(schema.Node(name=name, labels=tuple(sorted(labels)), **kw))


def svc(name: str, ns: str = "default", etp: str = "Cluster", ip: str = "", labels=(), annotations=()):
    return up(schema.Service(
        namespace=ns, name=name, type="LoadBalancer", cluster_ips=("10.96.0.1",), external_traffic_policy=etp,
        labels=tuple(sorted(labels)), annotations=tuple(sorted(annotations)),
        ingress_ips=(ip,) if ip else (),
    ))


def eps(svc_name: str, *nodes_ready: tuple[str, bool | None], ns: str = "default", serving=None, name=None):
    return up(schema.EndpointSlice(
        namespace=ns, name=name or f"{svc_name}-x", service_name=svc_name,
        endpoints=tuple(schema.Endpoint(addresses=(f"10.244.0.{i + 1}",), ready=r, serving=serving, node_name=n)
                        for i, (n, r) in enumerate(nodes_ready)),
    ))


def build(*events) -> statemod.State:
    st = fold.fold(events, statemod.new())
    planning.ensure(st)
    return st


def l2(st, key="default/a") -> dict:
    got = decisions.services(st)[key]["l2"]
    ref = elect.l2_map(st, key)
    assert got == ref, "incremental plan disagrees with the from-scratch election"
    return got


def reasons(st, key="default/a") -> dict[str, str | None]:
    """node -> the reason of its first IP (None = announces), checked against the reference."""
    out = {}
    for (_, name) in sorted(st.objects["Node"]):
        got = planning.l2_reasons(st, key, name)
        assert got == elect.should_announce(st, key, name)
        out[name] = next(iter(got.values())) if got else "-"
    return out


THREE = (node("node-a"), node("node-b"), node("node-c"))


# -- Rule 1: MetalLB's SHA-256 ranking ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "ip", "order"),
    [
        (["iris1", "iris2"], "10.20.30.1", ["iris2", "iris1"]),
        (["iris1", "iris2"], "10.20.30.2", ["iris1", "iris2"]),
        (["node-a", "node-b", "node-c"], "10.0.0.1", ["node-b", "node-a", "node-c"]),
        (["node-a", "node-b", "node-c"], "10.0.0.2", ["node-b", "node-c", "node-a"]),
        (["worker-a", "worker-b"], "10.20.30.1", ["worker-a", "worker-b"]),
    ],
)
def test_ranking_matches_metallb_verified_examples(nodes, ip, order) -> None:
    assert elect.rank(nodes, ip) == order
    assert elect.rank(list(reversed(nodes)), ip) == order


def test_the_winner_is_elected_on_the_first_ingress_ip_and_announces_all() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad(), *THREE, svc("a"), eps("a", ("node-a", True)))
    assert st.services["default/a"].ingress == ["10.0.0.1"]
    assert l2(st) == {"10.0.0.1": {"node": "node-b", "reason": None}}
    assert reasons(st) == {"node-a": "notOwner", "node-b": None, "node-c": "notOwner"}


def test_removing_a_non_winner_never_moves_the_ip_and_removing_the_winner_moves_it_to_the_runner_up() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad(), *THREE, svc("a"), eps("a", ("node-a", True)))
    fold.apply(st, schema.SpeakerDown(node="node-c"))
    assert l2(st)["10.0.0.1"]["node"] == "node-b"
    fold.apply(st, schema.SpeakerDown(node="node-b"))
    assert l2(st)["10.0.0.1"]["node"] == "node-a"
    assert reasons(st) == {"node-a": None, "node-b": "speakerDown", "node-c": "speakerDown"}
    fold.apply(st, schema.SpeakerUp(node="node-b"))
    assert l2(st)["10.0.0.1"]["node"] == "node-b"


# -- Rule 2: node eligibility ---------------------------------------------------------------------------------------


def test_network_unavailable_node_is_not_a_candidate() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad(), node("node-a"), node("node-b", network_unavailable=True),
               node("node-c"), svc("a"), eps("a", ("node-a", True)))
    assert l2(st)["10.0.0.1"]["node"] == "node-a"
    assert reasons(st)["node-b"] == "nodeNetworkUnavailable"


def test_exclude_from_external_load_balancers_label_any_value() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad(), node("node-a"),
               node("node-b", labels=[(elect.EXCLUDE_LABEL, "")]), node("node-c"),
               svc("a"), eps("a", ("node-a", True)))
    assert l2(st)["10.0.0.1"]["node"] == "node-a"
    assert reasons(st)["node-b"] == "nodeLabeledExcludeBalancers"
    fold.apply(st, node("node-b"))  # label removed
    assert l2(st)["10.0.0.1"]["node"] == "node-b"


def test_node_selectors_restrict_candidates_and_others_have_no_matching_advertisement() -> None:
    sel = schema.LabelSelector(match_labels=(("l2", "yes"),))
    st = build(pool("p", "10.0.0.1/32"), l2ad(node_selectors=(sel,)),
               node("node-a", labels=[("l2", "yes")]), node("node-b"), node("node-c", labels=[("l2", "yes")]),
               svc("a"), eps("a", ("node-b", True)))
    assert l2(st)["10.0.0.1"]["node"] == "node-a"
    assert reasons(st) == {"node-a": None, "node-b": "noMatchingAdvertisement", "node-c": "notOwner"}


def test_candidates_come_from_the_ads_of_all_nodes_union_of_two_ads() -> None:
    a = schema.LabelSelector(match_labels=(("zone", "a"),))
    b = schema.LabelSelector(match_labels=(("zone", "b"),))
    st = build(pool("p", "10.0.0.1/32"), l2ad("ad-a", node_selectors=(a,)), l2ad("ad-b", node_selectors=(b,)),
               node("node-a", labels=[("zone", "a")]), node("node-b", labels=[("zone", "b")]), node("node-c"),
               svc("a"), eps("a", ("node-a", True)))
    assert l2(st)["10.0.0.1"]["node"] == "node-b"  # node-b ranks first among {a, b}


def test_pool_without_l2_advertisement_is_allocated_but_not_in_the_l2_map() -> None:
    st = build(pool("p", "10.0.0.1/32"), pool("q", "10.0.1.0/30"), l2ad(ip_address_pools=("q",)), *THREE,
               svc("a"), eps("a", ("node-a", True)))
    assert st.services["default/a"].pool == "p"
    assert l2(st) == {}
    assert set(reasons(st).values()) == {"noMatchingAdvertisement"}


def test_ip_address_pool_selectors_select_pools_by_label() -> None:
    sel = schema.LabelSelector(match_labels=(("tier", "prod"),))
    st = build(pool("p", "10.0.0.1/32", labels=(("tier", "prod"),)), l2ad(ip_address_pool_selectors=(sel,)),
               *THREE, svc("a"), eps("a", ("node-a", True)))
    assert l2(st)["10.0.0.1"]["node"] == "node-b"
    fold.apply(st, pool("p", "10.0.0.1/32", labels=(("tier", "dev"),)))
    assert l2(st) == {}


def test_service_selectors_on_l2_advertisement() -> None:
    sel = schema.LabelSelector(match_labels=(("expose", "l2"),))
    st = build(pool("p", "10.0.0.0/30"), l2ad(service_selectors=(sel,)), *THREE,
               svc("a", labels=[("expose", "l2")]), svc("b"), eps("a", ("node-a", True)), eps("b", ("node-a", True)))
    assert l2(st, "default/a") != {} and l2(st, "default/b") == {}


def test_shared_ip_annotation_with_service_selector_ad_is_not_announced() -> None:
    sel = schema.LabelSelector(match_labels=(("expose", "l2"),))
    st = build(pool("p", "10.0.0.0/30"), l2ad(service_selectors=(sel,)), *THREE,
               svc("a", labels=[("expose", "l2")], annotations=[("metallb.io/allow-shared-ip", "k")]),
               eps("a", ("node-a", True)))
    assert l2(st) == {"10.0.0.0": {"node": None, "reason": "sharedIPWithServiceSelector"}}


# -- Rule 3: endpoints ----------------------------------------------------------------------------------------------


def test_no_serving_endpoint_anywhere_means_nobody_announces() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad(), *THREE, svc("a"), eps("a", ("node-a", False)))
    assert l2(st) == {"10.0.0.1": {"node": None, "reason": "noEndpoints"}}
    assert set(reasons(st).values()) == {"noEndpoints"}


def test_terminating_but_serving_endpoint_counts() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad(), *THREE, svc("a"), eps("a", ("node-a", False), serving=True))
    assert l2(st)["10.0.0.1"]["node"] == "node-b"


def test_etp_local_only_nodes_with_a_serving_endpoint_are_candidates() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad(), *THREE, svc("a", etp="Local"),
               eps("a", ("node-a", True), ("node-c", True), ("node-b", False)))
    assert l2(st)["10.0.0.1"]["node"] == "node-a"  # node-b would win under Cluster
    assert reasons(st) == {"node-a": None, "node-b": "noLocalEndpoints", "node-c": "notOwner"}


def test_etp_local_endpoint_on_an_ineligible_node_gives_no_local_endpoints() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad(), *THREE, svc("a", etp="Local"), eps("a", ("node-a", True)))
    fold.apply(st, schema.SpeakerDown(node="node-a"))
    assert l2(st) == {"10.0.0.1": {"node": None, "reason": "noLocalEndpoints"}}


def test_no_eligible_node_at_all() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad(), node("node-a", network_unavailable=True), svc("a"),
               eps("a", ("node-a", True)))
    assert l2(st) == {"10.0.0.1": {"node": None, "reason": "noEligibleNodes"}}


# -- §5.2 interfaces ----------------------------------------------------------------------------------------------


def test_interfaces_are_the_union_of_the_ads_selecting_the_owner_and_empty_means_all() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad("a1", interfaces=("eth1",)), l2ad("a2", interfaces=("eth0",)),
               *THREE, svc("a"), eps("a", ("node-a", True)))
    assert planning.node_plan(st, "node-b").l2 == {"10.0.0.1": ("eth0", "eth1")}
    fold.apply(st, l2ad("a3"))
    assert planning.node_plan(st, "node-b").l2 == {"10.0.0.1": ()}
    assert planning.node_plan(st, "node-a").l2 == {}


def test_interfaces_do_not_influence_the_election() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad(interfaces=("eth9",)), *THREE, svc("a"), eps("a", ("node-a", True)))
    assert l2(st)["10.0.0.1"]["node"] == "node-b"


# -- Rule 4: one owner per IP -------------------------------------------------------------------------------------


def _share(st: statemod.State, key: str, ips: list[str], pool_name: str = "p") -> None:
    """Give ``key`` the same IPs as another Service (what the allocator does for sharing keys)."""
    dec = st.services[key]
    dec.ingress, dec.pool = list(ips), pool_name
    planning.rebuild(st)


def test_services_sharing_an_ip_get_the_same_node_even_when_their_elections_differ() -> None:
    st = build(pool("p", "10.0.0.0/28"), l2ad(), *THREE, svc("a", etp="Local"), svc("b", ns="other", etp="Local"),
               eps("a", ("node-a", True)), eps("b", ("node-c", True), ns="other"))
    _share(st, "other/b", st.services["default/a"].ingress)
    ip = st.services["default/a"].ingress[0]
    assert l2(st, "default/a") == l2(st, "other/b") == {ip: {"node": "node-a", "reason": None}}
    announcers = [n for n in ("node-a", "node-b", "node-c")
                  for k in ("default/a", "other/b") if elect.should_announce(st, k, n).get(ip) is None]
    assert announcers == ["node-a"]


def test_exactly_one_owner_per_ip_over_many_services() -> None:
    nodes = [node(f"n{i}") for i in range(7)]
    services = [svc(f"s{i}") for i in range(12)]
    slices = [eps(f"s{i}", (f"n{i % 7}", True)) for i in range(12)]
    st = build(pool("p", "10.0.0.0/28"), l2ad(), *nodes, *services, *slices)
    owners: dict[str, list[str]] = {}
    for i in range(7):
        for ip in planning.node_plan(st, f"n{i}").l2:
            owners.setdefault(ip, []).append(f"n{i}")
    assert len(owners) == 12 and all(len(v) == 1 for v in owners.values())


def test_incremental_replans_only_the_ips_an_event_can_affect() -> None:
    nodes = [node(f"n{i}") for i in range(10)]
    services = [svc(f"s{i:02d}") for i in range(40)]
    slices = [eps(f"s{i:02d}", (f"n{i % 10}", True)) for i in range(40)]
    st = build(pool("p", "10.0.0.0/26"), l2ad(), *nodes, *services, *slices)
    plan = planning.ensure(st)
    before = plan.replanned_ips
    fold.apply(st, eps("s07", ("n3", True), ("n4", True)))
    planning.ensure(st)  # events are planned when the plan is next read
    assert plan.replanned_ips - before == 1  # only s07's IP
    owned = sorted(plan.owned_by["n5"])
    before = plan.replanned_ips
    fold.apply(st, schema.SpeakerDown(node="n5"))
    planning.ensure(st)
    assert plan.replanned_ips - before == len(owned) > 0  # exactly the IPs n5 owned
    assert "n5" not in plan.owned_by
    before, compared = plan.replanned_ips, plan.compared
    fold.apply(st, schema.SpeakerUp(node="n5"))
    planning.ensure(st)
    # one key comparison per Service re-elected while it was away (the others' owners beat it before it left)
    assert plan.compared - compared == len(owned)
    assert plan.replanned_ips - before == len(owned)  # n5 takes back exactly what it had
    assert sorted(plan.owned_by["n5"]) == owned
    before = plan.replanned_ips
    fold.apply(st, node("n2", labels=[("unrelated", "x")]))  # no selector looks at it
    planning.ensure(st)
    assert plan.owned_by.get("n2") and plan.replanned_ips - before == 0  # n2 keeps what it owns: nothing re-planned
    # away again; a Service re-planned meanwhile is compared on its return as well
    owned = sorted(plan.owned_by["n5"])
    fold.apply(st, schema.SpeakerDown(node="n5"))
    planning.ensure(st)
    fold.apply(st, eps("s15", ("n5", True), ("n6", True)))
    planning.ensure(st)
    compared = plan.compared
    fold.apply(st, schema.SpeakerUp(node="n5"))
    planning.ensure(st)
    assert plan.compared - compared == len(set(owned) | {"default/s15"})
    assert sorted(plan.owned_by["n5"]) == owned
    # labels no advertisement looks at changed while away: still only the re-elected Services are compared
    fold.apply(st, schema.SpeakerDown(node="n5"))
    planning.ensure(st)
    fold.apply(st, node("n5", labels=[("unrelated", "y")]))
    planning.ensure(st)
    compared = plan.compared
    fold.apply(st, schema.SpeakerUp(node="n5"))
    planning.ensure(st)
    assert plan.compared - compared == len(owned)
    assert sorted(plan.owned_by["n5"]) == owned
    fresh = planning.rebuild(copy.deepcopy(st))
    assert {k: r.owner for k, r in fresh.l2.items()} == {k: r.owner for k, r in plan.l2.items()}
    # down and up again between two reads of the plan: nothing to re-plan
    before, compared = plan.replanned_ips, plan.compared
    fold.apply(st, schema.SpeakerDown(node="n5"))
    fold.apply(st, schema.SpeakerUp(node="n5"))
    planning.ensure(st)
    assert (plan.replanned_ips, plan.compared) == (before, compared)


def test_explain_names_a_reason_for_every_node_that_does_not_announce() -> None:
    st = build(pool("p", "10.0.0.1/32"), l2ad(), node("node-a"), node("node-b", network_unavailable=True),
               node("node-c"), svc("a", etp="Local"), eps("a", ("node-a", True), ("node-c", True)))
    per_node = planning.explain(st, "default/a")
    assert {n: v["l2"] for n, v in per_node.items()} == {
        "node-a": {"10.0.0.1": None},  # MetalLB's order for 10.0.0.1 is node-b, node-a, node-c
        "node-b": {"10.0.0.1": "nodeNetworkUnavailable"},
        "node-c": {"10.0.0.1": "notOwner"},
    }
    assert all(v["bgp"] == {"reason": "notOwner", "peers": {}} for v in per_node.values())  # no BGPAdvertisement
    assert planning.explain_node(st, "node-c") == {"default/a": per_node["node-c"]}
    fold.apply(st, eps("a", ("node-c", True)))
    assert planning.explain(st, "default/a", "node-a")["node-a"]["l2"] == {"10.0.0.1": "noLocalEndpoints"}


def test_plan_between_two_states_withdraws_on_the_loser_and_announces_on_the_winner() -> None:
    base = (pool("p", "10.0.0.1/32"), l2ad(interfaces=("eth0",)), *THREE, svc("a"), eps("a", ("node-a", True)))
    old = build(*base)
    new = build(*base, schema.SpeakerDown(node="node-b"))
    assert planning.plan(old, new, "node-b") == [effects.L2Withdraw(ip="10.0.0.1")]
    (ann,) = planning.plan(old, new, "node-a")
    assert ann == effects.L2Announce(ip="10.0.0.1", interfaces=("eth0",), garp=effects.GarpSchedule(
        offsets_ms=(0, 1100, 2200, 3300, 4400), frames=("arp-request", "arp-reply")))
    assert planning.plan(old, new, "node-c") == [] and planning.plan(new, new, "node-a") == []
