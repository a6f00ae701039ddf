"""BGP sessions from streamlb's transport + FSM to real routers (gobgpd, BIRD 2) in network namespaces.

The router's RIB, read through its own CLI, must equal what the speaker was told to announce — after adds,
withdrawals, peer restarts and speaker restarts.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from pathlib import Path

import pytest

from fastpath.emit.bgp import PeerSpec, PeerTransport
from fastpath.session import Route, SessionConfig, State
from tests.integration.speaker_env import Bird, GoBgp, Topology, addr, have_root_netns, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_root_netns(), reason="needs root and iproute2 for network namespaces"),
]

SPK4, RTR4 = "10.77.0.1", "10.77.0.2"
SPK6, RTR6 = "fd77::1", "fd77::2"


class LoopThread:
    """An asyncio loop in a thread, so the test can poll router CLIs while sessions run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro_or_fn, timeout: float = 30.0):
        if asyncio.iscoroutine(coro_or_fn):
            return asyncio.run_coroutine_threadsafe(coro_or_fn, self.loop).result(timeout)

        async def _c():
            return coro_or_fn()

        return asyncio.run_coroutine_threadsafe(_c(), self.loop).result(timeout)

    def close(self) -> None:
        async def _cancel_all():
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()

        asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def net():
    topo = Topology()
    try:
        spk = topo.ns("spk")
        rtr = topo.ns("rtr")
        topo.link(spk, "eth0", rtr, "eth0")
        addr(spk, "eth0", f"{SPK4}/24")
        addr(rtr, "eth0", f"{RTR4}/24")
        addr(spk, "eth0", f"{SPK6}/64")
        addr(rtr, "eth0", f"{RTR6}/64")
        for ns in (spk, rtr):  # BIRD needs the link-local address for IPv6 eBGP next hops
            wait_for(lambda: "fe80" in ns.run("ip", "-6", "addr", "show", "dev", "eth0", "scope", "link").stdout
                     and "tentative" not in ns.run("ip", "-6", "addr", "show", "dev", "eth0").stdout,
                     30, what="link-local address")
        yield topo, spk, rtr
    finally:
        topo.close()


@pytest.fixture
def loop():
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


def start_transport(lt: LoopThread, spk, spec: PeerSpec, cfg: SessionConfig) -> PeerTransport:
    def make():
        t = PeerTransport(spec, cfg, socket_factory=lambda fam: spk.socket(fam))
        t.start()
        return t

    return lt.call(make)


def set_routes(lt: LoopThread, t: PeerTransport, routes: list[Route]) -> None:
    lt.call(lambda: t.set_routes(routes))


def expected_rib(
    routes: list[Route], local_as: int, peer_as: int, next_hop: str, ebgp_lp: int | None = None
) -> dict[str, dict]:
    """What the router must hold. ``ebgp_lp``: the LOCAL_PREF a router gives eBGP routes itself (BIRD: 100)."""
    out = {}
    for r in routes:
        out[r.prefix] = {
            "as_path": [] if local_as == peer_as else [local_as],
            "next_hop": next_hop,
            "local_pref": (100 if r.local_pref is None else r.local_pref) if local_as == peer_as else ebgp_lp,
            "communities": sorted(c for c in r.communities if not c.startswith("large:")),
            "large_communities": sorted(c[6:] for c in r.communities if c.startswith("large:")),
        }
    return out


def view(rib: dict[str, dict]) -> dict[str, dict]:
    keys = ("as_path", "next_hop", "local_pref", "communities", "large_communities")
    return {p: {k: (sorted(v[k]) if k.endswith("communities") else v[k]) for k in keys} for p, v in rib.items()}


ROUTES4 = [
    Route("198.51.100.10/32", communities=("64512:100", "large:4200000000:1:2")),
    Route("198.51.100.11/32", communities=("64512:100", "large:4200000000:1:2")),
    Route("203.0.113.0/24", local_pref=300, communities=("65000:7",)),
]
ROUTES6 = [Route("2001:db8:5::10/128", communities=("64512:600",)), Route("2001:db8:6::/64", local_pref=50)]


