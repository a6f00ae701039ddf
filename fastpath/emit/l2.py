"""Layer-2 announcing: ARP/NDP responder for owned IPs and gratuitous bursts on gaining one.

Split in a sans-I/O core and a thin shell:

* :class:`GarpScheduler` — MetalLB's schedule (metallb-behaviour.md §5.6): a burst at once when an IP is
  triggered (if it is not already being announced), then one per 1.1 s tick until 5 s after the most recent
  trigger; a re-trigger extends the window. Time is a parameter.
* :class:`FairLimiter` — the optional ``--arp-rate-limit`` (frames per second per interface, for switches with
  dynamic ARP inspection): a token bucket drained round-robin over the IPs with frames waiting, so every IP of a
  large burst is served at an equal rate instead of the first ones hogging the budget.
* :class:`Responder` — which IPs are answered on which interface, and the answer to an incoming frame (or the
  named reason for ignoring it).
* :class:`L2Speaker` — the asyncio shell: AF_PACKET sockets per interface, batched sends, reader callbacks.

Ownership is decided upstream (the reconciler plan); this module only executes it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from fastpath import l2 as frames
from fastpath import model as frames_model
from fastpath.constants import ARP_FRAME_LEN, NDP_NA_FRAME_LEN
from fastpath.emit import rawsock

log = logging.getLogger("streamlb.l2")

GARP_TICK = 1.1
GARP_WINDOW = 5.0


# --- schedule ---------------------------------------------------------------------------------------------------


class GarpScheduler:
    """Per-IP gratuitous burst schedule with an injected clock."""

    def __init__(self, tick: float = GARP_TICK, window: float = GARP_WINDOW) -> None:
        self.tick = tick
        self.window = window
        self._until: dict[str, float] = {}  # ip -> end of its window
        self._next: dict[str, float] = {}  # ip -> next burst time

    def trigger(self, ip: str, now: float) -> bool:
        """(Re)start the window for ``ip``; True when a burst is due at once (it was not being announced)."""
        fresh = ip not in self._until
        self._until[ip] = now + self.window
        if fresh:
            self._next[ip] = now + self.tick
        return fresh

    def cancel(self, ip: str) -> None:
        self._until.pop(ip, None)
        self._next.pop(ip, None)

    def due(self, now: float) -> list[str]:
        """IPs whose next burst is due at ``now`` (advancing their schedule), in address order."""
        out = []
        for ip in list(self._next):
            t = self._next[ip]
            if t > now:
                continue
            if t < self._until[ip]:
                out.append(ip)
                nt = t + self.tick
                while nt <= now:  # a late wake-up does not send a backlog of bursts
                    nt += self.tick
                self._next[ip] = nt
            else:
                self.cancel(ip)
                continue
            if self._next[ip] >= self._until[ip]:
                self.cancel(ip)
        return sorted(out, key=_ip_key)

    def next_deadline(self) -> float | None:
        return min(self._next.values()) if self._next else None

    def active(self) -> set[str]:
        return set(self._until)


def _ip_int(ip: str) -> tuple[int, int]:
    """(version, integer) of an address, without ``ipaddress`` on the IPv4 path (it is 20x slower)."""
    if ":" in ip:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, ip), "big")
    return 4, int.from_bytes(socket.inet_aton(ip), "big")


def _ip_key(ip: str) -> tuple[int, int]:
    a = ipaddress.ip_address(ip)
    return a.version, int(a)


# --- fair rate limit --------------------------------------------------------------------------------------------


class FairLimiter:
    """Token bucket (``rate`` frames/s, burst ``rate`` frames) shared by the IPs of one interface, served
    round-robin: each pass gives one frame to each IP that has frames waiting."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = float(rate)
        self.capacity = max(1.0, float(rate))
        self.tokens = self.capacity
        self._at = now
        self._queues: dict[str, deque[bytes]] = {}
        self._order: deque[str] = deque()

    def put(self, ip: str, frames_: Iterable[bytes]) -> None:
        q = self._queues.get(ip)
        if q is None:
            q = self._queues[ip] = deque()
            self._order.append(ip)
        q.extend(frames_)

    def drop(self, ip: str) -> None:
        """Forget frames queued for ``ip`` (it was withdrawn: nothing more is said for it)."""
        if self._queues.pop(ip, None) is not None:
            self._order.remove(ip)

    def _refill(self, now: float) -> None:
        if now > self._at:
            self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)

    def take(self, now: float) -> list[tuple[str, bytes]]:
        self._refill(now)
        out = []
        while self._order and self.tokens >= 1.0:
            ip = self._order.popleft()
            q = self._queues[ip]
            out.append((ip, q.popleft()))
            self.tokens -= 1.0
            if q:
                self._order.append(ip)
            else:
                del self._queues[ip]
        return out

    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def next_deadline(self) -> float | None:
        if not self._order:
            return None
        return self._at + max(0.0, 1.0 - self.tokens) / self.rate


