"""BGP advertisement stories, one per attribute and conflict rule of metallb-behaviour.md §2.3, §2.5, §6.1–§6.3,
checked through the replay ``bgp`` map (design.md §5) and the per-node reasons of ``streamlb explain``."""

from __future__ import annotations

import dataclasses

from events import schema
from reconciler import bgpplan, decisions, elect, fold, planning
from reconciler import state as statemod

NS = "metallb-system"


def up(obj) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=obj)


def pool(name: str = "p", *addresses: str) -> schema.K8sUpsert:
    return up(schema.IPAddressPool(namespace=NS, name=name, addresses=addresses or ("10.0.0.0/24",)))


def bgpad(name: str = "ad", **kw) -> schema.K8sUpsert:
    return up(schema.BGPAdvertisement(namespace=NS, name=name, **kw))


def peer(name: str, asn: int = 64512, **kw) -> schema.K8sUpsert:
    return up(schema.BGPPeer(namespace=NS, name=name, my_asn=64512, peer_asn=asn,
                             peer_address=f"10.9.0.{1 + sum(map(ord, name)) % 250}", **kw))


def node(name: str, labels=(), **kw) -> schema.K8sUpsert:
    return up(schema.Node(name=name, labels=tuple(sorted(labels)), **kw))


def svc(name: str, etp: str = "Cluster", labels=(), cluster_ips=("10.96.0.1",), policy="SingleStack", ingress=()):
    return up(schema.Service(
        namespace="default", name=name, type="LoadBalancer", cluster_ips=cluster_ips, external_traffic_policy=etp,
        labels=tuple(sorted(labels)), ip_family_policy=policy, ingress_ips=tuple(ingress),
    ))


def eps(svc_name: str, *nodes: str, ready: bool = True):
    return up(schema.EndpointSlice(
        namespace="default", name=f"{svc_name}-x", service_name=svc_name,
        endpoints=tuple(schema.Endpoint(addresses=(f"10.244.0.{i + 1}",), ready=ready, node_name=n)
                        for i, n in enumerate(nodes)),
    ))


TWO = (node("node-a", labels=[("rack", "1")]), node("node-b", labels=[("rack", "2")]))
SEL = schema.LabelSelector(match_labels=(("expose", "bgp"),))


def build(*events) -> statemod.State:
    st = fold.fold(events, statemod.new())
    planning.ensure(st)
    return st


def bgp(st) -> dict:
    got = decisions.bgp(st)
    saved = st.plan
    st.plan = None
    ref = decisions.bgp(st)
    st.plan = saved
    assert got == ref, "incremental BGP plan disagrees with a full recomputation"
    return got


def reason(st, node_name: str, key: str = "default/a") -> str | None:
    return planning.bgp_reason(st, key, node_name)[0]


def adv(prefix: str, lp=None, comms=()) -> dict:
    return {"prefix": prefix, "local_pref": lp, "communities": list(comms)}


# -- §6.1 who announces ---------------------------------------------------------------------------------------------


def test_every_eligible_node_advertises_the_host_route_to_every_peer_ecmp() -> None:
    st = build(pool(), bgpad(), peer("p1"), *TWO, svc("a"), eps("a", "node-a"))
    assert bgp(st) == {"node-a": {"p1": [adv("10.0.0.0/32")]}, "node-b": {"p1": [adv("10.0.0.0/32")]}}


def test_no_serving_endpoint_anywhere_for_cluster_policy() -> None:
    st = build(pool(), bgpad(), peer("p1"), *TWO, svc("a"), eps("a", "node-a", ready=False))
    assert bgp(st) == {}
    assert reason(st, "node-a") == reason(st, "node-b") == "noEndpoints"


def test_etp_local_only_nodes_with_a_local_serving_endpoint() -> None:
    st = build(pool(), bgpad(), peer("p1"), *TWO, svc("a", etp="Local"), eps("a", "node-b"))
    assert list(bgp(st)) == ["node-b"]
    assert reason(st, "node-a") == "noLocalEndpoints"


