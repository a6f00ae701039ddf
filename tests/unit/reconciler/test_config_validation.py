"""Whole-configuration validation (metallb-behaviour.md §2): each bad configuration is refused as a whole with an
error naming the object and field, the previous configuration stays in force and assignments survive."""

from __future__ import annotations

import pytest

from events import schema
from reconciler import decisions, fold, state as statemod

NS = "metallb-system"
SEL_BAD_OP = schema.LabelSelector(match_expressions=(schema.Requirement(key="a", operator="Near", values=("x",)),))
SEL = schema.LabelSelector(match_labels=(("a", "b"),))


def up(obj) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=obj)


def pool(name: str, *addresses: str, **kw) -> schema.IPAddressPool:
    return schema.IPAddressPool(namespace=NS, name=name, addresses=tuple(addresses), **kw)


def peer(name: str, **kw) -> schema.BGPPeer:
    kw.setdefault("my_asn", 64512)
    kw.setdefault("peer_asn", 64513)
    kw.setdefault("peer_address", "10.9.0.1")
    return schema.BGPPeer(namespace=NS, name=name, **kw)


def bgpad(name: str, **kw) -> schema.BGPAdvertisement:
    return schema.BGPAdvertisement(namespace=NS, name=name, **kw)


def base() -> statemod.State:
    st = fold.fold(
        [
            up(pool("good", "192.168.1.0/30")),
            up(schema.Service(namespace="default", name="a", type="LoadBalancer", cluster_ips=("10.96.0.1",))),
        ],
        statemod.new(),
    )
    assert st.services["default/a"].ingress == ["192.168.1.0"] and st.config_valid
    return st


