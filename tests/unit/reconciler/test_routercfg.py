"""``reconciler.routercfg``: the router's side derived from the fold (design.md §10), one story per rule.

The expected neighbors, prefixes and counts are written out by hand from the objects, never recomputed with the
module's own helpers.
"""

from __future__ import annotations

import pytest

from events import schema
from reconciler import fold, routercfg
from reconciler import state as statemod

NS = "metallb-system"
ROUTER = "10.0.0.1"


def up(obj) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=obj)


def pool(name: str, *addresses: str, **kw) -> schema.K8sUpsert:
    return up(schema.IPAddressPool(namespace=NS, name=name, addresses=addresses, **kw))


def ad(name: str, **kw) -> schema.K8sUpsert:
    return up(schema.BGPAdvertisement(namespace=NS, name=name, **kw))


def peer(name: str, address: str = ROUTER, my_asn: int = 64512, peer_asn: int = 64500, **kw) -> schema.K8sUpsert:
    return up(schema.BGPPeer(namespace=NS, name=name, my_asn=my_asn, peer_asn=peer_asn, peer_address=address, **kw))


def node(name: str, *ips: str, labels=()) -> schema.K8sUpsert:
    return up(schema.Node(name=name, labels=tuple(sorted(labels)), internal_ips=ips))


def rack(n: str) -> schema.LabelSelector:
    return schema.LabelSelector(match_labels=(("rack", n),))


NODES = (
    node("node-a", "10.0.0.11", "fd00::11", labels=[("rack", "1")]),
    node("node-b", "10.0.0.12", "fd00::12", labels=[("rack", "2")]),
)


def derive(*events, router: str = ROUTER, **kw) -> routercfg.RouterConfig:
    st = fold.fold(events, statemod.new())
    return routercfg.derive(st, router, **kw)


def rules(p: routercfg.Policy) -> list[str]:
    return [r.network if r.exact else f"{r.network} len {r.length}" for r in p.rules]


def test_one_peer_two_nodes_gives_two_neighbors_at_their_internal_ips() -> None:
    rc = derive(pool("p", "198.51.100.0/28"), ad("a"), peer("tor", hold_time_ms=9000), *NODES)
    assert rc.asn == 64500 and rc.router_id == ROUTER and rc.peers == ("metallb-system/tor",)
    assert [(n.node, n.address, n.remote_as) for n in rc.neighbors] == [("node-a", "10.0.0.11", 64512),
                                                                        ("node-b", "10.0.0.12", 64512)]
    assert {n.policy for n in rc.neighbors} == {"streamlb-in"}
    (pol,) = rc.policies
    assert rules(pol) == ["198.51.100.0/28 len 32"] and pol.max_prefixes == 16
    assert [(n.hold_s, n.keepalive_s) for n in rc.neighbors] == [(9, 3), (9, 3)]
    assert not rc.multipath_relax and rc.has_ebgp and not rc.has_ibgp


def test_peers_differing_by_node_selector_give_per_node_ases_and_multipath_relax() -> None:
    rc = derive(pool("p", "198.51.100.0/28"), ad("a"),
                peer("r1", my_asn=65001, node_selectors=(rack("1"),)),
                peer("r2", my_asn=65002, node_selectors=(rack("2"),)), *NODES)
    assert [(n.node, n.remote_as, n.peer) for n in rc.neighbors] == [
        ("node-a", 65001, "metallb-system/r1"), ("node-b", 65002, "metallb-system/r2")]
    assert rc.multipath_relax
    text = routercfg.render_frr(rc)
    assert " bgp bestpath as-path multipath-relax\n" in text and "  maximum-paths 2\n" in text


def test_local_asn_is_what_the_router_sees() -> None:
    rc = derive(pool("p", "198.51.100.0/28"), ad("a"), peer("tor", local_asn=65100), *NODES)
    assert {n.remote_as for n in rc.neighbors} == {65100}


