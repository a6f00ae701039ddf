"""``preferredNodeSelectors`` on L2Advertisement (MetalLB main; metallb-behaviour.md §2.2, §5.1 step 6).

Stories named after MetalLB's own tests (``speaker/layer2_controller_test.go``: TestSortL2Candidates,
TestPreferredScoresFor, TestShouldAnnouncePreferredNode, TestShouldAnnounceSplitBrainWithMixedAds,
TestShouldAnnouncePreferredNodeFailover; ``internal/config``: TestL2AdvertisementFromCRPreferred,
TestSetL2AdvertisementsToPoolsPreferred, the "Ads carrying preferences never dedupe" case of
TestContainsAdvertisement). Every story checks the replay JSON (``services[...].l2`` and ``events``) and
``streamlb explain`` (the ``l2`` section's owner, ``scores`` and ``ranking``); the hash orders used below were
checked against the orders MetalLB's tests assert (e.g. edge-b before edge-a at 10.20.30.1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from events import kube, logfile, schema
from reconciler import elect, explain, fold, planning, state as statemod
from reconciler.runtime import replay
from reconciler.runtime.cli.app import app

NS = "metallb-system"
IP = "10.20.30.1"
SVC = "default/web"


def up(obj) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=obj)


def node(name: str, **labels: str) -> schema.K8sUpsert:
    return up(schema.Node(name=name, labels=tuple(sorted(labels.items()))))


def sel(**labels: str) -> schema.LabelSelector:
    return schema.LabelSelector(match_labels=tuple(sorted(labels.items())))


def pref(weight: int, **labels: str) -> schema.PreferredNodeSelector:
    return schema.PreferredNodeSelector(weight=weight, preference=sel(**labels))


def l2ad(name: str, prefs=(), nodes=(), **kw) -> schema.K8sUpsert:
    return up(schema.L2Advertisement(namespace=NS, name=name, preferred_node_selectors=tuple(prefs),
                                     node_selectors=tuple(nodes), **kw))


def base(*node_names: str, etp: str = "Cluster", endpoints_on: tuple[str, ...] = ("worker-a",), labels=None) -> list:
    """A pool whose first address is 10.20.30.1, the Service ``default/web`` and its endpoints."""
    evs = [up(schema.IPAddressPool(namespace=NS, name="p", labels=(("tier", "prod"),),
                                   addresses=("10.20.30.1-10.20.30.9",)))]
    evs += [node(n, **(labels or {}).get(n, {})) for n in node_names]
    evs.append(up(schema.Service(namespace="default", name="web", type="LoadBalancer", cluster_ips=("10.96.0.1",),
                                 external_traffic_policy=etp, selector=(("app", "web"),),
                                 ports=(schema.ServicePort(port=80),))))
    evs.append(up(schema.EndpointSlice(namespace="default", name="web-1", service_name="web", endpoints=tuple(
        schema.Endpoint(addresses=(f"10.244.0.{i + 1}",), ready=True, node_name=n)
        for i, n in enumerate(endpoints_on)))))
    return evs


def replayed(tmp_path: Path, evs: list) -> dict:
    path = tmp_path / "story.evlog"
    path.write_bytes(logfile.encode_file(evs))
    return json.loads(replay.replay([str(path)]).to_json())


def l2_explain(evs: list) -> dict:
    st = fold.fold(list(evs), statemod.new())
    out = explain.explain(st, SVC)
    assert out is not None
    return out["l2"][IP]


def check(tmp_path: Path, evs: list, owner: str | None, scores: dict[str, int] | None = None,
          reason: str | None = None) -> dict:
    """The owner as replay JSON shows it and as explain shows it, and explain's scores."""
    out = replayed(tmp_path, evs)
    svc = out["services"][SVC]
    assert svc["ingress"] == [IP]
    assert svc["events"] == [{"type": "Normal", "reason": "IPAllocated", "message": f'Assigned IP ["{IP}"]'}]
    assert svc["l2"] == {IP: {"node": owner, "reason": reason}}
    ex = l2_explain(evs)
    assert ex["owner"] == owner
    if scores is not None:
        assert ex["scores"] == scores
    if owner is not None:
        assert ex["ranking"][0] == owner and ex["nodes"]["announces"] == [owner]
    return ex


