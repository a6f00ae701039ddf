"""Node and Namespace events are validated incrementally (issue 14) — laws, over random histories with node and
namespace churn (``tests/strategies.cluster_events``):

* after every event, the fold's verdict (valid, error texts) equals ``config.build`` from scratch over every stored
  object, Nodes included;
* the configuration in force equals the last configuration that was valid, and a valid one equals the rebuilt one;
* the decisions equal those of a fresh fold of the same history and of a snapshot + tail.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from events import schema
from reconciler import config as configmod
from reconciler import decisions, fold, snapshot
from reconciler import state as statemod
from tests import strategies as S

BASE = [
    schema.K8sUpsert(obj=schema.IPAddressPool(namespace=S.MLB, name="p", addresses=("10.0.0.0/28",))),
    schema.K8sUpsert(obj=schema.BGPAdvertisement(namespace=S.MLB, name="ba", local_pref=100,
                                                 node_selectors=(S._sel("zone", "a"),))),
    schema.K8sUpsert(obj=schema.BGPAdvertisement(namespace=S.MLB, name="bb", local_pref=200,
                                                 node_selectors=(S._sel("rack", "r1"),))),
    schema.K8sUpsert(obj=schema.BGPPeer(namespace=S.MLB, name="pa", my_asn=64512, peer_asn=64513,
                                        peer_address="192.0.2.1", node_selectors=(S._sel("zone", "a"),))),
    schema.K8sUpsert(obj=schema.BGPPeer(namespace=S.MLB, name="pb", my_asn=64514, peer_asn=64513,
                                        peer_address="192.0.2.2", node_selectors=(S._sel("rack", "r2"),))),
    *[schema.K8sUpsert(obj=schema.Node(name=n, labels=(("zone", "a" if i % 2 else "b"),)))
      for i, n in enumerate(S.CLUSTER_NODES)],
    *[schema.K8sUpsert(obj=schema.Namespace(name=ns)) for ns in S.CLUSTER_NAMESPACES],
]


def full_verdict(st_: statemod.State) -> tuple[configmod.Config | None, list[str]]:
    return fold.build_config(st_.objects)


@settings(max_examples=80, deadline=None)
@given(st.lists(S.cluster_events, min_size=10, max_size=50))
def test_incremental_validation_equals_full_build_after_every_event(evs) -> None:
    state = statemod.new()
    last_valid = None
    for e in BASE + evs:  # BASE is valid; a node in zone a and rack r1 (or r2) breaks it
        fold.apply(state, e)
        cfg, errors = full_verdict(state)
        assert state.config_valid == (cfg is not None), e
        assert state.config_errors == errors, e
        if cfg is not None:
            last_valid = cfg
            assert state.config == cfg, e
        else:
            assert state.config == last_valid, e


@settings(max_examples=40, deadline=None)
@given(st.lists(S.cluster_events, max_size=30), st.integers(0, 30))
def test_node_and_namespace_churn_keeps_fold_snapshot_and_replay_equal(evs, cut) -> None:
    events = BASE + evs
    cut = min(cut + len(BASE), len(events))
    full = fold.fold(events, statemod.new())
    head = fold.fold(events[:cut], statemod.new())
    resumed = fold.fold(events[cut:], snapshot.load(snapshot.dump(head)))
    assert snapshot.dump(resumed) == snapshot.dump(full)
    assert decisions.state_hash(resumed) == decisions.state_hash(full)
    assert decisions.services(resumed) == decisions.services(full)


def test_a_node_label_change_can_invalidate_and_revalidate_with_the_full_check_texts() -> None:
    state = fold.fold(BASE, statemod.new())
    assert state.config_valid, state.config_errors
    cfg = state.config
    fold.apply(state, schema.K8sUpsert(obj=schema.Node(name="n1", labels=(("rack", "r1"), ("zone", "b")))))
    assert state.config_valid
    both = schema.LabelSelector(match_expressions=(schema.Requirement(key="zone", operator="In", values=("a", "b")),))
    fold.apply(state, schema.K8sUpsert(obj=schema.BGPPeer(namespace=S.MLB, name="pb", my_asn=64514, peer_asn=64513,
                                                          peer_address="192.0.2.2", node_selectors=(both,))))
    assert not state.config_valid
    assert state.config_errors == full_verdict(state)[1]
    assert any("different local ASNs" in e for e in state.config_errors)
    assert state.config is cfg
    fold.apply(state, schema.K8sUpsert(obj=schema.BGPPeer(namespace=S.MLB, name="pb", my_asn=64514, peer_asn=64513,
                                                          peer_address="192.0.2.2",
                                                          node_selectors=(S._sel("rack", "r2"),))))
    assert state.config_valid
    cfg = state.config
    # n1 moves to zone a: LOCAL_PREF 100 (zone a) and 200 (rack r1) meet on it
    fold.apply(state, schema.K8sUpsert(obj=schema.Node(name="n1", labels=(("rack", "r1"), ("zone", "a")))))
    assert not state.config_valid
    assert state.config is cfg
    assert [e for e in state.config_errors if "localPref" in e] == [
        "BGPAdvertisement metallb-system/bb: spec.localPref: invalid local preference 200: local preference 100 was "
        "already set for the same type of BGP update by BGPAdvertisement metallb-system/ba (pool 'p')"]
    fold.apply(state, schema.K8sUpsert(obj=schema.Node(name="n1", labels=(("zone", "a"),))))  # leaves rack r1
    assert state.config_valid and state.config_errors == []
    assert state.config is cfg  # nothing in the configuration depends on Nodes: the one in force stands
    fold.apply(state, schema.K8sUpsert(obj=schema.Node(name="n3", labels=(("rack", "r2"), ("zone", "a")))))
    assert [e for e in state.config_errors if "myASN" in e] == [
        "BGPPeer metallb-system/pb: spec.myASN: BGPPeers 'pa' and 'pb' select the same node with different local "
        "ASNs (64512 vs 64514) in the same VRF"]
    fold.apply(state, schema.K8sDelete(ref=schema.ObjectRef(kind="Node", name="n3")))
    assert state.config_valid