@pytest.mark.parametrize(
    ("local_as", "peer_as"),
    [(4200000000, 64513), (64512, 64512), (64512, 64513)],
    ids=["ebgp-4octet", "ibgp", "ebgp-2octet"],
)
def test_gobgpd_receives_plan_exactly_v4_and_v6(net, loop, tmp_path: Path, local_as: int, peer_as: int) -> None:
    topo, spk, rtr = net
    gob = GoBgp(rtr, tmp_path, peer_as, RTR4)
    gob.neighbor(SPK4, local_as)
    gob.neighbor(SPK6, local_as)
    gob.start()
    try:
        cfg4 = SessionConfig(local_as=local_as, peer_as=peer_as, router_id=SPK4, hold_time=9)
        cfg6 = SessionConfig(local_as=local_as, peer_as=peer_as, router_id=SPK4, hold_time=9)
        t4 = start_transport(loop, spk, PeerSpec("r4", RTR4), cfg4)
        t6 = start_transport(loop, spk, PeerSpec("r6", RTR6), cfg6)
        set_routes(loop, t4, ROUTES4)
        set_routes(loop, t6, ROUTES6)
        want4 = expected_rib(ROUTES4, local_as, peer_as, SPK4)
        want6 = expected_rib(ROUTES6, local_as, peer_as, SPK6)
        wait_for(lambda: view(gob.rib("ipv4")) == want4, 60, what="gobgpd IPv4 RIB == plan")
        wait_for(lambda: view(gob.rib("ipv6")) == want6, 60, what="gobgpd IPv6 RIB == plan")
        # change: withdraw one, add one, change attributes of one
        new4 = [ROUTES4[1], Route("198.51.100.12/32"), Route("203.0.113.0/24", local_pref=400)]
        set_routes(loop, t4, new4)
        want4 = expected_rib(new4, local_as, peer_as, SPK4)
        wait_for(lambda: view(gob.rib("ipv4")) == want4, 60, what="gobgpd IPv4 RIB == changed plan")
        # peer restart: routes come back after the new session
        gob.stop()
        gob.start()
        wait_for(lambda: view(gob.rib("ipv4")) == want4, 60, what="RIB restored after gobgpd restart")
        wait_for(lambda: view(gob.rib("ipv6")) == want6, 60, what="IPv6 RIB restored after gobgpd restart")
        # clean stop withdraws everything
        loop.call(t4.stop(withdraw=True))
        loop.call(t6.stop(withdraw=True))
        wait_for(lambda: gob.rib("ipv4") == {} and gob.rib("ipv6") == {}, 60, what="RIB empty after withdraw")
    finally:
        gob.stop()


@pytest.mark.parametrize(("local_as", "peer_as"), [(64512, 64513), (4200000001, 4200000001)], ids=["ebgp", "ibgp-4octet"])
def test_bird_receives_plan_exactly_v4_and_v6(net, loop, tmp_path: Path, local_as: int, peer_as: int) -> None:
    topo, spk, rtr = net
    bird = Bird(rtr, tmp_path, peer_as, RTR4)
    bird.neighbor("spk4", RTR4, SPK4, local_as)
    bird.neighbor("spk6", RTR6, SPK6, local_as, v6=True)
    bird.start()
    try:
        t4 = start_transport(loop, spk, PeerSpec("b4", RTR4), SessionConfig(local_as, peer_as, SPK4, hold_time=9))
        t6 = start_transport(loop, spk, PeerSpec("b6", RTR6), SessionConfig(local_as, peer_as, SPK4, hold_time=9))
        set_routes(loop, t4, ROUTES4)
        set_routes(loop, t6, ROUTES6)
        want4 = expected_rib(ROUTES4, local_as, peer_as, SPK4, 100)
        want6 = expected_rib(ROUTES6, local_as, peer_as, SPK6, 100)
        wait_for(lambda: view(bird.rib("spk4")) == want4, 60, what="BIRD IPv4 RIB == plan")
        wait_for(lambda: view(bird.rib("spk6")) == want6, 60, what="BIRD IPv6 RIB == plan")
        set_routes(loop, t4, ROUTES4[:1])
        want4 = expected_rib(ROUTES4[:1], local_as, peer_as, SPK4, 100)
        wait_for(lambda: view(bird.rib("spk4")) == want4, 60, what="BIRD IPv4 RIB after withdrawal")
        bird.stop()
        bird.start()
        wait_for(lambda: view(bird.rib("spk4")) == want4, 60, what="BIRD RIB restored after restart")
        loop.call(t4.stop(withdraw=True))
        loop.call(t6.stop(withdraw=True))
        wait_for(lambda: bird.rib("spk4") == {} and bird.rib("spk6") == {}, 60, what="BIRD RIB empty")
    finally:
        bird.stop()