EDGE = {"edge-a": {"role": "edge", "pin": "yes"}, "edge-b": {"role": "edge"}}


# --- TestSortL2Candidates / TestShouldAnnouncePreferredNode -------------------------------------------------------


def test_hash_order_without_preferences_matches_metallb() -> None:
    assert elect.rank(["edge-a", "edge-b", "worker-a", "worker-b"], IP) == ["edge-b", "worker-a", "edge-a", "worker-b"]
    assert elect.rank(["node-a", "node-b", "node-c"], "10.0.0.1") == ["node-b", "node-a", "node-c"]


def test_ranking_highest_score_wins_regardless_of_hash(tmp_path: Path) -> None:
    """"preferred node with highest score wins": edge-a (score 100) beats the hash winner edge-b."""
    names = ("edge-a", "edge-b", "worker-a", "worker-b")
    plain = base(*names, labels=EDGE) + [l2ad("l2")]
    check(tmp_path, plain, "edge-b", {n: 0 for n in names})
    evs = base(*names, labels=EDGE) + [l2ad("l2", prefs=[pref(100, pin="yes")])]
    ex = check(tmp_path, evs, "edge-a", {"edge-a": 100, "edge-b": 0, "worker-a": 0, "worker-b": 0})
    assert ex["ranking"] == ["edge-a", "edge-b", "worker-a", "worker-b"]  # MetalLB's expected order
    assert ex["nodes"]["notOwner"] == ["edge-b", "worker-a", "worker-b"]


def test_ranking_equal_scores_fall_through_to_hash_and_unpreferred_trail(tmp_path: Path) -> None:
    """"preferred group sorted by hash, unpreferred trail": edge-a, edge-b both 100 -> edge-b, edge-a, worker-a."""
    evs = base("edge-a", "edge-b", "worker-a", labels=EDGE) + [l2ad("l2", prefs=[pref(100, role="edge")])]
    ex = check(tmp_path, evs, "edge-b", {"edge-a": 100, "edge-b": 100, "worker-a": 0})
    assert ex["ranking"] == ["edge-b", "edge-a", "worker-a"]


# --- TestPreferredScoresFor / TestL2AdvertisementFromCRPreferred --------------------------------------------------


def test_weights_add_up_across_advertisements(tmp_path: Path) -> None:
    """"preferences across ads sum": ad1 a:70, ad2 a:30 b:50 -> a 100, b 50; each ad alone would elect otherwise."""
    labels = {"a": {"x": "1"}, "b": {"y": "1"}}
    ad1 = l2ad("ad1", prefs=[pref(70, x="1")])
    ad2 = l2ad("ad2", prefs=[pref(30, x="1"), pref(50, y="1")])
    check(tmp_path, base("a", "b", "c", labels=labels) + [ad1, ad2], "a", {"a": 100, "b": 50, "c": 0})
    # the two advertisements are separate objects: ad2 alone puts b first (50 > 30)
    check(tmp_path, base("a", "b", "c", labels=labels) + [ad2], "b", {"a": 30, "b": 50, "c": 0})


def test_weights_add_up_within_one_advertisement(tmp_path: Path) -> None:
    """"multiple preferred selectors sum on matching nodes" / "cumulative weights sum" (60 + 50 = 110)."""
    labels = {"edge-a": {"zone": "primary", "role": "edge"}, "edge-b": {"role": "edge"}, "worker-a": {"zone": "primary"}}
    ad = l2ad("l2", prefs=[pref(60, zone="primary"), pref(50, role="edge")])
    check(tmp_path, base("edge-a", "edge-b", "worker-a", labels=labels) + [ad], "edge-a",
          {"edge-a": 110, "edge-b": 50, "worker-a": 60})


