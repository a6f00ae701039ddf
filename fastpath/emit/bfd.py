"""asyncio UDP transport for BFD: drives the sans-I/O ``fastpath.bfd_session.BfdSession`` of every peer.

Sockets (RFC 5881 single hop, RFC 5883 multi-hop):
* one listening socket per (address family, hop mode) on UDP 3784 (single hop) or 4784 (multi-hop), shared by all
  sessions, with ``IP_RECVTTL`` / ``IPV6_RECVHOPLIMIT`` so each packet's received TTL is known;
* one sending socket per session, bound to a source port in 49152–65535 (the same port for the session's life),
  TTL / hop limit 255, connected to the peer's BFD port (the kernel picks the source address unless the peer has
  ``sourceAddress``).

Reception: the packet is parsed in the fast path (``fastpath.bfd.parse_control``; anything it rejects is counted
and dropped); a single-hop packet whose TTL is not 255 is dropped (RFC 5881 §5, GTSM), a multi-hop packet whose TTL
is below the profile's ``minimumTtl`` (FRR's default 254) is dropped; then it goes to the session named by *your
discriminator*, or, when that is 0, to the session of its source address and hop mode (RFC 5880 §6.3).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from fastpath import bfd as codec
from fastpath.bfd_session import BfdConfig, BfdEvent, BfdSession

log = logging.getLogger("streamlb.bfd")

IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_TTL = socket.IP_TTL
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
TTL_MAX = 255
DEFAULT_MINIMUM_TTL = 254  # FRR's default for multi-hop sessions (metallb-behaviour.md §2.6)


@dataclass(frozen=True)
class BfdPeerSpec:
    """Where the session runs (socket-level settings; protocol settings are in ``BfdConfig``)."""

    name: str
    address: str
    source_address: str | None = None
    multihop: bool = False
    minimum_ttl: int = DEFAULT_MINIMUM_TTL
    echo_requested: bool = False  # the profile's echoMode: reported as unsupported, never used

    @property
    def port(self) -> int:
        return codec.PORT_MULTI_HOP if self.multihop else codec.PORT_SINGLE_HOP

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET


@dataclass
class _Peer:
    spec: BfdPeerSpec
    session: BfdSession
    sock: socket.socket | None = None
    source_port: int = 0
    ttl_dropped: int = 0
    last_ttl: int | None = None  # TTL / hop limit of the last packet from the peer (kept or dropped)
    send_errors: int = 0
    last_error: str = ""
    extra: dict = field(default_factory=dict)


def _norm(addr: str) -> str:
    a = ipaddress.ip_address(addr.split("%")[0])
    if a.version == 6 and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return str(a)


class BfdManager:
    """All BFD sessions of one speaker. ``on_event(name, BfdEvent)`` hears every Up/Down transition."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        bind_host: dict[int, str] | None = None,
        on_event: Callable[[str, BfdEvent], None] | None = None,
    ) -> None:
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_event = on_event
        self._bind = bind_host or {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}
        self.peers: dict[str, _Peer] = {}
        self._by_disc: dict[int, _Peer] = {}
        self._listeners: dict[tuple[int, bool], socket.socket] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.malformed = 0
        self.unmatched = 0

    # --- configuration -------------------------------------------------------------------------------------------

    def ensure(self, spec: BfdPeerSpec, config: BfdConfig) -> None:
        """Create, keep or update the session for ``spec.name``."""
        p = self.peers.get(spec.name)
        if p is not None and p.spec != spec:
            self.remove(spec.name)
            p = None
        if p is None:
            self._listen(spec.family, spec.multihop)
            disc = self._new_disc()
            p = _Peer(spec, BfdSession(config, disc, self.clock(), self.rng))
            self.peers[spec.name] = p
            self._by_disc[disc] = p
            if spec.echo_requested:
                log.warning("peer %s: BFD echo mode requested but not supported; control packets only", spec.name)
            log.info("peer %s: BFD session created (%s hop, discriminator %d)", spec.name,
                     "multi" if spec.multihop else "single", disc)
        elif p.session.config != config:
            p.session.reconfigure(config, self.clock())
        self._wake.set()

    def remove(self, name: str) -> None:
        p = self.peers.pop(name, None)
        if p is None:
            return
        self._by_disc.pop(p.session.local_disc, None)
        p.session.admin_down(self.clock())
        self._flush(p)
        if p.sock is not None:
            p.sock.close()

    def _new_disc(self) -> int:
        while True:
            d = self.rng.randrange(1, 1 << 32)
            if d not in self._by_disc:
                return d

    # --- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="bfd")
        return self._task

    async def stop(self) -> None:
        """AdminDown to every peer (the peer must not read it as a failure), then close everything."""
        for name in list(self.peers):
            self.remove(name)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        loop = asyncio.get_running_loop()
        for s in self._listeners.values():
            loop.remove_reader(s.fileno())
            s.close()
        self._listeners.clear()

    async def _run(self) -> None:
        while True:
            now = self.clock()
            for p in list(self.peers.values()):
                dl = p.session.next_deadline()
                if dl is not None and dl <= now:
                    p.session.tick(now)
                    self._flush(p)
            self._emit()
            dls = [d for d in (p.session.next_deadline() for p in self.peers.values()) if d is not None]
            timeout = max(0.0, min(dls) - self.clock()) if dls else None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    # --- sockets -------------------------------------------------------------------------------------------------

    def _listen(self, family: int, multihop: bool) -> None:
        key = (family, multihop)
        if key in self._listeners:
            return
        port = codec.PORT_MULTI_HOP if multihop else codec.PORT_SINGLE_HOP
        s = socket.socket(family, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            else:
                s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            s.bind((self._bind[family], port))
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        self._listeners[key] = s
        asyncio.get_running_loop().add_reader(s.fileno(), self._readable, s, multihop)

    def _sender(self, p: _Peer) -> socket.socket:
        if p.sock is not None:
            return p.sock
        spec = p.spec
        s = socket.socket(spec.family, socket.SOCK_DGRAM)
        try:
            if spec.family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, TTL_MAX)
            else:
                s.setsockopt(socket.IPPROTO_IP, IP_TTL, TTL_MAX)
            lo, hi = codec.SOURCE_PORTS
            for attempt in range(64):
                port = p.source_port if p.source_port and attempt == 0 else self.rng.randint(lo, hi)
                try:
                    s.bind((spec.source_address or "", port))
                    p.source_port = port
                    break
                except OSError as exc:
                    if exc.errno != 98:  # EADDRINUSE: try another port
                        raise
            else:
                raise OSError(98, "no free BFD source port in 49152-65535")
            s.setblocking(False)
            s.connect((spec.address, spec.port))
        except OSError:
            s.close()
            raise
        p.sock = s
        return s

    def _flush(self, p: _Peer) -> None:
        for pkt in p.session.packets_to_send():
            try:
                self._sender(p).send(pkt)
            except OSError as exc:  # no route while the link is down, ICMP-refused: the session times out
                p.send_errors += 1
                p.last_error = f"send: {exc.strerror or exc}"
                if p.sock is not None and exc.errno not in (11,):  # EAGAIN keeps the socket
                    p.sock.close()
                    p.sock = None

    def _readable(self, sock: socket.socket, multihop: bool) -> None:
        for _ in range(64):
            try:
                data, anc, _flags, addr = sock.recvmsg(512, socket.CMSG_SPACE(4))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ICMP port unreachable reported on the socket
                continue
            ttl = None
            for level, kind, value in anc:
                if (level, kind) in ((socket.IPPROTO_IP, IP_TTL), (socket.IPPROTO_IPV6, IPV6_HOPLIMIT)):
                    ttl = int.from_bytes(value[:4], sys.byteorder) if len(value) >= 4 else value[0]  # an int
            self.deliver(data, _norm(addr[0]), ttl, multihop)
        self._emit()
        self._wake.set()

    def deliver(self, data: bytes, source: str, ttl: int | None, multihop: bool) -> bool:
        """One received datagram; True when a session took it. (Called by the socket reader; public for tests.)"""
        try:
            pkt = codec.parse_control(data)
        except codec.BfdError as exc:
            self.malformed += 1
            log.debug("dropped a malformed BFD packet from %s: %s", source, exc)
            return False
        if pkt.your_disc:
            p = self._by_disc.get(pkt.your_disc)
            if p is not None and (_norm(p.spec.address) != source or p.spec.multihop != multihop):
                p = None
        else:
            p = next((q for q in self.peers.values()
                      if q.spec.multihop == multihop and _norm(q.spec.address) == source), None)
        if p is None:
            self.unmatched += 1
            return False
        need = p.spec.minimum_ttl if multihop else TTL_MAX
        p.last_ttl = ttl
        if ttl is None or ttl < need:
            p.ttl_dropped += 1
            return False
        p.session.receive(pkt, self.clock())
        self._flush(p)
        return True

    def _emit(self) -> None:
        for name, p in list(self.peers.items()):
            for ev in p.session.events():
                log.info("peer %s: BFD %s (%s)", name, ev.kind, ev.detail)
                if self.on_event is not None:
                    self.on_event(name, ev)

    # --- status --------------------------------------------------------------------------------------------------

    def status(self) -> dict:
        out = {}
        for name, p in sorted(self.peers.items()):
            st = p.session.status()
            st.update(
                peer=p.spec.address,
                multihop=p.spec.multihop,
                minimum_ttl=p.spec.minimum_ttl if p.spec.multihop else TTL_MAX,
                echo="unsupported" if p.spec.echo_requested else "off",
                source_port=p.source_port,
                ttl_dropped=p.ttl_dropped,
                last_ttl=p.last_ttl,
                send_errors=p.send_errors,
                last_error=p.last_error,
            )
            out[name] = st
        return out