def test_ibgp_neighbors_get_ibgp_multipath() -> None:
    rc = derive(pool("p", "198.51.100.0/28"), ad("a"), peer("tor", peer_asn=64512), *NODES)
    assert rc.has_ibgp and not rc.has_ebgp
    text = routercfg.render_frr(rc)
    assert "  maximum-paths ibgp 2\n" in text and "  maximum-paths 2\n" not in text
    assert "  direct;\n" in routercfg.render_bird(rc)


def test_aggregation_lengths_and_range_pieces() -> None:
    # /24 announced as /26 aggregates: the four /26s; a range's /32 piece narrower than /31 gives its covering /31
    rc = derive(pool("wide", "10.1.0.0/24"), pool("range", "10.2.0.1-10.2.0.5"),
                ad("agg26", ip_address_pools=("wide",), aggregation_length=26),
                ad("agg31", ip_address_pools=("range",), aggregation_length=31), peer("tor"), *NODES)
    (pol,) = rc.policies
    assert rules(pol) == ["10.1.0.0/24 len 26", "10.2.0.0/31", "10.2.0.2/31", "10.2.0.4/31"]
    assert pol.max_prefixes == 4 + 3
    assert "ip prefix-list streamlb-in seq 10 permit 10.2.0.0/31\n" in routercfg.render_frr(rc)
    assert "10.1.0.0/24{26,26}, 10.2.0.0/31" in routercfg.render_bird(rc)


def test_two_advertisements_of_one_pool_accept_both_lengths() -> None:
    rc = derive(pool("p", "10.1.0.0/24"), ad("host", ip_address_pools=("p",)),
                ad("agg", ip_address_pools=("p",), aggregation_length=24, local_pref=50), peer("tor", peer_asn=64512),
                *NODES)
    (pol,) = rc.policies
    assert rules(pol) == ["10.1.0.0/24", "10.1.0.0/24 len 32"] and pol.max_prefixes == 257


def test_ipv6_router_uses_ipv6_internal_ips_and_aggregation_v6() -> None:
    rc = derive(pool("p", "198.51.100.0/28", "2001:db8::/120"), ad("a", aggregation_length_v6=124),
                peer("tor6", address="fd00::1"), *NODES, router="fd00::1")
    assert rc.family == 6 and rc.router_id is None
    assert [n.address for n in rc.neighbors] == ["fd00::11", "fd00::12"]
    (pol,) = rc.policies
    assert rules(pol) == ["2001:db8::/120 len 124"] and pol.max_prefixes == 16
    text = routercfg.render_frr(rc)
    assert "ipv6 prefix-list streamlb-in seq 5 permit 2001:db8::/120 ge 124 le 124\n" in text
    assert " address-family ipv6 unicast\n" in text and "no router ID" in text
    rc = derive(pool("p", "2001:db8::/120"), ad("a"), peer("tor6", address="fd00::1"), *NODES, router="fd00::1",
                router_id="192.0.2.9")
    assert rc.router_id == "192.0.2.9"


def test_only_advertisements_for_this_peer_and_node_are_accepted() -> None:
    rc = derive(pool("p1", "10.1.0.0/28"), pool("p2", "10.2.0.0/28"), pool("p3", "10.3.0.0/28"),
                ad("to-tor", ip_address_pools=("p1",), peers=("tor",)),
                ad("to-other", ip_address_pools=("p2",), peers=("other",)),
                ad("rack2-only", ip_address_pools=("p3",), node_selectors=(rack("2"),)),
                peer("tor"), peer("other", address="10.0.0.2"), *NODES)
    by_node = {n.node: rc.policy(n.policy) for n in rc.neighbors}
    assert rules(by_node["node-a"]) == ["10.1.0.0/28 len 32"]
    assert rules(by_node["node-b"]) == ["10.1.0.0/28 len 32", "10.3.0.0/28 len 32"]
    assert by_node["node-a"].name != by_node["node-b"].name


