"""The per-Service view of BGP advertisements (what ServiceBGPStatus reports): which nodes advertise each Service
and to which peers; checked on stories and against the replay ``bgp`` map it must agree with."""

from __future__ import annotations

import ipaddress

from events import schema
from reconciler import decisions, elect, fold, planning
from tests.unit.reconciler.test_bgpplan import SEL, TWO, bgpad, build, eps, node, peer, pool, svc


def _rack(n: str) -> schema.LabelSelector:
    return schema.LabelSelector(match_labels=(("rack", n),))


def test_every_node_with_its_own_peers() -> None:
    st = build(pool(), bgpad("ad1", peers=("p2",)), bgpad("ad2", aggregation_length=24), peer("p1"),
               peer("p2", node_selectors=(_rack("2"),)), peer("p3", node_selectors=(_rack("1"),)), *TWO, svc("a"),
               eps("a", "node-a"))
    assert planning.bgp_services(st) == {"default/a": {"node-a": ("p1", "p3"), "node-b": ("p1", "p2")}}


def test_local_policy_only_nodes_with_endpoints_and_services_nobody_advertises_are_left_out() -> None:
    st = build(pool(), bgpad(), peer("p1"), *TWO, svc("a", etp="Local"), eps("a", "node-b"),
               svc("b", cluster_ips=("10.96.0.2",)), eps("b", "node-a", ready=False))
    assert planning.bgp_services(st) == {"default/a": {"node-b": ("p1",)}}


def test_node_problems_and_service_selectors() -> None:
    st = build(pool(), bgpad(service_selectors=(SEL,)), peer("p1"), node("node-a", network_unavailable=True),
               node("node-b", labels=[(elect.EXCLUDE_LABEL, "true")]), node("node-c"),
               svc("a"), svc("b", labels=[("expose", "bgp")], cluster_ips=("10.96.0.2",)),
               eps("a", "node-a"), eps("b", "node-c"))
    assert planning.bgp_services(st) == {"default/b": {"node-c": ("p1",)}}
    fold.apply(st, schema.SpeakerDown(node="node-c"))
    assert planning.bgp_services(st) == {}


def _scenarios():
    yield build(pool(), bgpad("ad1", peers=("p2",)), bgpad("ad2", aggregation_length=24), peer("p1"),
                peer("p2", node_selectors=(_rack("2"),)), *TWO, svc("a"), eps("a", "node-a"),
                svc("b", etp="Local", cluster_ips=("10.96.0.2",)), eps("b", "node-b"))
    yield build(pool(), pool("q", "10.1.0.0/28"), bgpad(ip_address_pools=("p",), node_selectors=(_rack("1"),)),
                peer("p1"), peer("p2"), *TWO, node("node-c", labels=[("rack", "1")]),
                *(svc(f"s{i}", cluster_ips=(f"10.96.0.{i + 1}",)) for i in range(6)),
                *(eps(f"s{i}", ("node-a", "node-b", "node-c")[i % 3]) for i in range(6)))
    yield build(pool("d", "10.2.0.0/24", "2001:db8::/120"), bgpad(aggregation_length=30), peer("p1"), *TWO,
                svc("a", etp="Local", policy="RequireDualStack", cluster_ips=("10.96.0.1", "fd00::1")),
                eps("a", "node-a"))


def test_agrees_with_the_replay_bgp_map() -> None:
    """Every (node, peer) of a Service carries a prefix covering each of its IPs in the ``bgp`` map, and every
    prefix of the map is there for some Service that names that node and peer."""
    for st in _scenarios():
        view = planning.bgp_services(st)
        bmap = decisions.bgp(st)
        services = decisions.services(st, with_events=False)
        assert view, "the scenario advertises something"
        covered: set[tuple[str, str, str]] = set()
        for key, nodes in view.items():
            ips = [ipaddress.ip_address(ip) for ip in services[key]["ingress"]]
            for n, peers in nodes.items():
                assert peers == tuple(sorted(peers)) and peers
                for p in peers:
                    prefixes = [a["prefix"] for a in bmap[n][p]]
                    for ip in ips:
                        hits = [x for x in prefixes
                                if ip.version == ipaddress.ip_network(x).version and ip in ipaddress.ip_network(x)]
                        assert hits, (key, n, p, ip)
                        covered.update((n, p, x) for x in hits)
        listed = {(n, p, a["prefix"]) for n, peers in bmap.items() for p, ads in peers.items() for a in ads}
        assert listed == covered