def test_md5_session_with_gobgpd_and_bird(net, loop, tmp_path: Path) -> None:
    topo, spk, rtr = net
    gob = GoBgp(rtr, tmp_path, 64513, RTR4)
    gob.neighbor(SPK4, 64512, password="s3cret-md5")
    gob.start()
    try:
        wrong = start_transport(
            loop, spk, PeerSpec("wrong", RTR4, password="not-it", connect_timeout=2), SessionConfig(64512, 64513, SPK4)
        )
        # with a wrong key the router drops our SYNs: no session, the transport keeps retrying
        wait_for(lambda: wrong.session.counters.connect_attempts >= 2, 60, what="retries with a wrong key")
        assert wrong.state is not State.ESTABLISHED
        loop.call(wrong.stop(withdraw=False))
        t = start_transport(loop, spk, PeerSpec("md5", RTR4, password="s3cret-md5"), SessionConfig(64512, 64513, SPK4))
        set_routes(loop, t, ROUTES4[:1])
        wait_for(lambda: view(gob.rib("ipv4")) == expected_rib(ROUTES4[:1], 64512, 64513, SPK4), 60, what="MD5 RIB")
        loop.call(t.stop())
    finally:
        gob.stop()
    bird = Bird(rtr, tmp_path, 64513, RTR4)
    bird.neighbor("spk4", RTR4, SPK4, 64512, password="s3cret-md5")
    bird.start()
    try:
        t = start_transport(loop, spk, PeerSpec("md5b", RTR4, password="s3cret-md5"), SessionConfig(64512, 64513, SPK4))
        set_routes(loop, t, ROUTES4[:1])
        want = expected_rib(ROUTES4[:1], 64512, 64513, SPK4, 100)
        wait_for(lambda: view(bird.rib("spk4")) == want, 60, what="BIRD MD5")
        loop.call(t.stop())
    finally:
        bird.stop()


def test_graceful_restart_keeps_routes_at_gobgpd(net, loop, tmp_path: Path) -> None:
    topo, spk, rtr = net
    gob = GoBgp(rtr, tmp_path, 64513, RTR4)
    gob.neighbor(SPK4, 64512)
    gob.start()
    try:
        t = start_transport(loop, spk, PeerSpec("gr", RTR4), SessionConfig(64512, 64513, SPK4, hold_time=9))
        set_routes(loop, t, ROUTES4)
        want = expected_rib(ROUTES4, 64512, 64513, SPK4)
        wait_for(lambda: view(gob.rib("ipv4")) == want, 60, what="initial RIB")
        loop.call(t.stop(withdraw=False))  # --keep-on-exit: close without NOTIFICATION
        wait_for(lambda: gob.neighbor_state(SPK4) not in ("", "established"), 30, what="session down at gobgpd")
        rib = gob.rib("ipv4")
        assert view(rib) == want, "graceful-restart helper must keep the routes"
        assert all(v["stale"] for v in rib.values()), rib
        # the restarted speaker announces from current decisions (one route fewer) and sends End-of-RIB:
        # refreshed routes lose the stale mark, the one not re-announced goes
        t2 = start_transport(
            loop, spk, PeerSpec("gr2", RTR4), SessionConfig(64512, 64513, SPK4, hold_time=9, restarting=True)
        )
        set_routes(loop, t2, ROUTES4[1:])
        want2 = expected_rib(ROUTES4[1:], 64512, 64513, SPK4)
        wait_for(
            lambda: view(r := gob.rib("ipv4")) == want2 and not any(v["stale"] for v in r.values()),
            60,
            what="stale routes replaced after End-of-RIB",
        )
        loop.call(t2.stop())
    finally:
        gob.stop()