def test_advertisement_node_selectors_pick_the_next_hops() -> None:
    rack1 = schema.LabelSelector(match_labels=(("rack", "1"),))
    st = build(pool(), bgpad(node_selectors=(rack1,)), peer("p1"), *TWO, svc("a"), eps("a", "node-b"))
    assert list(bgp(st)) == ["node-a"]
    assert reason(st, "node-b") == "notOwner"


def test_service_selectors_not_matching_give_no_matching_advertisement() -> None:
    st = build(pool(), bgpad(service_selectors=(SEL,)), peer("p1"), *TWO, svc("a"), svc("b", labels=[("expose", "bgp")]),
               eps("a", "node-a"), eps("b", "node-a"))
    assert reason(st, "node-a", "default/a") == "noMatchingAdvertisement"
    assert reason(st, "node-a", "default/b") is None


def test_pool_without_bgp_advertisement_is_not_advertised() -> None:
    st = build(pool(), pool("q", "10.1.0.0/28"), bgpad(ip_address_pools=("q",)), peer("p1"), *TWO, svc("a"),
               eps("a", "node-a"))
    assert bgp(st) == {}
    assert reason(st, "node-a") == "notOwner"


def test_node_problems_stop_bgp_too() -> None:
    st = build(pool(), bgpad(), peer("p1"), node("node-a", network_unavailable=True),
               node("node-b", labels=[(elect.EXCLUDE_LABEL, "true")]), node("node-c"), svc("a"), eps("a", "node-a"))
    fold.apply(st, schema.SpeakerDown(node="node-c"))
    assert bgp(st) == {}
    assert [reason(st, n) for n in ("node-a", "node-b", "node-c")] == [
        "nodeNetworkUnavailable", "nodeLabeledExcludeBalancers", "speakerDown"]


# -- §6.2 sessions, §6.3 peers ------------------------------------------------------------------------------------


def test_peer_node_selectors_and_advertisement_peers_restrict_sessions() -> None:
    rack2 = schema.LabelSelector(match_labels=(("rack", "2"),))
    st = build(pool(), bgpad("ad1", peers=("p2",)), bgpad("ad2", aggregation_length=24), peer("p1"),
               peer("p2", node_selectors=(rack2,)), *TWO, svc("a"), eps("a", "node-a"))
    assert bgp(st) == {
        "node-a": {"p1": [adv("10.0.0.0/24")]},
        "node-b": {"p1": [adv("10.0.0.0/24")], "p2": [adv("10.0.0.0/24"), adv("10.0.0.0/32")]},  # ad2: all peers
    }


# -- §6.3 attributes ------------------------------------------------------------------------------------------------


def test_aggregation_length_v4_and_v6_and_local_pref() -> None:
    st = build(pool("p", "10.0.0.0/24", "fd00::/64"),
               bgpad(aggregation_length=26, aggregation_length_v6=64, local_pref=150), peer("p1"), node("node-a"),
               svc("a", cluster_ips=("10.96.0.1", "fd00:96::1"), policy="RequireDualStack"), eps("a", "node-a"))
    assert st.services["default/a"].ingress == ["10.0.0.0", "fd00::"]
    assert bgp(st) == {"node-a": {"p1": [adv("10.0.0.0/26", 150), adv("fd00::/64", 150)]}}


def test_communities_standard_large_and_aliases_sorted_as_metallb_does() -> None:
    alias = up(schema.Community(namespace=NS, name="c", communities=(
        schema.CommunityAlias(name="NO_ADVERTISE", value="65535:65282"),
        schema.CommunityAlias(name="big", value="large:7:8:9"),
    )))
    st = build(pool(), alias, bgpad(communities=("NO_ADVERTISE", "0:100", "large:1:2:3", "big")), peer("p1"),
               node("node-a"), svc("a"), eps("a", "node-a"))
    # standard A:B sorts as the large community (A<<16|B, 0, 0)
    assert bgp(st)["node-a"]["p1"][0]["communities"] == ["large:1:2:3", "large:7:8:9", "0:100", "65535:65282"]