BAD: list[tuple[str, list, str]] = [
    ("no addresses", [pool("p")], "IPAddressPool metallb-system/p: spec.addresses: pool has no prefixes defined"),
    ("bad CIDR", [pool("p", "10.0.0.0/33")], "IPAddressPool metallb-system/p: spec.addresses[0]: invalid CIDR"),
    ("bad range start", [pool("p", "10.0.0.x-10.0.0.9")], "spec.addresses[0]: invalid IP range"),
    ("reversed range", [pool("p", "10.0.0.9-10.0.0.1")], "is after the end IP"),
    ("mixed-family range", [pool("p", "10.0.0.1-2001:db8::1")], "different families"),
    ("overlap with other pool", [pool("p", "192.168.1.2/31")],
     "CIDR '192.168.1.2/31' in pool 'p' overlaps with already defined CIDR '192.168.1.0/30'"),
    ("overlap inside a pool", [pool("p", "10.1.0.0/24", "10.1.0.128/25")], "overlaps with already defined CIDR"),
    ("overlapping range", [pool("p", "192.168.1.3-192.168.1.9")], "overlaps"),
    ("duplicate namespaces", [pool("p", "10.2.0.0/24", service_allocation=schema.ServiceAllocation(namespaces=("a", "a")))],
     "spec.serviceAllocation.namespaces: duplicate definition in namespaces field"),
    ("duplicate service selectors", [pool("p", "10.2.0.0/24", service_allocation=schema.ServiceAllocation(
        service_selectors=(SEL, SEL)))], "spec.serviceAllocation.serviceSelectors[1]: duplicate definition of selector"),
    ("invalid namespace selector", [pool("p", "10.2.0.0/24", service_allocation=schema.ServiceAllocation(
        namespace_selectors=(SEL_BAD_OP,)))], "spec.serviceAllocation.namespaceSelectors[0]: invalid selector"),
    ("In without values", [schema.L2Advertisement(namespace=NS, name="l2", node_selectors=(schema.LabelSelector(
        match_expressions=(schema.Requirement(key="k", operator="In"),)),))], "L2Advertisement metallb-system/l2: spec.nodeSelectors[0]: invalid selector"),
    ("L2 duplicate pools", [schema.L2Advertisement(namespace=NS, name="l2", ip_address_pools=("good", "good"))],
     "spec.ipAddressPools: duplicate definition of pool 'good'"),
    ("L2 duplicate value in expression", [schema.L2Advertisement(namespace=NS, name="l2", ip_address_pool_selectors=(
        schema.LabelSelector(match_expressions=(schema.Requirement(key="k", operator="In", values=("v", "v")),)),))],
     "duplicate value in expression"),
    ("aggregation > 32", [bgpad("b", aggregation_length=33)], "BGPAdvertisement metallb-system/b: spec.aggregationLength: invalid aggregation length 33"),
    ("aggregation v6 > 128", [bgpad("b", aggregation_length_v6=129)], "spec.aggregationLengthV6: invalid aggregation length 129"),
    ("aggregation longer than the pool entry", [bgpad("b", aggregation_length=29)],
     "prefix 30 in this pool is more specific than the aggregation length for addresses 192.168.1.0/30"),
    ("serviceSelectors with aggregation", [bgpad("b", aggregation_length=24, ip_address_pools=("nothing",),
                                                 service_selectors=(SEL,))],
     "spec.serviceSelectors: serviceSelectors can't be used together with aggregation length"),
    ("bad community", [bgpad("b", communities=("65536:1",))], "spec.communities[0]: invalid community value '65536:1'"),
    ("bad large community", [bgpad("b", communities=("large:1:2:x",))], "invalid large community value"),
    ("unknown community alias", [bgpad("b", communities=("NO_SUCH",))], "transient: community alias 'NO_SUCH' not found"),
    ("duplicate community in ad", [bgpad("b", communities=("1:1", "1:1"))], "spec.communities: duplicate definition of community '1:1'"),
    ("duplicate peers in ad", [bgpad("b", peers=("x", "x"))], "spec.peers: duplicate definition of peer 'x'"),
    ("local pref conflict", [bgpad("b1", local_pref=100), bgpad("b2", local_pref=200)],
     "BGPAdvertisement metallb-system/b2: spec.localPref: invalid local preference 200"),
    ("community alias duplicate", [
        schema.Community(namespace=NS, name="c1", communities=(schema.CommunityAlias(name="X", value="1:1"),)),
        schema.Community(namespace=NS, name="c2", communities=(schema.CommunityAlias(name="X", value="1:2"),))],
     "Community metallb-system/c2: spec.communities[0].name: duplicate definition of community 'X'"),
    ("community alias bad value", [schema.Community(namespace=NS, name="c", communities=(
        schema.CommunityAlias(name="X", value="1:2:3"),))], "spec.communities[0].value: parsing community 'X'"),
    ("peer missing local ASN", [peer("p", my_asn=0)], "BGPPeer metallb-system/p: spec.myASN: missing local ASN"),
    ("peer missing peer ASN", [peer("p", peer_asn=0)], "spec.peerASN: missing peer ASN and dynamicASN"),
    ("peer both ASNs", [peer("p", dynamic_asn="external")], "both peer ASN and dynamicASN specified"),
    ("peer bad address", [peer("p", peer_address="10.0.0.300")], "spec.peerAddress: invalid BGPPeer address"),
    ("peer address and interface", [peer("p", interface="eth0")], "mutually exclusive"),
    ("peer bad source", [peer("p", source_address="nope")], "spec.sourceAddress: invalid source address"),
    ("peer bad router id", [peer("p", router_id="1.2.3")], "spec.routerID: invalid router ID"),
    ("peer hold time 2s", [peer("p", hold_time_ms=2000)], "spec.holdTime: invalid hold time 2000ms: must be 0 or >=3s"),
    ("keepalive above hold", [peer("p", hold_time_ms=9000, keepalive_time_ms=10000)], "spec.keepaliveTime"),
    ("connect time fraction", [peer("p", connect_time_ms=1500)], "spec.connectTime"),
    ("port out of range", [peer("p", peer_port=20000)], "spec.peerPort: 20000 is out of range"),
    ("password and secret", [peer("p", password_set=True, password_secret=schema.SecretRef(name="s"))],
     "spec.password: password and passwordSecret are mutually exclusive"),
    ("ebgp multihop on ibgp", [peer("p", peer_asn=64512, ebgp_multi_hop=True)],
     "invalid ebgp-multihop parameter set for an ibgp peer"),
    ("unknown bfd profile", [peer("p", bfd_profile="fast")], "spec.bfdProfile: transient: bfd profile 'fast' not found"),
    ("frr peers disagree on router id", [peer("p1", router_id="1.1.1.1"), peer("p2", peer_address="10.9.0.2")],
     "spec.routerID: BGPPeers 'p1' and 'p2' select the same node but have different router IDs"),
    ("frr peers same address", [peer("p1"), peer("p2")], "spec.peerAddress: duplicate BGPPeer '10.9.0.1'"),
    ("frr peers different myASN", [peer("p1"), peer("p2", peer_address="10.9.0.2", my_asn=64600)],
     "spec.myASN: BGPPeers 'p1' and 'p2' select the same node with different local ASNs"),
    ("bfd out of range", [schema.BFDProfile(namespace=NS, name="b", detect_multiplier=1)],
     "BFDProfile metallb-system/b: spec.detectMultiplier: 1 is out of range 2..255"),
    ("bfd echo with ipv6 pool", [
        pool("v6", "2001:db8::/64"), schema.BFDProfile(namespace=NS, name="echo", echo_mode=True),
        peer("p", bfd_profile="echo"), bgpad("b")],
     "peer 'p' has bfd echo enabled, which is not possible with IPv6 pool 'v6'"),
]