def test_empty_preference_matches_every_eligible_node(tmp_path: Path) -> None:
    """"empty preference matches every eligible node": all score 10, the hash decides."""
    evs = base("edge-a", "edge-b", "worker-a") + [l2ad("l2", prefs=[pref(10)])]
    check(tmp_path, evs, "edge-b", {"edge-a": 10, "edge-b": 10, "worker-a": 10})


def test_preferences_score_only_nodes_the_advertisement_selects(tmp_path: Path) -> None:
    """"preferences do not score ineligible nodes" / "preferred selectors disjoint from node selectors yield no
    scores": ad-edge selects only role=edge; its preference (zone=primary) also matches worker-a, which gets 0."""
    labels = {"edge-a": {"role": "edge"}, "edge-b": {"role": "edge", "zone": "primary"}, "worker-a": {"zone": "primary"}}
    evs = base("edge-a", "edge-b", "worker-a", labels=labels) + [
        l2ad("ad-edge", nodes=[sel(role="edge")], prefs=[pref(100, zone="primary")]), l2ad("ad-all")]
    check(tmp_path, evs, "edge-b", {"edge-a": 0, "edge-b": 100, "worker-a": 0})
    labels["edge-b"] = {"role": "edge"}
    evs = base("edge-a", "edge-b", "worker-a", labels=labels) + [
        l2ad("ad-edge", nodes=[sel(role="edge")], prefs=[pref(100, zone="primary")]), l2ad("ad-all")]
    check(tmp_path, evs, "edge-b", {"edge-a": 0, "edge-b": 0, "worker-a": 0})  # hash order, worker-a not preferred


# --- TestShouldAnnounceSplitBrainWithMixedAds -----------------------------------------------------------------------


def test_split_brain_with_mixed_ads_scores_every_ad_matching_the_service(tmp_path: Path) -> None:
    """The edge ad carries the preference, an all-nodes ad none, a poison ad (serviceSelectors not matching the
    Service) prefers worker-a with 1000: every node computes edge-a, and the poison ad counts nowhere."""
    evs = base("edge-a", "worker-a", labels=EDGE) + [
        l2ad("ad-edge", nodes=[sel(role="edge")], prefs=[pref(100, pin="yes")]),
        l2ad("ad-all"),
        l2ad("ad-poison", prefs=[pref(100, role="nope"), pref(100)], service_selectors=(sel(app="does-not-match"),)),
    ]
    check(tmp_path, evs, "edge-a", {"edge-a": 100, "worker-a": 0})
    st = fold.fold(evs, statemod.new())
    assert elect.should_announce(st, SVC, "edge-a") == {IP: None}
    assert elect.should_announce(st, SVC, "worker-a") == {IP: "notOwner"}


# --- ETP Local -----------------------------------------------------------------------------------------------------


def test_etp_local_drops_preferred_node_without_local_endpoints(tmp_path: Path) -> None:
    """"ETP Local drops preferred node without local endpoints": worker-a hosts the endpoint and wins."""
    labels = {"preferred-a": {"pin": "yes"}}
    evs = base("preferred-a", "worker-a", etp="Local", endpoints_on=("worker-a",), labels=labels) + [
        l2ad("l2", prefs=[pref(100, pin="yes")])]
    ex = check(tmp_path, evs, "worker-a", {"preferred-a": 100, "worker-a": 0})
    assert ex["ranking"] == ["worker-a"] and ex["nodes"]["noLocalEndpoints"] == ["preferred-a"]
    # with an endpoint on preferred-a too, the preference decides again (hash order would pick worker-a)
    evs = base("preferred-a", "worker-a", etp="Local", endpoints_on=("worker-a", "preferred-a"), labels=labels) + [
        l2ad("l2", prefs=[pref(100, pin="yes")])]
    check(tmp_path, evs, "preferred-a")


# --- TestShouldAnnouncePreferredNodeFailover ----------------------------------------------------------------------


