"""Announcement planning at scale: per-event re-plan cost, failover re-plan time, L2 balance.

What is measured (full run: 100,000 Services × 2,000 nodes; ``--quick``: 10,000 × 200)
* **state**: one pool, one L2Advertisement for every node, one BGPAdvertisement and two BGPPeers; every Service
  has an IP and an EndpointSlice with 1–3 ready endpoints on random nodes; one Service in three is
  ``externalTrafficPolicy: Local``. The plan is then built once from scratch (``planning.rebuild``): that time is
  the **full-recompute baseline** — what re-deciding every Service costs, as MetalLB's speakers do on every
  membership change (each re-ranks all candidate nodes by SHA-256 per Service).
* **per event, no L2 churn**: ``fold.apply`` (fold + incremental planning) of EndpointSlice updates that keep the
  set of serving nodes of Cluster Services (endpoint addresses change); owners stay put.
* **per event, with L2 churn**: EndpointSlice updates that move the endpoints of Local Services to other nodes, so
  their owner changes (the fraction that changed owner is in the notes).
* **failover**: ``fold.apply(speaker.down)`` for the node owning the most IPs; the IPs that moved, against the
  minimum possible (the IPs that node owned).
* **balance**: max/mean IPs owned per node, against the same figure for a uniform random placement of the same
  number of IPs on the same nodes (seeded, same run).

* **BGP map**: the replay ``bgp`` map (also what the state hash covers) for the nodes the BGPAdvertisement selects
  (20, by label), computed once per kind of node with ``Local`` Services added per node, against building every
  node's own plan (``planning.node_plan``, sampled on three nodes).

What is not measured: effect dispatch, the wire.
"""

from __future__ import annotations

import ipaddress
import random
import statistics
import time

from events import schema
from reconciler import decisions, fold, planning
from reconciler import state as statemod

NAME = "plan"
NS = "metallb-system"


def _service(i: int) -> schema.Service:
    return schema.Service(
        namespace="default", name=f"svc-{i:06d}", type="LoadBalancer",
        cluster_ips=(f"172.30.{(i >> 8) & 255}.{i & 255}",),
        external_traffic_policy="Local" if i % 3 == 0 else "Cluster",
        selector=(("app", f"a{i}"),), ports=(schema.ServicePort(port=80),),
    )


def _slice(i: int, nodes: list[str], rng: random.Random, version: int = 0) -> schema.EndpointSlice:
    chosen = rng.sample(nodes, rng.randint(1, 3))
    return schema.EndpointSlice(
        namespace="default", name=f"svc-{i:06d}-eps", service_name=f"svc-{i:06d}",
        endpoints=tuple(
            schema.Endpoint(addresses=(f"10.{version % 200}.{j}.{(i % 250) + 1}",), ready=True, node_name=n)
            for j, n in enumerate(chosen)
        ),
    )