def test_two_advertisements_two_prefixes_each_with_its_attributes() -> None:
    st = build(pool(), bgpad("host", local_pref=100, communities=("64512:1",)),
               bgpad("agg", aggregation_length=24, local_pref=1000), peer("p1"), node("node-a"),
               svc("a"), eps("a", "node-a"))
    assert bgp(st) == {"node-a": {"p1": [adv("10.0.0.0/24", 1000), adv("10.0.0.0/32", 100, ["64512:1"])]}}


def test_duplicates_merge_communities_united_and_first_ad_by_name_keeps_local_pref() -> None:
    st = build(pool(), bgpad("b-ad", aggregation_length=24, local_pref=200, communities=("1:2",)),
               bgpad("a-ad", aggregation_length=24, local_pref=200, communities=("1:1",)), peer("p1"), node("node-a"),
               svc("a"), svc("b"), eps("a", "node-a"), eps("b", "node-a"))
    assert bgp(st) == {"node-a": {"p1": [adv("10.0.0.0/24", 200, ["1:1", "1:2"])]}}


def test_merge_keeps_the_first_advertisement_by_name() -> None:
    merged = bgpplan.merge([("p", (4, 1, 32), "zz", 5, ("1:1",)), ("p", (4, 1, 32), "aa", 7, ("2:2",))])
    assert merged == {("p", (4, 1, 32)): (7, ("1:1", "2:2"))}


def test_sorted_by_family_then_numeric_address_then_length() -> None:
    st = build(pool("p", "10.0.0.0/28", "fd00::/120"), bgpad("x"), bgpad("y", aggregation_length=28), peer("p1"),
               node("node-a"), svc("a", cluster_ips=("fd00:96::1",)), svc("b"), svc("c"), eps("a", "node-a"),
               eps("b", "node-a"), eps("c", "node-a"))
    assert [a["prefix"] for a in bgp(st)["node-a"]["p1"]] == [
        "10.0.0.0/28", "10.0.0.0/32", "10.0.0.1/32", "fd00::/128"]


# -- §2.3 conflicts -------------------------------------------------------------------------------------------------


def _conflict_state(**second) -> statemod.State:
    return build(pool(), bgpad("a1", local_pref=100, service_selectors=(SEL,)),
                 bgpad("a2", local_pref=200, service_selectors=(SEL,), **second), peer("p1"), peer("p2"),
                 node("node-a"), svc("a", labels=[("expose", "bgp")]), eps("a", "node-a"))


def test_different_local_pref_same_prefix_same_peer_is_not_announced() -> None:
    st = _conflict_state()
    assert bgp(st) == {}
    assert reason(st, "node-a") == "conflictingAdvertisements"


def test_different_aggregation_is_no_conflict() -> None:
    st = _conflict_state(aggregation_length=24)
    assert reason(st, "node-a") is None


def test_disjoint_peer_lists_are_no_conflict_but_overlapping_ones_are() -> None:
    st = build(pool(), bgpad("a1", local_pref=100, peers=("p1",)), bgpad("a2", local_pref=200, peers=("p2",)),
               peer("p1"), peer("p2"), node("node-a"), svc("a", labels=[("expose", "bgp")]), eps("a", "node-a"))
    assert bgp(st) == {"node-a": {"p1": [adv("10.0.0.0/32", 100)], "p2": [adv("10.0.0.0/32", 200)]}}
    # with serviceSelectors the configuration is accepted and the speaker re-checks per Service (§2.3)
    fold.apply(st, bgpad("a1", local_pref=100, peers=("p1",), service_selectors=(SEL,)))
    fold.apply(st, bgpad("a2", local_pref=200, peers=("p2", "p1"), service_selectors=(SEL,)))
    assert st.config_valid
    assert reason(st, "node-a") == "conflictingAdvertisements"
    assert bgp(st) == {}