def test_preferred_nodes_down_fall_back_to_hash_order(tmp_path: Path) -> None:
    labels = {"edge-a": {"role": "edge"}, "edge-b": {"role": "edge"}}
    evs = base("edge-a", "edge-b", "worker-a", "worker-b", labels=labels) + [l2ad("l2", prefs=[pref(100, role="edge")])]
    scores = {"edge-a": 100, "edge-b": 100, "worker-a": 0, "worker-b": 0}
    check(tmp_path, evs, "edge-b", scores)  # tie among the preferred: the hash picks edge-b
    evs.append(schema.SpeakerDown(node="edge-b"))
    ex = check(tmp_path, evs, "edge-a", scores)  # "preferred node pruned leaves remaining preferred as winner"
    assert ex["nodes"]["speakerDown"] == ["edge-b"]
    evs.append(schema.SpeakerDown(node="edge-a"))
    ex = check(tmp_path, evs, "worker-a", scores)  # "all preferred unavailable falls through to hash"
    assert ex["ranking"] == elect.rank(["worker-a", "worker-b"], IP) == ["worker-a", "worker-b"]
    evs.append(schema.SpeakerUp(node="edge-b"))
    check(tmp_path, evs, "edge-b", scores)  # "preferred node returns and reclaims"
    evs.append(node("edge-b"))  # loses its role label: no longer preferred, but still first in hash order
    ex = check(tmp_path, evs, "edge-b", {"edge-a": 100, "edge-b": 0, "worker-a": 0, "worker-b": 0})
    assert ex["ranking"] == ["edge-b", "worker-a", "worker-b"]
    evs.append(node("worker-b", role="edge"))  # a label makes a running node preferred: it takes over
    check(tmp_path, evs, "worker-b", {"edge-a": 100, "edge-b": 0, "worker-a": 0, "worker-b": 100})


def test_incremental_plan_follows_label_changes_that_change_scores() -> None:
    labels = {"edge-a": {"role": "edge"}}
    st = statemod.new()
    planning.ensure(st)  # every event below is planned incrementally
    for e in base("edge-a", "edge-b", "worker-a", labels=labels) + [l2ad("l2", prefs=[pref(100, role="edge")])]:
        fold.apply(st, e)
    assert planning.l2_owner(st, IP) == "edge-a"
    for e, owner in ((node("worker-a", role="edge"), "worker-a"), (node("edge-a"), "worker-a"),
                     (node("worker-a"), "edge-b"), (node("edge-a", role="edge"), "edge-a")):
        fold.apply(st, e)
        assert planning.l2_owner(st, IP) == owner == elect.l2_map(st, SVC)[IP]["node"], e


# --- de-duplication (TestSetL2AdvertisementsToPoolsPreferred, TestContainsAdvertisement) ----------------------------


def test_advertisements_with_preferences_are_never_deduplicated(tmp_path: Path) -> None:
    """"Ads carrying preferences never dedupe so speaker can sum weights" / "two CRs targeting the same pool attach
    independently": two identical ads preferring b (50 each) outweigh one ad preferring a with 60."""
    labels = {"a": {"x": "1"}, "b": {"y": "1"}}
    same = dict(prefs=[pref(50, y="1")], ip_address_pools=("p",))
    evs = base("a", "b", labels=labels) + [l2ad("twin-1", **same), l2ad("twin-2", **same), l2ad("other", prefs=[pref(60, x="1")])]
    check(tmp_path, evs, "b", {"a": 60, "b": 100})


def test_one_advertisement_reaching_a_pool_twice_counts_once(tmp_path: Path) -> None:
    """"pool selected by name and selector attaches once": by name and by label it still adds 60, not 120."""
    labels = {"a": {"x": "1"}, "b": {"y": "1"}}
    evs = base("a", "b", labels=labels) + [
        l2ad("both-ways", prefs=[pref(60, y="1")], ip_address_pools=("p",),
             ip_address_pool_selectors=(sel(tier="prod"),)),
        l2ad("other", prefs=[pref(100, x="1")]),
    ]
    check(tmp_path, evs, "a", {"a": 100, "b": 60})


