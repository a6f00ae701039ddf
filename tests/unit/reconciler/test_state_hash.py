"""Laws of the state hash, version 2 (design.md §4; issue 14): per-Service BGP records with shared announcer sets
instead of the expanded node -> peer -> prefix map.

* along random histories (the planning laws' events, and node/namespace churn), the hash changes whenever the
  version-1 hash of the expanded map (``tests/oracle/replay_v1``) changes (version 2 is finer: per-Service records);
* equal decisions, equal hashes: a plan rebuilt from scratch, and a snapshot plus the tail, hash like the fold;
* a snapshot carries the elected owners: loading it and asking for a node plan runs no election that the snapshot
  already decided, and gives the same plans.
"""

from __future__ import annotations

from hypothesis import example, given, settings, strategies as st

from events import schema
from reconciler import decisions, fold, planning, snapshot
from reconciler import state as statemod
from tests import strategies as S
from tests.oracle import replay_v1
from tests.unit.reconciler import test_config_incremental as cfgtest
from tests.unit.reconciler import test_plan_laws as plantest


def _check_history(base: list[schema.Event], evs: list[schema.Event]) -> None:
    state = statemod.new()
    planning.ensure(state)
    prev = None
    for e in base + evs:
        fold.apply(state, e)
        now = (decisions.state_hash(state), replay_v1.state_hash_v1(state))
        if prev is not None and now[1] != prev[1]:
            # a changed expanded map is a changed decision; version 2 is finer (per-Service records: two Services
            # announcing one prefix are two decisions, merged in the map), so it may change alone — never stay
            assert now[0] != prev[0], e
        prev = now
        saved = state.plan
        state.plan = None  # from scratch
        try:
            assert decisions.state_hash(state) == now[0], e
        finally:
            state.plan = saved


# the planning laws' events, with more churn of what the BGP records depend on: the attributes of the one
# advertisement (LOCAL_PREF, communities, aggregation, peers, node selectors), peers and nodes
one_ad = st.builds(
    lambda lp, comms, agg, peers, nsel: schema.BGPAdvertisement(
        namespace=plantest.NS, name="ba", local_pref=lp, communities=comms, aggregation_length=agg, peers=peers,
        node_selectors=nsel),
    st.sampled_from([0, 100, 200]), st.sampled_from([(), ("1:1",), ("large:1:2:3", "alias1"), ("2:2",)]),
    st.sampled_from([None, 30, 32]), st.sampled_from([(), ("pa",), ("pb",)]),
    st.sampled_from([(), (plantest.sel("zone", "a"),)]),
)
bgp_churn = st.one_of(one_ad.map(plantest.up), one_ad.map(plantest.up), one_ad.map(plantest.up),
                      plantest.peers.map(plantest.up), plantest.nodes.map(plantest.up), plantest.events)


def _ad(**kw) -> schema.K8sUpsert:
    return plantest.up(schema.BGPAdvertisement(namespace=plantest.NS, name="ba", **kw))


@settings(max_examples=100, deadline=None)
@given(st.lists(bgp_churn, min_size=8, max_size=30))
@example([_ad(local_pref=100), _ad(local_pref=200)])  # each attribute of what is announced, changed alone
@example([_ad(communities=("1:1",)), _ad(communities=("large:1:2:3", "alias1"))])
@example([_ad(aggregation_length=30), _ad(aggregation_length=32)])
@example([_ad(peers=("pb",)), plantest.up(schema.BGPPeer(namespace=plantest.NS, name="pb", my_asn=64512,
                                                         peer_asn=64513, peer_address="192.0.2.2"))])
def test_hash_changes_whenever_the_expanded_map_hash_does(evs) -> None:
    _check_history(plantest.BASE, evs)


@settings(max_examples=30, deadline=None)
@given(st.lists(S.cluster_events, min_size=5, max_size=30))
def test_hash_follows_decisions_under_node_and_namespace_churn(evs) -> None:
    base = cfgtest.BASE + [
        schema.K8sUpsert(obj=schema.Service(namespace="default", name=f"s{i}", type="LoadBalancer",
                                            cluster_ips=(f"10.96.0.{i + 1}",), external_traffic_policy=etp))
        for i, etp in enumerate(["Cluster", "Local", "Cluster"])
    ] + [
        schema.K8sUpsert(obj=schema.EndpointSlice(namespace="default", name=f"s{i}-0", service_name=f"s{i}",
                                                  endpoints=(schema.Endpoint(addresses=("10.244.0.1",),
                                                                             node_name=f"n{i}"),)))
        for i in range(3)
    ]
    _check_history(base, evs)


@settings(max_examples=30, deadline=None)
@given(st.lists(plantest.events, max_size=25), st.lists(plantest.events, max_size=10))
def test_snapshot_seeds_the_plan_with_its_owners(evs, tail) -> None:
    state = fold.fold(plantest.BASE + evs, statemod.new())
    blob = snapshot.dump(state)
    plan = planning.ensure(state)
    undecided = sum(1 for rec in plan.l2.values() if rec.owner is None)
    loaded = snapshot.load(blob)
    calls = []
    real = planning._elect
    planning._elect = lambda p, rec: (calls.append(rec), real(p, rec))[1]  # count, do not change
    try:
        for n in plantest.NODES:
            assert planning.node_plan(loaded, n) == planning.node_plan(state, n), n
    finally:
        planning._elect = real
    assert len(calls) <= undecided  # every recorded owner was taken, not re-elected
    assert decisions.state_hash(loaded) == decisions.state_hash(state)
    full = fold.fold(tail, state)
    resumed = fold.fold(tail, loaded)
    assert decisions.state_hash(resumed) == decisions.state_hash(full)
    for n in plantest.NODES:
        assert planning.node_plan(resumed, n) == planning.node_plan(full, n), n


def test_every_single_node_leaving_an_announcer_set_changes_the_hash() -> None:
    state = fold.fold(plantest.BASE, statemod.new())
    before = decisions.state_hash(state)
    assert decisions.bgp(state)  # every node sends something to the one peer
    for n in plantest.NODES:
        node = state.objects["Node"][("", n)]
        fold.apply(state, plantest.up(schema.Node(name=n, labels=node.labels, network_unavailable=True)))
        assert decisions.state_hash(state) != before, n
        fold.apply(state, plantest.up(node))
        assert decisions.state_hash(state) == before, n
