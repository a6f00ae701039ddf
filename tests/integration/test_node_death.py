"""Failure detection end to end with default settings (issue 18, design.md §2): two nodes in network namespaces,
a ``streamlb run`` replica and a ``streamlb speak`` on each, Redis on the router, a client on the LAN watching ARP.

* Node death (both links down + SIGKILL of its speaker and its replica) -> the surviving node sends a gratuitous
  ARP for every IP the dead node owned within 2 s, in every one of 10 trials, with the ``streamlb run`` leader on
  the dead node in some trials and on the survivor in others; the client's neighbour entry moves.
* 60 s of full CPU load (stress-ng) on both nodes: no liveness event, no IP changes owner.
* Partitions: a node cut off from Redis but on the LAN, and a node on Redis but cut off from the LAN.
* A live speaker for which ``speaker.down`` was appended gets ``speaker.up`` back (issue 13 item 5).

The 2 s bound is the issue's "Done when" (the design target is 1 s; the benchmark reports the distribution);
everything else waits generously and asserts order and content.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from events import schema
from events.position import Position
from tests.integration.liveness_env import MACS, NODES, LivenessCluster
from tests.integration.speaker_env import have_root_netns, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_root_netns(), reason="needs root and iproute2 for network namespaces"),
]

TRIALS = int(os.environ.get("STREAMLB_NODE_DEATH_TRIALS", "10"))
BOUND_S = 2.0  # issue 18: "within 2 s in every one of >= 10 trials"


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory):
    """One cluster for the whole module: building it (namespaces, Redis, two replicas, two speakers) and letting it
    settle is the slow part of every test here, and each test ends with the cluster as it found it."""
    c = LivenessCluster(tmp_path_factory.mktemp("liveness"))
    try:
        c.start()
        for node in NODES:
            c.start_node(node)
        yield c
    finally:
        c.close()


@pytest.fixture
def cluster(shared_cluster: LivenessCluster):
    """The shared cluster, healed first (links up, every process running) in case an earlier test failed half-way;
    each test then waits for it to settle. Checks on liveness events look only at those after the test began."""
    shared_cluster.heal()
    return shared_cluster


def downs_since(c: LivenessCluster, before: int, node: str) -> list[schema.SpeakerDown]:
    """``speaker.down`` events for ``node`` among the liveness events after the first ``before``."""
    return [e for _, e in c.liveness_events()[before:] if isinstance(e, schema.SpeakerDown) and e.node == node]


def other(node: str) -> str:
    return NODES[1] if node == NODES[0] else NODES[0]


def test_node_death_moves_every_ip_within_two_seconds(cluster) -> None:
    c = cluster
    owners = c.wait_settled()
    assert set(owners.values()) == set(NODES), owners  # both nodes own something (6 VIPs, hash election)
    victims = [NODES[(i // 2) % 2] for i in range(TRIALS)]  # a, a, b, b, ...: the leader sits on either side
    results = []
    for i, victim in enumerate(victims):
        survivor = other(victim)
        leader = c.lg.leader()
        moved = sorted(ip for ip, n in owners.items() if n == victim)
        before = len(c.liveness_events())
        t0 = c.kill_node(victim)
        latencies = {}
        for ip in moved:
            t = wait_for(lambda: c.watch.first_garp(ip, MACS[survivor], t0), 30, interval=0.02,
                         what=f"trial {i}: GARP for {ip} from {survivor}")
            latencies[ip] = t - t0
        for ip in moved:
            wait_for(lambda: c.neigh(ip) == MACS[survivor], 30, what=f"trial {i}: client's entry for {ip} moved")
        results.append((victim, leader, max(latencies.values())))
        assert max(latencies.values()) <= BOUND_S, (i, victim, leader, latencies)
        # the dead node was declared down by the survivor's replica, and nothing moved off the survivor
        assert downs_since(c, before, victim)
        assert not c.watch.garps_from(MACS[victim], t0 + 0.05)
        c.revive_node(victim)
        owners = c.wait_settled()
    leaders_died = sum(1 for victim, leader, _ in results if leader == f"run-{victim[-1]}")
    print("node death -> last GARP per trial (s):", [round(r[2], 3) for r in results])
    assert 0 < leaders_died < len(results), results  # trials with the leader on the dead node, and without


def test_full_cpu_load_on_both_nodes_moves_nothing(cluster) -> None:
    c = cluster
    owners = c.wait_settled()
    before = len(c.liveness_events())
    t0 = time.time()
    ncpu = os.cpu_count() or 2
    stress = [c.ns[node].popen(shutil.which("stress-ng") or "stress-ng", "--cpu", str(ncpu), "--timeout", "60s",
                               "--quiet", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for node in NODES]
    try:
        for p in stress:
            p.wait(120)
    finally:
        for p in stress:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    assert time.time() - t0 >= 55  # the load really lasted
    assert c.liveness_events()[before:] == []  # nobody was declared down (or up again)
    assert c.owners() == owners
    for ip, node in owners.items():  # no gratuitous ARP from a node that does not own the IP
        assert all(sip != ip for _, sip in c.watch.garps_from(MACS[other(node)], t0)), ip
        assert c.neigh(ip) == MACS[node]
    gaps = {n: c.status(n).get("heartbeat", {}).get("max_gap_s") for n in NODES}
    print("heartbeat max gap under load (s):", gaps)


def test_partition_node_cut_off_from_redis_but_on_the_lan(cluster) -> None:
    """Its key expires: the others declare it down and take its IPs (GARP); the node itself, still on the LAN
    and unable to hear that it is down, gives up answering for its IPs once it sees another node claim them.
    When Redis is back, it is declared up again and the election gives its IPs back."""
    c = cluster
    owners = c.wait_settled()
    victim = owners[min(owners)]
    survivor = other(victim)
    moved = sorted(ip for ip, n in owners.items() if n == victim)
    before = len(c.liveness_events())
    t0 = time.time()
    c.set_link(victim, "mgmt", False)
    wait_for(lambda: downs_since(c, before, victim), 30, what="speaker.down for the node cut off from Redis")
    for ip in moved:
        wait_for(lambda: c.watch.first_garp(ip, MACS[survivor], t0), 30, what=f"GARP for {ip} from {survivor}")
    c.ns["client"].run("ip", "neigh", "flush", "dev", "eth0")
    for ip in moved:  # a fresh resolution reaches the survivor only: the cut-off node stopped answering
        assert wait_for(lambda: (c.poke(ip), c.neigh(ip))[1], 30, what=f"{ip} resolved") == MACS[survivor]
    assert c.speakers[victim].alive() and c.replicas[victim].alive()
    c.set_link(victim, "mgmt", True)
    assert c.wait_settled() == owners  # declared up again; its IPs come back


def test_partition_node_on_redis_but_cut_off_from_the_lan(cluster) -> None:
    """Every interface it announces on lost its link: it withdraws its heartbeat although Redis hears it, so
    the others take its IPs at once; with the link back it is up again and gets them back."""
    c = cluster
    owners = c.wait_settled()
    victim = owners[min(owners)]
    survivor = other(victim)
    moved = sorted(ip for ip, n in owners.items() if n == victim)
    before = len(c.liveness_events())
    t0 = time.time()
    c.set_link(victim, "eth0", False)
    for ip in moved:
        wait_for(lambda: c.watch.first_garp(ip, MACS[survivor], t0), 30, what=f"GARP for {ip} from {survivor}")
        wait_for(lambda: c.neigh(ip) == MACS[survivor], 30, what=f"client's entry for {ip} moved")
    assert downs_since(c, before, victim)
    assert c.speakers[victim].alive() and c.alive_keys() == {survivor}
    c.set_link(victim, "eth0", True)
    assert c.wait_settled() == owners


def test_a_live_speaker_declared_down_is_declared_up_again(cluster) -> None:
    """Issue 13 item 5: ``speaker.down`` appended for a live speaker (a stale duplicate, or an operator) is
    answered by the speaker refreshing its heartbeat and the replicas appending ``speaker.up``."""
    c = cluster
    owners = c.wait_settled()
    victim = owners[min(owners)]
    (pos,) = c.lg.append([schema.SpeakerDown(node=victim)])
    wait_for(lambda: any(Position.parse(p) > pos and isinstance(e, schema.SpeakerUp) and e.node == victim
                         for p, e in c.liveness_events()), 30, what="speaker.up re-asserted")
    assert c.wait_settled() == owners


def test_a_clean_speaker_exit_hands_its_ips_over_at_once(cluster) -> None:
    """SIGTERM: the speaker stops answering and deletes its key; a replica appends speaker.down at its next look
    (no TTL to wait for) and the other node takes the IPs."""
    c = cluster
    owners = c.wait_settled()
    victim = owners[min(owners)]
    survivor = other(victim)
    before = len(c.liveness_events())
    t0 = time.time()
    assert c.speakers[victim].stop() == 0
    assert victim not in c.alive_keys()
    for ip in sorted(ip for ip, n in owners.items() if n == victim):
        wait_for(lambda: c.watch.first_garp(ip, MACS[survivor], t0), 30, what=f"GARP for {ip} from {survivor}")
    assert downs_since(c, before, victim) and c.replicas[victim].alive()  # appended by the replicas; the speaker appends nothing itself
    c.start_node_speaker(victim)
    assert c.wait_settled() == owners