def test_dual_stack_pool_needs_both_aggregations_to_differ() -> None:
    st = build(pool("p", "10.0.0.0/24", "fd00::/64"), bgpad("a1", local_pref=100),
               bgpad("a2", local_pref=200, aggregation_length=24), peer("p1"), node("node-a"), svc("a"),
               eps("a", "node-a"))
    assert reason(st, "node-a") == "conflictingAdvertisements"
    fold.apply(st, bgpad("a2", local_pref=200, aggregation_length=24, aggregation_length_v6=64))
    assert reason(st, "node-a") is None


def test_conflict_only_among_ads_selecting_this_node() -> None:
    rack1 = schema.LabelSelector(match_labels=(("rack", "1"),))
    st = build(pool(), bgpad("a1", local_pref=100), bgpad("a2", local_pref=200, node_selectors=(rack1,)),
               peer("p1"), *TWO, svc("a"), eps("a", "node-a"))
    assert reason(st, "node-a") == "conflictingAdvertisements"
    assert bgp(st) == {"node-b": {"p1": [adv("10.0.0.0/32", 100)]}}


# -- Rule 5: problems -----------------------------------------------------------------------------------------------


def test_unknown_alias_bad_community_and_too_long_aggregation_are_reported_and_the_ad_unused() -> None:
    st = build(pool("p", "10.0.0.0/28", "3.3.3.2-3.3.3.254"), peer("p1"), node("node-a"), svc("a"), eps("a", "node-a"))
    assert st.config is not None
    bad = tuple(
        schema.BGPAdvertisement(namespace=NS, name=n, **kw)
        for n, kw in (("a", {"communities": ("nosuch",)}), ("b", {"communities": ("70000:1",)}),
                      ("c", {"aggregation_length": 24}))
    )
    cfg = dataclasses.replace(st.config, bgp_advertisements=bad)  # what a validator would be handed
    errs = bgpplan.problems(cfg)
    assert any("unknown community alias 'nosuch'" in e for e in errs)
    assert any("BGPAdvertisement metallb-system/b" in e and "70000:1" in e for e in errs)
    assert any("BGPAdvertisement metallb-system/c" in e and "more specific than the aggregation length" in e
               for e in errs)
    assert bgpplan.parse(cfg).ads == ()  # none of them is used
    # and the whole-configuration validator refuses such a configuration, keeping the previous one
    for obj in bad:
        fold.apply(st, up(obj))
        assert not st.config_valid
    assert bgp(st) == {}


def test_aggregation_equal_to_the_widest_block_is_fine() -> None:
    st = build(pool("p", "3.3.3.2-3.3.3.254"), bgpad("c", aggregation_length=26))
    assert st.config is not None and bgpplan.problems(st.config) == []


def test_parse_community_shapes() -> None:
    assert bgpplan.parse_community("0100:5") == ((100 << 16 | 5, 0, 0), "100:5")
    assert bgpplan.parse_community("large:1:2:3") == ((1, 2, 3), "large:1:2:3")
    assert bgpplan.parse_community("NO_EXPORT") is None
    for bad in ("1:70000", "large:1:2", "large:1:2:99999999999", "1:2:3"):
        try:
            bgpplan.parse_community(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_node_label_change_that_revalidates_the_configuration_replans_only_that_nodes_ips() -> None:
    nodes = [node(f"n{i}") for i in range(8)]
    services = [svc(f"s{i:02d}") for i in range(30)]
    slices = [eps(f"s{i:02d}", f"n{i % 8}") for i in range(30)]
    l2 = up(schema.L2Advertisement(namespace=NS, name="l2"))
    st = build(pool(), l2, bgpad(local_pref=100), peer("p1"), peer("p2"), *nodes, *services, *slices)
    plan = planning.ensure(st)
    cfg = st.config
    before = plan.replanned_ips
    fold.apply(st, node("n3", labels=[("unrelated", "x")]))
    assert st.config is cfg  # only this node was re-checked against the node-set rules: the configuration stands
    assert plan.owned_by.get("n3")  # it owns some IPs, and keeps them: a label that changes no eligibility
    assert plan.replanned_ips - before == 0  # re-plans nothing (not all 30)
    assert decisions.services(st) == (lambda s: (setattr(s, "plan", None), decisions.services(s))[1])(st)
