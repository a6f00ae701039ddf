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
