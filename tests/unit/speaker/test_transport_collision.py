"""Two of streamlb's own transports, both active and both listening, on loopback (127.0.0.1 and 127.0.0.2): they
dial each other at the same moment, so RFC 4271 §6.8 must leave exactly one connection, Established on both
sides, whichever side restarts."""

from __future__ import annotations

import asyncio
import socket

from fastpath.emit.bgp import PeerSpec, PeerTransport, start_listener
from fastpath.session import Route, SessionConfig, State


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Side:
    def __init__(self, me: str, peer: str, my_port: int, peer_port: int, asn: int, peer_as: int, rid: str) -> None:
        self.me, self.peer, self.my_port, self.peer_port = me, peer, my_port, peer_port
        self.cfg = dict(local_as=asn, peer_as=peer_as, router_id=rid, hold_time=9, backoff_initial=0.05,
                        backoff_max=0.2)
        self.t: PeerTransport | None = None
        self.listener = None

    async def start(self) -> None:
        spec = PeerSpec(name="p", address=self.peer, port=self.peer_port, source_address=self.me, connect_timeout=2)
        self.t = PeerTransport(spec, SessionConfig(**self.cfg))
        self.t.set_routes([Route("198.51.100.1/32")])
        self.listener = await start_listener(self.me, self.my_port)
        self.listener.add(self.t)
        self.t.start()

    async def stop(self) -> None:
        assert self.t is not None
        self.listener.close()
        await self.t.stop(withdraw=True)

    def connections(self) -> int:
        assert self.t is not None
        return len(self.t._served)


async def scenario() -> list[int]:
    a_port, b_port = free_port("127.0.0.1"), free_port("127.0.0.2")
    a = Side("127.0.0.1", "127.0.0.2", a_port, b_port, 64512, 64513, "10.0.0.1")
    b = Side("127.0.0.2", "127.0.0.1", b_port, a_port, 64513, 64512, "10.0.0.9")
    collisions = []
    await asyncio.gather(a.start(), b.start())
    try:
        for i in range(6):
            if i:
                side = a if i % 2 else b
                await side.stop()
                await side.start()
            for _ in range(1500):  # up to 15 s on a busy machine
                if (a.t.state is State.ESTABLISHED and b.t.state is State.ESTABLISHED
                        and a.connections() == 1 and b.connections() == 1):
                    break
                await asyncio.sleep(0.01)
            assert a.t.state is State.ESTABLISHED and b.t.state is State.ESTABLISHED, (i, a.t.state, b.t.state)
            counts = (a.t.session.counters.established_count, b.t.session.counters.established_count)
            await asyncio.sleep(0.3)  # no flapping: still one connection each, nothing re-established
            assert a.connections() == 1 and b.connections() == 1, i
            assert (a.t.session.counters.established_count, b.t.session.counters.established_count) == counts
            assert a.t.session.advertised and b.t.session.advertised
            collisions.append(a.t.collisions + b.t.collisions)
    finally:
        await asyncio.gather(a.stop(), b.stop(), return_exceptions=True)
    return collisions


def test_two_active_speakers_settle_on_one_session_each_time() -> None:
    collisions = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert len(collisions) == 6
    assert collisions[0] > 0  # the simultaneous start did collide (and was resolved to one session)
