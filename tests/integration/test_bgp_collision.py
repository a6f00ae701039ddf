"""BGP connection collisions (RFC 4271 §6.8) between ``streamlb speak`` and routers configured to connect out
(gobgpd and BIRD 2 with passive mode off), in network namespaces.

Both sides dial each other after every restart. Whichever side restarts (router or speaker, alternately, 20
times), the pair must settle on exactly one Established session — one TCP connection on port 179, seen from the
router's namespace with ``ss`` — that stays up (the speaker's established counter does not move while we watch),
and the router's RIB (its own CLI) must equal the speaker's plan from an offline fold of the same log.
gobgpd's BGP Identifier is higher than the speaker's (its connection must win), BIRD's lower (ours must win).
Timers are short (connect retry 1 s) to keep the run brief on two cores. gobgpd 3.x honours neither below its
own floors (a first dial 5-10 s after it starts, 5 s idle after a dropped session; ``idle-hold-time-after-reset``
applies only to resets asked for over its API), so the two routers' runs go side by side (fixture ``runs``).

On a veth inside one machine both handshakes finish in microseconds, so the two connections would rarely overlap
by chance. When the router restarts, the speaker is frozen (SIGSTOP) until the router has dialled (its connection and OPEN
wait in the speaker's accept queue); then the router is frozen and the speaker thawed: the speaker dials out at
once and reads the router's OPEN on the router's connection, so both connections are in OpenSent/OpenConfirm
together — a real collision (NOTIFICATION Cease/7), in most router restarts: when the speaker's event loop reads
the router's OPEN before its own dial has started, it simply adopts the router's connection. Every collision the
speaker resolves must keep the connection of the higher BGP Identifier (its log names the one it kept), and at
least one must happen. Speaker restarts are left to chance.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import time
from pathlib import Path

import pytest

from events import logfile, schema
from reconciler import fold, planning, state as statemod
from tests.integration.speaker_env import Bird, GoBgp, SpeakProc, Topology, addr, have_root_netns, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_root_netns(), reason="needs root and iproute2 for network namespaces"),
]

NS = "metallb-system"
SPK, RTR = "10.78.0.5", "10.78.0.9"
RESTARTS = 20


def cluster_log() -> list[schema.Event]:
    up = lambda o: schema.K8sUpsert(obj=o)  # noqa: E731
    evs = [
        up(schema.Node(name="node-a")),
        up(schema.IPAddressPool(namespace=NS, name="bgp", addresses=("198.51.100.0/28",))),
        up(schema.BGPAdvertisement(namespace=NS, name="adv", communities=("64512:7",))),
        up(schema.BGPPeer(namespace=NS, name="router", my_asn=64512, peer_asn=64513, peer_address=RTR,
                          hold_time_ms=9000)),
    ]
    for i in range(3):
        evs.append(up(schema.Service(namespace="default", name=f"s{i}", type="LoadBalancer",
                                     cluster_ips=(f"10.96.0.{i + 10}",), ports=(schema.ServicePort(port=80),))))
        evs.append(up(schema.EndpointSlice(namespace="default", name=f"s{i}-x", service_name=f"s{i}", endpoints=(
            schema.Endpoint(addresses=("10.244.0.9",), ready=True, node_name="node-a"),))))
    return evs


def node_speaker(ns, log: Path, workdir: Path) -> SpeakProc:
    """node-a's speaker, following the evlog file, listening on port 179 and redialling at least every second."""
    return SpeakProc(ns, "node-a", workdir, "--no-l2", "--bgp-listen-port", "179", "--bgp-backoff-max", "1", log=log)


def peer_status(spk: SpeakProc, newer_than: float = 0.0) -> dict:
    """Peer ``router`` from the status file; {} when the file is older than ``newer_than`` (epoch seconds)."""
    try:
        if spk.status_file.stat().st_mtime <= newer_than:
            return {}
    except OSError:
        return {}
    return spk.status().get("peers", {}).get("router", {})


def router_dialled(ns) -> bool:
    """The router has a TCP connection of its own to the speaker's port 179 (established or being accepted)."""
    out = ns.run("ss", "-Htn", "state", "established", "( dport = :179 )").stdout
    return any(line.strip() for line in out.splitlines())


def router_initiated(ns) -> bool:
    """The one BGP connection was opened by the router (its remote port, seen from the router, is 179)."""
    out = ns.run("ss", "-Htn", "state", "established", "( sport = :179 or dport = :179 )").stdout
    (line,) = [x for x in out.splitlines() if x.strip()]
    return line.split()[-1].rsplit(":", 1)[1] == "179"


def bgp_connections(ns) -> int:
    """Established TCP connections to or from port 179 in ``ns`` (the router's side of every session)."""
    out = ns.run("ss", "-Htn", "state", "established", "( sport = :179 or dport = :179 )").stdout
    return len([line for line in out.splitlines() if line.strip()])


@contextlib.contextmanager
def net(workdir: Path):
    """The speaker's and the router's namespaces joined by a veth, and the evlog file the speaker follows."""
    topo = Topology()
    try:
        spk, rtr = topo.ns("spk"), topo.ns("rtr")
        topo.link(spk, "eth0", rtr, "eth0")
        addr(spk, "eth0", f"{SPK}/24")
        addr(rtr, "eth0", f"{RTR}/24")
        log = workdir / "cluster.evlog"
        log.write_bytes(logfile.encode_file(cluster_log()))
        yield spk, rtr, log
    finally:
        topo.close()