@pytest.mark.parametrize("objs, expected", [(o, e) for _, o, e in BAD], ids=[n for n, _, _ in BAD])
def test_bad_configuration_is_refused_and_previous_kept(objs: list, expected: str) -> None:
    st = base()
    fold.apply(st, up(schema.Node(name="node-a")))
    for o in objs[:-1]:  # the valid part first: it becomes the configuration in force
        fold.apply(st, up(o))
    assert st.config_valid, st.config_errors
    pools_before = [p.name for p in st.config.pools]
    hash_before = decisions.state_hash(st)
    fold.apply(st, up(objs[-1]))
    cfg = decisions.config(st)
    assert cfg["valid"] is False
    assert any(expected in e for e in cfg["errors"]), cfg["errors"]
    assert st.services["default/a"].ingress == ["192.168.1.0"] and st.services["default/a"].pool == "good"
    assert [p.name for p in st.config.pools] == pools_before  # the previous configuration is in force
    fold.apply(st, up(schema.Service(namespace="default", name="b", type="LoadBalancer", cluster_ips=("10.96.0.2",))))
    assert st.services["default/b"].ingress == ["192.168.1.1"]
    assert hash_before != decisions.state_hash(st)


def test_errors_name_kind_namespace_name_and_field() -> None:
    st = base()
    fold.apply(st, up(pool("p", "bogus")))
    assert st.config_errors == ["IPAddressPool metallb-system/p: spec.addresses[0]: invalid CIDR 'bogus'"]


def test_fixing_the_configuration_makes_it_valid_again() -> None:
    st = base()
    fold.apply(st, up(pool("p", "192.168.1.2/31")))
    assert not st.config_valid
    fold.apply(st, up(pool("p", "192.168.2.0/31")))
    assert st.config_valid and st.config_errors == []
    assert [p.name for p in st.config.pools] == ["good", "p"]


def test_range_becomes_minimal_cidrs_and_host_bits_are_masked() -> None:
    from reconciler import config as configmod

    cfg, errs = configmod.build([pool("p", "192.168.9.1-192.168.9.5", "10.20.30.40/24")], [], [], [], [], [], {})
    assert errs == [] and cfg is not None
    assert [str(b) for b in cfg.pools[0].blocks] == ["192.168.9.1/32", "192.168.9.2/31", "192.168.9.4/31", "10.20.30.0/24"]