def test_avoid_buggy_ips_refuses_the_host_routes_it_never_assigns() -> None:
    rc = derive(pool("p", "10.1.0.0/23", avoid_buggy_ips=True), ad("a"), peer("tor"), *NODES)
    (pol,) = rc.policies
    assert pol.excludes == ("10.1.0.0/32", "10.1.0.255/32", "10.1.1.0/32", "10.1.1.255/32")
    assert pol.max_prefixes == 512 - 4
    text = routercfg.render_frr(rc)
    assert text.index("seq 5 deny 10.1.0.0/32") < text.index("permit 10.1.0.0/23 ge 32 le 32")


def test_nodes_without_advertisements_get_a_deny_all_policy() -> None:
    rc = derive(pool("p", "10.1.0.0/28"), ad("a", node_selectors=(rack("1"),)), peer("tor"), *NODES)
    pol_b = rc.policy(rc.neighbors[1].policy)
    assert pol_b.rules == () and pol_b.max_prefixes == 1
    text = routercfg.render_frr(rc)
    assert f"route-map {pol_b.name} permit" not in text and f"route-map {pol_b.name} deny 100" in text


def test_bfd_profile_is_mirrored_for_the_router() -> None:
    prof = up(schema.BFDProfile(namespace=NS, name="fast", receive_interval=100, transmit_interval=250,
                                detect_multiplier=4))
    rc = derive(pool("p", "10.1.0.0/28"), ad("a"), prof, peer("tor", bfd_profile="fast"), *NODES)
    (b,) = rc.bfd_profiles
    assert (b.receive_ms, b.transmit_ms, b.multiplier, b.minimum_ttl) == (250, 100, 4, None)
    assert all(n.bfd == "fast" for n in rc.neighbors)
    defaults = up(schema.BFDProfile(namespace=NS, name="dflt"))
    rc = derive(pool("p", "10.1.0.0/28"), ad("a"), defaults, peer("tor", bfd_profile="dflt", ebgp_multi_hop=True),
                *NODES)
    (b,) = rc.bfd_profiles
    assert (b.receive_ms, b.transmit_ms, b.multiplier, b.minimum_ttl) == (300, 300, 3, 254)
    assert all(n.multihop for n in rc.neighbors)


def test_password_is_a_placeholder_naming_where_the_secret_lives() -> None:
    rc = derive(pool("p", "10.1.0.0/28"), ad("a"),
                peer("tor", password_secret=schema.SecretRef(namespace=NS, name="bgp-auth")), *NODES)
    assert {n.password for n in rc.neighbors} == {routercfg.PASSWORD_PLACEHOLDER}
    for render in routercfg.RENDERERS.values():
        text = render(rc)
        assert routercfg.PASSWORD_PLACEHOLDER in text and "Secret metallb-system/bgp-auth" in text
    rc = derive(pool("p", "10.1.0.0/28"), ad("a"), peer("tor"), *NODES)
    assert all(routercfg.PASSWORD_PLACEHOLDER not in r(rc) for r in routercfg.RENDERERS.values())


def test_source_address_is_the_neighbor_address() -> None:
    rc = derive(pool("p", "10.1.0.0/28"), ad("a"),
                peer("tor", source_address="10.0.0.99", node_selectors=(rack("1"),)), *NODES)
    assert [(n.node, n.address) for n in rc.neighbors] == [("node-a", "10.0.0.99")]


def test_excluded_node_is_left_out_with_a_note() -> None:
    excl = node("node-c", "10.0.0.13", labels=[("node.kubernetes.io/exclude-from-external-load-balancers", "")])
    rc = derive(pool("p", "10.1.0.0/28"), ad("a"), peer("tor"), *NODES, excl)
    assert [n.node for n in rc.neighbors] == ["node-a", "node-b"]
    assert [s[0] for s in rc.skipped] == ["node-c"]
    assert "node node-c left out" in routercfg.render_bird(rc)