def make_router(kind: str, rtr, workdir: Path):
    if kind == "gobgp":
        r = GoBgp(rtr, workdir, 64513, "10.78.0.200")  # higher identifier than the speaker's 10.78.0.5
        r.neighbor(SPK, 64512, passive=False)
        return r, True, lambda: r.neighbor_state(SPK) == "established", lambda: {
            p: sorted(v["communities"]) for p, v in r.rib("ipv4").items()}
    r = Bird(rtr, workdir, 64513, "10.78.0.1")  # lower identifier: the speaker's connection must win
    r.neighbor("spk", RTR, SPK, 64512, passive=False)
    return r, False, lambda: r.protocol_state("spk") == "Established", lambda: {
        p: sorted(v["communities"]) for p, v in r.rib("spk").items()}


def collide(kind: str, workdir: Path) -> str:
    """The whole scenario against one router; returns a line of figures, raises AssertionError on a failure."""
    with net(workdir) as (spk_ns, rtr_ns, log):
        return _collide(kind, workdir, spk_ns, rtr_ns, log)


def _collide(kind: str, tmp_path: Path, spk_ns, rtr_ns, log: Path) -> str:
    want = {pfx: sorted(cs) for (peer, pfx), (_, cs) in planning.node_plan(
        fold.fold(cluster_log(), statemod.new()), "node-a").bgp.items() if peer == "router"}
    assert len(want) == 3, want
    router, router_wins, established, rib = make_router(kind, rtr_ns, tmp_path)
    seen = 0
    speaker = node_speaker(spk_ns, log, tmp_path)

    def freeze(who, sig: int) -> None:
        proc = who.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)  # ip netns exec execs the daemon: the PID is the daemon's
    try:
        router.start()
        speaker.start()
        for i in range(RESTARTS + 1):
            if i % 2:
                # the router restarts while the speaker is frozen: the router dials (its connection and OPEN wait in
                # the speaker's accept queue), then the router is frozen and the speaker thawed: the speaker dials
                # out at once and reads the router's OPEN on the router's connection: both in OpenSent/OpenConfirm
                freeze(speaker, signal.SIGSTOP)
                try:
                    router.stop()
                    router.start()
                    wait_for(lambda: router_dialled(rtr_ns), 30, what="router dialled the speaker")
                    freeze(router, signal.SIGSTOP)
                finally:
                    freeze(speaker, signal.SIGCONT)
                time.sleep(0.5)
                freeze(router, signal.SIGCONT)
            elif i:
                speaker.stop()
                speaker.start()
            mark = time.time()

            def settled() -> bool:
                p = peer_status(speaker, newer_than=mark)  # a status written after the restart, not a stale one
                return (p.get("state") == "Established" and established() and bgp_connections(rtr_ns) == 1
                        and rib() == want)

            wait_for(settled, 60, interval=0.1, what=f"{kind}: one Established session and RIB == plan (restart {i})")
            # no flapping: one connection all along, and the speaker's established counter does not move
            count = peer_status(speaker)["counters"]["established_count"]
            watch = time.time()
            t_end = time.monotonic() + 1.2
            while time.monotonic() < t_end:
                assert bgp_connections(rtr_ns) == 1, f"restart {i}: more or fewer than one connection"
                time.sleep(0.1)
            p = wait_for(lambda: peer_status(speaker, newer_than=watch), 10, what="a fresh speaker status")
            assert p["state"] == "Established" and p["counters"]["established_count"] == count, (i, p)
            assert established() and rib() == want
            # every collision the speaker resolved kept the connection of the higher BGP Identifier
            decisions = [line for line in speaker.logfile.read_text().splitlines()
                         if "connection collision: closing" in line]
            new, seen = decisions[seen:], len(decisions)
            keep = "keeping the peer's" if router_wins else "keeping ours"
            assert all(keep in line for line in new), (i, new)
            if router_wins and new:  # gobgpd keeps its own connection too
                assert router_initiated(rtr_ns), f"restart {i}: the wrong connection survived"
                # BIRD may still end with a connection of its own: when it reads the Cease/7 on its losing connection
                # before it has accepted ours, it restarts the peering and dials again after its error wait
        collisions = sum(1 for line in speaker.logfile.read_text().splitlines() if "peer router: collision" in line)
        assert collisions > 0 and seen > 0, "no collision was ever forced"
        return f"{kind}: {RESTARTS} restarts, connections closed by collision resolution: {collisions}"
    finally:
        speaker.stop()
        router.stop()


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The scenario for every router selected in this run, all at the same time, each in its own namespaces and
    directory: they share nothing, and each spends most of its time waiting on the routers' timers (gobgpd 3.x
    dials no sooner than 5 s after it starts and holds a dropped peer idle for 5 s, whatever its configuration
    says), so side by side they take about as long as the slowest alone."""
    kinds = [item.callspec.params["kind"] for item in request.session.items
             if item.module is request.module and hasattr(item, "callspec")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(kinds)), thread_name_prefix="collide") as pool:
        yield {k: pool.submit(collide, k, tmp_path_factory.mktemp(f"collision-{k}")) for k in kinds}


@pytest.mark.parametrize("kind", ["gobgp", "bird"])
def test_active_router_and_speaker_converge_on_one_session_across_restarts(runs, kind: str) -> None:
    print(runs[kind].result())  # re-raises the scenario's own AssertionError, with its traceback