# --- interfaces -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interface:
    name: str
    index: int
    mac: bytes
    link_local: int | None  # IPv6 link-local address (NDP responder only when present)

    @property
    def ndp(self) -> bool:
        return self.link_local is not None


IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
IFF_NOARP = 0x80


def discover_interfaces(exclude: Iterable[str] = ("lo",), netns: str | None = None) -> dict[str, Interface]:
    """Interfaces eligible for L2 announcing (metallb-behaviour.md §5.3), read over netlink with pyroute2: up,
    broadcast-capable, ARP enabled, not enslaved to a bridge/bond; NDP when it has an IPv6 link-local address."""
    import re

    from pyroute2 import IPRoute

    pats = [re.compile(p) for p in exclude]
    out: dict[str, Interface] = {}
    with (IPRoute(netns=netns) if netns else IPRoute()) as ipr:
        ll: dict[int, int] = {}
        for a in ipr.get_addr(family=socket.AF_INET6):
            addr = a.get_attr("IFA_ADDRESS")
            if addr and addr.lower().startswith("fe80") and not (a["flags"] & 0x40):  # IFA_F_TENTATIVE
                ll.setdefault(a["index"], int(ipaddress.IPv6Address(addr)))
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            flags = link["flags"]
            if any(p.fullmatch(name) for p in pats):
                continue
            if not flags & IFF_UP or not flags & IFF_BROADCAST or flags & IFF_NOARP or flags & IFF_LOOPBACK:
                continue
            if link.get_attr("IFLA_MASTER"):
                continue
            mac = link.get_attr("IFLA_ADDRESS")
            if not mac:
                continue
            out[name] = Interface(name, link["index"], bytes.fromhex(mac.replace(":", "")), ll.get(link["index"]))
    return out


# --- responder core ---------------------------------------------------------------------------------------------


@dataclass
class L2Counters:
    requests_received: int = 0
    responses_sent: int = 0
    gratuitous_sent: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