def test_identical_advertisements_without_preferences_change_nothing(tmp_path: Path) -> None:
    """"Identical ads without preferences still dedupe": a duplicate plain ad changes no score and no owner."""
    names = ("edge-a", "edge-b", "worker-a")
    one = base(*names) + [l2ad("l2")]
    two = one + [l2ad("l2-copy")]
    assert check(tmp_path, one, "edge-b") == check(tmp_path, two, "edge-b")


# --- validation and translation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("weight, bound", [(0, "greater than or equal to 1"), (101, "less than or equal to 100")])
def test_weight_outside_1_to_100_makes_the_configuration_invalid(tmp_path: Path, weight: int, bound: str) -> None:
    good = base("edge-a", "edge-b", labels=EDGE) + [l2ad("l2", prefs=[pref(100, pin="yes")])]
    out = replayed(tmp_path, good + [l2ad("l2", prefs=[pref(weight, pin="yes"), pref(1)])])
    f = "spec.preferredNodeSelectors[0].weight"
    assert out["config"] == {"valid": False, "errors": [
        f"L2Advertisement {NS}/l2: {f}: Invalid value: {weight}: {f} in body should be {bound}"]}
    # the previous valid configuration stays in force (its preference still elects edge-a)
    assert out["services"][SVC]["l2"] == {IP: {"node": "edge-a", "reason": None}}


def test_invalid_preference_selector_is_a_configuration_error(tmp_path: Path) -> None:
    bad = schema.PreferredNodeSelector(weight=5, preference=schema.LabelSelector(
        match_expressions=(schema.Requirement(key="x", operator="BadOperator"),)))
    out = replayed(tmp_path, base("edge-a") + [l2ad("l2", prefs=[bad])])
    assert out["config"]["valid"] is False
    assert out["config"]["errors"] == [
        f"L2Advertisement {NS}/l2: spec.preferredNodeSelectors[0].preference: invalid preferred node selector: "
        "invalid operator 'BadOperator' for key 'x'"]


def test_kubernetes_object_translates_preferred_node_selectors() -> None:
    obj = {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
           "metadata": {"name": "l2", "namespace": NS},
           "spec": {"ipAddressPools": ["p"], "preferredNodeSelectors": [
               {"weight": 80, "preference": {"matchLabels": {"role": "edge"}}},
               {"weight": 20, "preference": {"matchExpressions": [
                   {"key": "zone", "operator": "In", "values": ["b", "a"]}]}},
               {"weight": 5, "preference": {}}]}}
    ad = kube.translate(obj)
    assert isinstance(ad, schema.L2Advertisement)
    assert ad.preferred_node_selectors == (
        pref(80, role="edge"),
        schema.PreferredNodeSelector(weight=20, preference=schema.LabelSelector(
            match_expressions=(schema.Requirement(key="zone", operator="In", values=("b", "a")),))),
        schema.PreferredNodeSelector(weight=5),
    )


# --- simulate ---------------------------------------------------------------------------------------------------------


def test_simulate_failing_the_preferred_node_moves_the_ip_to_the_next_preferred(tmp_path: Path) -> None:
    labels = {"edge-a": {"role": "edge"}, "edge-b": {"role": "edge"}}
    evs = base("edge-a", "edge-b", "worker-a", labels=labels) + [l2ad("l2", prefs=[pref(100, role="edge")])]
    path = tmp_path / "c.evlog"
    path.write_bytes(logfile.encode_file(evs))
    res = CliRunner().invoke(app, ["simulate", "--log", str(path), "--fail-node", "edge-b", "--output", "json"])
    assert res.exit_code == 0, res.output
    moves = json.loads(res.output)["l2_moves"]
    assert moves == [{"service": SVC, "ip": IP, "from": "edge-b", "to": "edge-a", "reason": None}]  # not worker-a