def build(n_services: int, n_nodes: int, seed: int = 42, bgp_nodes: int = 20) -> tuple[statemod.State, list[str],
                                                                                   random.Random]:
    """The benchmark state; the BGPAdvertisement selects ``bgp_nodes`` of the nodes (label ``bgp=yes``)."""
    rng = random.Random(seed)
    step = max(1, n_nodes // bgp_nodes)
    nodes = [f"node-{n:04d}" for n in range(n_nodes)]
    size = 1 << (n_services * 2 - 1).bit_length()
    events: list[schema.Event] = [
        schema.K8sUpsert(obj=schema.IPAddressPool(namespace=NS, name="pool", addresses=(
            f"{ipaddress.IPv4Address('10.0.0.0') + 0}/{32 - (size - 1).bit_length()}",))),
        schema.K8sUpsert(obj=schema.L2Advertisement(namespace=NS, name="l2")),
        schema.K8sUpsert(obj=schema.BGPAdvertisement(namespace=NS, name="bgp", local_pref=100,
                                                     communities=("64512:1",), node_selectors=(
                                                         schema.LabelSelector(match_labels=(("bgp", "yes"),)),))),
        schema.K8sUpsert(obj=schema.BGPPeer(namespace=NS, name="r1", my_asn=64512, peer_asn=64512,
                                            peer_address="192.0.2.1")),
        schema.K8sUpsert(obj=schema.BGPPeer(namespace=NS, name="r2", my_asn=64512, peer_asn=64512,
                                            peer_address="192.0.2.2")),
    ]
    events += [
        schema.K8sUpsert(obj=schema.Node(name=n, labels=tuple(sorted(
            [("kubernetes.io/hostname", n)] + ([("bgp", "yes")] if i % step == 0 else [])))))
        for i, n in enumerate(nodes)
    ]
    for i in range(n_services):
        events.append(schema.K8sUpsert(obj=_service(i)))
        events.append(schema.K8sUpsert(obj=_slice(i, nodes, rng)))
    st = fold.fold(events, statemod.new())
    return st, nodes, rng


def _owned_ips(plan: planning.Plan) -> dict[str, str]:
    return {ip: owner for ip, (owner, _) in plan.ip_owner.items()}


def _per_event(st: statemod.State, evs: list[schema.Event]) -> float:
    t0 = time.perf_counter()
    for e in evs:
        fold.apply(st, e)
    return (time.perf_counter() - t0) / len(evs)


def run(quick: bool) -> list[dict]:
    n_services, n_nodes = (10_000, 200) if quick else (100_000, 2_000)
    n_events = 300 if quick else 1_000
    st, nodes, rng = build(n_services, n_nodes)
    t0 = time.perf_counter()
    plan = planning.rebuild(st)
    full = time.perf_counter() - t0

    # per event without L2 churn: Cluster Services, same nodes, new endpoint addresses
    cluster = [i for i in range(n_services) if i % 3 != 0]
    quiet = []
    for k in range(n_events):
        i = rng.choice(cluster)
        old = st.objects["EndpointSlice"][("default", f"svc-{i:06d}-eps")]
        quiet.append(schema.K8sUpsert(obj=schema.EndpointSlice(
            namespace="default", name=old.name, service_name=old.service_name,
            endpoints=tuple(schema.Endpoint(addresses=(f"10.{(k % 200) + 1}.0.{j + 1}",), ready=True,
                                            node_name=e.node_name) for j, e in enumerate(old.endpoints)))))
    before = _owned_ips(plan)
    t_quiet = _per_event(st, quiet)
    assert _owned_ips(plan) == before, "endpoint churn without node changes moved an owner"

    # per event with L2 churn: Local Services' endpoints move to other nodes
    local = [i for i in range(n_services) if i % 3 == 0]
    churn = [schema.K8sUpsert(obj=_slice(rng.choice(local), nodes, rng, version=k + 1)) for k in range(n_events)]
    owners_before = {e.obj.service_name: plan.l2[f"default/{e.obj.service_name}"].owner for e in churn}
    t_churn = _per_event(st, churn)
    moved = sum(1 for name, o in owners_before.items() if plan.l2[f"default/{name}"].owner != o)

    # failover: the node owning the most IPs fails
    owned = _owned_ips(plan)
    counts: dict[str, int] = {}
    for owner in owned.values():
        counts[owner] = counts.get(owner, 0) + 1
    victim = max(sorted(counts), key=lambda n: counts[n])
    t0 = time.perf_counter()
    fold.apply(st, schema.SpeakerDown(node=victim))
    t_fail = time.perf_counter() - t0
    after = _owned_ips(plan)
    moved_ips = sum(1 for ip, o in owned.items() if after.get(ip) != o)
    minimum = counts[victim]
    t0 = time.perf_counter()
    fold.apply(st, schema.SpeakerUp(node=victim))
    t_back = time.perf_counter() - t0
    assert _owned_ips(plan) == owned, "the node's return did not restore the election"

    # balance
    mean = len(owned) / n_nodes
    ratio = max(counts.get(n, 0) for n in nodes) / mean
    rr = random.Random(7)
    uniform: dict[int, int] = {}
    for _ in range(len(owned)):
        b = rr.randrange(n_nodes)
        uniform[b] = uniform.get(b, 0) + 1
    uniform_ratio = max(uniform.values()) / mean

    # the replay/state-hash BGP map: once per kind of node vs every node's own plan (sampled)
    t0 = time.perf_counter()
    bgp = decisions.bgp(st)
    t_map = time.perf_counter() - t0
    n_entries = sum(len(ads) for peers in bgp.values() for ads in peers.values())
    sample = sorted(bgp)[:3]
    t0 = time.perf_counter()
    sampled = sum(len(planning.node_plan(st, n).bgp) for n in sample)
    t_nodes = time.perf_counter() - t0

    scale = f"{n_services:,} Services × {n_nodes:,} nodes"
    return [
        {
            "name": "plan per event, no L2 churn", "unit": "events/s", "streamlb": 1 / t_quiet,
            "baselines": {"full recompute per event": 1 / full}, "higher_is_better": True,
            "notes": f"{scale}; fold + incremental planning of {n_events} EndpointSlice updates; full rebuild "
                     f"{full:.2f} s",
        },
        {
            "name": "plan per event, with L2 churn", "unit": "events/s", "streamlb": 1 / t_churn,
            "baselines": {"full recompute per event": 1 / full}, "higher_is_better": True,
            "notes": f"{scale}; ETP Local endpoint moves, {moved} of {len(owners_before)} Services changed owner",
        },
        {
            "name": "failover re-plan, one node fails", "unit": "ms", "streamlb": t_fail * 1e3,
            "baselines": {"full recompute": full * 1e3}, "higher_is_better": False,
            "notes": f"{scale}; {victim} owned {minimum} IPs; its return (one SHA-256 per L2 Service, no "
                     f"re-ranking) took {t_back * 1e3:.1f} ms",
        },
        {
            "name": "IPs moved when one node fails", "unit": "IPs", "streamlb": moved_ips,
            "baselines": {"minimum (IPs it owned)": minimum}, "higher_is_better": False,
            "notes": f"{scale}; only the failed node's IPs move",
        },
        {
            "name": "BGP map (replay JSON, state hash input)", "unit": "entries/s", "streamlb": n_entries / t_map,
            "baselines": {"every node's own plan": sampled / t_nodes}, "higher_is_better": True,
            "notes": f"{scale}; {len(bgp)} BGP nodes × 2 peers, {n_entries:,} entries in {t_map:.2f} s; baseline "
                     f"sampled on {len(sample)} nodes",
        },
        {
            "name": "L2 balance max/mean IPs per node", "unit": "ratio", "streamlb": ratio,
            "baselines": {"uniform random placement": uniform_ratio}, "higher_is_better": False,
            "notes": f"{scale}; {len(owned):,} IPs, mean {mean:.1f} per node, max {max(counts.values())}",
        },
    ]


if __name__ == "__main__":
    import sys

    for row in run("--quick" in sys.argv):
        print(row)