class Responder:
    """Which IPs this node answers for, per interface, and what to say to an incoming frame."""

    def __init__(self) -> None:
        self.ifaces: dict[str, Interface] = {}
        self.owned: dict[str, tuple[str, ...]] = {}  # ip -> allowed interfaces (() = all)
        self._v4: dict[int, tuple[str, ...]] = {}
        self._v6: dict[int, tuple[str, ...]] = {}
        self.counters = L2Counters()
        # called with (ip, interface name, sender MAC) when another host's ARP request (a gratuitous ARP, say)
        # gives an IP announced here as its own sender address: the speaker decides what that means
        self.on_claim: Callable[[str, str, bytes], None] | None = None

    def set_interfaces(self, ifaces: dict[str, Interface]) -> None:
        self.ifaces = dict(ifaces)

    def announce(self, ip: str, interfaces: tuple[str, ...] = ()) -> None:
        version, value = _ip_int(ip)
        self.owned[ip] = tuple(interfaces)
        (self._v4 if version == 4 else self._v6)[value] = tuple(interfaces)

    def withdraw(self, ip: str) -> None:
        if self.owned.pop(ip, None) is not None:
            version, value = _ip_int(ip)
            (self._v4 if version == 4 else self._v6).pop(value, None)

    def interfaces_for(self, ip: str) -> list[Interface]:
        allowed = self.owned.get(ip)
        if allowed is None:
            return []
        v6 = ":" in ip
        out = [i for n, i in sorted(self.ifaces.items()) if not allowed or n in allowed]
        return [i for i in out if i.ndp] if v6 else out

    def _drop(self, reason: str) -> None:
        self.counters.dropped[reason] = self.counters.dropped.get(reason, 0) + 1

    def answer(self, iface: Interface, frame: bytes) -> bytes | None:
        """The reply to ``frame`` received on ``iface``, or None (the reason is counted)."""
        et = frame[12:14]
        if et == b"\x08\x06":
            req = frames.parse_arp_request(frame, iface.mac)
            if not isinstance(req, frames_model.ArpRequest):
                self._drop(str(req))
                return None
            self.counters.requests_received += 1
            if self.on_claim is not None and req.sender_mac != iface.mac and req.sender_ip in self._v4:
                self.on_claim(str(ipaddress.IPv4Address(req.sender_ip)), iface.name, req.sender_mac)
            allowed = self._v4.get(req.target_ip)
            if allowed is None or (allowed and iface.name not in allowed):
                self._drop("notAnnounced")
                return None
            self.counters.responses_sent += 1
            return frames.build_arp_reply(iface.mac, req.target_ip, req.sender_mac, req.sender_ip)
        if et == b"\x86\xdd":
            if not iface.ndp:
                self._drop("noLinkLocal")
                return None
            ns = frames.parse_neighbor_solicitation(frame, iface.mac)
            if not isinstance(ns, frames_model.NeighborSolicitation):
                self._drop(str(ns))
                return None
            self.counters.requests_received += 1
            allowed = self._v6.get(ns.target)
            if allowed is None or (allowed and iface.name not in allowed):
                self._drop("notAnnounced")
                return None
            self.counters.responses_sent += 1
            return frames.build_ndp_reply(iface.mac, ns.target, ns.source_lla, ns.src_ip, src=iface.link_local)
        self._drop("unknownEtherType")
        return None

    def burst_frames(self, ip: str, iface: Interface) -> list[bytes]:
        """One gratuitous burst for ``ip`` on ``iface``: ARP request + reply, or one unsolicited NA."""
        a = ipaddress.ip_address(ip)
        if a.version == 4:
            return [frames.build_arp_announce(1, iface.mac, int(a)), frames.build_arp_announce(2, iface.mac, int(a))]
        return [frames.build_ndp_advert(iface.mac, int(a), src=iface.link_local)]


# --- asyncio shell ----------------------------------------------------------------------------------------------


SocketOpener = Callable[[str, int], socket.socket]