def test_communities_become_named_lists() -> None:
    comm = up(schema.Community(namespace=NS, name="c", communities=(
        schema.CommunityAlias(name="no-advertise", value="65535:65282"),)))
    rc = derive(pool("p", "10.1.0.0/28"), comm, ad("a", communities=("no-advertise", "64512:7", "large:1:2:3")),
                peer("tor"), *NODES)
    # ordered as MetalLB orders communities: a standard A:B sorts as the large (A<<16|B, 0, 0)
    assert rc.communities == (("streamlb-large-1-2-3", "large:1:2:3"), ("streamlb-64512-7", "64512:7"),
                              ("streamlb-no-advertise", "65535:65282"))
    text = routercfg.render_frr(rc)
    assert "bgp community-list standard streamlb-no-advertise seq 5 permit 65535:65282\n" in text
    assert "bgp large-community-list standard streamlb-large-1-2-3 seq 5 permit 1:2:3\n" in text


@pytest.mark.parametrize(
    ("events", "router", "message"),
    [
        ((pool("p", "10.1.0.0/28"), ad("a"), peer("tor"), *NODES), "10.0.0.7",
         "no BGPPeer has peerAddress 10.0.0.7 (peer addresses in the log: 10.0.0.1)"),
        ((pool("p", "10.1.0.0/28"), ad("a"), peer("tor"), node("node-a")), ROUTER,
         "node(s) node-a have no IPv4 InternalIP"),
        ((pool("p", "10.1.0.0/28"), ad("a"), peer("r1", node_selectors=(rack("1"),)),
          peer("r2", peer_asn=64999, node_selectors=(rack("2"),)), *NODES), ROUTER,
         "disagree on the router's AS (AS 64500: metallb-system/r1; AS 64999: metallb-system/r2)"),
        ((pool("p", "10.1.0.0/28"), ad("a"), peer("tor", peer_asn=0, dynamic_asn="external"), *NODES), ROUTER,
         "give --router-asn"),
        ((pool("p", "10.1.0.0/28"),), ROUTER, "no BGPPeer has peerAddress"),
        ((), ROUTER, "the log holds no valid configuration"),
        ((pool("p", "10.1.0.0/28"), ad("a"), peer("tor"), *NODES), "not-an-ip", "--router 'not-an-ip'"),
    ],
)
def test_bad_input_is_a_clear_error(events, router, message) -> None:
    with pytest.raises(routercfg.RouterConfigError, match=None) as info:
        derive(*events, router=router)
    assert message in str(info.value)


def test_dynamic_asn() -> None:
    rc = derive(pool("p", "10.1.0.0/28"), ad("a"), peer("tor", peer_asn=0, dynamic_asn="internal"), *NODES)
    assert rc.asn == 64512 and rc.has_ibgp
    rc = derive(pool("p", "10.1.0.0/28"), ad("a"), peer("tor", peer_asn=0, dynamic_asn="external"), *NODES,
                router_asn=65500)
    assert rc.asn == 65500


def test_every_vendor_renders_every_feature() -> None:
    prof = up(schema.BFDProfile(namespace=NS, name="fast", receive_interval=100, transmit_interval=100))
    rc = derive(pool("p", "10.1.0.0/28"), ad("a", communities=("64512:7",)), prof,
                peer("tor", bfd_profile="fast", hold_time_ms=30000, connect_time_ms=5000, password_set=True),
                *NODES)
    for vendor, render in routercfg.RENDERERS.items():
        text = render(rc)
        assert "10.0.0.11" in text and "10.0.0.12" in text and "10.1.0.0/28" in text, vendor
        assert "64512" in text and "64500" in text, vendor
        assert "64512:7" in text or "(64512, 7)" in text, vendor
        assert "30" in text and "100" in text and "16" in text, vendor
