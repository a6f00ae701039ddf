"""The replay JSON writer (``ReplayResult.write_json``) prints, byte for byte, what the old builder printed
(``tests/oracle/replay_v1``: the whole object in memory, one ``msgspec.json.format`` call), along random histories:
the ``bgp`` map written from shared runs (:func:`reconciler.planning.bgp_layout`) with ``Local`` Services spliced in,
including runs that interleave or share a prefix (aggregation, several advertisements, Service selectors).
"""

from __future__ import annotations

import io

from hypothesis import example, given, settings, strategies as st

from events import schema
from reconciler import fold, planning
from reconciler import state as statemod
from reconciler.runtime import replay
from tests.oracle import replay_v1
from tests.unit.reconciler import test_plan_laws as plantest


def _check(evs: list[schema.Event]) -> None:
    state = statemod.new()
    for e in plantest.BASE + evs:
        fold.apply(state, e)
        state.plan = None  # a replay plans once, at the end
        result = replay.ReplayResult(state=state, events_applied=7)
        assert result.to_json() == replay_v1.to_json(result), e
        omitted = result.to_json(frozenset({"bgp"}))
        buf = io.BytesIO()
        result.write_json(buf, frozenset({"bgp"}))
        assert omitted == buf.getvalue() and b'"bgp"' not in omitted


def _bgp(name: str, **kw) -> schema.K8sUpsert:
    return plantest.up(schema.BGPAdvertisement(namespace=plantest.NS, name=name, **kw))


X = (plantest.sel("app", "x"),)


@settings(max_examples=80, deadline=None)
@given(st.lists(plantest.events, min_size=5, max_size=25))
# Services of two shapes (app=x matches both advertisements, app=y only "bb") send the same aggregated prefix
@example([_bgp("ba", service_selectors=X, local_pref=100, communities=("1:1",)),
          _bgp("bb", aggregation_length=28, aggregation_length_v6=124, local_pref=100, communities=("2:2",))])
# the same, with the advertisements on different peers and Local Services adding to the shared prefix
@example([plantest.up(schema.BGPPeer(namespace=plantest.NS, name="pb", my_asn=64512, peer_asn=64513,
                                     peer_address="192.0.2.2", node_selectors=(plantest.sel("zone", "a"),))),
          _bgp("ba", service_selectors=X, peers=("pa",)),
          _bgp("bb", aggregation_length=29, communities=("large:1:2:3",))])
# two Services of different shapes sharing one IP: the prefix is in both runs, with different values
@example([_bgp("ba", service_selectors=X, communities=("1:1",)), _bgp("bb", communities=("2:2",)),
          *(plantest.up(schema.Service(
              namespace="default", name=f"s{i}", type="LoadBalancer", labels=(("app", app),),
              annotations=(("metallb.io/allow-shared-ip", "k"),), load_balancer_ip="10.0.0.9",
              cluster_ips=("10.96.0.1",), ports=(schema.ServicePort(port=80 + i),))) for i, app in ((4, "y"), (5, "x")))])
# two shapes whose prefixes interleave (app=x: .1 and .5, app=y: .2 and .4)
@example([_bgp("bb", service_selectors=X, communities=("1:1",))])
def test_writer_prints_what_the_old_builder_printed(evs) -> None:
    _check(evs)


def test_layout_shares_runs_between_kinds_of_node() -> None:
    state = statemod.new()
    for e in plantest.BASE + [plantest.up(schema.BGPPeer(namespace=plantest.NS, name="pb", my_asn=64512,
                                                         peer_asn=64513, peer_address="192.0.2.2",
                                                         node_selectors=(plantest.sel("zone", "a"),)))]:
        fold.apply(state, e)
    layout = planning.bgp_layout(state)
    assert len(layout.kinds) == 2  # zone a (peers pa and pb) and zone b (pa only)
    a, b = (layout.kinds[layout.nodes[[n for n, _, _ in layout.nodes].index(name)][1]] for name in ("n1", "n0"))
    assert sorted(a) == ["pa", "pb"] and sorted(b) == ["pa"]
    assert a["pa"] == b["pa"] and all(x is y for x, y in zip(a["pa"], b["pa"]))  # the very same runs
    assert replay.ReplayResult(state=state).to_json() == replay_v1.to_json(replay.ReplayResult(state=state))
