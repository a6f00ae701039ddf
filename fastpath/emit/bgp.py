"""asyncio transport for one BGP peer: drives a sans-I/O ``fastpath.session.Session`` over TCP.

The transport owns the socket (source address, TCP MD5 signatures, TTL for multi-hop eBGP), the connect timeout
and the event loop plumbing; every protocol decision — what to send, when, when to give up — is the session's.
Which routes go to the peer is decided upstream and handed over with ``set_routes``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from fastpath.session import Route, Session, SessionConfig, State

log = logging.getLogger("streamlb.bgp")

TCP_MD5SIG = 14  # linux/tcp.h
TCP_MD5SIG_MAXKEYLEN = 80


def md5sig_option(peer: str, password: str) -> bytes:
    """``struct tcp_md5sig`` for ``setsockopt(IPPROTO_TCP, TCP_MD5SIG)`` (linux/tcp.h)."""
    key = password.encode()
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP MD5 password longer than {TCP_MD5SIG_MAXKEYLEN} bytes")
    addr = ipaddress.ip_address(peer)
    if addr.version == 4:
        sa = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + addr.packed
    else:
        sa = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + addr.packed + struct.pack("=I", 0)
    sa = sa.ljust(128, b"\0")  # sockaddr_storage
    # flags, prefixlen, keylen, ifindex, key[80]
    return sa + struct.pack("=BBHi", 0, 0, len(key), 0) + key.ljust(TCP_MD5SIG_MAXKEYLEN, b"\0")


def set_md5(sock: socket.socket, peer: str, password: str) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, md5sig_option(peer, password))
    except OSError as exc:  # kernel without CONFIG_TCP_MD5SIG
        raise OSError(exc.errno, f"TCP MD5 signatures unavailable: {exc.strerror}") from exc


@dataclass
class PeerSpec:
    """Where and how to reach one peer (socket-level settings; protocol settings live in ``SessionConfig``)."""

    name: str
    address: str
    port: int = 179
    source_address: str | None = None
    password: str | None = None
    ebgp_multihop: bool = False
    connect_timeout: float = 10.0


SocketFactory = Callable[[int], socket.socket]


def _default_factory(family: int) -> socket.socket:
    return socket.socket(family, socket.SOCK_STREAM)


class PeerTransport:
    """Runs one session until ``stop``: dials (or accepts, passive), pumps bytes and timers, reconnects."""

    def __init__(
        self,
        spec: PeerSpec,
        config: SessionConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        socket_factory: SocketFactory = _default_factory,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.session = Session(config, clock())
        self._factory = socket_factory
        self._wake = asyncio.Event()
        self._stopping = False
        self._stop_withdraw = True
        self._connected = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._incoming: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self.on_event: Callable[[PeerTransport, object], None] | None = None

    # --- public --------------------------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.session.state

    def set_routes(self, routes: Iterable[Route]) -> None:
        self.session.set_routes(routes)
        self._wake.set()

    def start(self) -> asyncio.Task:
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"bgp-{self.spec.name}")
        return self._task

    async def stop(self, withdraw: bool = True, timeout: float = 5.0) -> None:
        """Withdraw (Cease) or just close (graceful restart keeps the routes at the peer); then end ``run``."""
        self._stopping = True
        self._stop_withdraw = withdraw
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()

    def drop(self, reason: str) -> None:
        """Close the connection now without a NOTIFICATION (BFD saw the path die, so nothing would arrive); the
        session then reconnects on its usual schedule."""
        s = self.session
        if s.state in (State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED) and not s.want_close:
            s.last_error = reason
            s.want_close = True
            self._wake.set()

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Hand an accepted connection to a passive session."""
        self._incoming.put_nowait((reader, writer))
        self._wake.set()

    # --- loop ----------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        s = self.session
        while not self._stopping:
            now = self.clock()
            if not self._incoming.empty():
                reader, writer = self._incoming.get_nowait()
                await self._serve(reader, writer)
                continue
            if s.connect_due(now):
                conn = await self._dial()
                if conn is not None:
                    await self._serve(*conn)
                continue
            self._emit_events()
            dl = s.next_deadline()
            timeout = None if dl is None else max(0.0, dl - now)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        self._emit_events()

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        s, spec = self.session, self.spec
        s.connecting(self.clock())
        family = socket.AF_INET6 if ":" in spec.address else socket.AF_INET
        sock = None
        try:
            sock = self._factory(family)
            sock.setblocking(False)
            self._prepare(sock, family)
            if spec.source_address:
                sock.bind((spec.source_address, 0))
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, (spec.address, spec.port)), spec.connect_timeout)
            return await asyncio.open_connection(sock=sock)
        except (OSError, asyncio.TimeoutError) as exc:
            if sock is not None:
                sock.close()
            reason = "connect timeout" if isinstance(exc, asyncio.TimeoutError) else f"connect: {exc.strerror or exc}"
            s.connection_failed(self.clock(), reason)
            return None

    def _prepare(self, sock: socket.socket, family: int) -> None:
        spec, cfg = self.spec, self.session.config
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if spec.password:
            set_md5(sock, spec.address, spec.password)
        if cfg.local_as != cfg.peer_as:
            ttl = 255 if spec.ebgp_multihop else 1
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self.session
        sockname = writer.get_extra_info("sockname")
        s.connection_made(self.clock(), sockname[0])
        self._writer = writer
        reason = "connection closed by peer"
        read_task = asyncio.get_running_loop().create_task(self._read(reader))
        try:
            await self._flush(writer)  # our OPEN goes out first
            s.prepare()  # then the initial table is packed while the peer's OPEN is on its way
            while True:
                await self._flush(writer)
                self._emit_events()
                if s.want_close:
                    reason = s.last_error or "closed"
                    break
                if self._stopping:
                    s.shutdown(self.clock(), withdraw=self._stop_withdraw)
                    await self._flush(writer)
                    reason = "stopped"
                    break
                if read_task.done():
                    exc = read_task.exception()
                    reason = f"read: {exc}" if exc else "connection closed by peer"
                    break
                dl = s.next_deadline()
                now = self.clock()
                timeout = None if dl is None else max(0.0, dl - now)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
                s.tick(self.clock())
        except (OSError, ConnectionError) as exc:
            reason = f"write: {exc}"
        finally:
            read_task.cancel()
            self._writer = None
            try:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            except (OSError, ConnectionError, asyncio.TimeoutError):
                pass
            s.connection_lost(self.clock(), reason)
            self._emit_events()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                self.session.receive(data, self.clock())
                self._wake.set()
        finally:
            self._wake.set()

    async def _flush(self, writer: asyncio.StreamWriter) -> None:
        data = self.session.data_to_send()
        if data:
            writer.write(data)
            await writer.drain()

    def _emit_events(self) -> None:
        for ev in self.session.events():
            log.info("peer %s: %s %s", self.spec.name, ev.kind, ev.detail)
            if self.on_event is not None:
                self.on_event(self, ev)


async def listen(
    transports: list[PeerTransport],
    host: str = "::",
    port: int = 179,
    *,
    socket_factory: SocketFactory = _default_factory,
) -> asyncio.base_events.Server:
    """A listening socket for passive sessions: connections are handed to the transport of the peer's address."""
    by_addr = {str(ipaddress.ip_address(t.spec.address)): t for t in transports}
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket_factory(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    for t in transports:
        if t.spec.password:
            set_md5(sock, t.spec.address, t.spec.password)
    sock.bind((host, port))
    sock.listen(16)
    sock.setblocking(False)

    def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = ipaddress.ip_address(writer.get_extra_info("peername")[0])
        if getattr(peer, "ipv4_mapped", None):
            peer = peer.ipv4_mapped
        t = by_addr.get(str(peer))
        if t is None or t.session.state not in (State.ACTIVE, State.IDLE):
            writer.close()
            return
        t.accept(reader, writer)

    return await asyncio.start_server(on_conn, sock=sock)
