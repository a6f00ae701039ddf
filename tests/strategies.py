"""Hypothesis strategies for events (canonical by construction)."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from events import schema

names = st.from_regex(r"[a-z]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True)
label_keys = st.from_regex(r"[a-z]([a-z0-9./-]{0,20}[a-z0-9])?", fullmatch=True)
label_values = st.from_regex(r"([a-zA-Z0-9]([a-zA-Z0-9_.-]{0,15}[a-zA-Z0-9])?)?", fullmatch=True)
ipv4 = st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v)))
ipv6 = st.integers(0, 2**128 - 1).map(lambda v: str(ipaddress.IPv6Address(v)))
ips = st.one_of(ipv4, ipv6)


def pairs(keys=label_keys, values=label_values):
    return st.dictionaries(keys, values, max_size=4).map(lambda d: tuple(sorted(d.items())))


selectors = st.builds(
    schema.LabelSelector,
    match_labels=pairs(),
    match_expressions=st.lists(
        st.builds(
            schema.Requirement,
            key=label_keys,
            operator=st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
            values=st.lists(label_values, max_size=3).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
)

services = st.builds(
    schema.Service,
    namespace=names,
    name=names,
    labels=pairs(),
    annotations=pairs(keys=st.sampled_from(["metallb.io/address-pool", "metallb.io/allow-shared-ip"])),
    type=st.sampled_from(["LoadBalancer", "ClusterIP", "NodePort"]),
    cluster_ips=st.lists(ips, max_size=2).map(tuple),
    ip_family_policy=st.sampled_from(["SingleStack", "PreferDualStack", "RequireDualStack"]),
    load_balancer_class=st.none() | names,
    external_traffic_policy=st.sampled_from(["Cluster", "Local"]),
    selector=pairs(),
    ports=st.lists(
        st.builds(schema.ServicePort, protocol=st.sampled_from(["TCP", "UDP", "SCTP"]), port=st.integers(0, 65535)),
        max_size=3,
    ).map(tuple),
    ingress_ips=st.lists(ips, max_size=2).map(tuple),
)

nodes = st.builds(schema.Node, name=names, labels=pairs(), network_unavailable=st.booleans())
namespaces = st.builds(schema.Namespace, name=names, labels=pairs())
endpoint_slices = st.builds(
    schema.EndpointSlice,
    namespace=names,
    name=names,
    service_name=names,
    endpoints=st.lists(
        st.builds(
            schema.Endpoint,
            addresses=st.lists(ips, max_size=2).map(tuple),
            ready=st.none() | st.booleans(),
            serving=st.none() | st.booleans(),
            node_name=names,
        ),
        max_size=3,
    ).map(tuple),
)
pools = st.builds(
    schema.IPAddressPool,
    namespace=st.just("metallb-system"),
    name=names,
    labels=pairs(),
    addresses=st.lists(st.text(max_size=30), max_size=3).map(tuple),
    auto_assign=st.booleans(),
    avoid_buggy_ips=st.booleans(),
    service_allocation=st.none()
    | st.builds(
        schema.ServiceAllocation,
        priority=st.integers(0, 100),
        namespaces=st.lists(names, max_size=2).map(tuple),
        namespace_selectors=st.lists(selectors, max_size=1).map(tuple),
        service_selectors=st.lists(selectors, max_size=1).map(tuple),
    ),
)
peers = st.builds(
    schema.BGPPeer,
    namespace=st.just("metallb-system"),
    name=names,
    my_asn=st.integers(0, 2**32 - 1),
    peer_asn=st.integers(0, 2**32 - 1),
    peer_address=ips,
    hold_time_ms=st.none() | st.integers(0, 10**6),
    password_secret=st.none() | st.builds(schema.SecretRef, name=names),
)
objects = st.one_of(services, nodes, namespaces, endpoint_slices, pools, peers)

events = st.one_of(
    st.builds(schema.K8sUpsert, obj=objects),
    objects.map(lambda o: schema.K8sDelete(ref=schema.ref_of(o))),
    st.builds(schema.SpeakerUp, node=names),
    st.builds(schema.SpeakerDown, node=names),
)


# ----------------------------------------------------------------------------------------------------------------
# Cluster histories with node and namespace churn (issue 14): a small vocabulary so that node selectors, namespace
# selectors and the node-set validation rules (LOCAL_PREF consistency, BGPPeers meeting on a node) keep flipping.

MLB = "metallb-system"
CLUSTER_NODES = [f"n{i}" for i in range(5)]
CLUSTER_NAMESPACES = ["default", "web", "batch"]
EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


def _sel(k: str, v: str) -> schema.LabelSelector:
    return schema.LabelSelector(match_labels=((k, v),))


node_selectors = st.sampled_from([(), (_sel("zone", "a"),), (_sel("zone", "b"),), (_sel("rack", "r1"),),
                                  (_sel("zone", "a"), _sel("rack", "r2"))])

cluster_nodes = st.builds(
    lambda name, zone, rack, excl, nu: schema.Node(
        name=name,
        labels=tuple(sorted([("zone", zone)] + ([("rack", rack)] if rack else []) + ([(EXCLUDE, "")] if excl else []))),
        network_unavailable=nu,
    ),
    st.sampled_from(CLUSTER_NODES), st.sampled_from(["a", "b", "a", "c"]), st.sampled_from([None, "r1", "r2"]),
    st.sampled_from([False, False, False, True]), st.sampled_from([False, False, True]),
)
cluster_namespaces = st.builds(
    lambda name, team: schema.Namespace(name=name, labels=(("team", team),) if team else ()),
    st.sampled_from(CLUSTER_NAMESPACES), st.sampled_from([None, "x", "y"]),
)
cluster_pools = st.builds(
    lambda name, ns_sel: schema.IPAddressPool(
        namespace=MLB, name=name, addresses=("10.0.0.0/28",) if name == "p" else ("10.1.0.0/29",),
        service_allocation=schema.ServiceAllocation(namespace_selectors=(_sel("team", ns_sel),)) if ns_sel else None),
    st.sampled_from(["p", "q"]), st.sampled_from([None, "x", "y"]),
)
cluster_bgp_ads = st.builds(
    lambda name, lp, nsel, peers, agg: schema.BGPAdvertisement(
        namespace=MLB, name=name, local_pref=lp, node_selectors=nsel, peers=peers, aggregation_length=agg),
    st.sampled_from(["ba", "bb", "bc"]), st.sampled_from([0, 100, 200]), node_selectors,
    st.sampled_from([(), ("pa",), ("pb",)]), st.sampled_from([None, None, 30]),
)
cluster_peers = st.builds(
    lambda name, nsel, rid, asn: schema.BGPPeer(
        namespace=MLB, name=name, my_asn=asn, peer_asn=64513, router_id=rid, node_selectors=nsel,
        peer_address={"pa": "192.0.2.1", "pb": "192.0.2.2", "pc": "192.0.2.1"}[name]),
    st.sampled_from(["pa", "pb", "pc"]), node_selectors, st.sampled_from(["", "", "10.0.0.1"]),
    st.sampled_from([64512, 64512, 64514]),
)
cluster_services = st.builds(
    lambda i, ns: schema.Service(namespace=ns, name=f"s{i}", type="LoadBalancer", cluster_ips=(f"10.96.0.{i + 1}",),
                                 ports=(schema.ServicePort(port=80 + i),)),
    st.integers(0, 4), st.sampled_from(CLUSTER_NAMESPACES),
)


def _del(kind: str, names: list[str], ns: str):
    return st.sampled_from(names).map(lambda n: schema.K8sDelete(ref=schema.ObjectRef(kind=kind, namespace=ns, name=n)))


cluster_events = st.one_of(
    *[s.map(lambda o: schema.K8sUpsert(obj=o)) for s in (cluster_nodes, cluster_nodes, cluster_nodes, cluster_nodes,
                                                          cluster_nodes, cluster_nodes, cluster_namespaces,
                                                          cluster_namespaces, cluster_pools, cluster_bgp_ads,
                                                          cluster_peers, cluster_services, cluster_services)],
    _del("Node", CLUSTER_NODES, ""), _del("Namespace", CLUSTER_NAMESPACES, ""),
    _del("BGPPeer", ["pa", "pb", "pc"], MLB), _del("BGPAdvertisement", ["ba", "bb", "bc"], MLB),
    _del("IPAddressPool", ["q"], MLB),
)
