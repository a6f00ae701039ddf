"""asyncio transport for one BGP peer: drives a sans-I/O ``fastpath.session.Session`` over TCP.

The transport owns the socket (source address, TCP MD5 signatures, TTL for multi-hop eBGP), the connect timeout
and the event loop plumbing; every protocol decision — what to send, when, when to give up — is the session's.
Which routes go to the peer is decided upstream and handed over with ``set_routes``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from fastpath.session import Route, Session, SessionConfig, State, collision_loser

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
HOLD_FOR_DIAL = 3.0  # seconds the peer's connection waits in OpenConfirm for a dial of ours that is under way
CLOSE_WAIT = 2.0  # seconds a stop waits, after its NOTIFICATION and FIN, for the peer to close its side


def _default_factory(family: int) -> socket.socket:
    return socket.socket(family, socket.SOCK_STREAM)


class PeerTransport:
    """Runs one session until ``stop``: dials (or accepts, passive), pumps bytes and timers, reconnects.

    An active session also accepts the peer's own connections (``accept``), as routers configured to connect out
    do: the inbound connection runs a second Session, and RFC 4271 §6.8 (:func:`fastpath.session.collision_loser`)
    is applied after every message on either connection. The loser is closed with NOTIFICATION Cease/Connection
    Collision Resolution; when the inbound connection wins it becomes :attr:`session` (and the transport dials again
    only after it ends). An inbound connection that reaches OpenConfirm while we are not dialling (or Established
    while we are) is adopted the same way, and a dial that completes after that is dropped before its OPEN.
    """

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
        self._wakes: set[asyncio.Event] = set()  # one per loop waiting (run, each served connection)
        self._stopping = False
        self._stop_withdraw = True
        self._routes: list[Route] = []
        self._incoming: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._inbound: Session | None = None  # the peer's connection while it competes with ours
        self._inbound_task: asyncio.Task | None = None
        self._served: set[Session] = set()  # sessions whose connection a ``_serve`` loop is running
        self._hold_until: float | None = None  # the peer's connection waits (KEEPALIVE unsent) for our dial
        self.collisions = 0  # connections closed by collision resolution (observability, tests)
        self.on_event: Callable[[PeerTransport, object], None] | None = None

    # --- public --------------------------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.session.state

    def set_routes(self, routes: Iterable[Route]) -> None:
        self._routes = list(routes)
        self.session.set_routes(self._routes)
        if self._inbound is not None:
            self._inbound.set_routes(self._routes)
        self._poke()

    def start(self) -> asyncio.Task:
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"bgp-{self.spec.name}")
        return self._task

    async def stop(self, withdraw: bool = True, timeout: float = 5.0) -> None:
        """End the session with NOTIFICATION Cease (the peer deletes our routes at once) or just close (a
        graceful-restart helper keeps them); then end ``run``."""
        self._stopping = True
        self._stop_withdraw = withdraw
        self._poke()
        for task in (self._task, self._inbound_task):
            if task is None:
                continue
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()

    def drop(self, reason: str) -> None:
        """Close the connection now without a NOTIFICATION (BFD saw the path die, so nothing would arrive); the
        session then reconnects on its usual schedule. A competing connection of the peer's goes too."""
        for s in (self.session, self._inbound):
            if s is None:
                continue
            if s.state in (State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED) and not s.want_close:
                s.last_error = reason
                s.want_close = True
        self._poke()

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Hand over a connection the peer opened: queued for a passive session, raced against ours (§6.8) for an
        active one."""
        if self.session.config.passive:
            self._incoming.put_nowait((reader, writer))
            self._poke()
            return
        if self._stopping or self._inbound is not None:
            writer.close()  # one competing connection at a time
            return
        cand = Session(dataclasses.replace(self.session.config, passive=True), self.clock())
        cand.counters = self.session.counters  # one set of counters per peer, whichever connection wins
        cand.router_id_fallback = self.session.router_id_fallback
        cand.set_routes(self._routes)
        self._inbound = cand
        self._inbound_task = asyncio.get_running_loop().create_task(
            self._serve_inbound(reader, writer, cand), name=f"bgp-{self.spec.name}-inbound")

    # --- loop ----------------------------------------------------------------------------------------------------

    def _poke(self) -> None:
        for w in list(self._wakes):
            w.set()

    async def run(self) -> None:
        wake = asyncio.Event()
        self._wakes.add(wake)
        try:
            while not self._stopping:
                s = self.session
                now = self.clock()
                if not self._incoming.empty():
                    reader, writer = self._incoming.get_nowait()
                    await self._serve(reader, writer, s)
                    continue
                if s.connect_due(now):
                    conn = await self._dial(s)
                    if conn is not None:
                        if self.session is s and s.state is State.CONNECT and not self._stopping:
                            await self._serve(*conn, s)
                        else:  # the peer's connection became the session while we dialled: drop ours
                            conn[1].close()
                    continue
                if s not in self._served:  # else the loop serving its connection reports its events
                    self._emit_events(s)
                dl = s.next_deadline() if s.state in (State.IDLE, State.CONNECT, State.ACTIVE) else None
                timeout = None if dl is None else max(0.0, dl - now)
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._wakes.discard(wake)
        self._emit_events(self.session)

    async def _dial(self, s: Session) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        spec = self.spec
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

    def _resolve(self) -> None:
        """RFC 4271 §6.8 between our connection and the peer's (if any); adopt the peer's when it wins."""
        cand = self._inbound
        if cand is None:
            return
        ours = self.session
        now = self.clock()
        loser = collision_loser(ours, cand)
        if loser is cand:
            log.info("peer %s: connection collision: closing the peer's connection, keeping ours", self.spec.name)
            cand.close_collision(now)
            self._hold_until = None
            self.collisions += 1
        elif loser is ours:
            log.info("peer %s: connection collision: closing our connection, keeping the peer's", self.spec.name)
            ours.close_collision(now)
            self.collisions += 1
            self._adopt(cand)
        elif cand.state is State.OPEN_CONFIRM and ours.state is State.CONNECT and (
            self._hold_until is None or now < self._hold_until
        ):
            # our dial is under way: the peer's connection waits in OpenConfirm with its KEEPALIVE unsent (see
            # _holding), so that §6.8 decides by identifier when our connection gets the peer's OPEN; a dial that
            # hangs is given up after HOLD_FOR_DIAL seconds
            if self._hold_until is None:
                self._hold_until = now + HOLD_FOR_DIAL
            return
        elif ours.state in (State.IDLE, State.CONNECT, State.ACTIVE) and cand.state in (
            State.OPEN_CONFIRM, State.ESTABLISHED
        ):
            self._adopt(cand)  # no connection of our own: the peer's is the session
        else:
            return
        self._poke()

    def _holding(self, s: Session) -> bool:
        """Is ``s`` the peer's connection waiting for our dial (its output held back)?"""
        return self._inbound is s and self._hold_until is not None and s.state is State.OPEN_CONFIRM

    def _adopt(self, cand: Session) -> None:
        self._hold_until = None
        old = self.session
        cand.config = old.config  # active again: when this connection ends, the transport dials
        self.session = cand
        self._inbound = None
        old._connect_at = None  # the replaced session never dials

    async def _serve_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Session) -> None:
        task = asyncio.current_task()
        try:
            await self._serve(reader, writer, s)
        finally:
            if self._inbound is s:
                self._inbound = None
                self._hold_until = None
            if task is not None and self._inbound_task is task:
                self._inbound_task = None
            self._poke()  # the run loop dials again if this was the session

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Session) -> None:
        wake = asyncio.Event()
        self._wakes.add(wake)
        self._served.add(s)
        sockname = writer.get_extra_info("sockname")
        s.connection_made(self.clock(), sockname[0])
        reason = "connection closed by peer"
        read_task = asyncio.get_running_loop().create_task(self._read(reader, s, wake))
        try:
            await self._flush(writer, s)  # our OPEN goes out first
            s.prepare()  # then the initial table is packed while the peer's OPEN is on its way
            while True:
                self._resolve()
                held = self._holding(s)
                if not held:
                    await self._flush(writer, s)
                self._emit_events(s)
                if s.want_close:
                    reason = s.last_error or "closed"
                    break
                if self._stopping:
                    s.shutdown(self.clock(), withdraw=self._stop_withdraw)
                    await self._flush(writer, s)
                    if self._stop_withdraw:
                        await self._close_after_notification(writer, read_task)
                    reason = "stopped"
                    break
                if read_task.done():
                    exc = read_task.exception()
                    reason = f"read: {exc}" if exc else "connection closed by peer"
                    break
                dl = s.next_deadline()
                if held and self._hold_until is not None:
                    dl = self._hold_until if dl is None else min(dl, self._hold_until)
                now = self.clock()
                timeout = None if dl is None else max(0.0, dl - now)
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
                s.tick(self.clock())
        except (OSError, ConnectionError) as exc:
            reason = f"write: {exc}"
        finally:
            self._wakes.discard(wake)
            self._served.discard(s)
            read_task.cancel()
            try:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            except (OSError, ConnectionError, asyncio.TimeoutError):
                pass
            s.connection_lost(self.clock(), reason)
            self._emit_events(s)

    async def _close_after_notification(self, writer: asyncio.StreamWriter, read_task: asyncio.Task) -> None:
        """End the connection after our NOTIFICATION the orderly way: FIN (half-close), then read until the peer
        closes too (it does once it has read the NOTIFICATION), at most ``CLOSE_WAIT`` seconds. Closing at once
        with unread bytes from the peer (a KEEPALIVE in flight) would make the kernel send a RST, and a peer that
        sees the reset before it reads the NOTIFICATION takes the session for one lost without it (a graceful
        restart: routes kept as stale)."""
        try:
            if writer.can_write_eof():
                writer.write_eof()
            await asyncio.wait_for(asyncio.shield(read_task), CLOSE_WAIT)
        except (OSError, ConnectionError, asyncio.TimeoutError):
            pass
        except Exception:  # noqa: BLE001 - the read task's own failure (reported by the caller's loop otherwise)
            pass

    async def _read(self, reader: asyncio.StreamReader, s: Session, wake: asyncio.Event) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                s.receive(data, self.clock())
                wake.set()
        finally:
            wake.set()

    async def _flush(self, writer: asyncio.StreamWriter, s: Session) -> None:
        data = s.data_to_send()
        if data:
            writer.write(data)
            await writer.drain()

    def _emit_events(self, s: Session) -> None:
        for ev in s.events():
            log.info("peer %s: %s %s", self.spec.name, ev.kind, ev.detail)
            if self.on_event is not None:
                self.on_event(self, ev)