def test_valid_metallb_shapes_are_accepted() -> None:
    from reconciler import config as configmod

    cfg, errs = configmod.build(
        [pool("p", "10.0.0.0/24", "3.3.3.0/24"), pool("q", "2001:db8::/64"), pool("r", "3.3.4.2-3.3.4.254")],
        [schema.L2Advertisement(namespace=NS, name="l2", ip_address_pools=("p",))],
        [bgpad("b", aggregation_length=24, ip_address_pools=("p",), communities=("65535:65282", "large:1:2:3", "NOADV")),
         bgpad("b2", local_pref=50, ip_address_pools=("q",))],
        [peer("p1", router_id="1.1.1.1"), peer("p2", peer_address="10.9.0.2", router_id="1.1.1.1", hold_time_ms=0)],
        [schema.Community(namespace=NS, name="c", communities=(schema.CommunityAlias(name="NOADV", value="65535:65282"),))],
        [schema.BFDProfile(namespace=NS, name="bfd", receive_interval=300, detect_multiplier=3)],
        {},
    )
    assert errs == [] and cfg is not None


def test_aggregation_against_range_widest_block() -> None:
    from reconciler import config as configmod

    ok = configmod.build([pool("p", "3.3.3.2-3.3.3.254")], [], [bgpad("b", aggregation_length=26)], [], [], [], {})
    bad = configmod.build([pool("p", "3.3.3.2-3.3.3.254")], [], [bgpad("b", aggregation_length=24)], [], [], [], {})
    assert ok[1] == [] and bad[0] is None
    assert "prefix 25 in this pool" not in bad[1][0] and "more specific than the aggregation length" in bad[1][0]


def test_local_pref_exemptions() -> None:
    from reconciler import config as configmod

    def check(a: dict, b: dict, nodes=None) -> list[str]:
        return configmod.build([pool("p", "10.0.0.0/24")], [], [bgpad("a", local_pref=1, **a), bgpad("b", local_pref=2, **b)],
                               [], [], [], {}, nodes)[1]

    assert check({}, {}) == []  # no nodes known: node sets are empty and never conflict (as MetalLB)
    assert check({}, {}, {"n": {}}) != []
    assert check({"aggregation_length": 32}, {"aggregation_length": 30}) == []
    assert check({"peers": ("x",)}, {"peers": ("y",)}) == []
    assert check({"peers": ("x",)}, {"peers": ("x", "y")}, {"n": {}}) != []
    sel_a = (schema.LabelSelector(match_labels=(("zone", "a"),)),)
    sel_b = (schema.LabelSelector(match_labels=(("zone", "b"),)),)
    nodes = {"n1": {"zone": "a"}, "n2": {"zone": "b"}}
    assert check({"node_selectors": sel_a}, {"node_selectors": sel_b}, nodes) == []
    assert check({"node_selectors": sel_a}, {}, nodes) != []


def test_local_pref_conflict_follows_node_labels_in_the_fold() -> None:
    sel_a = (schema.LabelSelector(match_labels=(("zone", "a"),)),)
    sel_b = (schema.LabelSelector(match_labels=(("zone", "b"),)),)
    st = fold.fold(
        [up(pool("p", "10.0.0.0/24")), up(schema.Node(name="n1", labels=(("zone", "a"),))),
         up(schema.Node(name="n2", labels=(("zone", "b"),))),
         up(bgpad("a", local_pref=1, node_selectors=sel_a)), up(bgpad("b", local_pref=2, node_selectors=sel_b))],
        statemod.new(),
    )
    assert st.config_valid
    fold.apply(st, up(schema.Node(name="n3", labels=(("zone", "a"), ("zone2", "b")))))
    assert st.config_valid
    fold.apply(st, up(schema.Node(name="n2", labels=(("zone", "a"),))))  # n2 now in both? no: zone=a only
    assert st.config_valid
    fold.apply(st, up(schema.Node(name="n4", labels=(("zone", "b"),))))
    assert st.config_valid
    fold.apply(st, up(bgpad("b", local_pref=2)))  # all nodes: overlaps with a's nodes
    assert not st.config_valid and "invalid local preference 2" in st.config_errors[0]
