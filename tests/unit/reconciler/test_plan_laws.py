"""Laws of announcement planning (hypothesis), over random small clusters and random event sequences:

* incremental planning == a full recomputation, after every event (L2 maps, BGP map, every node's plan and reasons),
  and the fold's incremental validation == ``config.build`` from scratch, with node and namespace churn;
* the incremental plan == the from-scratch reference of ``elect`` (MetalLB's per-node ``ShouldAnnounce``);
* exactly one L2 owner per announced IP across N nodes computing from the same state, and no node plans an IP it
  is not eligible for;
* a speaker's NodeView kept by change sets == the node's full plan, and its effects take the old plan to the new;
* ``apply(old, diff(old, new)) == new`` for any two plans;
* re-planning after an unrelated event yields no effects.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from events import schema
from reconciler import decisions, effects, elect, fold, planning
from reconciler import state as statemod

NS = "metallb-system"
NODES = [f"n{i}" for i in range(5)]
SERVICES = [f"s{i}" for i in range(6)]


def up(obj) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=obj)


def sel(k: str, v: str) -> schema.LabelSelector:
    return schema.LabelSelector(match_labels=((k, v),))


maybe_sel = st.sampled_from([(), (sel("zone", "a"),), (sel("zone", "b"),), (sel("zone", "a"), sel("l2", "yes"))])
svc_sel = st.sampled_from([(), (sel("app", "x"),)])

nodes = st.builds(
    lambda name, zone, l2, excl, nu: schema.Node(
        name=name,
        labels=tuple(sorted([("zone", zone)] + ([("l2", "yes")] if l2 else [])
                            + ([(elect.EXCLUDE_LABEL, "")] if excl else []))),
        network_unavailable=nu,
    ),
    st.sampled_from(NODES), st.sampled_from(["a", "b"]), st.booleans(),
    st.sampled_from([False, False, False, True]), st.sampled_from([False, False, True]),
)

pools = st.sampled_from([
    schema.IPAddressPool(namespace=NS, name="p", labels=(("tier", "prod"),), addresses=("10.0.0.0/28", "fd00::/124")),
    schema.IPAddressPool(namespace=NS, name="p", labels=(("tier", "dev"),), addresses=("10.0.0.0/28", "fd00::/124")),
    schema.IPAddressPool(namespace=NS, name="q", labels=(("tier", "dev"),), addresses=("10.1.0.0/29",)),
    schema.IPAddressPool(namespace=NS, name="q", labels=(("tier", "prod"),), addresses=("10.1.0.0/30",)),
    schema.IPAddressPool(namespace=NS, name="q", labels=(("tier", "dev"),), addresses=("10.1.0.0/29",),
                         service_allocation=schema.ServiceAllocation(namespace_selectors=(sel("team", "x"),))),
])
namespaces = st.sampled_from([None, "x", "y"]).map(
    lambda team: schema.Namespace(name="default", labels=(("team", team),) if team else ()))

def pref(weight: int, *sels: tuple[str, str]) -> schema.PreferredNodeSelector:
    return schema.PreferredNodeSelector(weight=weight, preference=schema.LabelSelector(match_labels=tuple(sels)))


# preferredNodeSelectors: none, one, two adding up, an empty preference (every node), equal weights in two ads
prefs = st.sampled_from([(), (), (pref(50, ("zone", "a")),), (pref(30, ("l2", "yes")), pref(70, ("zone", "b"))),
                         (pref(10),), (pref(100, ("l2", "yes")),)])

l2ads = st.builds(
    lambda name, pools_, psel, nsel, ifs, ssel, pns: schema.L2Advertisement(
        namespace=NS, name=name, ip_address_pools=pools_, ip_address_pool_selectors=psel, node_selectors=nsel,
        interfaces=ifs, service_selectors=ssel, preferred_node_selectors=pns),
    st.sampled_from(["l2a", "l2b"]), st.sampled_from([(), ("p",), ("q",)]),
    st.sampled_from([(), (sel("tier", "prod"),)]), maybe_sel, st.sampled_from([(), ("eth0",), ("eth0", "eth1")]),
    svc_sel, prefs,
)

bgpads = st.builds(
    lambda name, pools_, agg, agg6, lp, comms, peers, nsel, ssel: schema.BGPAdvertisement(
        namespace=NS, name=name, ip_address_pools=pools_, aggregation_length=agg, aggregation_length_v6=agg6,
        local_pref=lp, communities=comms, peers=peers, node_selectors=nsel, service_selectors=ssel),
    st.sampled_from(["ba", "bb"]), st.sampled_from([(), ("p",), ("q",)]), st.sampled_from([None, 30, 32]),
    st.sampled_from([None, 126]), st.sampled_from([0, 100, 200]),
    st.sampled_from([(), ("1:1",), ("large:1:2:3", "alias1"), ("1:1", "alias1")]),
    st.sampled_from([(), ("pa",), ("pb",), ("pa", "pb")]), maybe_sel, svc_sel,
)

peers = st.builds(
    lambda name, nsel: schema.BGPPeer(namespace=NS, name=name, my_asn=64512, peer_asn=64513,
                                      peer_address="192.0.2.1" if name == "pa" else "192.0.2.2", node_selectors=nsel),
    st.sampled_from(["pa", "pb"]), maybe_sel,
)

services = st.builds(
    lambda name, app, etp, dual, lbtype: schema.Service(
        namespace="default", name=name, type=lbtype, labels=(("app", app),), external_traffic_policy=etp,
        cluster_ips=("10.96.0.1", "fd00:96::1") if dual else ("10.96.0.1",),
        ip_family_policy="RequireDualStack" if dual else "SingleStack",
        ports=(schema.ServicePort(port=80),)),
    st.sampled_from(SERVICES), st.sampled_from(["x", "y"]), st.sampled_from(["Cluster", "Local"]), st.booleans(),
    st.sampled_from(["LoadBalancer", "LoadBalancer", "LoadBalancer", "ClusterIP"]),
)

slices = st.builds(
    lambda svc_name, slice_no, eps: schema.EndpointSlice(
        namespace="default", name=f"{svc_name}-{slice_no}", service_name=svc_name,
        endpoints=tuple(schema.Endpoint(addresses=(f"10.244.0.{i + 1}",), ready=r, serving=sv, node_name=n)
                        for i, (n, r, sv) in enumerate(eps))),
    st.sampled_from(SERVICES), st.sampled_from([0, 1]),
    st.lists(st.tuples(st.sampled_from(NODES), st.sampled_from([True, True, True, False, None]),
                       st.sampled_from([None, None, True])), min_size=1, max_size=3),
)


def delete(kind: str, names: list[str], ns: str):
    return st.sampled_from(names).map(lambda n: schema.K8sDelete(ref=schema.ObjectRef(kind=kind, namespace=ns, name=n)))


events = st.one_of(
    nodes.map(up), pools.map(up), l2ads.map(up), bgpads.map(up), peers.map(up), services.map(up), slices.map(up),
    services.map(up), slices.map(up), services.map(up), slices.map(up), services.map(up), slices.map(up),
    st.sampled_from(NODES).map(lambda n: schema.SpeakerDown(node=n)),
    st.sampled_from(NODES).map(lambda n: schema.SpeakerUp(node=n)),
    delete("Node", NODES, ""), delete("Service", SERVICES, "default"),
    delete("EndpointSlice", [f"{s}-0" for s in SERVICES], "default"),
    delete("L2Advertisement", ["l2a", "l2b"], NS), delete("BGPAdvertisement", ["ba", "bb"], NS),
    namespaces.map(up), delete("Namespace", ["default"], ""),
)

BASE = [
    up(schema.Community(namespace=NS, name="c", communities=(schema.CommunityAlias(name="alias1", value="7:7"),))),
    up(schema.IPAddressPool(namespace=NS, name="p", labels=(("tier", "prod"),),
                            addresses=("10.0.0.0/28", "fd00::/124"))),
    up(schema.L2Advertisement(namespace=NS, name="l2a")),
    up(schema.BGPAdvertisement(namespace=NS, name="ba")),
    up(schema.BGPPeer(namespace=NS, name="pa", my_asn=64512, peer_asn=64513, peer_address="192.0.2.1")),
    *[up(schema.Node(name=n, labels=(("zone", "a" if i % 2 else "b"),))) for i, n in enumerate(NODES)],
    *[up(schema.Service(namespace="default", name=s, type="LoadBalancer", labels=(("app", "x" if i % 2 else "y"),),
                        external_traffic_policy="Local" if i % 3 == 0 else "Cluster", cluster_ips=("10.96.0.1",)))
      for i, s in enumerate(SERVICES)],
    *[up(schema.EndpointSlice(namespace="default", name=f"{s}-0", service_name=s, endpoints=(
        schema.Endpoint(addresses=("10.244.0.1",), ready=True, node_name=NODES[i % 5]),
        schema.Endpoint(addresses=("10.244.0.2",), ready=True, node_name=NODES[(i + 2) % 5]))))
      for i, s in enumerate(SERVICES)],
]


def view_of(state: statemod.State) -> dict:
    """Everything planning answers, in canonical form."""
    node_names = sorted({n for (_, n) in state.objects["Node"]} | set(NODES))
    keys = sorted(state.services)
    return {
        "l2": {k: planning.l2_map(state, k) for k in keys},
        "bgp": decisions.bgp(state),
        "plans": {n: planning.node_plan(state, n).to_json() for n in node_names},
        "l2why": {(k, n): planning.l2_reasons(state, k, n) for k in keys for n in node_names},
        "bgpwhy": {(k, n): planning.bgp_reason(state, k, n) for k in keys for n in node_names},
    }


def full_view(state: statemod.State) -> dict:
    saved = state.plan
    state.plan = None
    try:
        return view_of(state)
    finally:
        state.plan = saved


def check_reference(state: statemod.State) -> None:
    bgp = decisions.bgp(state)  # computed per kind of node; must equal each node's own plan
    for n in NODES:
        flat = [dict(a, peer=peer) for peer, ads in bgp.get(n, {}).items() for a in ads]
        assert flat == planning.node_plan(state, n).to_json()["bgp"], n
    owners = elect.ip_owners(state)
    for key in sorted(state.services):
        assert planning.l2_map(state, key) == elect.l2_map(state, key, owners), key
        for n in NODES:
            assert planning.l2_reasons(state, key, n) == elect.should_announce(state, key, n), (key, n)


def check_one_owner(state: statemod.State) -> None:
    announced: dict[str, list[str]] = {}
    for n in NODES:
        for ip in planning.node_plan(state, n).l2:
            announced.setdefault(ip, []).append(n)
            # eligible: some Service using the IP lets this node announce it (computed by the node itself)
            assert any(elect.should_announce(state, k, n).get(ip, "x") is None
                       for k in sorted(state.services) if ip in state.services[k].ingress), (ip, n)
    for key in sorted(state.services):
        for ip, v in planning.l2_map(state, key).items():
            if v["node"] is not None:
                assert announced.get(ip) == [v["node"]], (ip, announced.get(ip))
    assert all(len(v) == 1 for v in announced.values()), announced


@settings(max_examples=60)
@given(st.lists(events, min_size=1, max_size=30))
def test_incremental_equals_full_recompute_and_the_reference_after_every_event(evs) -> None:
    state = statemod.new()
    planning.ensure(state)  # from here on, every event is planned incrementally
    views = {n: planning.NodeView(n) for n in NODES}
    for n, v in views.items():
        v.sync(state)
    for e in BASE + evs:
        fold.apply(state, e)
        cfg, errors = fold.build_config(state.objects)  # incremental validation (node, namespace churn) == full
        assert (state.config_valid, state.config_errors) == (cfg is not None, errors), e
        assert view_of(state) == full_view(state), e
        check_reference(state)
        for n, v in views.items():
            before = effects.NodePlan(l2=dict(v.current.l2), bgp=dict(v.current.bgp))
            effs = v.sync(state)
            assert v.current == planning.node_plan(state, n), (n, e)
            assert effects.apply(before, effs) == v.current
    check_reference(state)
    check_one_owner(state)


node_heavy = st.one_of(
    events, nodes.map(up), st.sampled_from(NODES).map(lambda n: schema.SpeakerDown(node=n)),
    st.sampled_from(NODES).map(lambda n: schema.SpeakerUp(node=n)), services.map(up), slices.map(up),
)


@settings(max_examples=60)
@given(st.lists(st.tuples(node_heavy, st.sampled_from([False, False, False, True])), min_size=1, max_size=40))
def test_node_events_planned_when_read_equal_planning_each_at_once(evs) -> None:
    """Node events are planned when the plan is next read: whatever events come between two reads (Services
    planned with a node's old information, a node down and up again, a node deleted and re-added), the plan read
    equals a full recomputation, and a speaker's NodeView follows it."""
    state = statemod.new()
    for e in BASE:
        fold.apply(state, e)
    planning.ensure(state)
    views = {n: planning.NodeView(n) for n in NODES}
    for v in views.values():
        v.sync(state)
    for e, read in evs + [(schema.SpeakerUp(node=NODES[0]), True)]:
        fold.apply(state, e)
        if not read:
            continue
        for n, v in views.items():
            before = effects.NodePlan(l2=dict(v.current.l2), bgp=dict(v.current.bgp))
            effs = v.sync(state)
            assert v.current == planning.node_plan(state, n), (n, e)
            assert effects.apply(before, effs) == v.current
        assert view_of(state) == full_view(state), e
        check_reference(state)
    check_one_owner(state)


@settings(max_examples=40)
@given(st.lists(events, max_size=25), st.data())
def test_an_unrelated_event_yields_no_effects(evs, data) -> None:
    state = fold.fold(BASE + evs, statemod.new())
    views = {n: planning.NodeView(n) for n in NODES}
    for v in views.values():
        v.sync(state)
    live = [n for n in NODES if n not in state.speakers_down and ("", n) in state.objects["Node"]]
    existing = [state.objects[k][key] for k in ("Service", "Node", "EndpointSlice") for key in sorted(state.objects[k])]
    options = [
        up(schema.Service(namespace="other", name="cip", type="ClusterIP", cluster_ips=("10.96.9.9",))),
        up(schema.EndpointSlice(namespace="other", name="cip-1", service_name="cip",
                                endpoints=(schema.Endpoint(addresses=("10.244.9.9",), node_name="n0"),))),
        up(schema.Namespace(name="unrelated", labels=(("team", "x"),))),
    ]
    options += [schema.SpeakerUp(node=n) for n in live]
    options += [up(o) for o in existing]  # a watch re-list: the same object again
    unrelated = data.draw(st.sampled_from(options))
    fold.apply(state, unrelated)
    for v in views.values():
        assert v.sync(state) == [], unrelated


plans = st.builds(
    effects.NodePlan,
    l2=st.dictionaries(st.sampled_from(["10.0.0.1", "10.0.0.2", "fd00::1"]),
                       st.sampled_from([(), ("eth0",), ("eth0", "eth1")])),
    bgp=st.dictionaries(st.tuples(st.sampled_from(["pa", "pb"]), st.sampled_from(["10.0.0.0/24", "10.0.0.1/32"])),
                        st.tuples(st.sampled_from([None, 100]), st.sampled_from([(), ("1:1",)]))),
)


@given(plans, plans)
def test_diff_applied_to_old_gives_new_and_withdrawals_come_first(old, new) -> None:
    effs = effects.diff(old, new)
    assert effects.apply(old, effs) == new
    kinds = [type(e).__name__ for e in effs]
    first_announce = next((i for i, k in enumerate(kinds) if k in ("L2Announce", "BgpAdvertise")), len(kinds))
    assert all(k in ("L2Announce", "BgpAdvertise") for k in kinds[first_announce:])
    assert effects.diff(new, new) == []


NO_L2 = [schema.K8sDelete(ref=schema.ObjectRef(kind="L2Advertisement", namespace=NS, name=n)) for n in ("l2a", "l2b")]


@settings(max_examples=80)
@given(st.lists(events, max_size=25), st.booleans(), st.sampled_from(["lazy", "built", "snapshot"]),
       st.lists(events, max_size=8))
def test_a_primed_first_plan_equals_the_full_plan_and_the_next_syncs_stay_exact(evs, no_l2, how, later) -> None:
    """NodeView.prime (a speaker's first plan, computed straight from the state when its node has no
    L2Advertisement) == the node's full plan and its effects == a first sync's; the syncs after it (which build
    the plan and the view's indexes) keep the view equal to the full plan, with effects that take it there."""
    from reconciler import snapshot

    state = fold.fold(BASE + evs + (NO_L2 if no_l2 else []), statemod.new())
    if how == "built":
        planning.ensure(state)
    elif how == "snapshot":
        state = snapshot.load(snapshot.dump(state))
    views = {n: planning.NodeView(n) for n in NODES}
    primed = {n: v.prime(state) for n, v in views.items()}  # before anything builds the plan
    plan = planning.ensure(state)
    for n, v in views.items():
        expected = planning.node_plan(state, n)
        info = plan.nodes.get(n)
        if primed[n] is None:
            assert info is not None and info.l2, n  # only a node with L2 advertisements needs the whole plan
            v.sync(state)
            continue
        assert not (info is not None and info.l2), n
        assert v.current == expected, n
        assert primed[n] == effects.diff(effects.NodePlan(), expected), n
        assert planning.NodeView(n).sync(state) == primed[n], n
    for e in later:
        fold.apply(state, e)
        for n, v in views.items():
            before = effects.NodePlan(l2=dict(v.current.l2), bgp=dict(v.current.bgp))
            effs = v.sync(state)
            assert v.current == planning.node_plan(state, n), (n, e)
            assert effects.apply(before, effs) == v.current, (n, e)
    if not later:  # a view synced right after prime, with nothing folded in between, sends nothing
        for n, v in views.items():
            assert v.sync(state) == [], n