class Listener:
    """The listening socket for peers' connections, handed to the transport of the peer's address (passive
    sessions, and active ones for connection collisions). Transports can be added and removed while it runs;
    TCP MD5 keys are installed on the listening socket per peer with a password."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.by_addr: dict[str, PeerTransport] = {}
        self.server: asyncio.base_events.Server | None = None

    def add(self, t: PeerTransport) -> None:
        addr = str(ipaddress.ip_address(t.spec.address))
        self.by_addr[addr] = t
        if t.spec.password:
            set_md5(self.sock, t.spec.address, t.spec.password)

    def remove(self, t: PeerTransport) -> None:
        addr = str(ipaddress.ip_address(t.spec.address))
        if self.by_addr.get(addr) is t:
            del self.by_addr[addr]

    def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = ipaddress.ip_address(writer.get_extra_info("peername")[0])
        if getattr(peer, "ipv4_mapped", None):
            peer = peer.ipv4_mapped
        t = self.by_addr.get(str(peer))
        if t is None or (t.session.config.passive and t.session.state not in (State.ACTIVE, State.IDLE)):
            writer.close()
            return
        t.accept(reader, writer)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def start_listener(
    host: str = "::",
    port: int = 179,
    *,
    socket_factory: SocketFactory = _default_factory,
) -> Listener:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket_factory(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((host, port))
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    lst = Listener(sock)
    lst.server = await asyncio.start_server(lst._on_conn, sock=sock)
    return lst


async def listen(
    transports: list[PeerTransport],
    host: str = "::",
    port: int = 179,
    *,
    socket_factory: SocketFactory = _default_factory,
) -> asyncio.base_events.Server:
    """A listening socket for the given transports (see :class:`Listener`)."""
    lst = await start_listener(host, port, socket_factory=socket_factory)
    for t in transports:
        lst.add(t)
    assert lst.server is not None
    return lst.server