def test_garbage_from_peer_gets_notification_and_reconnect(net, loop) -> None:
    """A fake peer answers our OPEN with garbage: we must send NOTIFICATION 1/1 and dial again."""
    topo, spk, rtr = net
    srv = rtr.socket(socket.AF_INET)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((RTR4, 179))
    srv.listen(4)
    srv.settimeout(30)
    t = start_transport(
        loop, spk, PeerSpec("junk", RTR4), SessionConfig(64512, 64513, SPK4, backoff_initial=0.2, backoff_max=0.5)
    )
    try:
        notifications = []
        for _ in range(2):
            conn, _ = srv.accept()
            conn.settimeout(30)
            data = b""
            while len(data) < 19 or len(data) < struct.unpack("!H", data[16:18])[0]:
                chunk = conn.recv(4096)
                assert chunk, "speaker closed before sending OPEN"
                data += chunk
            assert data[18] == 1  # OPEN
            conn.sendall(b"\x00" * 16 + b"\x00\x13\x04")  # bad marker
            got = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                got += chunk
            conn.close()
            assert got[:16] == b"\xff" * 16 and got[18] == 3, got.hex()
            notifications.append((got[19], got[20]))
        assert notifications == [(1, 1), (1, 1)]
        assert "1/1" in t.session.last_error
    finally:
        loop.call(t.stop(withdraw=False))
        srv.close()


def test_passive_session_accepts_gobgpd(net, loop, tmp_path: Path) -> None:
    """Passive mode: streamlb listens, gobgpd dials; routes flow once the accepted session is Established."""
    from fastpath.emit.bgp import listen

    topo, spk, rtr = net
    t = loop.call(lambda: PeerTransport(PeerSpec("pas", RTR4), SessionConfig(64512, 64513, SPK4, passive=True),
                                        socket_factory=lambda fam: spk.socket(fam)))
    server = loop.call(listen([t], SPK4, 179, socket_factory=lambda fam: spk.socket(fam)))
    loop.call(lambda: (t.set_routes(ROUTES4[:2]), t.start()))
    gob = GoBgp(rtr, tmp_path, 64513, RTR4)
    gob.neighbor(SPK4, 64512, passive=False)
    gob.start()
    try:
        want = expected_rib(ROUTES4[:2], 64512, 64513, SPK4)
        wait_for(lambda: view(gob.rib("ipv4")) == want, 90, what="routes over the accepted session")
        assert t.session.counters.connect_attempts == 0  # it never dialled
        loop.call(t.stop())
    finally:
        loop.call(server.close)
        gob.stop()


@pytest.mark.skipif(not Path("/usr/lib/frr/bgpd").exists(), reason="FRR is not installed")
@pytest.mark.parametrize(("local_as", "peer_as"), [(4200000000, 64513), (64512, 64512)], ids=["ebgp-4octet", "ibgp"])
def test_frr_receives_plan_exactly_v4_and_v6(net, loop, tmp_path: Path, local_as: int, peer_as: int) -> None:
    from tests.integration.speaker_env import Frr

    topo, spk, rtr = net
    frr = Frr(rtr, tmp_path, peer_as, RTR4)
    frr.neighbor(SPK4, local_as, password="frr-md5")
    frr.neighbor(SPK6, local_as)
    frr.start()
    try:
        t4 = start_transport(loop, spk, PeerSpec("f4", RTR4, password="frr-md5"),
                             SessionConfig(local_as, peer_as, SPK4, hold_time=9))
        t6 = start_transport(loop, spk, PeerSpec("f6", RTR6), SessionConfig(local_as, peer_as, SPK4, hold_time=9))
        set_routes(loop, t4, ROUTES4)
        set_routes(loop, t6, ROUTES6)
        ebgp_lp = None if local_as != peer_as else None
        want4 = expected_rib(ROUTES4, local_as, peer_as, SPK4, ebgp_lp)
        want6 = expected_rib(ROUTES6, local_as, peer_as, SPK6, ebgp_lp)
        wait_for(lambda: view(frr.rib("ipv4")) == want4, 60, what="FRR IPv4 RIB == plan")
        wait_for(lambda: view(frr.rib("ipv6")) == want6, 60, what="FRR IPv6 RIB == plan")
        set_routes(loop, t4, ROUTES4[1:])
        want4 = expected_rib(ROUTES4[1:], local_as, peer_as, SPK4, ebgp_lp)
        wait_for(lambda: view(frr.rib("ipv4")) == want4, 60, what="FRR RIB after withdrawal")
        loop.call(t4.stop(withdraw=True))
        loop.call(t6.stop(withdraw=True))
        wait_for(lambda: frr.rib("ipv4") == {} and frr.rib("ipv6") == {}, 60, what="FRR RIB empty")
    finally:
        frr.stop()