class L2Speaker:
    """Runs the responder and the gratuitous schedule on real AF_PACKET sockets."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rate_limit: float | None = None,
        discover: Callable[[], dict[str, Interface]] = discover_interfaces,
        opener: SocketOpener = rawsock.open_packet_socket,
        rescan_interval: float = 10.0,
        tick: float = GARP_TICK,
        window: float = GARP_WINDOW,
        on_send: Callable[[str, int], None] | None = None,
    ) -> None:
        self.clock = clock
        self.responder = Responder()
        self.schedule = GarpScheduler(tick, window)
        self.rate_limit = rate_limit
        self._limiters: dict[str, FairLimiter] = {}
        self._discover = discover
        self._opener = opener
        self._rescan_interval = rescan_interval
        self._socks: dict[str, tuple[socket.socket, socket.socket]] = {}  # name -> (arp, ns)
        self._groups: dict[tuple[str, bytes], int] = {}  # (iface, multicast mac) -> refs
        self._sender = rawsock.BatchSender()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.on_send = on_send  # (ip, frames) after each gratuitous send, for metrics/benchmarks
        self.first_garp_at: dict[str, float] = {}

    # --- ownership (called from the plan) ---------------------------------------------------------------------

    def announce(self, ip: str, interfaces: tuple[str, ...] = ()) -> None:
        """Answer for ``ip`` from now on and (re)trigger its gratuitous schedule."""
        had = ip in self.responder.owned
        self.responder.announce(ip, interfaces)
        if not had and ":" in ip:
            self._join(ip, True)
        if self.schedule.trigger(ip, self.clock()):
            self._burst(ip)
        self._wake.set()

    def withdraw(self, ip: str) -> None:
        """Stop answering for ``ip`` at once; no goodbye packet (as MetalLB)."""
        if ip in self.responder.owned and ":" in ip:
            self._join(ip, False)
        self.responder.withdraw(ip)
        self.schedule.cancel(ip)
        for lim in self._limiters.values():
            lim.drop(ip)

    def _join(self, ip: str, add: bool) -> None:
        mac = rawsock.solicited_node_mac(int(ipaddress.IPv6Address(ip)))
        for name, iface in self.responder.ifaces.items():
            if not iface.ndp or name not in self._socks:
                continue
            key = (name, mac)
            refs = self._groups.get(key, 0) + (1 if add else -1)
            try:
                if add and refs == 1:
                    rawsock.add_multicast(self._socks[name][1], iface.index, mac, True)
                elif not add and refs == 0:
                    rawsock.add_multicast(self._socks[name][1], iface.index, mac, False)
            except OSError as exc:
                log.warning("multicast membership on %s: %s", name, exc)
            if refs > 0:
                self._groups[key] = refs
            else:
                self._groups.pop(key, None)

    # --- sending ----------------------------------------------------------------------------------------------

    def _burst(self, ip: str) -> None:
        now = self.clock()
        for iface in self.responder.interfaces_for(ip):
            socks = self._socks.get(iface.name)
            if socks is None:
                continue
            fs = self.responder.burst_frames(ip, iface)
            if self.rate_limit:
                lim = self._limiters.setdefault(iface.name, FairLimiter(self.rate_limit, now))
                lim.put(ip, fs)
                continue
            n = self._sender.send_frames(socks[0], fs)
            self._sent(ip, n, now)

    def _sent(self, ip: str, n: int, now: float) -> None:
        if n:
            self.responder.counters.gratuitous_sent += n
            self.first_garp_at.setdefault(ip, now)
            if self.on_send is not None:
                self.on_send(ip, n)

    def announce_many(self, ips: list[str], interfaces: tuple[str, ...] = ()) -> int:
        """Gain many IPv4 IPs at once: one batched ``sendmmsg`` burst per interface (``write_arp_burst``)."""
        now = self.clock()
        fresh = []
        for ip in ips:
            self.responder.announce(ip, interfaces)
            if self.schedule.trigger(ip, now):
                fresh.append(ip)
        return self._burst_many(fresh, now)

    def _burst_many(self, ips: list[str], now: float) -> int:
        v4 = [ip for ip in ips if ":" not in ip]
        sent = 0
        for ip in [ip for ip in ips if ":" in ip]:
            self._burst(ip)
        if not v4:
            return 0
        by_iface: dict[str, list[int]] = {}
        targets: dict[tuple[str, ...], list[str]] = {}  # allowed-interface sets are few: resolve each once
        for ip in v4:
            allowed = self.responder.owned.get(ip, ())
            names = targets.get(allowed)
            if names is None:
                names = targets[allowed] = [i.name for i in self.responder.interfaces_for(ip)]
            value = int.from_bytes(socket.inet_aton(ip), "big")
            for name in names:
                by_iface.setdefault(name, []).append(value)
        for name, addrs in by_iface.items():
            socks = self._socks.get(name)
            if socks is None:
                continue
            iface = self.responder.ifaces[name]
            if self.rate_limit:
                lim = self._limiters.setdefault(name, FairLimiter(self.rate_limit, now))
                for a in addrs:
                    ip = str(ipaddress.IPv4Address(a))
                    lim.put(ip, self.responder.burst_frames(ip, iface))
                continue
            buf = bytearray(2 * ARP_FRAME_LEN * len(addrs))
            n = frames.write_arp_burst(buf, iface.mac, addrs)
            k = self._sender.send(socks[0], buf, ARP_FRAME_LEN, n)
            sent += k
            self.responder.counters.gratuitous_sent += k
        for ip in v4:
            self.first_garp_at.setdefault(ip, now)
        self._wake.set()
        return sent

    # --- lifecycle --------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Discover interfaces and open sockets (also usable without an event loop, e.g. in benchmarks)."""
        self._rescan()

    def _discover_off_loop(self) -> dict[str, Interface]:
        """pyroute2's synchronous API runs its own event loop, so never call it on a running one."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._discover()
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            return ex.submit(self._discover).result(30)

    def _rescan(self, found: dict[str, Interface] | None = None) -> None:
        if found is None:
            found = self._discover_off_loop()
        for name in list(self._socks):
            if name not in found or found[name] != self.responder.ifaces.get(name):
                self._close_iface(name)
        self.responder.set_interfaces(found)
        for name, iface in found.items():
            if name in self._socks:
                continue
            try:
                arp = self._opener(name, rawsock.ETH_P_ARP)
                ns = self._opener(name, rawsock.ETH_P_IPV6)
                try:
                    rawsock.attach_arp_request_filter(arp)
                    rawsock.attach_ns_filter(ns)
                except OSError as exc:  # filters are an optimisation; parsing checks everything anyway
                    log.debug("BPF filter not attached on %s: %s", name, exc)
            except OSError as exc:
                log.warning("cannot open AF_PACKET sockets on %s: %s", name, exc)
                continue
            self._socks[name] = (arp, ns)
            self._add_reader(name)
            for ip in self.responder.owned:
                if ":" in ip and iface.ndp:
                    mac = rawsock.solicited_node_mac(int(ipaddress.IPv6Address(ip)))
                    self._groups[(name, mac)] = self._groups.get((name, mac), 0) + 1
                    try:
                        rawsock.add_multicast(ns, iface.index, mac, True)
                    except OSError:
                        pass

    def _add_reader(self, name: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for s in self._socks[name]:
            loop.add_reader(s.fileno(), self._on_readable, name, s)

    def _close_iface(self, name: str) -> None:
        socks = self._socks.pop(name, None)
        if socks is None:
            return
        try:
            loop = asyncio.get_running_loop()
            for s in socks:
                loop.remove_reader(s.fileno())
        except RuntimeError:
            pass
        for s in socks:
            s.close()
        for key in [k for k in self._groups if k[0] == name]:
            del self._groups[key]

    def _on_readable(self, name: str, sock: socket.socket) -> None:
        iface = self.responder.ifaces.get(name)
        replies = []
        for _ in range(256):  # bounded: leave the loop to other work
            try:
                data, addr = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("recv on %s: %s", name, exc)
                break
            if iface is None or addr[2] == rawsock.PACKET_OUTGOING:
                continue
            r = self.responder.answer(iface, data)
            if r is not None:
                replies.append(r)
        if replies:
            try:
                self._sender.send_frames(self._socks[name][0], replies)
            except OSError as exc:
                log.warning("send on %s: %s", name, exc)

    def start(self) -> asyncio.Task:
        loop = asyncio.get_running_loop()
        if not self._socks:
            self._rescan()
        else:
            for name in self._socks:
                self._add_reader(name)
        self._task = loop.create_task(self._run(), name="l2-speaker")
        return self._task

    async def _run(self) -> None:
        next_scan = self.clock() + self._rescan_interval
        while not self._stopping:
            now = self.clock()
            for ip in self.schedule.due(now):
                if ip in self.responder.owned:  # skipped if no longer announced
                    self._burst(ip)
            for name, lim in self._limiters.items():
                socks = self._socks.get(name)
                batch = lim.take(now)
                if socks and batch:
                    n = self._sender.send_frames(socks[0], [f for _, f in batch])
                    for ip, _ in batch[:n]:
                        self._sent(ip, 1, now)
            if now >= next_scan:
                try:
                    found = await asyncio.get_running_loop().run_in_executor(None, self._discover)
                    self._rescan(found)
                except Exception as exc:  # noqa: BLE001 - netlink trouble must not stop answering
                    log.warning("interface rescan failed: %s", exc)
                next_scan = now + self._rescan_interval
            ds = [d for d in [self.schedule.next_deadline(), next_scan] if d is not None]
            ds += [d for lim in self._limiters.values() if (d := lim.next_deadline()) is not None]
            timeout = max(0.0, min(ds) - self.clock()) if ds else None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        """Stop answering: close every socket (no goodbye packets)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        for name in list(self._socks):
            self._close_iface(name)
        for ip in list(self.responder.owned):
            self.responder.withdraw(ip)

    def close(self) -> None:
        """Close every socket at once (synchronous; ``stop`` is the graceful form)."""
        self._stopping = True
        self._wake.set()
        for name in list(self._socks):
            self._close_iface(name)
